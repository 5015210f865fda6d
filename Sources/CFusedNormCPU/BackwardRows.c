// cfn_backward_row: one row of RMSNorm or LayerNorm backward (see CFusedNormCPU.h).
//
// x's statistics (saved, or taken from x, which then lands in the stash), then pass A reads x and dy from
// memory once (16-bit rows converted into the stashes) and sums g and g·ŝ block by block; pass B computes
// dx from cache, streams it out, and adds dy·ŝ and dy to the partial rows.

#include "Lanes.h"

#ifdef CFN_HAS_LANES

// Pass A over a block: Σ g (centered only) and Σ g·ŝ in fp32, with ŝ = (x − mean − meanError)·rstd and
// g = dy·w; x (dtype xd) and dy (dtype dyd) are copied into their stashes as floats unless float32.
CFN_LANES void gradient_sums_block(
    const cfn_backward_row_args *a, const void *x, int xd, size_t start, size_t count, int dyd, int centered,
    int weighted, __m256 m, __m256 e, __m256 r, float *sumG, float *sumGHat, cfn_prefetch *prefetch
) {
    const float *w = a->weight;
    __m256 gs[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()}, ghs[2] = {gs[0], gs[0]};
#define STEP(i, lanes, k, st)                                                                  \
    {                                                                                          \
        if (lanes == 8) cfn_prefetch_step(prefetch);                                           \
        __m256 hat = cfn_load(x, i, lanes, xd);                                                \
        if (xd != CFN_FLOAT32) cfn_store(a->x_stash, i, lanes, CFN_FLOAT32, hat, 0);           \
        __m256 d = cfn_load(a->dy, i, lanes, dyd);                                             \
        if (dyd != CFN_FLOAT32) cfn_store(a->dy_stash, i, lanes, CFN_FLOAT32, d, 0);           \
        if (centered) hat = _mm256_sub_ps(_mm256_sub_ps(hat, m), e);                           \
        hat = _mm256_mul_ps(hat, r);                                                           \
        __m256 g = weighted ? _mm256_mul_ps(d, cfn_load(w, i, lanes, CFN_FLOAT32)) : d;        \
        if (centered) gs[k] = _mm256_add_ps(gs[k], g);                                         \
        ghs[k] = _mm256_add_ps(ghs[k], _mm256_mul_ps(g, hat));                                 \
    }
    CFN_FOR_LANES(start, start + count, 0, 0, STEP);
#undef STEP
    *sumG = cfn_sum8(_mm256_add_ps(gs[0], gs[1]));
    *sumGHat = cfn_sum8(_mm256_add_ps(ghs[0], ghs[1]));
}

CFN_LANES void gradient_sums(
    const cfn_backward_row_args *a, const void *x, int xd, int dyd, int centered, int weighted, float mean,
    float meanError, float rstd, double *sumG, double *sumGHat, cfn_prefetch *prefetch
) {
    __m256 m = _mm256_set1_ps(mean), e = _mm256_set1_ps(meanError), r = _mm256_set1_ps(rstd);
    *sumG = *sumGHat = 0;
    for (size_t start = 0; start < a->columns; start += CFN_BLOCK) {
        size_t count = a->columns - start < CFN_BLOCK ? a->columns - start : CFN_BLOCK;
        float g, gh;
        gradient_sums_block(a, x, xd, start, count, dyd, centered, weighted, m, e, r, &g, &gh, prefetch);
        *sumG += (double)g;
        *sumGHat += (double)gh;
    }
}

CFN_VECTOR static void gradient_sums_dispatch(
    const cfn_backward_row_args *a, const void *x, int xd, float mean, float meanError, float rstd, double *sumG,
    double *sumGHat, cfn_prefetch *prefetch
) {
    int dyd = a->dy_dtype, c = a->centered, w = a->weight != NULL;
#define FLAGS(XD, DYD)                                                                                       \
    if (c && w) gradient_sums(a, x, XD, DYD, 1, 1, mean, meanError, rstd, sumG, sumGHat, prefetch);                    \
    else if (c) gradient_sums(a, x, XD, DYD, 1, 0, mean, meanError, rstd, sumG, sumGHat, prefetch);                    \
    else if (w) gradient_sums(a, x, XD, DYD, 0, 1, mean, meanError, rstd, sumG, sumGHat, prefetch);                    \
    else gradient_sums(a, x, XD, DYD, 0, 0, mean, meanError, rstd, sumG, sumGHat, prefetch);                           \
    return;
    // Specialized when x (as read here) and dy share a dtype; the general case switches as it goes.
    if (xd == dyd) {
        switch (dyd) {
        case CFN_FLOAT32: FLAGS(CFN_FLOAT32, CFN_FLOAT32)
        case CFN_FLOAT16: FLAGS(CFN_FLOAT16, CFN_FLOAT16)
        default: FLAGS(CFN_BFLOAT16, CFN_BFLOAT16)
        }
    }
    if (xd == CFN_FLOAT32) {  // x already in the stash
        switch (dyd) {
        case CFN_FLOAT16: FLAGS(CFN_FLOAT32, CFN_FLOAT16)
        default: FLAGS(CFN_FLOAT32, CFN_BFLOAT16)
        }
    }
    FLAGS(xd, dyd)
#undef FLAGS
}

