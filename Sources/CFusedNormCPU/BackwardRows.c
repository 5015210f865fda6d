// cfn_backward_row_avx2 and _avx512 (see Lanes.h, RowKernels.h): one row of RMSNorm or LayerNorm backward (see CFusedNormCPU.h).
//
// x's statistics (saved, or taken from x), then pass A reads x and dy (from memory once), adds dy·ŝ and dy
// to the partial rows and sums g and g·ŝ block by block; pass B reads them again from cache (16-bit rows
// stay 16-bit: fewer bytes through L1 than float copies, and converting again costs less than storing and
// loading those copies), computes dx and streams it out.

#include "LanePairs.h"
#include "RowKernels.h"
#include "RowLoops.h"
#include "Statistics.h"
#include "WideLanes.h"

#ifdef CFN_HAS_LANES
#include <math.h>

// Whether a LayerNorm row takes x − mean exactly (the mean subtracted first, then its rounding error: the
// `exact` specializations) rather than fused with the scaling (ŝ = x·rstd − mean·rstd, and pass B's
// two-multiply-add form for 16-bit dx): where the mean's rounding error counts (meanError ≠ 0), where the
// mean is not small against the spread (|mean·rstd| ≥ 1, as in the forward pass: below, the rounding of
// mean·rstd adds at most 2^-25 to ŝ), where the statistics are not finite, and in rows too short for a pair of
// full vectors (N < 16; a row of one element then keeps dx exactly 0).
static int exact_centering(int centered, size_t n, float mean, float meanError, float rstd) {
    return centered && (meanError != 0 || !(fabsf(mean * rstd) < 1) || n < 16);
}

// Pass A over a block: ŝ = x·rstd − mean·rstd (one fused multiply-add; `exact`: (x − mean − meanError)·rstd, see
// exact_centering; RMSNorm: x·rstd) and g = dy·w; dy·ŝ added to the dweight partial row (one fused multiply-add)
// and dy to the dbias partial row (here rather than in pass B, whose non-temporal dx stores hold up other
// stores); Σ g (centered only) and Σ g·ŝ in fp32.
CFN_LANES void gradient_sums_block(
    const cfn_backward_row_args *a, const void *x, int xd, size_t start, size_t count, int dyd, int centered, int exact,
    int weighted, int biased, __m256 m, __m256 e, __m256 r, __m256 mr, float *sumG, float *sumGHat, cfn_prefetch prefetch
) {
    // Locals, not a->...: the vector stores may alias anything, which would reload the fields every step.
    const float *w = a->weight;
    const void *dy = a->dy;
    float *wg = a->weight_gradient, *bg = a->bias_gradient;
    __m256 gs[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()}, ghs[2] = {gs[0], gs[0]}, px = gs[0], pd = gs[0];
#define STEP(i, lanes, k, st)                                                                                  \
    {                                                                                                          \
        __m256 hat = cfn_load_k(x, i, lanes, xd, k, &px);                                                      \
        __m256 d = cfn_load_k(dy, i, lanes, dyd, k, &pd);                                                      \
        if (exact) hat = _mm256_mul_ps(_mm256_sub_ps(_mm256_sub_ps(hat, m), e), r);                            \
        else if (centered) hat = _mm256_fmsub_ps(hat, r, mr);                                                  \
        else hat = _mm256_mul_ps(hat, r);                                                                      \
        __m256 g = d;                                                                                          \
        if (weighted) {                                                                                        \
            g = _mm256_mul_ps(d, cfn_load(w, i, lanes, CFN_FLOAT32));                                          \
            __m256 partial = cfn_load(wg, i, lanes, CFN_FLOAT32);                                              \
            cfn_store(wg, i, lanes, CFN_FLOAT32, _mm256_fmadd_ps(d, hat, partial), 0);                         \
        }                                                                                                      \
        if (biased) cfn_store(bg, i, lanes, CFN_FLOAT32, _mm256_add_ps(cfn_load(bg, i, lanes, CFN_FLOAT32), d), 0); \
        if (centered) gs[k & 1] = _mm256_add_ps(gs[k & 1], g);                                                 \
        ghs[k & 1] = _mm256_fmadd_ps(g, hat, ghs[k & 1]);                                                      \
    }
    CFN_FOR_LANES(start, start + count, 0, 0, 1, prefetch, STEP);
#undef STEP
    *sumG = cfn_sum8(_mm256_add_ps(gs[0], gs[1]));
    *sumGHat = cfn_sum8(_mm256_add_ps(ghs[0], ghs[1]));
}

