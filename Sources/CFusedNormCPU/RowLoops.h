#ifndef CFUSEDNORMCPU_ROW_LOOPS_H
#define CFUSEDNORMCPU_ROW_LOOPS_H

// Internal: the loops over a row's elements (heads, pairs of full steps, tails), their prefetches of the next
// row, and the sums of their accumulators, on the lane primitives of Lanes.h.

#include "Lanes.h"

#ifdef CFN_HAS_LANES

// Elements per block: gradient sums are taken in fp32 over blocks of this many elements and added across
// blocks in double (as the Swift kernels do).
#define CFN_BLOCK 1024

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

#endif  // CFN_HAS_LANES

#endif
