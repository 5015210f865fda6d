#ifndef CFUSEDNORMCPU_LANE_PAIRS_H
#define CFUSEDNORMCPU_LANE_PAIRS_H

// Internal: steps in pairs, and the weight and bias of a step, on the lane primitives of Lanes.h.

#include "Lanes.h"

#ifdef CFN_HAS_LANES

// Steps come in pairs (k = 0, then k = 1 for the next eight elements) in the main loops, and alone
// (k = 2) at a row's head and tail. For bfloat16 a pair is loaded and stored as one 32-byte vector
// (fewer shuffles than two halves); `pending` carries the second half of a load, or the first half of a
// store, from k = 0 to k = 1. Other dtypes load and store each half on its own.

// Like cfn_load, for step k of a pair.
CFN_LANES __m256 cfn_load_k(const void *row, size_t index, size_t lanes, int dtype, int k, __m256 *pending) {
    if (dtype != CFN_BFLOAT16 || lanes != 8 || k == 2) return cfn_load(row, index, lanes, dtype);
    if (k & 1) return *pending;
    // [e0-3 e4-7 e8-11 e12-15] -> [e0-3 e8-11 | e4-7 e12-15]: unpacking the low and high words of each
    // 128-bit lane above zeros then gives e0-7 and e8-15 as floats.
    __m256i raw = _mm256_permute4x64_epi64(_mm256_loadu_si256((const __m256i *)((const uint16_t *)row + index)), 0xD8);
    __m256i zero = _mm256_setzero_si256();
    *pending = _mm256_castsi256_ps(_mm256_unpackhi_epi16(zero, raw));
    return _mm256_castsi256_ps(_mm256_unpacklo_epi16(zero, raw));
}

// Like cfn_load_k, for sums (which do not depend on which lane holds which element): a bfloat16 pair's
// even elements in the first step, its odd ones in the second, by a shift and a mask (no shuffles).
CFN_LANES __m256 cfn_load_k_unordered(const void *row, size_t index, size_t lanes, int dtype, int k, __m256 *pending) {
    if (dtype != CFN_BFLOAT16 || lanes != 8 || k == 2) return cfn_load(row, index, lanes, dtype);
    if (k & 1) return *pending;
    __m256i raw = _mm256_loadu_si256((const __m256i *)((const uint16_t *)row + index));
    *pending = _mm256_castsi256_ps(_mm256_and_si256(raw, _mm256_set1_epi32((int)0xFFFF0000u)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(raw, 16));
}

// Like cfn_store, for step k of a pair (stream: the pair's 32 bytes are aligned).
CFN_LANES __m256 cfn_store_k(
    void *row, size_t index, size_t lanes, int dtype, __m256 values, int stream, int k, __m256i *pending
) {
    if (dtype != CFN_BFLOAT16 || lanes != 8 || k == 2) return cfn_store(row, index, lanes, dtype, values, stream);
#ifdef CFN_AVX512
    __m128i halves = cfn_bf16_8(values);
    if (!(k & 1)) {
        *pending = _mm256_castsi128_si256(halves);
    } else {
        cfn_store_pair(row, index, _mm256_set_m128i(halves, _mm256_castsi256_si128(*pending)), stream);
    }
    return cfn_unpack8(halves, CFN_BFLOAT16);
#else
    __m256i rounded = cfn_bf16_lanes(values);
    if (!(k & 1)) {
        *pending = rounded;
    } else {
        // packus works per 128-bit lane: [a0-3 b0-3 | a4-7 b4-7] -> reorder the 64-bit quarters.
        __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(*pending, rounded), 0xD8);
        cfn_store_pair(row, index, packed, stream);
    }
    return _mm256_castsi256_ps(_mm256_slli_epi32(rounded, 16));
#endif
}

