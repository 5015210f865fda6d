#ifndef CFUSEDNORMCPU_LANES_H
#define CFUSEDNORMCPU_LANES_H

// Internal: the lane primitives: eight float lanes in 256-bit registers, loaded from and stored to rows of any
// dtype. The layers above: LanePairs.h (steps in pairs), WideLanes.h (512-bit steps), RowLoops.h (the loops and
// prefetches), Statistics.h (row statistics), then the row kernels (ForwardRows.c, BackwardRows.c; RowKernels.h).
//
// The kernels are compiled twice (see RowKernels.c, which picks one at run time):
// - for AVX2 + FMA + F16C: the kernel files themselves;
// - for AVX-512 (F, VL, BW, DQ, BF16), still on 256-bit vectors: the files `*+AVX512.c`, which define
//   CFN_AVX512 and include the kernel files again. The same source then gets 32 vector registers instead
//   of 16 (no constants spilled in the loops) and rounds to bfloat16 with one instruction (vcvtneps2bf16,
//   with a fix-up for the fp32 subnormals it flushes), for the same bits. Two loops are 512-bit in this
//   build (see cfn_load32): LayerNorm forward's usual pass 2 of float32 and bfloat16 rows (normalize_wide)
//   and the backward's pass B of bfloat16 rows (input_gradient_wide), the same bits again.
// The functions each copy exports are renamed by CFN_NAME (suffix _avx2 or _avx512).
//
// A step of a kernel handles `lanes` elements (8, or 1-7 at a row's head and tail): with lanes == 8, a
// compile-time constant in the main loops, loads and stores are single instructions; fewer lanes go through
// a small buffer, element by element, with the scalar conversions of Scalar.h, which give the same bits
// as the vector ones (the converters' tests check that exhaustively). The arithmetic is the same vector
// code for both, so a row's results do not depend on where its head and tail fall.

#include "Scalar.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CFN_HAS_LANES 1

// Element-wise multiplies and adds are never fused (as in FusedNorm's Swift kernels); only the sums of
// products use explicit fused multiply-adds (_mm256_fmadd_ps).
#pragma clang fp contract(off)

#ifdef CFN_AVX512
#define CFN_VECTOR __attribute__((target("avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512dq,avx512bf16")))
#define CFN_NAME(name) name##_avx512
#else
#define CFN_VECTOR __attribute__((target("avx2,fma,f16c")))
#define CFN_NAME(name) name##_avx2
#endif
#define cfn_load_partial CFN_NAME(cfn_load_partial)
#define cfn_store_partial CFN_NAME(cfn_store_partial)
#ifdef __OPTIMIZE__
#define CFN_LANES static inline __attribute__((always_inline)) CFN_VECTOR
#else
// Debug builds (-O0) do not fold the kernels' constant flags, so inlining every specialization into its
// dispatcher would only stack up their frames (enough to overflow a worker thread's stack).
#define CFN_LANES static inline CFN_VECTOR
#endif

// The partial loads and stores of a row's head and tail (not inlined) keep every register for their callers
// (preserve_all): a call that may clobber the vector registers, even outside the main loops, made the compiler
// keep the loops' constants and pointers on the stack and load them again every step (bfloat16 LayerNorm
// backward +6% in cache, +9% streamed on two threads: bench/cpu-rows).
// Hidden: in a shared library (libFusedNormC.so) a call through the PLT would reach the dynamic linker's lazy
// resolver first, which does not preserve all registers (a crash in the first call, found by the C interface test).
#define CFN_KEEPS_REGISTERS __attribute__((preserve_all, visibility("hidden")))
CFN_VECTOR CFN_KEEPS_REGISTERS __m256 cfn_load_partial(const void *row, size_t index, size_t lanes, int dtype);
CFN_VECTOR CFN_KEEPS_REGISTERS __m256 cfn_store_partial(void *row, size_t index, size_t lanes, int dtype, __m256 values);
// (Defined in Lanes.c.)

// Eight floats to bfloat16 bit patterns in the low halves of 32-bit lanes (nearest, ties to even; NaN
// quieted with sign and upper payload kept).
CFN_LANES __m256i cfn_bf16_lanes(__m256 values) {
    __m256i bits = _mm256_castps_si256(values);
    __m256i lowestKept = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
    __m256i bias = _mm256_add_epi32(lowestKept, _mm256_set1_epi32(0x7FFF));
    __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(bits, bias), 16);
    __m256i nan = _mm256_or_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(0x0040));
    __m256 isNaN = _mm256_cmp_ps(values, values, _CMP_UNORD_Q);
    return _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(rounded), _mm256_castsi256_ps(nan), isNaN));
}

