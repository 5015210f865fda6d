#ifndef CFUSEDNORMCPU_LANES_H
#define CFUSEDNORMCPU_LANES_H

// Internal: eight float lanes in 256-bit registers, loaded from and stored to rows of any dtype, for the
// row kernels (ForwardRows.c, BackwardRows.c, Statistics.c).
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
#define cfn_stats_init CFN_NAME(cfn_stats_init)
#define cfn_stats_add CFN_NAME(cfn_stats_add)
#define cfn_stats_finish CFN_NAME(cfn_stats_finish)
#define cfn_row_statistics CFN_NAME(cfn_row_statistics)

// The kernels of each copy (RowKernels.c calls them).
void cfn_forward_row_avx2(const cfn_forward_row_args *args);
void cfn_forward_row_avx512(const cfn_forward_row_args *args);
void cfn_backward_row_avx2(const cfn_backward_row_args *args);
void cfn_backward_row_avx512(const cfn_backward_row_args *args);
#ifdef __OPTIMIZE__
#define CFN_LANES static inline __attribute__((always_inline)) CFN_VECTOR
#else
// Debug builds (-O0) do not fold the kernels' constant flags, so inlining every specialization into its
// dispatcher would only stack up their frames (enough to overflow a worker thread's stack).
#define CFN_LANES static inline CFN_VECTOR
#endif

// Elements per block: gradient sums are taken in fp32 over blocks of this many elements and added across
// blocks in double (as the Swift kernels do).
#define CFN_BLOCK 1024
// The same for the row statistics, over longer blocks than the Swift kernels' 1024: each block ends in
// horizontal sums, a test and a merge in double that the loops do not hide (4096: LayerNorm forward +8% in
// float16 and bfloat16 with the data in cache, +20% in float32; RMSNorm +5%; bench/cpu-rows, NOTES.md).
#define CFN_STATS_BLOCK 4096

// The partial loads and stores of a row's head and tail (not inlined) keep every register for their callers
// (preserve_all): a call that may clobber the vector registers, even outside the main loops, made the compiler
// keep the loops' constants and pointers on the stack and load them again every step (bfloat16 LayerNorm
// backward +6% in cache, +9% streamed on two threads: bench/cpu-rows).
#define CFN_KEEPS_REGISTERS __attribute__((preserve_all))
CFN_VECTOR CFN_KEEPS_REGISTERS __m256 cfn_load_partial(const void *row, size_t index, size_t lanes, int dtype);
CFN_VECTOR CFN_KEEPS_REGISTERS __m256 cfn_store_partial(void *row, size_t index, size_t lanes, int dtype, __m256 values);

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

// The next row's inputs, fetched into the L2 cache while this row is processed from cache, so that memory
// keeps reading and the next row's first pass finds its inputs in L2. One region per pass, spread over the
// pass: at the pair of full steps from element i, the line at `start` + (i / 16)·`step` (NULL: none). A
// region of the next row with elements of e bytes, spread over a pass of this row, takes step = 16·e (the
// whole row) or 8·e (half of it). Passed by value: it holds no state.
typedef struct {
    const char *start;
    size_t step;
} cfn_prefetch;

// Where a pass's prefetches go without a region: one line, in cache after the first, so that the main
// loops prefetch unconditionally (no test in the loop). (Defined in RowKernels.c.)
extern const char cfn_prefetch_idle[64];

// A 512-bit loop's prefetches, as the 256-bit loops ask them (one line per sixteen elements): where the loop
// starting at element `begin` asks first, and the two asks of a 32-element step (the next position returned).
static inline const char *cfn_prefetch_from(cfn_prefetch prefetch, size_t begin) {
    return prefetch.start ? prefetch.start + (begin >> 4) * prefetch.step : cfn_prefetch_idle;
}
static inline const char *cfn_prefetch32(const char *at, cfn_prefetch prefetch) {
    size_t step = prefetch.start ? prefetch.step : 0;
    _mm_prefetch(at, _MM_HINT_T1);
    _mm_prefetch(at + step, _MM_HINT_T1);
    return at + 2 * step;
}

