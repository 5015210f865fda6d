/// The forward pass of RMSNorm and LayerNorm, one kernel specialized by `-D` definitions:
///
/// - dtypes: `X_T`, `R_T` (residual), `S_T` (residual output s), `W_T`, `B_T`, `Y_T`, each `float`,
///   `half_t` or `bf16_t`;
/// - variant: `LAYER` (0 RMSNorm, 1 LayerNorm), `HAS_RESIDUAL`, `HAS_WEIGHT`, `HAS_BIAS`, `LLAMA` (casting);
/// - layout (``LaunchConfiguration``): `TPR`, `RPB`, `VEC`, `VPT`, `STORAGE`.
///
/// Per row: s = x (+ residual, summed in fp32, stored to s in S_T and read back rounded);
/// LayerNorm: μ = Σs/N, r = 1/sqrt(Σ(s−μ)²/N + ε), y = (s−μ)·r·w + b;
/// RMSNorm: r = 1/sqrt(Σs²/N + ε), ŝ = s·r (rounded to s's dtype under llama casting), y = ŝ·(w + offset).
/// The weight row is `row % weight_rows`. Statistics go to `rstd` and `mean` when those are not null.
let normForwardSource = kernelCommonSource + "\n" + #"""
#if HAS_RESIDUAL
typedef S_T row_t;  // the normalized row as stored: s
#else
typedef X_T row_t;  // the normalized row as stored: x
#endif

/// Kernel arguments; the Swift side packs the same fields in the same order.
struct ForwardParams {
    const void* x;
    const void* residual;
    const void* weight;
    const void* bias;
    void* y;
    void* s;
    float* mean;
    float* rstd;
    long long rows;
    long long cols;
    long long weight_rows;
    long long x_stride;
    long long r_stride;
    long long w_stride;
    long long b_stride;
    long long y_stride;
    long long s_stride;
    float eps;
    float offset;
};

/// s at columns [c, c+VEC) of `row`, from x and the residual; stores s (rounded to S_T) and returns
/// the stored values.
static __device__ __forceinline__ void load_input(const ForwardParams& p, long long row, long long c, float (&s)[VEC]) {
    load_vec<X_T, VEC>(static_cast<const X_T*>(p.x) + row * p.x_stride + c, s);
#if HAS_RESIDUAL
    float r[VEC];
    load_vec<R_T, VEC>(static_cast<const R_T*>(p.residual) + row * p.r_stride + c, r);
#pragma unroll
    for (int j = 0; j < VEC; ++j) s[j] += r[j];
    store_vec<S_T, VEC>(static_cast<S_T*>(p.s) + row * p.s_stride + c, s);
#pragma unroll
    for (int j = 0; j < VEC; ++j) s[j] = round_to<S_T>(s[j]);
#endif
}

#if STORAGE == 2
/// s at columns [c, c+VEC) again, read back from memory (the same thread stored s there).
static __device__ __forceinline__ void reload_input(const ForwardParams& p, long long row, long long c, float (&s)[VEC]) {
#if HAS_RESIDUAL
    load_vec<S_T, VEC>(static_cast<const S_T*>(p.s) + row * p.s_stride + c, s);
#else
    load_vec<X_T, VEC>(static_cast<const X_T*>(p.x) + row * p.x_stride + c, s);
#endif
}
#endif

/// y at columns [c, c+VEC) from s and the row's statistics.
static __device__ __forceinline__ void store_output(
    const ForwardParams& p, long long row, long long weight_row, long long c, const float (&s)[VEC], float mean, float rstd) {
#if HAS_WEIGHT
    float w[VEC];
    load_vec<W_T, VEC>(static_cast<const W_T*>(p.weight) + weight_row * p.w_stride + c, w);
#endif
#if HAS_BIAS
    float b[VEC];
    load_vec<B_T, VEC>(static_cast<const B_T*>(p.bias) + weight_row * p.b_stride + c, b);
#endif
    float y[VEC];
#pragma unroll
    for (int j = 0; j < VEC; ++j) {
        float hat = (s[j] - mean) * rstd;
#if LAYER
        float v = hat;
#if HAS_WEIGHT
        v = hat * w[j];
#endif
#if HAS_BIAS
        v = v + b[j];
#endif
#else
#if LLAMA
        hat = round_to<row_t>(hat);
#endif
#if HAS_WEIGHT
        const float v = hat * (w[j] + p.offset);
#else
        const float v = hat;
#endif
#endif
        y[j] = v;
    }
    store_vec<Y_T, VEC>(static_cast<Y_T*>(p.y) + row * p.y_stride + c, y);
}