// Eight floats as bfloat16 (as cfn_bf16_lanes), packed.
CFN_LANES __m128i cfn_bf16_8(__m256 values) {
#ifdef CFN_AVX512
    // vcvtneps2bf16 rounds exactly as cfn_bf16_lanes, NaN included, but flushes fp32 subnormals to zero:
    // a vector with one (rare) takes the integer rounding.
    if (__builtin_expect(_mm256_fpclass_ps_mask(values, 0x20) == 0, 1)) return (__m128i)_mm256_cvtneps_pbh(values);
#endif
    __m256i lanes = cfn_bf16_lanes(values);
    return _mm_packus_epi32(_mm256_castsi256_si128(lanes), _mm256_extracti128_si256(lanes, 1));
}

// Eight floats rounded to a 16-bit dtype, as eight 16-bit values.
CFN_LANES __m128i cfn_pack8(__m256 values, int dtype) {
    if (dtype == CFN_FLOAT16) return _mm256_cvtps_ph(values, _MM_FROUND_TO_NEAREST_INT);
    return cfn_bf16_8(values);
}

// Eight 16-bit values of `dtype` as floats (exact).
CFN_LANES __m256 cfn_unpack8(__m128i halves, int dtype) {
    if (dtype == CFN_FLOAT16) return _mm256_cvtph_ps(halves);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(halves), 16));
}

// `values` rounded to `dtype` (unchanged for float32).
CFN_LANES __m256 cfn_round8(__m256 values, int dtype) {
    return dtype == CFN_FLOAT32 ? values : cfn_unpack8(cfn_pack8(values, dtype), dtype);
}

// `lanes` elements of a row of `dtype` from `index`, as floats (missing lanes 0).
CFN_LANES __m256 cfn_load(const void *row, size_t index, size_t lanes, int dtype) {
    if (lanes != 8) return cfn_load_partial(row, index, lanes, dtype);
    if (dtype == CFN_FLOAT32) return _mm256_loadu_ps((const float *)row + index);
    return cfn_unpack8(_mm_loadu_si128((const __m128i *)((const uint16_t *)row + index)), dtype);
}

// Stores the first `lanes` of `values`, rounded to `dtype`, at `index`; `stream` (full vectors only, the
// destination aligned: see cfn_stream_head) makes the store non-temporal. Returns the stored values as
// floats.
CFN_LANES __m256 cfn_store(void *row, size_t index, size_t lanes, int dtype, __m256 values, int stream) {
    if (lanes != 8) return cfn_store_partial(row, index, lanes, dtype, values);
    if (dtype == CFN_FLOAT32) {
        float *p = (float *)row + index;
        if (stream) _mm256_stream_ps(p, values);
        else _mm256_storeu_ps(p, values);
        return values;
    }
    __m128i halves = cfn_pack8(values, dtype);
    __m128i *p = (__m128i *)((uint16_t *)row + index);
    if (stream) _mm_stream_si128(p, halves);
    else _mm_storeu_si128(p, halves);
    return cfn_unpack8(halves, dtype);
}

// Stores a pair's 32 bytes (`index`: the pair's second half) as one vector. The compiler would store a
// vector it sees assembled from two halves as two 16-byte stores (the same bytes, but twice the
// non-temporal stores: bfloat16 LayerNorm backward 0.53 against 0.29 ns per element in cache).
CFN_LANES void cfn_store_pair(void *row, size_t index, __m256i packed, int stream) {
    __asm__("" : "+x"(packed));
    __m256i *p = (__m256i *)((uint16_t *)row + index - 8);
    if (stream) _mm256_stream_si256(p, packed);
    else _mm256_storeu_si256(p, packed);
}

// All-ones in the first `lanes` lanes, zeros after.
CFN_LANES __m256 cfn_lane_mask(size_t lanes) {
    __m256i index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32((int)lanes), index));
}

// The sum of the eight lanes.
CFN_LANES float cfn_sum8(__m256 v) {
    __m128 quad = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    __m128 pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
    return _mm_cvtss_f32(_mm_add_ss(pair, _mm_shuffle_ps(pair, pair, 1)));
}

// Elements before `row` + `index` reaches the 32-byte boundary from which full vectors (and bfloat16
// pairs) may be stored non-temporally; *stream is 0 (and the result 0) when the elements are not aligned
// to their own size, so that no boundary can be reached.
static inline size_t cfn_stream_head(const void *row, size_t index, int dtype, int *stream) {
    size_t size = dtype == CFN_FLOAT32 ? 4 : 2, vector = 32;
    uintptr_t address = (uintptr_t)row + index * size;
    if (address % size) {
        *stream = 0;
        return 0;
    }
    *stream = 1;
    return ((vector - address % vector) % vector) / size;
}

#endif  // CFN_HAS_LANES

#endif