// Runs STEP(i, lanes, k, stream) over the elements [begin, end): first the `head` elements (partial or
// single steps, k = 2, no streaming), then pairs of full vectors (k = 0 and 1: a pair of steps, whose
// sums go to two accumulators, acc[CFN_ACC(k)], so that two addition chains run at once; streaming when
// `stream`, a constant in each loop's copy), each pair after a prefetch of the next line of `prefetch`,
// then the tail, at most eight at a time (k = 2). With `unroll` 2 (a constant), the loop takes two pairs
// at a time, the second as k = 4 and 5, feeding two more accumulators: for the passes whose sums' latency
// bounds them (the statistics: float16 LayerNorm forward +10%; the backward's pass A lost with it). The
// loops have no other tests: their instructions, not memory, bound the 16-bit kernels on Zen 4.
//
// Every pair asks for its line, also when the step is less than a line (a line is then asked for twice or
// four times: measured faster than once, as a prefetch that finds no free miss buffer may be dropped).
#define CFN_PAIR(i_, k_, stream_, pa_, ps_, STEP)                                        \
    do {                                                                                 \
        _mm_prefetch(pa_, _MM_HINT_T1);                                                  \
        pa_ += ps_;                                                                      \
        STEP(i_, 8, k_, stream_);                                                        \
        STEP(i_ + 8, 8, (k_) + 1, stream_);                                              \
    } while (0)
#define CFN_PAIRS(i_, last_, stream_, unroll_, pa_, ps_, STEP)                           \
    do {                                                                                 \
        if (unroll_ == 2) {                                                              \
            for (; i_ + 16 <= last_; i_ += 32) {                                         \
                CFN_PAIR(i_, 0, stream_, pa_, ps_, STEP);                                \
                CFN_PAIR(i_ + 16, 4, stream_, pa_, ps_, STEP);                           \
            }                                                                            \
        }                                                                                \
        for (; i_ <= last_; i_ += 16) CFN_PAIR(i_, 0, stream_, pa_, ps_, STEP);          \
    } while (0)
#define CFN_FOR_LANES(begin, end, head, stream, unroll, prefetch, STEP)                  \
    do {                                                                                 \
        size_t i_ = (begin), e_ = (end), h_ = (begin) + (head);                          \
        if (h_ > e_) h_ = e_;                                                            \
        while (i_ < h_) {                                                                \
            size_t l_ = h_ - i_ < 8 ? h_ - i_ : 8;                                       \
            STEP(i_, l_, 2, 0);                                                          \
            i_ += l_;                                                                    \
        }                                                                                \
        if (e_ - i_ >= 16) {                                                             \
            size_t last_ = e_ - 16, ps_ = (prefetch).start ? (prefetch).step : 0;        \
            const char *pa_ = cfn_prefetch_from(prefetch, i_);                           \
            if (stream) CFN_PAIRS(i_, last_, 1, unroll, pa_, ps_, STEP);                 \
            else CFN_PAIRS(i_, last_, 0, unroll, pa_, ps_, STEP);                        \
        }                                                                                \
        while (i_ < e_) {                                                                \
            size_t l_ = e_ - i_ < 8 ? e_ - i_ : 8;                                       \
            STEP(i_, l_, 2, 0);                                                          \
            i_ += l_;                                                                    \
        }                                                                                \
    } while (0)

// The accumulator of step k: 0 and 1 for a pair's steps, 2 and 3 for the second pair of an unrolled loop
// (k = 4, 5), 0 for single steps (k = 2).
#define CFN_ACC(k) (((k) & 1) | (((k) >> 1) & 2))

// The sum of the lanes of four accumulators (acc[CFN_ACC(k)]), pairs added first.
CFN_LANES float cfn_sum4(const __m256 acc[4]) {
    return cfn_sum8(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
}

// MARK: Row statistics (Statistics.c)

// The statistics of one row, accumulated block by block as FusedNorm's Swift `RowStatistics` (whose blocks
// are 1024 long, these CFN_STATS_BLOCK):
// RMSNorm: Σ s² per block in fp32, added in double. LayerNorm: each block's sums taken around a shift
// (the mean so far; first, the mean of the row's first sixteen values), taken again around the block's
// own mean when the subtraction would lose more than four bits, blocks merged with Chan's formula.
typedef struct {
    int centered;
    float shift;
    double count, mean, squares;
} cfn_stats;

void cfn_stats_init(cfn_stats *stats, int centered, const void *x, int dtype, size_t columns);
// Adds the block [start, start + count) of a row of `dtype`, whose sums around stats->shift are `sum` and
// `squares` (Σ s² alone when not centered); reads the block again if the sums must be taken again.
void cfn_stats_add(cfn_stats *stats, const void *row, int dtype, size_t start, size_t count, float sum, float squares);
// mean (0 when not centered), its rounding error (0 when negligible), rstd.
void cfn_stats_finish(const cfn_stats *stats, float epsilon, float *mean, float *meanError, float *rstd);
// The statistics of row `x` (`columns` elements of `dtype`).
void cfn_row_statistics(
    const void *x, int dtype, size_t columns, int centered, float epsilon, float *mean, float *meanError, float *rstd,
    cfn_prefetch prefetch);

#endif  // CFN_HAS_LANES

#endif
