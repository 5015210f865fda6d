#ifndef CFUSEDNORMCPU_H
#define CFUSEDNORMCPU_H

// Row conversions between float32 and the 16-bit formats, for the CPU backend of FusedNorm.
//
// Swift compiles for baseline x86_64 (SSE2), where 16-bit conversions are compute-bound; C can compile
// single functions for AVX2 + F16C (`__attribute__((target))`) and pick them at run time. Every
// function gives the same bits as its portable scalar fallback and as FusedNorm's Swift conversions:
//   bfloat16 -> float32: exact (the upper half of a float).
//   float32 -> bfloat16: round to nearest, ties to even; NaN stays NaN (quiet, sign and upper payload kept).
//   float16 -> float32: exact; a signaling NaN is quieted, payload kept (like Swift's Float(Float16)).
//   float32 -> float16: round to nearest, ties to even, overflow to ±Inf, subnormals kept; NaN stays NaN
//                       (quiet, sign and upper payload kept), like Swift's Float16(Float).
// Sources and destinations need no alignment and must not overlap.

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

void cfn_bf16_to_f32(const uint16_t *source, float *destination, size_t count);
void cfn_f32_to_bf16(const float *source, uint16_t *destination, size_t count);
void cfn_f16_to_f32(const uint16_t *source, float *destination, size_t count);
void cfn_f32_to_f16(const float *source, uint16_t *destination, size_t count);

// The same, with non-temporal stores where possible: for outputs that are not read again soon (they
// save reading each destination cache line before writing it). Same results. A thread must call
// cfn_store_fence() after its streaming stores, before another thread may read what they wrote.
void cfn_f32_to_bf16_streaming(const float *source, uint16_t *destination, size_t count);
void cfn_f32_to_f16_streaming(const float *source, uint16_t *destination, size_t count);
void cfn_store_fence(void);

// The portable implementations, which the functions above use when the CPU lacks AVX2/F16C/FMA
// (exposed so that tests can compare both).
void cfn_bf16_to_f32_scalar(const uint16_t *source, float *destination, size_t count);
void cfn_f32_to_bf16_scalar(const float *source, uint16_t *destination, size_t count);
void cfn_f16_to_f32_scalar(const uint16_t *source, float *destination, size_t count);
void cfn_f32_to_f16_scalar(const float *source, uint16_t *destination, size_t count);

// 1 when the functions above use the AVX2 + F16C implementations, else 0.
int cfn_uses_vector_conversions(void);

#ifdef __cplusplus
}
#endif

#endif
