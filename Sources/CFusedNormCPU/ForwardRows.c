// cfn_forward_row_avx2 and _avx512 (see Lanes.h, RowKernels.h): one row of RMSNorm or LayerNorm forward (see CFusedNormCPU.h).
//
// Pass 1 reads the row from memory once and takes the statistics block by block: x itself (which then
// stays in cache, in its dtype), or with a residual s = x + residual, rounded to s's dtype, streamed to the
// residual output and kept in the stash as floats. Pass 2 normalizes it from cache and streams y out.

#include "LanePairs.h"
#include "RowKernels.h"
#include "RowLoops.h"
#include "Statistics.h"
#include "WideLanes.h"

#ifdef CFN_HAS_LANES
#include <math.h>

// Pass 1 of a block with a residual: s = x + residual, rounded to and stored in the residual output
// (streaming) and in the stash; then the block's sums around `shift` (Σ s² alone when not centered), taken
// from the stash. Not in the store loop: its first steps follow the residual output's alignment, so the lanes
// would group the elements differently where the row lies elsewhere, and a row's statistics would depend on
// its place in the call (batch invariance; the stash block is in L1).
CFN_LANES void residual_block(
    const cfn_forward_row_args *a, size_t start, size_t count, int xd, int rd, int sd, int centered, float shift,
    float *sum, float *squares, cfn_prefetch prefetch
) {
    int stream;
    size_t head = cfn_stream_head(a->residual_output, start, sd, &stream);
    __m256 px = _mm256_setzero_ps(), pr = px;
    __m256i ps = _mm256_setzero_si256();
    // Locals, not a->...: the vector stores may alias anything, which would reload the fields every step.
    const void *x = a->x, *residual = a->residual;
    void *residualOutput = a->residual_output;
    float *stash = a->stash;
#define STEP(i, lanes, k, st)                                                                         \
    {                                                                                                 \
        __m256 v = _mm256_add_ps(cfn_load_k(x, i, lanes, xd, k, &px), cfn_load_k(residual, i, lanes, rd, k, &pr)); \
        v = cfn_store_k(residualOutput, i, lanes, sd, v, st, k, &ps);                                 \
        cfn_store(stash, i, lanes, CFN_FLOAT32, v, 0);                                                \
    }
    CFN_FOR_LANES(start, start + count, head, stream, 2, prefetch, STEP);
#undef STEP
    cfn_block_sums(stash, start, count, centered, shift, sum, squares);
}

CFN_LANES void residual_row(
    const cfn_forward_row_args *a, int xd, int rd, int sd, int centered, float *mean, float *meanError, float *rstd,
    cfn_prefetch prefetch
) {
    cfn_stats stats;
    // x's first values stand in for s's in the first shift (any finite shift is correct).
    cfn_stats_init(&stats, centered, a->x, xd, a->columns);
    for (size_t start = 0; start < a->columns; start += CFN_STATS_BLOCK) {
        size_t count = a->columns - start < CFN_STATS_BLOCK ? a->columns - start : CFN_STATS_BLOCK;
        float sum, squares;
        residual_block(a, start, count, xd, rd, sd, centered, stats.shift, &sum, &squares, prefetch);
        cfn_stats_add(&stats, a->stash, CFN_FLOAT32, start, count, sum, squares);
    }
    cfn_stats_finish(&stats, a->epsilon, mean, meanError, rstd);
}

CFN_VECTOR static void residual_statistics(
    const cfn_forward_row_args *a, float *mean, float *meanError, float *rstd, cfn_prefetch prefetch
) {
    int xd = a->x_dtype, rd = a->residual_dtype, sd = a->residual_output_dtype, c = a->centered;
    // Specialized when every dtype is the same; the general case switches on the dtypes as it goes.
#define CASE(d)                                                                       \
    case d:                                                                           \
        if (c) residual_row(a, d, d, d, 1, mean, meanError, rstd, prefetch);                    \
        else residual_row(a, d, d, d, 0, mean, meanError, rstd, prefetch);                      \
        return;
    if (xd == rd && rd == sd) {
        switch (xd) {
            CASE(CFN_FLOAT32)
            CASE(CFN_FLOAT16)
            CASE(CFN_BFLOAT16)
        }
    }
#undef CASE
    if (c) residual_row(a, xd, rd, sd, 1, mean, meanError, rstd, prefetch);
    else residual_row(a, xd, rd, sd, 0, mean, meanError, rstd, prefetch);
}