extern "C" __global__ void __launch_bounds__(TPR * RPB) norm_forward(const ForwardParams p) {
    const int lane = threadIdx.x % TPR;
    const int group = threadIdx.x / TPR;
    const long long n = p.cols;
    const float count = (float)n;
#if STORAGE == 1
    row_t* cache = reinterpret_cast<row_t*>(fn_dynamic_shared);
#endif
    // The loop bound is the same for every thread of the block, so barriers and shuffles inside are safe;
    // threads of a group past the last row compute on zeros and store nothing.
    for (long long base = (long long)blockIdx.x * RPB; base < p.rows; base += (long long)gridDim.x * RPB) {
        const long long row = base + group;
        const bool valid = row < p.rows;
        const long long weight_row = valid ? row % p.weight_rows : 0;
        float sum[1] = {0.0f};
#if STORAGE == 0
        // The row in registers: vector k of this thread is at column (k*TPR + lane)*VEC.
        float v[VPT][VEC];
#pragma unroll
        for (int k = 0; k < VPT; ++k) {
            const long long c = ((long long)k * TPR + lane) * VEC;
            if (valid && c < n) {
                load_input(p, row, c, v[k]);
            } else {
#pragma unroll
                for (int j = 0; j < VEC; ++j) v[k][j] = 0.0f;
            }
        }
#if LAYER
#pragma unroll
        for (int k = 0; k < VPT; ++k)
#pragma unroll
            for (int j = 0; j < VEC; ++j) sum[0] += v[k][j];
        row_sum<TPR, 1>(sum);
        const float mean = sum[0] / count;
        sum[0] = 0.0f;
#pragma unroll
        for (int k = 0; k < VPT; ++k) {
            const long long c = ((long long)k * TPR + lane) * VEC;
            if (c < n) {
#pragma unroll
                for (int j = 0; j < VEC; ++j) {
                    const float d = v[k][j] - mean;
                    sum[0] += d * d;
                }
            }
        }
#else
        const float mean = 0.0f;
#pragma unroll
        for (int k = 0; k < VPT; ++k)
#pragma unroll
            for (int j = 0; j < VEC; ++j) sum[0] += v[k][j] * v[k][j];
#endif
        row_sum<TPR, 1>(sum);
        const float rstd = 1.0f / sqrtf(sum[0] / count + p.eps);
        if (valid && lane == 0) {
            if (p.rstd) p.rstd[row] = rstd;
            if (p.mean) p.mean[row] = mean;
        }
        if (valid) {
#pragma unroll
            for (int k = 0; k < VPT; ++k) {
                const long long c = ((long long)k * TPR + lane) * VEC;
                if (c < n) store_output(p, row, weight_row, c, v[k], mean, rstd);
            }
        }
#else
        // One row per block (RPB == 1), streamed in vectors; every thread of the block has a valid row.
        // Each thread reads back only what it wrote itself, so the cache needs no barrier.
        const long long step = (long long)TPR * VEC;
        for (long long c = (long long)lane * VEC; c < n; c += step) {
            float s[VEC];
            load_input(p, row, c, s);
#if STORAGE == 1
            store_vec<row_t, VEC>(cache + c, s);
#endif
#pragma unroll
            for (int j = 0; j < VEC; ++j) sum[0] += LAYER ? s[j] : s[j] * s[j];
        }
        row_sum<TPR, 1>(sum);
#if LAYER
        const float mean = sum[0] / count;
        sum[0] = 0.0f;
        for (long long c = (long long)lane * VEC; c < n; c += step) {
            float s[VEC];
#if STORAGE == 1
            load_vec<row_t, VEC>(cache + c, s);
#else
            reload_input(p, row, c, s);
#endif
#pragma unroll
            for (int j = 0; j < VEC; ++j) {
                const float d = s[j] - mean;
                sum[0] += d * d;
            }
        }
        row_sum<TPR, 1>(sum);
#else
        const float mean = 0.0f;
#endif
        const float rstd = 1.0f / sqrtf(sum[0] / count + p.eps);
        if (lane == 0) {
            if (p.rstd) p.rstd[row] = rstd;
            if (p.mean) p.mean[row] = mean;
        }
        for (long long c = (long long)lane * VEC; c < n; c += step) {
            float s[VEC];
#if STORAGE == 1
            load_vec<row_t, VEC>(cache + c, s);
#else
            reload_input(p, row, c, s);
#endif
            store_output(p, row, weight_row, c, s, mean, rstd);
        }
#endif
    }
}
"""#
