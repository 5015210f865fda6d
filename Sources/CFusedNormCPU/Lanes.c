// The partial loads and stores of Lanes.h: a row's head and tail, element by element through a buffer, with the
// scalar conversions of Scalar.h (the same bits as the vector ones).

#include "Lanes.h"

#ifdef CFN_HAS_LANES
CFN_VECTOR CFN_KEEPS_REGISTERS __m256 cfn_load_partial(const void *row, size_t index, size_t lanes, int dtype) {
    float buffer[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (size_t k = 0; k < lanes; k++) buffer[k] = cfn_load1(row, index + k, dtype);
    return _mm256_loadu_ps(buffer);
}

CFN_VECTOR CFN_KEEPS_REGISTERS __m256 cfn_store_partial(void *row, size_t index, size_t lanes, int dtype, __m256 values) {
    float buffer[8];
    _mm256_storeu_ps(buffer, values);
    for (size_t k = 0; k < lanes; k++) buffer[k] = cfn_store1(row, index + k, dtype, buffer[k]);
    return _mm256_loadu_ps(buffer);
}
#endif