// Pass 2 over the elements [begin, end): y = ((s − mean − meanError)·rstd [rounded to hd]) · w + b,
// streamed to the output (the mean only when centered, its error only when `error` == 1; `error` == 2:
// ŝ = s·rstd − mean·rstd, fused); s of dtype sd: the stash, or x itself; weight and bias both present: from
// the packed row when pd is not CFN_FLOAT32 (see cfn_weight_bias).
CFN_LANES void normalize_row(
    const cfn_forward_row_args *a, const void *s, int sd, int od, int centered, int error, int weighted, int biased,
    int hd, int pd, float mean, float meanError, float rstd, cfn_prefetch prefetch, size_t begin, size_t end
) {
    int stream;
    size_t head = cfn_stream_head(a->output, begin, od, &stream);
    __m256 m = _mm256_set1_ps(mean), e = _mm256_set1_ps(meanError), r = _mm256_set1_ps(rstd);
    __m256 mr = _mm256_set1_ps(mean * rstd);
    const void *w = a->weight, *b = a->bias;
    if (pd != CFN_FLOAT32) w = a->weight_bias;
    void *out = a->output;
    __m256 po = _mm256_setzero_ps(), ps = po;
#define STEP(i, lanes, k, st)                                                            \
    {                                                                                    \
        __m256 v = cfn_load_k(s, i, lanes, sd, k, &ps);                                  \
        if (error == 2) {                                                                \
            v = _mm256_fmsub_ps(v, r, mr);                                               \
        } else {                                                                         \
            if (centered) v = _mm256_sub_ps(v, m);                                       \
            if (error) v = _mm256_sub_ps(v, e);                                          \
            v = _mm256_mul_ps(v, r);                                                     \
        }                                                                                \
        if (hd != CFN_FLOAT32) v = cfn_round8(v, hd);                                    \
        if (weighted && biased) {                                                        \
            /* ŝ·w + b as one fused multiply-add (as the CUDA kernels contract it) */    \
            __m256 wv, bv;                                                               \
            cfn_weight_bias(w, b, i, lanes, pd, &wv, &bv);                               \
            v = _mm256_fmadd_ps(v, wv, bv);                                              \
        } else {                                                                         \
            if (weighted) v = _mm256_mul_ps(v, cfn_load(w, i, lanes, CFN_FLOAT32));      \
            if (biased) v = _mm256_add_ps(v, cfn_load(b, i, lanes, CFN_FLOAT32));        \
        }                                                                                \
        cfn_put_pair_k(out, i, lanes, od, v, st, k, &po);                                     \
    }
    CFN_FOR_LANES(begin, end, head, stream, 1, prefetch, STEP);
#undef STEP
}