CFN_LANES void gradient_sums(
    const cfn_backward_row_args *a, const void *x, int xd, int dyd, int centered, int exact, int weighted, int biased,
    float mean, float meanError, float rstd, double *sumG, double *sumGHat, cfn_prefetch prefetch
) {
    __m256 m = _mm256_set1_ps(mean), e = _mm256_set1_ps(meanError), r = _mm256_set1_ps(rstd);
    __m256 mr = _mm256_set1_ps(mean * rstd);
    *sumG = *sumGHat = 0;
    for (size_t start = 0; start < a->columns; start += CFN_BLOCK) {
        size_t count = a->columns - start < CFN_BLOCK ? a->columns - start : CFN_BLOCK;
        float g, gh;
        gradient_sums_block(a, x, xd, start, count, dyd, centered, exact, weighted, biased, m, e, r, mr, &g, &gh, prefetch);
        *sumG += (double)g;
        *sumGHat += (double)gh;
    }
}

CFN_VECTOR static void gradient_sums_dispatch(
    const cfn_backward_row_args *a, const void *x, int xd, int exact, float mean, float meanError, float rstd,
    double *sumG, double *sumGHat, cfn_prefetch prefetch
) {
    int dyd = a->dy_dtype, c = a->centered, w = a->weight != NULL, b = a->bias_gradient != NULL, e = exact;
#define CALL(XD, DYD, C, E, W, B) \
    gradient_sums(a, x, XD, DYD, C, E, W, B, mean, meanError, rstd, sumG, sumGHat, prefetch)
#define FLAGS(XD, DYD)                                   \
    if (c) {                                             \
        if (e) {                                         \
            if (w && b) CALL(XD, DYD, 1, 1, 1, 1);       \
            else if (w) CALL(XD, DYD, 1, 1, 1, 0);       \
            else if (b) CALL(XD, DYD, 1, 1, 0, 1);       \
            else CALL(XD, DYD, 1, 1, 0, 0);              \
        } else if (w && b) CALL(XD, DYD, 1, 0, 1, 1);    \
        else if (w) CALL(XD, DYD, 1, 0, 1, 0);           \
        else if (b) CALL(XD, DYD, 1, 0, 0, 1);           \
        else CALL(XD, DYD, 1, 0, 0, 0);                  \
    } else if (w) CALL(XD, DYD, 0, 0, 1, 0);             \
    else CALL(XD, DYD, 0, 0, 0, 0);                      \
    return;
    // Specialized when x (as read here) and dy share a dtype; the general case switches as it goes.
    if (xd == dyd) {
        switch (dyd) {
        case CFN_FLOAT32: FLAGS(CFN_FLOAT32, CFN_FLOAT32)
        case CFN_FLOAT16: FLAGS(CFN_FLOAT16, CFN_FLOAT16)
        default: FLAGS(CFN_BFLOAT16, CFN_BFLOAT16)
        }
    }
    FLAGS(xd, dyd)
#undef FLAGS
#undef CALL
}

