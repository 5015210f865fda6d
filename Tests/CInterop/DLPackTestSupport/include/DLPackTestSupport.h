// A DLPack producer and consumer written in C, so that FusedNorm's import and export are tested against
// code that knows DLPack only through the C structs.
#ifndef DLPACK_TEST_SUPPORT_H
#define DLPACK_TEST_SUPPORT_H

#include "dlpack.h"
#include <stdint.h>

// Producer: a DLManagedTensorVersioned over `data` (not owned) with its own copies of shape and strides
// (strides NULL: none given, compact). Its deleter counts calls in dlpack_test_deleter_calls() and frees
// the struct. `version_major` and `flags` are stored as given (to test refusals and read-only).
DLManagedTensorVersioned *dlpack_test_make_versioned(
    void *data, uint64_t byte_offset, DLDevice device, DLDataType dtype, int32_t ndim, const int64_t *shape,
    const int64_t *strides, uint32_t version_major, uint64_t flags);

// Producer: the same as a legacy DLManagedTensor.
DLManagedTensor *dlpack_test_make_legacy(
    void *data, DLDevice device, DLDataType dtype, int32_t ndim, const int64_t *shape, const int64_t *strides);

// How many times the producer's deleters have run, in total.
int64_t dlpack_test_deleter_calls(void);

// Frees a tensor made by the producer without counting (for tests where the import was refused).
void dlpack_test_free_versioned(DLManagedTensorVersioned *managed);

// Consumer: reads the elements of a host tensor in row-major order into `out` as doubles, decoding
// float32, float16 and bfloat16 itself and following shape, strides and byte_offset. Returns the number
// of elements, or -1 when the tensor is not one it reads (device, dtype, lanes, capacity).
int64_t dlpack_test_read(const DLTensor *tensor, double *out, int64_t capacity);

// Consumer: writes `values` (row-major) into a host tensor through its strides, rounding to nearest even.
int64_t dlpack_test_write(const DLTensor *tensor, const double *values, int64_t count);

// Consumer: calls the deleter of a versioned tensor (as a consumer does when done).
void dlpack_test_release_versioned(DLManagedTensorVersioned *managed);
void dlpack_test_release_legacy(DLManagedTensor *managed);

#endif