#ifdef CFN_AVX512
// Pass 2 of normalize_fused over [begin, end) (a multiple of 32 elements; the output 32-byte aligned at begin)
// for float32 and bfloat16 (packed parameters), 32 elements a step in 512-bit vectors: per element the operations
// of normalize_row (ŝ = s·rstd − mean·rstd, then ŝ·w + b), so the same bits, in half the instructions. Streamed
// rows need that: bfloat16 LayerNorm forward ran 8-23% slower than RMSNorm with the 256-bit loop, 0-6% with this
// one (bench/cpu-rows/variants.sh, docs/notes/cpu-row-kernels.md); float32 gained 3-6%. float16 did not
// (slower in calm spells): it keeps the 256-bit loop. y is streamed out in 32-byte halves (512-bit
// non-temporal stores stream at half the rate on Zen 4).
CFN_LANES void normalize_wide(
    const cfn_forward_row_args *a, const void *s, int dtype, size_t begin, size_t end, float mean, float rstd,
    cfn_prefetch prefetch
) {
    __m512 r = _mm512_set1_ps(rstd), mr = _mm512_set1_ps(mean * rstd);
    const char *pa = cfn_prefetch_from(prefetch, begin);
    for (size_t i = begin; i < end; i += 32) {
        pa = cfn_prefetch32(pa, prefetch);
        __m512 lo, hi, w0, w1, b0, b1;
        cfn_load32(s, i, dtype, &lo, &hi);
        if (dtype == CFN_FLOAT32) {
            w0 = _mm512_loadu_ps(a->weight + i), w1 = _mm512_loadu_ps(a->weight + i + 16);
            b0 = _mm512_loadu_ps(a->bias + i), b1 = _mm512_loadu_ps(a->bias + i + 16);
        } else {
            // Packed weight and bias: one 32-bit lane per column (see cfn_weight_bias).
            const uint32_t *pairs = (const uint32_t *)a->weight_bias + i;
            __m512i p0 = _mm512_loadu_si512(pairs), p1 = _mm512_loadu_si512(pairs + 16);
            __m512i high = _mm512_set1_epi32((int)0xFFFF0000u);
            w0 = _mm512_castsi512_ps(_mm512_slli_epi32(p0, 16)), b0 = _mm512_castsi512_ps(_mm512_and_si512(p0, high));
            w1 = _mm512_castsi512_ps(_mm512_slli_epi32(p1, 16)), b1 = _mm512_castsi512_ps(_mm512_and_si512(p1, high));
        }
        lo = _mm512_fmadd_ps(_mm512_fmsub_ps(lo, r, mr), w0, b0);
        hi = _mm512_fmadd_ps(_mm512_fmsub_ps(hi, r, mr), w1, b1);
        cfn_stream32(a->output, i, dtype, lo, hi);
    }
}
#endif

// LayerNorm's usual pass 2 (weight and bias, ŝ fused: error == 2): s of `dtype` (x itself, or the float
// stash) into y of the same dtype, the parameters as floats (float32) or packed in `dtype` (cfn_weight_bias).
// The AVX-512 build runs the row's 32-byte-aligned middle 32 elements a step (normalize_wide; float32 and
// bfloat16), the 256-bit loop its head and tail; float16, and the AVX2 build, the 256-bit loop throughout.
CFN_LANES void normalize_fused(
    const cfn_forward_row_args *a, const void *s, int dtype, float mean, float rstd, cfn_prefetch prefetch
) {
    size_t begin = 0, end = a->columns;
#ifdef CFN_AVX512
    size_t head, stop;
    if (dtype != CFN_FLOAT16 && cfn_wide_span(a->output, dtype, end, &head, &stop)) {
        normalize_row(a, s, dtype, dtype, 1, 2, 1, 1, CFN_FLOAT32, dtype, mean, 0, rstd, prefetch, 0, head);
        normalize_wide(a, s, dtype, head, stop, mean, rstd, prefetch);
        begin = stop;
    }
#endif
    normalize_row(a, s, dtype, dtype, 1, 2, 1, 1, CFN_FLOAT32, dtype, mean, 0, rstd, prefetch, begin, end);
}

