/// The backward pass of RMSNorm and LayerNorm, and the deterministic reduction of dweight/dbias.
///
/// `norm_backward`, specialized by `-D` definitions:
/// - dtypes: `DY_T`, `X_T`, `W_T`, `RG_T` (residual gradient), `DX_T`;
/// - variant: `LAYER`, `HAS_WEIGHT`, `HAS_RG`, `HAS_DW`, `HAS_DB`;
/// - layout (``LaunchConfiguration``): `TPR`, `RPB`, `VEC`, `VPT`, `STORAGE` (0 registers, 2 streaming),
///   `ACC_SHARED`.
///
/// Per row, with μ and r saved by the forward pass (or recomputed from x when `rstd` is null),
/// ŝ = (x − μ)·r and g = dy·(w + offset):
/// RMSNorm dx = r·(g − ŝ·Σ(g·ŝ)/N); LayerNorm dx = r·(g − Σg/N − ŝ·Σ(g·ŝ)/N); dx += residual gradient.
///
/// dweight = Σ_rows dy·ŝ and dbias = Σ_rows dy, deterministic: block b = part·H + h owns weight row h and
/// the fixed rows h + H·k, k ≡ part·RPB + group (mod P·RPB); it sums them in row order in fp32 and writes
/// one partial row (groups of a block combined in group order). `reduce_partials` then adds the P
/// partials of each element in order and stores dweight/dbias (`DW_T`, `DB_T`).
let normBackwardSource = kernelCommonSource + "\n" + #"""
struct BackwardParams {
    const void* dy;
    const void* x;
    const void* weight;
    const float* mean;
    const float* rstd;
    const void* rg;
    void* dx;
    float* partial;  // [HAS_DW + HAS_DB][P][H][N] fp32
    long long rows;
    long long cols;
    long long weight_rows;  // H
    long long parts;        // P
    long long dy_stride;
    long long x_stride;
    long long w_stride;
    long long rg_stride;
    long long dx_stride;
    float eps;
    float offset;
};

/// The effective weight at [c, c+VEC) of weight row h: w + offset, or 1 without a weight.
static __device__ __forceinline__ void load_weight(const BackwardParams& p, long long h, long long c, float (&w)[VEC]) {
#if HAS_WEIGHT
    load_vec<W_T, VEC>(static_cast<const W_T*>(p.weight) + h * p.w_stride + c, w);
#pragma unroll
    for (int j = 0; j < VEC; ++j) w[j] += p.offset;
#else
#pragma unroll
    for (int j = 0; j < VEC; ++j) w[j] = 1.0f;
#endif
}

/// dx at [c, c+VEC) of `row`, plus the residual gradient.
static __device__ __forceinline__ void store_dx(
    const BackwardParams& p, long long row, long long c, const float (&x)[VEC], const float (&dy)[VEC],
    const float (&w)[VEC], float mean, float rstd, float mean_g, float mean_gh) {
    float dx[VEC];
#if HAS_RG
    float rg[VEC];
    load_vec<RG_T, VEC>(static_cast<const RG_T*>(p.rg) + row * p.rg_stride + c, rg);
#endif
#pragma unroll
    for (int j = 0; j < VEC; ++j) {
        const float hat = (x[j] - mean) * rstd;
        const float g = dy[j] * w[j];
        dx[j] = rstd * (g - mean_g - hat * mean_gh);
#if HAS_RG
        dx[j] += rg[j];
#endif
    }
    store_vec<DX_T, VEC>(static_cast<DX_T*>(p.dx) + row * p.dx_stride + c, dx);
}