// Pass B: dx = ((g − meanG) − ŝ·meanGHat)·rstd (+ residual gradient), streamed out, with ŝ and g computed
// again as in pass A from x (dtype xd) and dy (dtype dyd), in cache since pass A. A centered 16-bit dx, not
// `exact` (see exact_centering), as PyTorch's CPU kernel takes it: dx = g·rstd + (x·b + c), where
// b = −rstd²·meanGHat and c = rstd·(mean·rstd·meanGHat − meanG) (two fused multiply-adds, two operations
// fewer per eight elements; the error that c's rounding adds stays far below a 16-bit dx's own rounding).
CFN_LANES void input_gradient_row(
    const cfn_backward_row_args *a, const void *x, int xd, int dyd, int dxd, int centered, int weighted, int exact,
    int residual, float mean, float meanError, float rstd, double meanG, double meanGHat, cfn_prefetch prefetch,
    size_t begin, size_t end
) {
    int stream;
    size_t head = cfn_stream_head(a->dx, begin, dxd, &stream);
    __m256 m = _mm256_set1_ps(mean), e = _mm256_set1_ps(meanError), r = _mm256_set1_ps(rstd);
    __m256 mg = _mm256_set1_ps((float)meanG), mgh = _mm256_set1_ps((float)meanGHat);
    __m256 rmgh = _mm256_set1_ps(rstd * (float)meanGHat);
    __m256 b = _mm256_set1_ps((float)(-(double)rstd * rstd * meanGHat));
    __m256 c = _mm256_set1_ps((float)(rstd * ((double)mean * rstd * meanGHat - meanG)));
    // The two-multiply-add form.
    int affine = centered && !exact && dxd != CFN_FLOAT32;
    const float *w = a->weight;
    const void *dy = a->dy, *rg = a->residual_gradient;
    int rgd = a->residual_gradient_dtype;
    void *out = a->dx;
    __m256 po = _mm256_setzero_ps(), px = po, pd = po;
#define STEP(i, lanes, k, st)                                                                                  \
    {                                                                                                          \
        __m256 v = cfn_load_k(x, i, lanes, xd, k, &px), hat = v;                                               \
        if (centered && !affine) hat = _mm256_sub_ps(hat, m);                                                  \
        if (exact) hat = _mm256_sub_ps(hat, e);                                                                \
        /* 16-bit dx: hat holds x − mean, and ŝ·meanGHat = (x − mean)·(rstd·meanGHat), fused */                \
        if (dxd == CFN_FLOAT32) hat = _mm256_mul_ps(hat, r);                                                   \
        __m256 g = cfn_load_k(dy, i, lanes, dyd, k, &pd);                                                      \
        if (weighted) g = _mm256_mul_ps(g, cfn_load(w, i, lanes, CFN_FLOAT32));                                \
        if (centered && !affine) g = _mm256_sub_ps(g, mg);                                                     \
        /* float32 dx: as the Swift kernels, whose float32 results this one matches closely where g and      \
           ŝ·meanGHat nearly cancel; 16-bit dx of exact rows: g − ŝ·meanGHat fused. Exactly 0 either way     \
           where g = meanG and x = mean (a row of one element). */                                             \
        __m256 dx = affine               ? _mm256_fmadd_ps(g, r, _mm256_fmadd_ps(v, b, c))                     \
                    : dxd == CFN_FLOAT32 ? _mm256_mul_ps(_mm256_sub_ps(g, _mm256_mul_ps(hat, mgh)), r)         \
                                         : _mm256_mul_ps(_mm256_fnmadd_ps(hat, rmgh, g), r);                   \
        if (residual) dx = _mm256_add_ps(dx, cfn_load(rg, i, lanes, rgd));                                     \
        cfn_put_k(out, i, lanes, dxd, dx, st, k, &po);                                                         \
    }
    CFN_FOR_LANES(begin, end, head, stream, 1, prefetch, STEP);
#undef STEP
}

#ifdef CFN_AVX512
// Pass B over [begin, end) (a multiple of 32 elements; dx 32-byte aligned at begin) for bfloat16 rows (x, dy and dx),
// weighted, not `exact`, without a residual gradient: 32 elements a step in 512-bit vectors (see cfn_load32), per
// element the operations of input_gradient_row, so the same bits, in fewer instructions: LayerNorm backward 4-7%
// shorter streamed (bench/cpu-rows/variants.sh, docs/notes/cpu-row-kernels.md). float32 rows measured 3-8%
// slower with it and keep the 256-bit loop.
CFN_LANES void input_gradient_wide(
    const cfn_backward_row_args *a, const void *x, int centered, float mean, float rstd, double meanG, double meanGHat,
    cfn_prefetch prefetch, size_t begin, size_t end
) {
    __m512 r = _mm512_set1_ps(rstd), rmgh = _mm512_set1_ps(rstd * (float)meanGHat);
    __m512 b = _mm512_set1_ps((float)(-(double)rstd * rstd * meanGHat));
    __m512 c = _mm512_set1_ps((float)(rstd * ((double)mean * rstd * meanGHat - meanG)));
    const char *pa = cfn_prefetch_from(prefetch, begin);
    for (size_t i = begin; i < end; i += 32) {
        pa = cfn_prefetch32(pa, prefetch);
        __m512 v[2], g[2], dx[2];
        cfn_load32(x, i, CFN_BFLOAT16, &v[0], &v[1]);
        cfn_load32(a->dy, i, CFN_BFLOAT16, &g[0], &g[1]);
        for (int h = 0; h < 2; h++) {
            g[h] = _mm512_mul_ps(g[h], _mm512_loadu_ps(a->weight + i + 16 * h));
            // 16-bit dx: the two-multiply-add form when centered, else (g − x·rstd·meanGHat)·rstd.
            dx[h] = centered ? _mm512_fmadd_ps(g[h], r, _mm512_fmadd_ps(v[h], b, c))
                             : _mm512_mul_ps(_mm512_fnmadd_ps(v[h], rmgh, g[h]), r);
        }
        cfn_stream32(a->dx, i, CFN_BFLOAT16, dx[0], dx[1]);
    }
}
#endif

