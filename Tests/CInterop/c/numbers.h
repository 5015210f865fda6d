// Storage formats and the float64 reference of the C interface test (test_c_abi.c).
#ifndef FUSEDNORM_TEST_NUMBERS_H
#define FUSEDNORM_TEST_NUMBERS_H

#include "fusednorm.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

// float -> IEEE half, round to nearest even (subnormals, overflow to infinity, NaN kept NaN).
static inline uint16_t to_half(float value) {
    uint32_t x;
    memcpy(&x, &value, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t magnitude = x & 0x7fffffff;
    if (magnitude >= 0x7f800000) return sign | (magnitude > 0x7f800000 ? 0x7e00 : 0x7c00);
    if (magnitude >= 0x477ff000) return sign | 0x7c00;  // rounds to infinity (>= 65520)
    if (magnitude < 0x38800000) {                        // below 2^-14: a subnormal half (or zero)
        float a;
        memcpy(&a, &magnitude, 4);
        return sign | (uint16_t)nearbyintf(a * 16777216.0f);  // units of 2^-24, ties to even
    }
    uint32_t half = ((magnitude >> 23) - 112) << 10 | ((magnitude >> 13) & 0x3ff);
    uint32_t rest = magnitude & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (half & 1))) half++;
    return sign | (uint16_t)half;
}

static inline float from_half(uint16_t bits) {
    int exponent = (bits >> 10) & 31, mantissa = bits & 1023;
    float magnitude = exponent == 0 ? ldexpf((float)mantissa, -24)
        : exponent == 31 ? (mantissa ? NAN : INFINITY) : ldexpf((float)(mantissa + 1024), exponent - 25);
    return (bits & 0x8000) ? -magnitude : magnitude;
}

// float -> bfloat16, round to nearest even.
static inline uint16_t to_bfloat(float value) {
    uint32_t x;
    memcpy(&x, &value, 4);
    if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)((x >> 16) | 0x40);
    return (uint16_t)((x + 0x7fff + ((x >> 16) & 1)) >> 16);
}

static inline float from_bfloat(uint16_t bits) {
    uint32_t x = (uint32_t)bits << 16;
    float value;
    memcpy(&value, &x, 4);
    return value;
}

// Stores `value` as element `index` of `dtype` at `base`.
static inline void store(void *base, int64_t index, fusednorm_dtype dtype, double value) {
    if (dtype == FUSEDNORM_FLOAT32) ((float *)base)[index] = (float)value;
    else if (dtype == FUSEDNORM_FLOAT16) ((uint16_t *)base)[index] = to_half((float)value);
    else ((uint16_t *)base)[index] = to_bfloat((float)value);
}

static inline double load(const void *base, int64_t index, fusednorm_dtype dtype) {
    if (dtype == FUSEDNORM_FLOAT32) return ((const float *)base)[index];
    if (dtype == FUSEDNORM_FLOAT16) return from_half(((const uint16_t *)base)[index]);
    return from_bfloat(((const uint16_t *)base)[index]);
}

// `value` rounded to `dtype` (through float, as the kernels store it).
static inline double round_to(fusednorm_dtype dtype, double value) {
    if (dtype == FUSEDNORM_FLOAT32) return (float)value;
    if (dtype == FUSEDNORM_FLOAT16) return from_half(to_half((float)value));
    return from_bfloat(to_bfloat((float)value));
}

static inline const char *dtype_name(fusednorm_dtype dtype) {
    return dtype == FUSEDNORM_FLOAT32 ? "float32" : dtype == FUSEDNORM_FLOAT16 ? "float16" : "bfloat16";
}

// The project's tolerance on the relative L2 error of outputs stored in `dtype` (FusedNormReference).
static inline double tolerance(fusednorm_dtype dtype, int llama) {
    double base = dtype == FUSEDNORM_FLOAT32 ? 1e-5 : dtype == FUSEDNORM_FLOAT16 ? 1e-3 : 8e-3;
    return llama ? base * 1.5 : base;
}

// sqrt(sum (a - b)^2 / sum b^2), 0 when both are zero.
static inline double relative_error(const double *actual, const double *expected, int64_t count) {
    double difference = 0, norm = 0;
    for (int64_t i = 0; i < count; i++) {
        difference += (actual[i] - expected[i]) * (actual[i] - expected[i]);
        norm += expected[i] * expected[i];
    }
    if (norm == 0) return difference == 0 ? 0 : INFINITY;
    return sqrt(difference / norm);
}

#endif