extern "C" __global__ void __launch_bounds__(TPR * RPB) norm_backward(const BackwardParams p) {
    const int lane = threadIdx.x % TPR;
    [[maybe_unused]] const int group = threadIdx.x / TPR;
    const long long n = p.cols;
    const float count = (float)n;
    const long long heads = p.weight_rows;
    const long long head = blockIdx.x % heads;
    const long long part = blockIdx.x / heads;
    // Rows of this head: head + heads*k for k < per_head.
    const long long per_head = head < p.rows ? (p.rows - head + heads - 1) / heads : 0;
    const long long partial_row = (part * heads + head) * n;
    [[maybe_unused]] float* dw_partial = p.partial + partial_row;
    [[maybe_unused]] float* db_partial = p.partial + (HAS_DW ? p.parts * heads * n : 0) + partial_row;

#if STORAGE == 0
    // ---- The row (x and dy) in registers: vector k of this thread at column (k*TPR + lane)*VEC.
    // The weight row is read where used (it stays in L1/L2); dweight/dbias sums stay in registers. ----
    float dw[VPT][VEC];
    float db[VPT][VEC];
#pragma unroll
    for (int k = 0; k < VPT; ++k) {
#pragma unroll
        for (int j = 0; j < VEC; ++j) {
            dw[k][j] = 0.0f;
            db[k][j] = 0.0f;
        }
    }
    for (long long k0 = part * RPB; k0 < per_head; k0 += p.parts * RPB) {
        const long long kk = k0 + group;
        const bool valid = kk < per_head;
        const long long row = head + kk * heads;
        float x[VPT][VEC];
        float dy[VPT][VEC];
#pragma unroll
        for (int k = 0; k < VPT; ++k) {
            const long long c = ((long long)k * TPR + lane) * VEC;
            if (valid && c < n) {
                load_vec<X_T, VEC>(static_cast<const X_T*>(p.x) + row * p.x_stride + c, x[k]);
                load_vec<DY_T, VEC>(static_cast<const DY_T*>(p.dy) + row * p.dy_stride + c, dy[k]);
            } else {
#pragma unroll
                for (int j = 0; j < VEC; ++j) {
                    x[k][j] = 0.0f;
                    dy[k][j] = 0.0f;
                }
            }
        }
        float mean = 0.0f;
        float rstd = 0.0f;
        if (p.rstd != nullptr) {
            if (valid) {
                rstd = p.rstd[row];
#if LAYER
                mean = p.mean[row];
#endif
            }
        } else {
            float sum[1] = {0.0f};
#if LAYER
#pragma unroll
            for (int k = 0; k < VPT; ++k)
#pragma unroll
                for (int j = 0; j < VEC; ++j) sum[0] += x[k][j];
            row_sum<TPR, 1>(sum);
            mean = sum[0] / count;
            sum[0] = 0.0f;
#pragma unroll
            for (int k = 0; k < VPT; ++k) {
                const long long c = ((long long)k * TPR + lane) * VEC;
                if (c < n) {
#pragma unroll
                    for (int j = 0; j < VEC; ++j) {
                        const float d = x[k][j] - mean;
                        sum[0] += d * d;
                    }
                }
            }
#else
#pragma unroll
            for (int k = 0; k < VPT; ++k)
#pragma unroll
                for (int j = 0; j < VEC; ++j) sum[0] += x[k][j] * x[k][j];
#endif
            row_sum<TPR, 1>(sum);
            rstd = 1.0f / sqrtf(sum[0] / count + p.eps);
        }
        // Σg and Σg·ŝ over the row; dweight and dbias sums of this thread's columns.
        float sums[2] = {0.0f, 0.0f};
#pragma unroll
        for (int k = 0; k < VPT; ++k) {
            const long long c = ((long long)k * TPR + lane) * VEC;
            float w[VEC];
            if (c < n) {
                load_weight(p, head, c, w);
            } else {
#pragma unroll
                for (int j = 0; j < VEC; ++j) w[j] = 0.0f;
            }
#pragma unroll
            for (int j = 0; j < VEC; ++j) {
                const float hat = (x[k][j] - mean) * rstd;
                const float g = dy[k][j] * w[j];
                sums[0] += g;
                sums[1] += g * hat;
                if (valid) {
                    dw[k][j] += dy[k][j] * hat;
                    db[k][j] += dy[k][j];
                }
            }
        }
        row_sum<TPR, 2>(sums);
        const float mean_g = LAYER ? sums[0] / count : 0.0f;
        const float mean_gh = sums[1] / count;
        if (valid) {
#pragma unroll
            for (int k = 0; k < VPT; ++k) {
                const long long c = ((long long)k * TPR + lane) * VEC;
                if (c < n) {
                    float w[VEC];
                    load_weight(p, head, c, w);
                    store_dx(p, row, c, x[k], dy[k], w, mean, rstd, mean_g, mean_gh);
                }
            }
        }
    }
#if HAS_DW || HAS_DB
    if (RPB == 1) {
#pragma unroll
        for (int k = 0; k < VPT; ++k) {
            const long long c = ((long long)k * TPR + lane) * VEC;
            if (c < n) {
#if HAS_DW
                store_vec<float, VEC>(dw_partial + c, dw[k]);
#endif
#if HAS_DB
                store_vec<float, VEC>(db_partial + c, db[k]);
#endif
            }
        }
    } else {
        // Combine the block's row groups in group order through shared memory ([RPB][N] floats).
        float* combine = reinterpret_cast<float*>(fn_dynamic_shared);
#pragma unroll
        for (int pass = 0; pass < 2; ++pass) {
            if ((pass == 0 && !HAS_DW) || (pass == 1 && !HAS_DB)) continue;
#pragma unroll
            for (int k = 0; k < VPT; ++k) {
                const long long c = ((long long)k * TPR + lane) * VEC;
                if (c < n) {
                    if (pass == 0) {
                        store_vec<float, VEC>(combine + group * n + c, dw[k]);
                    } else {
                        store_vec<float, VEC>(combine + group * n + c, db[k]);
                    }
                }
            }
            __syncthreads();
            float* out = pass == 0 ? dw_partial : db_partial;
            for (long long c = threadIdx.x; c < n; c += TPR * RPB) {
                float total = 0.0f;
                for (int g = 0; g < RPB; ++g) total += combine[g * n + c];
                out[c] = total;
            }
            __syncthreads();
        }
    }
#endif
#else
    // ---- Streaming (RPB == 1): the row is read again for each pass; this thread's columns are
    // lane*VEC + i*TPR*VEC, the same in every pass, so its accumulators need no barrier. ----
    const long long step = (long long)TPR * VEC;
#if ACC_SHARED
    [[maybe_unused]] float* dw_acc = reinterpret_cast<float*>(fn_dynamic_shared);
    [[maybe_unused]] float* db_acc = dw_acc + (HAS_DW ? n : 0);
#else
    [[maybe_unused]] float* dw_acc = dw_partial;
    [[maybe_unused]] float* db_acc = db_partial;
#endif
    const float zeros[VEC] = {};
    for (long long c = (long long)lane * VEC; c < n; c += step) {
#if HAS_DW
        store_vec<float, VEC>(dw_acc + c, zeros);
#endif
#if HAS_DB
        store_vec<float, VEC>(db_acc + c, zeros);
#endif
    }
    for (long long kk = part; kk < per_head; kk += p.parts) {
        const long long row = head + kk * heads;
        const X_T* x_row = static_cast<const X_T*>(p.x) + row * p.x_stride;
        const DY_T* dy_row = static_cast<const DY_T*>(p.dy) + row * p.dy_stride;
        float mean = 0.0f;
        float rstd;
        if (p.rstd != nullptr) {
            rstd = p.rstd[row];
#if LAYER
            mean = p.mean[row];
#endif
        } else {
            float sum[1] = {0.0f};
#if LAYER
            for (long long c = (long long)lane * VEC; c < n; c += step) {
                float x[VEC];
                load_vec<X_T, VEC>(x_row + c, x);
#pragma unroll
                for (int j = 0; j < VEC; ++j) sum[0] += x[j];
            }
            row_sum<TPR, 1>(sum);
            mean = sum[0] / count;
            sum[0] = 0.0f;
#endif
            for (long long c = (long long)lane * VEC; c < n; c += step) {
                float x[VEC];
                load_vec<X_T, VEC>(x_row + c, x);
#pragma unroll
                for (int j = 0; j < VEC; ++j) {
                    const float d = x[j] - mean;
                    sum[0] += d * d;
                }
            }
            row_sum<TPR, 1>(sum);
            rstd = 1.0f / sqrtf(sum[0] / count + p.eps);
        }
        float sums[2] = {0.0f, 0.0f};
        for (long long c = (long long)lane * VEC; c < n; c += step) {
            float x[VEC], dy[VEC], w[VEC];
            load_vec<X_T, VEC>(x_row + c, x);
            load_vec<DY_T, VEC>(dy_row + c, dy);
            load_weight(p, head, c, w);
#if HAS_DW
            float dw[VEC];
            load_vec<float, VEC>(dw_acc + c, dw);
#endif
#if HAS_DB
            float db[VEC];
            load_vec<float, VEC>(db_acc + c, db);
#endif
#pragma unroll
            for (int j = 0; j < VEC; ++j) {
                const float hat = (x[j] - mean) * rstd;
                const float g = dy[j] * w[j];
                sums[0] += g;
                sums[1] += g * hat;
#if HAS_DW
                dw[j] += dy[j] * hat;
#endif
#if HAS_DB
                db[j] += dy[j];
#endif
            }
#if HAS_DW
            store_vec<float, VEC>(dw_acc + c, dw);
#endif
#if HAS_DB
            store_vec<float, VEC>(db_acc + c, db);
#endif
        }
        row_sum<TPR, 2>(sums);
        const float mean_g = LAYER ? sums[0] / count : 0.0f;
        const float mean_gh = sums[1] / count;
        for (long long c = (long long)lane * VEC; c < n; c += step) {
            float x[VEC], dy[VEC], w[VEC];
            load_vec<X_T, VEC>(x_row + c, x);
            load_vec<DY_T, VEC>(dy_row + c, dy);
            load_weight(p, head, c, w);
            store_dx(p, row, c, x, dy, w, mean, rstd, mean_g, mean_gh);
        }
    }
#if ACC_SHARED
    for (long long c = (long long)lane * VEC; c < n; c += step) {
        float v[VEC];
#if HAS_DW
        load_vec<float, VEC>(dw_acc + c, v);
        store_vec<float, VEC>(dw_partial + c, v);
#endif
#if HAS_DB
        load_vec<float, VEC>(db_acc + c, v);
        store_vec<float, VEC>(db_partial + c, v);
#endif
    }
#endif
#endif
}

