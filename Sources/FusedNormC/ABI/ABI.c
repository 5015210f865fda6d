// The parts of the C interface that need no Swift: the thread-local error message, versions, status names,
// dtype sizes and the contiguous-descriptor helper. The operations are @_cdecl functions in ../*.swift.
#include "fusednorm.h"
#include "fusednorm_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define FUSEDNORM_STRINGIFY_(x) #x
#define FUSEDNORM_STRINGIFY(x) FUSEDNORM_STRINGIFY_(x)

// One message per thread, freed by the key's destructor when the thread exits.
static pthread_key_t message_key;
static pthread_once_t message_key_once = PTHREAD_ONCE_INIT;

static void make_message_key(void) { (void)pthread_key_create(&message_key, free); }

void fusednorm_internal_set_last_error(const char *message) {
    (void)pthread_once(&message_key_once, make_message_key);
    size_t length = strlen(message);
    char *copy = malloc(length + 1);
    if (copy == NULL) return;  // keep the previous message rather than none
    memcpy(copy, message, length + 1);
    free(pthread_getspecific(message_key));
    (void)pthread_setspecific(message_key, copy);
}

const char *fusednorm_last_error(void) {
    (void)pthread_once(&message_key_once, make_message_key);
    const char *message = pthread_getspecific(message_key);
    return message != NULL ? message : "";
}

const char *fusednorm_status_name(fusednorm_status status) {
    switch (status) {
    case FUSEDNORM_SUCCESS: return "FUSEDNORM_SUCCESS";
    case FUSEDNORM_INVALID_ARGUMENT: return "FUSEDNORM_INVALID_ARGUMENT";
    case FUSEDNORM_UNSUPPORTED: return "FUSEDNORM_UNSUPPORTED";
    case FUSEDNORM_DEVICE_ERROR: return "FUSEDNORM_DEVICE_ERROR";
    case FUSEDNORM_OUT_OF_MEMORY: return "FUSEDNORM_OUT_OF_MEMORY";
    case FUSEDNORM_INTERNAL: return "FUSEDNORM_INTERNAL";
    default: return "unknown status";
    }
}

const char *fusednorm_version(void) {
    return FUSEDNORM_STRINGIFY(FUSEDNORM_VERSION_MAJOR) "." FUSEDNORM_STRINGIFY(FUSEDNORM_VERSION_MINOR) "."
        FUSEDNORM_STRINGIFY(FUSEDNORM_VERSION_PATCH);
}

int32_t fusednorm_version_number(void) { return FUSEDNORM_VERSION_NUMBER; }

int32_t fusednorm_dtype_size(fusednorm_dtype dtype) {
    switch (dtype) {
    case FUSEDNORM_FLOAT32: return 4;
    case FUSEDNORM_FLOAT16:
    case FUSEDNORM_BFLOAT16: return 2;
    default: return 0;
    }
}

fusednorm_status fusednorm_tensor_init(
    fusednorm_tensor *tensor, void *data, fusednorm_device_type device_type, int32_t device_index,
    fusednorm_dtype dtype, int32_t ndim, const int64_t *shape) {
    if (tensor == NULL) {
        fusednorm_internal_set_last_error("fusednorm_tensor_init: tensor is NULL");
        return FUSEDNORM_INVALID_ARGUMENT;
    }
    if (ndim < 1 || ndim > FUSEDNORM_MAX_DIMS) {
        fusednorm_internal_set_last_error("fusednorm_tensor_init: ndim must be 1 ... " FUSEDNORM_STRINGIFY(FUSEDNORM_MAX_DIMS));
        return FUSEDNORM_INVALID_ARGUMENT;
    }
    if (shape == NULL) {
        fusednorm_internal_set_last_error("fusednorm_tensor_init: shape is NULL");
        return FUSEDNORM_INVALID_ARGUMENT;
    }
    for (int32_t k = 0; k < ndim; k++) {
        if (shape[k] < 0) {
            fusednorm_internal_set_last_error("fusednorm_tensor_init: a dimension is negative");
            return FUSEDNORM_INVALID_ARGUMENT;
        }
    }
    memset(tensor, 0, sizeof *tensor);
    tensor->data = data;
    tensor->device_type = device_type;
    tensor->device_index = device_index;
    tensor->dtype = dtype;
    tensor->ndim = ndim;
    int64_t stride = 1;
    for (int32_t k = ndim - 1; k >= 0; k--) {
        tensor->shape[k] = shape[k];
        tensor->strides[k] = stride;
        // Saturate instead of overflowing; such a descriptor is refused when used (too many elements).
        stride = (shape[k] != 0 && stride > INT64_MAX / shape[k]) ? INT64_MAX : stride * (shape[k] > 0 ? shape[k] : 1);
    }
    return FUSEDNORM_SUCCESS;
}
