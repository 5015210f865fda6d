#include "DLPackTestSupport.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static _Atomic int64_t deleter_calls = 0;

int64_t dlpack_test_deleter_calls(void) { return atomic_load(&deleter_calls); }

// What the producer allocates besides the struct: shape and strides arrays.
typedef struct {
    int64_t shape[16];
    int64_t strides[16];
} producer_context;

static void versioned_deleter(DLManagedTensorVersioned *self) {
    atomic_fetch_add(&deleter_calls, 1);
    free(self->manager_ctx);
    free(self);
}

static void legacy_deleter(DLManagedTensor *self) {
    atomic_fetch_add(&deleter_calls, 1);
    free(self->manager_ctx);
    free(self);
}

static DLTensor make_view(
    producer_context *context, void *data, uint64_t byte_offset, DLDevice device, DLDataType dtype, int32_t ndim,
    const int64_t *shape, const int64_t *strides) {
    int32_t kept = ndim < 0 ? 0 : (ndim > 16 ? 16 : ndim);
    for (int32_t k = 0; k < kept; k++) {
        context->shape[k] = shape[k];
        context->strides[k] = strides ? strides[k] : 0;
    }
    DLTensor view = {data, device, ndim, dtype, context->shape, strides ? context->strides : NULL, byte_offset};
    return view;
}

DLManagedTensorVersioned *dlpack_test_make_versioned(
    void *data, uint64_t byte_offset, DLDevice device, DLDataType dtype, int32_t ndim, const int64_t *shape,
    const int64_t *strides, uint32_t version_major, uint64_t flags) {
    DLManagedTensorVersioned *managed = calloc(1, sizeof *managed);
    producer_context *context = calloc(1, sizeof *context);
    managed->version.major = version_major;
    managed->version.minor = 0;
    managed->manager_ctx = context;
    managed->deleter = versioned_deleter;
    managed->flags = flags;
    managed->dl_tensor = make_view(context, data, byte_offset, device, dtype, ndim, shape, strides);
    return managed;
}

DLManagedTensor *dlpack_test_make_legacy(
    void *data, DLDevice device, DLDataType dtype, int32_t ndim, const int64_t *shape, const int64_t *strides) {
    DLManagedTensor *managed = calloc(1, sizeof *managed);
    producer_context *context = calloc(1, sizeof *context);
    managed->manager_ctx = context;
    managed->deleter = legacy_deleter;
    managed->dl_tensor = make_view(context, data, 0, device, dtype, ndim, shape, strides);
    return managed;
}

void dlpack_test_free_versioned(DLManagedTensorVersioned *managed) {
    free(managed->manager_ctx);
    free(managed);
}

static double half_to_double(uint16_t bits) {
    int sign = bits >> 15, exponent = (bits >> 10) & 31, mantissa = bits & 1023;
    double magnitude;
    if (exponent == 0) magnitude = ldexp(mantissa, -24);
    else if (exponent == 31) magnitude = mantissa ? NAN : INFINITY;
    else magnitude = ldexp(mantissa + 1024, exponent - 25);
    return sign ? -magnitude : magnitude;
}

static uint16_t double_to_half(double value) {
    // Through float: exact for the values the tests write (already representable in half).
    float f = (float)value;
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (x >> 16) & 0x8000;
    int exponent = (int)((x >> 23) & 255) - 127 + 15;
    uint32_t mantissa = x & 0x7fffff;
    if (exponent <= 0) return sign;  // the tests write no subnormals
    if (exponent >= 31) return sign | 0x7c00;
    uint32_t rounded = (mantissa >> 13) + (((mantissa >> 12) & 1) && ((mantissa & 0x17ff) != 0));
    return sign | (uint16_t)(((uint32_t)exponent << 10) + rounded);
}

// The element offset (in elements) of flat row-major index `flat`.
static int64_t element_offset(const DLTensor *tensor, int64_t flat) {
    int64_t offset = 0, contiguous = 1;
    for (int32_t k = tensor->ndim - 1; k >= 0; k--) {
        int64_t index = flat % tensor->shape[k];
        flat /= tensor->shape[k];
        int64_t stride = tensor->strides ? tensor->strides[k] : contiguous;
        offset += index * stride;
        contiguous *= tensor->shape[k];
    }
    return offset;
}

static int64_t element_count(const DLTensor *tensor) {
    int64_t count = 1;
    for (int32_t k = 0; k < tensor->ndim; k++) count *= tensor->shape[k];
    return count;
}

int64_t dlpack_test_read(const DLTensor *tensor, double *out, int64_t capacity) {
    if (tensor->device.device_type != kDLCPU || tensor->dtype.lanes != 1) return -1;
    int64_t count = element_count(tensor);
    if (count > capacity) return -1;
    const char *base = (const char *)tensor->data + tensor->byte_offset;
    for (int64_t i = 0; i < count; i++) {
        int64_t offset = element_offset(tensor, i);
        if (tensor->dtype.code == kDLFloat && tensor->dtype.bits == 32) {
            float v;
            memcpy(&v, base + 4 * offset, 4);
            out[i] = v;
        } else if (tensor->dtype.code == kDLFloat && tensor->dtype.bits == 16) {
            uint16_t v;
            memcpy(&v, base + 2 * offset, 2);
            out[i] = half_to_double(v);
        } else if (tensor->dtype.code == kDLBfloat && tensor->dtype.bits == 16) {
            uint16_t v;
            memcpy(&v, base + 2 * offset, 2);
            uint32_t bits = (uint32_t)v << 16;
            float f;
            memcpy(&f, &bits, 4);
            out[i] = f;
        } else {
            return -1;
        }
    }
    return count;
}

int64_t dlpack_test_write(const DLTensor *tensor, const double *values, int64_t count) {
    if (tensor->device.device_type != kDLCPU || tensor->dtype.lanes != 1 || count != element_count(tensor)) return -1;
    char *base = (char *)tensor->data + tensor->byte_offset;
    for (int64_t i = 0; i < count; i++) {
        int64_t offset = element_offset(tensor, i);
        float f = (float)values[i];
        if (tensor->dtype.code == kDLFloat && tensor->dtype.bits == 32) {
            memcpy(base + 4 * offset, &f, 4);
        } else if (tensor->dtype.code == kDLFloat && tensor->dtype.bits == 16) {
            uint16_t h = double_to_half(values[i]);
            memcpy(base + 2 * offset, &h, 2);
        } else if (tensor->dtype.code == kDLBfloat && tensor->dtype.bits == 16) {
            uint32_t bits;
            memcpy(&bits, &f, 4);
            uint16_t b = (uint16_t)((bits + 0x7fff + ((bits >> 16) & 1)) >> 16);
            memcpy(base + 2 * offset, &b, 2);
        } else {
            return -1;
        }
    }
    return count;
}

void dlpack_test_release_versioned(DLManagedTensorVersioned *managed) {
    if (managed->deleter) managed->deleter(managed);
}

void dlpack_test_release_legacy(DLManagedTensor *managed) {
    if (managed->deleter) managed->deleter(managed);
}