struct ReduceParams {
    const float* partial;  // as norm_backward wrote it
    void* dw;
    void* db;
    long long parts;      // P
    long long count;      // H * N
    long long cols;       // N
    long long dw_stride;  // elements between dweight rows
    long long db_stride;
};

/// dweight[h][c] = Σ_{q<P} partial[q][h][c] in q order (likewise dbias), stored in DW_T / DB_T.
extern "C" __global__ void __launch_bounds__(256) reduce_partials(const ReduceParams p) {
    for (long long i = (long long)blockIdx.x * 256 + threadIdx.x; i < p.count; i += (long long)gridDim.x * 256) {
        const long long h = i / p.cols;
        const long long c = i - h * p.cols;
#if HAS_DW
        {
            float total = 0.0f;
            for (long long q = 0; q < p.parts; ++q) total += p.partial[q * p.count + i];
            static_cast<DW_T*>(p.dw)[h * p.dw_stride + c] = from_float<DW_T>(total);
        }
#endif
#if HAS_DB
        {
            const float* db_partial = p.partial + (HAS_DW ? p.parts * p.count : 0);
            float total = 0.0f;
            for (long long q = 0; q < p.parts; ++q) total += db_partial[q * p.count + i];
            static_cast<DB_T*>(p.db)[h * p.db_stride + c] = from_float<DB_T>(total);
        }
#endif
    }
}
"""#
