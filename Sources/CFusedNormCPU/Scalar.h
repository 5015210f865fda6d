#ifndef CFUSEDNORMCPU_SCALAR_H
#define CFUSEDNORMCPU_SCALAR_H

// Internal: the scalar conversions between float32 and the 16-bit formats (the rules are in
// CFusedNormCPU.h), shared by the converters and by the row kernels' heads and tails, and scalar
// loads/stores by dtype code (CFN_FLOAT32, CFN_FLOAT16, CFN_BFLOAT16).

#include "CFusedNormCPU.h"

#include <string.h>

static inline uint32_t cfn_float_bits(float value) {
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    return bits;
}

static inline float cfn_bits_float(uint32_t bits) {
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

static inline uint16_t cfn_bf16_from_bits(uint32_t bits) {
    if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((bits >> 16) | 0x0040u);  // NaN: quiet, sign kept
    return (uint16_t)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}

static inline uint32_t cfn_f16_to_f32_bits(uint16_t half) {
    uint32_t sign = (uint32_t)(half & 0x8000u) << 16;
    uint32_t exponent = (half >> 10) & 0x1Fu, mantissa = half & 0x3FFu;
    if (exponent == 0x1F) return sign | 0x7F800000u | (mantissa ? 0x00400000u | (mantissa << 13) : 0);
    if (exponent == 0) return sign | cfn_float_bits((float)mantissa * 0x1p-24f);  // zero or subnormal, exact
    return sign | ((exponent + 112u) << 23) | (mantissa << 13);
}

static inline uint16_t cfn_f16_from_bits(uint32_t bits) {
    uint32_t magnitude = bits & 0x7FFFFFFFu;
    uint16_t sign = (uint16_t)((bits >> 16) & 0x8000u);
    if (magnitude > 0x7F800000u) return sign | (uint16_t)(((magnitude >> 13) | 0x7E00u) & 0x7FFFu);  // NaN
    if (magnitude >= 0x477FF000u) return sign | 0x7C00u;  // at or beyond 65520 (ties to even): ±Inf
    if (magnitude >= 0x38800000u) {                       // normal half: rebias, round the mantissa
        return sign | (uint16_t)((magnitude + 0xFFFu + ((magnitude >> 13) & 1u) - 0x38000000u) >> 13);
    }
    // Subnormal or zero: adding 0.5 rounds to a multiple of 2^-24 (nearest, ties to even).
    float sum = cfn_bits_float(magnitude) + 0.5f;
    return sign | (uint16_t)(cfn_float_bits(sum) - 0x3F000000u);
}

// Element `index` of a row of dtype `dtype`, as a float.
static inline float cfn_load1(const void *row, size_t index, int dtype) {
    switch (dtype) {
    case CFN_FLOAT16: return cfn_bits_float(cfn_f16_to_f32_bits(((const uint16_t *)row)[index]));
    case CFN_BFLOAT16: return cfn_bits_float((uint32_t)((const uint16_t *)row)[index] << 16);
    default: return ((const float *)row)[index];
    }
}

// `value` rounded to `dtype` and stored as element `index`; returns the stored value as a float.
static inline float cfn_store1(void *row, size_t index, int dtype, float value) {
    switch (dtype) {
    case CFN_FLOAT16: {
        uint16_t half = cfn_f16_from_bits(cfn_float_bits(value));
        ((uint16_t *)row)[index] = half;
        return cfn_bits_float(cfn_f16_to_f32_bits(half));
    }
    case CFN_BFLOAT16: {
        uint16_t half = cfn_bf16_from_bits(cfn_float_bits(value));
        ((uint16_t *)row)[index] = half;
        return cfn_bits_float((uint32_t)half << 16);
    }
    default: ((float *)row)[index] = value; return value;
    }
}

// `value` rounded to `dtype` (what storing and loading it would give).
static inline float cfn_round1(float value, int dtype) {
    switch (dtype) {
    case CFN_FLOAT16: return cfn_bits_float(cfn_f16_to_f32_bits(cfn_f16_from_bits(cfn_float_bits(value))));
    case CFN_BFLOAT16: return cfn_bits_float((uint32_t)cfn_bf16_from_bits(cfn_float_bits(value)) << 16);
    default: return value;
    }
}

#endif
