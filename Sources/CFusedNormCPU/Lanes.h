#ifndef CFUSEDNORMCPU_LANES_H
#define CFUSEDNORMCPU_LANES_H

// Internal: eight float lanes in AVX2 registers, loaded from and stored to rows of any dtype, for the
// row kernels (ForwardRows.c, BackwardRows.c, Statistics.c). Every function is compiled for
// AVX2 + FMA + F16C; callers run them only where cfn_row_kernels_available() says so.
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

// Plain multiplies and adds, never fused: the kernels compute exactly what FusedNorm's Swift kernels do.
#pragma clang fp contract(off)

#define CFN_VECTOR __attribute__((target("avx2,fma,f16c")))
#define CFN_LANES static inline __attribute__((always_inline)) CFN_VECTOR

// Elements per block: statistics and gradient sums are taken in fp32 over blocks of this many elements
// and added across blocks in double (as the Swift kernels do).
#define CFN_BLOCK 1024

CFN_VECTOR __m256 cfn_load_partial(const void *row, size_t index, size_t lanes, int dtype);
CFN_VECTOR __m256 cfn_store_partial(void *row, size_t index, size_t lanes, int dtype, __m256 values);

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

// Eight floats rounded to a 16-bit dtype, as eight 16-bit values.
CFN_LANES __m128i cfn_pack8(__m256 values, int dtype) {
    if (dtype == CFN_FLOAT16) return _mm256_cvtps_ph(values, _MM_FROUND_TO_NEAREST_INT);
    __m256i lanes = cfn_bf16_lanes(values);
    return _mm_packus_epi32(_mm256_castsi256_si128(lanes), _mm256_extracti128_si256(lanes, 1));
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

// Elements before `row` + `index` reaches the 32-byte (float32) or 16-byte (16-bit) boundary from which
// full vectors may be stored non-temporally; *stream is 0 (and the result 0) when the elements are not
// aligned to their own size, so that no boundary can be reached.
static inline size_t cfn_stream_head(const void *row, size_t index, int dtype, int *stream) {
    size_t size = dtype == CFN_FLOAT32 ? 4 : 2, vector = 8 * size;
    uintptr_t address = (uintptr_t)row + index * size;
    if (address % size) {
        *stream = 0;
        return 0;
    }
    *stream = 1;
    return ((vector - address % vector) % vector) / size;
}

// Up to two regions (the next row's inputs) fetched into the L2 cache while a row is processed, spread
// evenly over the row's full steps (both passes), so that memory keeps reading while this row is
// computed from cache, and the next row's first pass finds its inputs in L2.
typedef struct {
    const char *next, *end, *next2, *end2;
    uint64_t credit, rate;  // lines due, in 1/65536 of a line; lines per step, likewise
} cfn_prefetch;

// `a` and `b` (either may be NULL) over `steps` full steps of eight lanes.
static inline cfn_prefetch cfn_prefetch_rows(const void *a, size_t bytesA, const void *b, size_t bytesB, size_t steps) {
    size_t lines = (a ? (bytesA + 63) / 64 : 0) + (b ? (bytesB + 63) / 64 : 0);
    cfn_prefetch p = {(const char *)a, a ? (const char *)a + bytesA : NULL, (const char *)b, b ? (const char *)b + bytesB : NULL,
                      0, steps ? ((uint64_t)lines << 16) / steps + 1 : 0};
    return p;
}

// One full step's share of the prefetches.
CFN_LANES void cfn_prefetch_step(cfn_prefetch *p) {
    p->credit += p->rate;
    while (p->credit >= 65536) {
        p->credit -= 65536;
        if (p->next < p->end) {
            _mm_prefetch(p->next, _MM_HINT_T1);
            p->next += 64;
        } else if (p->next2 < p->end2) {
            _mm_prefetch(p->next2, _MM_HINT_T1);
            p->next2 += 64;
        } else {
            p->rate = p->credit = 0;
        }
    }
}

// Runs STEP(i, lanes, k, stream) over the elements [begin, end): first the `head` elements (one partial
// step, no streaming), then two full vectors at a time (k = 0 and 1: the step's accumulators, so that
// two addition chains run at once; streaming when `stream`), then the tail, at most eight at a time
// (k = 0).
#define CFN_FOR_LANES(begin, end, head, stream, STEP)                                    \
    do {                                                                                 \
        size_t i_ = (begin), e_ = (end), h_ = (begin) + (head);                          \
        if (h_ > e_) h_ = e_;                                                            \
        if (i_ < h_) {                                                                   \
            STEP(i_, h_ - i_, 0, 0);                                                      \
            i_ = h_;                                                                     \
        }                                                                                \
        for (; i_ + 16 <= e_; i_ += 16) {                                                \
            STEP(i_, 8, 0, stream);                                                       \
            STEP(i_ + 8, 8, 1, stream);                                                   \
        }                                                                                \
        while (i_ < e_) {                                                                \
            size_t l_ = e_ - i_ < 8 ? e_ - i_ : 8;                                       \
            STEP(i_, l_, 0, 0);                                                           \
            i_ += l_;                                                                    \
        }                                                                                \
    } while (0)


// MARK: Row statistics (Statistics.c)

// The statistics of one row, accumulated block by block, exactly as FusedNorm's Swift `RowStatistics`:
// RMSNorm: Σ s² per block in fp32, added in double. LayerNorm: each block's sums taken around a shift
// (the mean so far; first, the mean of the row's first sixteen values), taken again around the block's
// own mean when the subtraction would lose more than four bits, blocks merged with Chan's formula.
typedef struct {
    int centered;
    float shift;
    double count, mean, squares;
} cfn_stats;

void cfn_stats_init(cfn_stats *stats, int centered, const void *x, int dtype, size_t columns);
// Adds a block of `count` floats whose sums around stats->shift are `sum` and `squares` (Σ s² alone when
// not centered).
void cfn_stats_add(cfn_stats *stats, const float *values, size_t count, float sum, float squares);
// mean (0 when not centered), its rounding error (0 when negligible), rstd.
void cfn_stats_finish(const cfn_stats *stats, float epsilon, float *mean, float *meanError, float *rstd);
// The statistics of row `x` (`columns` elements of `dtype`), converted into `stash` as floats unless the
// dtype is float32 (then `stash` is not touched).
// `prefetch` (or NULL) advances once per full step.
void cfn_row_statistics(
    const void *x, int dtype, size_t columns, int centered, float epsilon, float *stash, float *mean, float *meanError,
    float *rstd, cfn_prefetch *prefetch);

#endif  // CFN_HAS_LANES

#endif