// Pass B of the rows input_gradient_wide serves: its loop over the row's 32-byte-aligned middle in the AVX-512
// build, the 256-bit loop over the head and tail (and over the whole row in the AVX2 build).
CFN_LANES void input_gradient_split(
    const cfn_backward_row_args *a, const void *x, int centered, float mean, float rstd, double meanG, double meanGHat,
    cfn_prefetch prefetch
) {
    size_t begin = 0, end = a->columns;
    int bf = CFN_BFLOAT16;
#ifdef CFN_AVX512
    size_t head, stop;
    if (cfn_wide_span(a->dx, bf, end, &head, &stop)) {
        input_gradient_row(a, x, bf, bf, bf, centered, 1, 0, 0, mean, 0, rstd, meanG, meanGHat, prefetch, 0, head);
        input_gradient_wide(a, x, centered, mean, rstd, meanG, meanGHat, prefetch, head, stop);
        begin = stop;
    }
#endif
    input_gradient_row(a, x, bf, bf, bf, centered, 1, 0, 0, mean, 0, rstd, meanG, meanGHat, prefetch, begin, end);
}

CFN_VECTOR static void input_gradient(
    const cfn_backward_row_args *a, const void *x, int xd, int exact, float mean, float meanError, float rstd,
    double meanG, double meanGHat, cfn_prefetch prefetch
) {
    int c = a->centered, w = a->weight != NULL, dyd = a->dy_dtype, dxd = a->dx_dtype;
    int e = exact, g = a->residual_gradient != NULL;
    size_t n = a->columns;
    // bfloat16 rows, weighted, not exact, no residual gradient: 512-bit in the AVX-512 build.
    if (xd == CFN_BFLOAT16 && dyd == CFN_BFLOAT16 && dxd == CFN_BFLOAT16 && w && !e && !g) {
        if (c) input_gradient_split(a, x, 1, mean, rstd, meanG, meanGHat, prefetch);
        else input_gradient_split(a, x, 0, mean, rstd, meanG, meanGHat, prefetch);
        return;
    }
    // The residual gradient's test too is taken out of the loops.
#define CALL(XD, DYD, DXD, C, W, E)                                                                                 \
    do {                                                                                                            \
        if (g) input_gradient_row(a, x, XD, DYD, DXD, C, W, E, 1, mean, meanError, rstd, meanG, meanGHat, prefetch, 0, n); \
        else input_gradient_row(a, x, XD, DYD, DXD, C, W, E, 0, mean, meanError, rstd, meanG, meanGHat, prefetch, 0, n);   \
    } while (0)
#define FLAGS(XD, DYD, DXD)                                   \
    {                                                         \
        if (c) {                                              \
            if (e) {                                          \
                if (w) CALL(XD, DYD, DXD, 1, 1, 1);           \
                else CALL(XD, DYD, DXD, 1, 0, 1);             \
            } else if (w) CALL(XD, DYD, DXD, 1, 1, 0);        \
            else CALL(XD, DYD, DXD, 1, 0, 0);                 \
        } else if (w) CALL(XD, DYD, DXD, 0, 1, 0);            \
        else CALL(XD, DYD, DXD, 0, 0, 0);                     \
        return;                                               \
    }
    // Specialized when x (as read here), dy and dx share a dtype; the general case switches as it goes.
    if (xd == dyd && dyd == dxd) {
        switch (xd) {
        case CFN_FLOAT32: FLAGS(CFN_FLOAT32, CFN_FLOAT32, CFN_FLOAT32)
        case CFN_FLOAT16: FLAGS(CFN_FLOAT16, CFN_FLOAT16, CFN_FLOAT16)
        default: FLAGS(CFN_BFLOAT16, CFN_BFLOAT16, CFN_BFLOAT16)
        }
    }
    FLAGS(xd, dyd, dxd)
#undef FLAGS
#undef CALL
}

CFN_VECTOR void CFN_NAME(cfn_backward_row)(const cfn_backward_row_args *a) {
    size_t n = a->columns, xSize = a->x_dtype == CFN_FLOAT32 ? 4 : 2, dySize = a->dy_dtype == CFN_FLOAT32 ? 4 : 2;
    float mean, meanError, rstd;
    const void *x = a->x;
    int xd = a->x_dtype;
    // The next row's x while pass A reads this row, its dy while pass B writes dx (measured best of: both
    // in pass A, split, both in pass B).
    cfn_prefetch first = {a->next_x, 16 * xSize}, second = {a->next_dy, 16 * dySize};
    if (a->statistics_saved) {
        mean = a->mean;
        meanError = 0;
        rstd = a->rstd;
    } else {
        cfn_row_statistics(x, xd, n, a->centered, a->epsilon, &mean, &meanError, &rstd, (cfn_prefetch){0});
    }
    int exact = exact_centering(a->centered, n, mean, meanError, rstd);
    double sumG, sumGHat;
    gradient_sums_dispatch(a, x, xd, exact, mean, meanError, rstd, &sumG, &sumGHat, first);
    input_gradient(a, x, xd, exact, mean, meanError, rstd, sumG / (double)n, sumGHat / (double)n, second);
}

#endif