// Pass B: dx = ((g − meanG) − ŝ·meanGHat)·rstd (+ residual gradient), streamed out; dweight partial += dy·ŝ,
// dbias partial += dy. x and dy are floats here (memory or stash).
CFN_LANES void input_gradient_row(
    const cfn_backward_row_args *a, const float *x, const float *dy, int dxd, int centered, int weighted, int biased,
    float mean, float meanError, float rstd, float meanG, float meanGHat, cfn_prefetch *prefetch
) {
    int stream;
    size_t head = cfn_stream_head(a->dx, 0, dxd, &stream);
    __m256 m = _mm256_set1_ps(mean), e = _mm256_set1_ps(meanError), r = _mm256_set1_ps(rstd);
    __m256 mg = _mm256_set1_ps(meanG), mgh = _mm256_set1_ps(meanGHat);
    const float *w = a->weight;
    float *wg = a->weight_gradient, *bg = a->bias_gradient;
    const void *rg = a->residual_gradient;
    int rgd = a->residual_gradient_dtype;
    void *out = a->dx;
#define STEP(i, lanes, k, st)                                                                                  \
    {                                                                                                          \
        if (lanes == 8) cfn_prefetch_step(prefetch);                                                           \
        __m256 hat = cfn_load(x, i, lanes, CFN_FLOAT32);                                                       \
        if (centered) hat = _mm256_sub_ps(_mm256_sub_ps(hat, m), e);                                           \
        hat = _mm256_mul_ps(hat, r);                                                                           \
        __m256 d = cfn_load(dy, i, lanes, CFN_FLOAT32), g = d;                                                 \
        if (weighted) {                                                                                        \
            g = _mm256_mul_ps(g, cfn_load(w, i, lanes, CFN_FLOAT32));                                          \
            __m256 partial = cfn_load(wg, i, lanes, CFN_FLOAT32);                                              \
            cfn_store(wg, i, lanes, CFN_FLOAT32, _mm256_add_ps(partial, _mm256_mul_ps(d, hat)), 0);            \
        }                                                                                                      \
        if (biased) cfn_store(bg, i, lanes, CFN_FLOAT32, _mm256_add_ps(cfn_load(bg, i, lanes, CFN_FLOAT32), d), 0); \
        if (centered) g = _mm256_sub_ps(g, mg);                                                                \
        __m256 dx = _mm256_mul_ps(_mm256_sub_ps(g, _mm256_mul_ps(hat, mgh)), r);                               \
        if (rg) dx = _mm256_add_ps(dx, cfn_load(rg, i, lanes, rgd));                                           \
        cfn_store(out, i, lanes, dxd, dx, st);                                                                 \
    }
    CFN_FOR_LANES(0, a->columns, head, stream, STEP);
#undef STEP
}

CFN_VECTOR static void input_gradient(
    const cfn_backward_row_args *a, const float *x, const float *dy, float mean, float meanError, float rstd, float meanG,
    float meanGHat, cfn_prefetch *prefetch
) {
    int c = a->centered, w = a->weight != NULL, b = a->bias_gradient != NULL;
#define BY_OUTPUT(C, W, B)                                                                                          \
    switch (a->dx_dtype) {                                                                                          \
    case CFN_FLOAT32: input_gradient_row(a, x, dy, CFN_FLOAT32, C, W, B, mean, meanError, rstd, meanG, meanGHat, prefetch); return; \
    case CFN_FLOAT16: input_gradient_row(a, x, dy, CFN_FLOAT16, C, W, B, mean, meanError, rstd, meanG, meanGHat, prefetch); return; \
    default: input_gradient_row(a, x, dy, CFN_BFLOAT16, C, W, B, mean, meanError, rstd, meanG, meanGHat, prefetch); return;      \
    }
    if (c) {
        if (w && b) BY_OUTPUT(1, 1, 1)
        if (w) BY_OUTPUT(1, 1, 0)
        if (b) BY_OUTPUT(1, 0, 1)
        BY_OUTPUT(1, 0, 0)
    }
    if (w && b) BY_OUTPUT(0, 1, 1)
    if (w) BY_OUTPUT(0, 1, 0)
    if (b) BY_OUTPUT(0, 0, 1)
    BY_OUTPUT(0, 0, 0)
#undef BY_OUTPUT
}

CFN_VECTOR void cfn_backward_row(const cfn_backward_row_args *a) {
    size_t n = a->columns, xSize = a->x_dtype == CFN_FLOAT32 ? 4 : 2, dySize = a->dy_dtype == CFN_FLOAT32 ? 4 : 2;
    float mean, meanError, rstd;
    const void *x = a->x;
    int xd = a->x_dtype;
    // The next row's inputs, spread over this row's passes (about n / 4 full steps; n / 8 more when the
    // statistics are taken here).
    cfn_prefetch next = cfn_prefetch_rows(a->next_x, n * xSize, a->next_dy, n * dySize, a->statistics_saved ? n / 4 : n / 4 + n / 8);
    if (a->statistics_saved) {
        mean = a->mean;
        meanError = 0;
        rstd = a->rstd;
    } else {
        cfn_row_statistics(x, xd, n, a->centered, a->epsilon, a->x_stash, &mean, &meanError, &rstd, &next);
        if (xd != CFN_FLOAT32) {  // x is in the stash now
            x = a->x_stash;
            xd = CFN_FLOAT32;
        }
    }
    double sumG, sumGHat;
    gradient_sums_dispatch(a, x, xd, mean, meanError, rstd, &sumG, &sumGHat, &next);
    const float *x32 = a->x_dtype == CFN_FLOAT32 ? (const float *)a->x : a->x_stash;
    const float *dy32 = a->dy_dtype == CFN_FLOAT32 ? (const float *)a->dy : a->dy_stash;
    input_gradient(a, x32, dy32, mean, meanError, rstd, (float)(sumG / (double)n), (float)(sumGHat / (double)n), &next);
}

#else
void cfn_backward_row(const cfn_backward_row_args *a) { (void)a; __builtin_trap(); }
#endif
