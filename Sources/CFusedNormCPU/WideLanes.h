#ifndef CFUSEDNORMCPU_WIDE_LANES_H
#define CFUSEDNORMCPU_WIDE_LANES_H

// Internal: 512-bit steps of the AVX-512 build, and the span of a row they take.

#include "Lanes.h"

#ifdef CFN_HAS_LANES

#ifdef CFN_AVX512
// MARK: 512-bit steps (AVX-512 build only): 32 elements as two vectors of sixteen floats, in order, for the loops
// that streamed rows need in fewer instructions (ForwardRows.c, BackwardRows.c). float32 and bfloat16 rows only
// (float16's 512-bit conversions measured slower on Zen 4). Per element the same operations as the 256-bit
// steps, so the same bits.

// Elements [index, index + 32) of a row of `dtype` as floats: lo holds the first sixteen.
CFN_LANES void cfn_load32(const void *row, size_t index, int dtype, __m512 *lo, __m512 *hi) {
    if (dtype == CFN_FLOAT32) {
        *lo = _mm512_loadu_ps((const float *)row + index), *hi = _mm512_loadu_ps((const float *)row + index + 16);
        return;
    }
    // Quarters [0 1 2 3 4 5 6 7] -> [0 4 1 5 2 6 3 7]: each 128-bit lane's low words are then elements 0-15
    // in order, its high words 16-31 (unpacked above zeros: the floats).
    __m512i raw = _mm512_permutexvar_epi64(
        _mm512_setr_epi64(0, 4, 1, 5, 2, 6, 3, 7), _mm512_loadu_si512((const uint16_t *)row + index));
    *lo = _mm512_castsi512_ps(_mm512_unpacklo_epi16(_mm512_setzero_si512(), raw));
    *hi = _mm512_castsi512_ps(_mm512_unpackhi_epi16(_mm512_setzero_si512(), raw));
}

// Eight floats streamed to p (32-byte aligned) on their own: the compiler would join two halves of a 512-bit
// vector into one 512-bit non-temporal store, which streams at half the rate on Zen 4.
CFN_LANES void cfn_stream8(float *p, __m256 values) {
    __asm__("" : "+x"(values));
    _mm256_stream_ps(p, values);
}

// Streams lo and hi, rounded to `dtype`, to elements [index, index + 32) (32-byte aligned), in 32-byte stores;
// bfloat16 rounds as cfn_bf16_pack16 (vcvtne2ps2bf16, the exact rounding where it would flush a subnormal).
CFN_LANES void cfn_stream32(void *row, size_t index, int dtype, __m512 lo, __m512 hi) {
    if (dtype == CFN_FLOAT32) {
        float *p = (float *)row + index;
        cfn_stream8(p, _mm512_castps512_ps256(lo));
        cfn_stream8(p + 8, _mm512_extractf32x8_ps(lo, 1));
        cfn_stream8(p + 16, _mm512_castps512_ps256(hi));
        cfn_stream8(p + 24, _mm512_extractf32x8_ps(hi, 1));
        return;
    }
    __m256i first, second;
    if (__builtin_expect((_mm512_fpclass_ps_mask(lo, 0x20) | _mm512_fpclass_ps_mask(hi, 0x20)) == 0, 1)) {
        __m512i y = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
        first = _mm512_castsi512_si256(y), second = _mm512_extracti64x4_epi64(y, 1);
    } else {
        first = _mm256_set_m128i(cfn_bf16_8(_mm512_extractf32x8_ps(lo, 1)), cfn_bf16_8(_mm512_castps512_ps256(lo)));
        second = _mm256_set_m128i(cfn_bf16_8(_mm512_extractf32x8_ps(hi, 1)), cfn_bf16_8(_mm512_castps512_ps256(hi)));
    }
    cfn_store_pair(row, index + 8, first, 1);
    cfn_store_pair(row, index + 24, second, 1);
}
#endif

// The middle [*begin, *end) of a row of `columns` elements that a 512-bit loop (32 elements a step, 32-byte
// stores) takes when the row's output starts at `row` in `dtype`: from the output's first 32-byte boundary, a
// multiple of 32 elements. 0 when there is none (the output not aligned to its elements, or too short a row).
static inline int cfn_wide_span(const void *row, int dtype, size_t columns, size_t *begin, size_t *end) {
    int stream;
    size_t head = cfn_stream_head(row, 0, dtype, &stream);
    if (!stream || head >= columns || columns - head < 32) return 0;
    *begin = head, *end = head + (columns - head) / 32 * 32;
    return 1;
}

#endif  // CFN_HAS_LANES

#endif