// Sixteen floats (a: the first eight) as bfloat16, in order. AVX2: rounding without the NaN fix-up, then
// one test for a NaN in either vector (rare), which takes the exact path.
CFN_LANES __m256i cfn_bf16_pack16(__m256 a, __m256 b) {
#ifdef CFN_AVX512
    // One vcvtne2ps2bf16 for both (one 32-byte vector: stored as one, where two halves may be stored as two
    // 16-byte non-temporal stores, measured slower); the subnormal fix-up as in cfn_bf16_8.
    if (__builtin_expect((_mm256_fpclass_ps_mask(a, 0x20) | _mm256_fpclass_ps_mask(b, 0x20)) == 0, 1)) {
        return (__m256i)_mm256_cvtne2ps_pbh(b, a);
    }
    return _mm256_set_m128i(cfn_bf16_8(b), cfn_bf16_8(a));
#else
    __m256i one = _mm256_set1_epi32(1), bias = _mm256_set1_epi32(0x7FFF);
    __m256i ba = _mm256_castps_si256(a), bb = _mm256_castps_si256(b);
    __m256i ra = _mm256_add_epi32(_mm256_add_epi32(ba, bias), _mm256_and_si256(_mm256_srli_epi32(ba, 16), one));
    __m256i rb = _mm256_add_epi32(_mm256_add_epi32(bb, bias), _mm256_and_si256(_mm256_srli_epi32(bb, 16), one));
    __m256i lanes = _mm256_packus_epi32(_mm256_srli_epi32(ra, 16), _mm256_srli_epi32(rb, 16));
    __m256 nan = _mm256_cmp_ps(a, b, _CMP_UNORD_Q);
    if (__builtin_expect(!_mm256_testz_ps(nan, nan), 0)) {
        lanes = _mm256_packus_epi32(cfn_bf16_lanes(a), cfn_bf16_lanes(b));
    }
    // packus works per 128-bit lane: [a0-3 b0-3 | a4-7 b4-7] -> reorder the 64-bit quarters.
    return _mm256_permute4x64_epi64(lanes, 0xD8);
#endif
}

// Like cfn_store_k for an output whose stored values are not needed back (y, dx): a bfloat16 pair is
// rounded together at k = 1 (`pending` holds the first half's floats).
CFN_LANES void cfn_put_k(
    void *row, size_t index, size_t lanes, int dtype, __m256 values, int stream, int k, __m256 *pending
) {
    if (dtype != CFN_BFLOAT16 || lanes != 8 || k == 2) {
        cfn_store(row, index, lanes, dtype, values, stream);
    } else if (!(k & 1)) {
        *pending = values;
    } else {
        __m256i packed = cfn_bf16_pack16(*pending, values);
        cfn_store_pair(row, index, packed, stream);
    }
}

// Like cfn_put_k, and a float16 pair too is stored as one 32-byte vector (the two halves converted on their
// own) at k = 1: measured faster for the forward's y (float16 LayerNorm +10%), not for the backward's dx
// (which keeps cfn_put_k).
CFN_LANES void cfn_put_pair_k(
    void *row, size_t index, size_t lanes, int dtype, __m256 values, int stream, int k, __m256 *pending
) {
    if (dtype != CFN_FLOAT16 || lanes != 8 || k == 2) {
        cfn_put_k(row, index, lanes, dtype, values, stream, k, pending);
    } else if (!(k & 1)) {
        *pending = values;
    } else {
        __m256i packed = _mm256_set_m128i(_mm256_cvtps_ph(values, _MM_FROUND_TO_NEAREST_INT),
                                          _mm256_cvtps_ph(*pending, _MM_FROUND_TO_NEAREST_INT));
        cfn_store_pair(row, index, packed, stream);
    }
}

// The weight and bias of `lanes` columns from `index`: pd == CFN_FLOAT32, from the float rows w and b; else
// from a row packed by cfn_pack_weight_bias in dtype pd (w: the packed row; b: the float biases for float16,
// unused for bfloat16).
CFN_LANES void cfn_weight_bias(
    const void *w, const void *b, size_t index, size_t lanes, int pd, __m256 *weight, __m256 *bias
) {
    if (pd == CFN_BFLOAT16) {
        // (Loaded as float32 lanes: bits moved, not converted.)
        __m256i pairs = _mm256_castps_si256(cfn_load(w, index, lanes, CFN_FLOAT32));
        *weight = _mm256_castsi256_ps(_mm256_slli_epi32(pairs, 16));
        *bias = _mm256_castsi256_ps(_mm256_and_si256(pairs, _mm256_set1_epi32((int)0xFFFF0000u)));
        return;
    }
    *weight = cfn_load(w, index, lanes, pd);
    *bias = cfn_load(b, index, lanes, CFN_FLOAT32);
}

#endif  // CFN_HAS_LANES

#endif