CFN_VECTOR static void normalize(
    const cfn_forward_row_args *a, const void *s, int sd, float mean, float meanError, float rstd, cfn_prefetch prefetch
) {
    int w = a->weight != NULL, b = a->bias != NULL, hd = a->hat_dtype, od = a->output_dtype;
#define CALL(SD, OD, C, E, W, B, HD) \
    normalize_row(a, s, SD, OD, C, E, W, B, HD, CFN_FLOAT32, mean, meanError, rstd, prefetch, 0, a->columns)
    // Specialized for s as floats (the stash, or float32 x) into any output, and for 16-bit x into its own
    // dtype; other pairs switch on the dtypes as they go.
#define BY_DTYPES(C, E, W, B, HD)                                                       \
    {                                                                                   \
        if (sd == CFN_FLOAT32) {                                                        \
            if (od == CFN_FLOAT32) CALL(CFN_FLOAT32, CFN_FLOAT32, C, E, W, B, HD);      \
            else if (od == CFN_FLOAT16) CALL(CFN_FLOAT32, CFN_FLOAT16, C, E, W, B, HD); \
            else CALL(CFN_FLOAT32, CFN_BFLOAT16, C, E, W, B, HD);                       \
        } else if (sd == od) {                                                          \
            if (od == CFN_FLOAT16) CALL(CFN_FLOAT16, CFN_FLOAT16, C, E, W, B, HD);      \
            else CALL(CFN_BFLOAT16, CFN_BFLOAT16, C, E, W, B, HD);                      \
        } else {                                                                        \
            CALL(sd, od, C, E, W, B, HD);                                               \
        }                                                                               \
        return;                                                                         \
    }
#define BY_PARAMETERS(C, E)                            \
    {                                                  \
        if (w && b) BY_DTYPES(C, E, 1, 1, CFN_FLOAT32) \
        if (w) BY_DTYPES(C, E, 1, 0, CFN_FLOAT32)      \
        if (b) BY_DTYPES(C, E, 0, 1, CFN_FLOAT32)      \
        BY_DTYPES(C, E, 0, 0, CFN_FLOAT32)             \
    }
    if (hd != CFN_FLOAT32) {
        // llama casting: RMSNorm, no bias.
        if (w) CALL(sd, od, 0, 0, 1, 0, hd);
        else CALL(sd, od, 0, 0, 0, 0, hd);
        return;
    }
    if (a->centered) {
        // The mean's error is 0 unless the mean is large against the spread: a loop without it.
        if (meanError != 0) BY_PARAMETERS(1, 1)
        // ŝ = s·rstd − mean·rstd in one fused multiply-add when mean·rstd is small: its rounding error is
        // then at most 2^-25 in ŝ (against (s − mean)·rstd, exact subtraction then one rounding).
        // (LayerNorm's usual weight and bias only: each specialization is a few more loops.)
        if (w && b && fabsf(mean * rstd) < 1) {
            // The packed parameters (16-bit rows of x into y of their dtype), and float32 rows into float32.
            if (a->weight_bias && sd == od && od == CFN_FLOAT16) {
                normalize_fused(a, s, CFN_FLOAT16, mean, rstd, prefetch);
                return;
            }
            if (a->weight_bias && sd == od && od == CFN_BFLOAT16) {
                normalize_fused(a, s, CFN_BFLOAT16, mean, rstd, prefetch);
                return;
            }
            if (sd == CFN_FLOAT32 && od == CFN_FLOAT32) {
                normalize_fused(a, s, CFN_FLOAT32, mean, rstd, prefetch);
                return;
            }
            BY_DTYPES(1, 2, 1, 1, CFN_FLOAT32)
        }
        BY_PARAMETERS(1, 0)
    }
    BY_PARAMETERS(0, 0)
#undef BY_PARAMETERS
#undef BY_DTYPES
#undef CALL
}

CFN_VECTOR void CFN_NAME(cfn_forward_row)(const cfn_forward_row_args *a) {
    float mean, meanError, rstd;
    size_t n = a->columns, xSize = a->x_dtype == CFN_FLOAT32 ? 4 : 2, rSize = a->residual_dtype == CFN_FLOAT32 ? 4 : 2;
    const char *nx = a->next_x, *nr = a->residual ? a->next_residual : NULL;
    // The next row's x while pass 1 reads this row, its residual while pass 2 writes y; without a residual,
    // half of the next x in each pass (measured best of: all in pass 1, split, all in pass 2).
    cfn_prefetch first = {0}, second = {0};
    if (nr) {
        first = (cfn_prefetch){nx, 16 * xSize};
        second = (cfn_prefetch){nr, 16 * rSize};
    } else if (nx) {
        first = (cfn_prefetch){nx, 8 * xSize};
        second = (cfn_prefetch){nx + n * xSize / 2, 8 * xSize};
    }
    const void *s;
    int sd;
    if (a->residual) {
        residual_statistics(a, &mean, &meanError, &rstd, first);
        s = a->stash;
        sd = CFN_FLOAT32;
    } else {
        // x stays in cache between the passes as it is (16-bit rows too: fewer bytes than floats, and
        // converting again costs less than storing and loading a float copy).
        cfn_row_statistics(a->x, a->x_dtype, n, a->centered, a->epsilon, &mean, &meanError, &rstd, first);
        s = a->x;
        sd = a->x_dtype;
    }
    if (a->mean) *a->mean = mean;
    if (a->rstd) *a->rstd = rstd;
    normalize(a, s, sd, mean, meanError, rstd, second);
}

#endif
