// The backward pass of RMSNorm and LayerNorm, and the deterministic reduction of dweight/dbias.
//
// `norm_backward`, specialized by `-D` definitions:
// - dtypes: `DY_T`, `X_T`, `W_T`, `RG_T` (residual gradient), `DX_T`;
// - variant: `LAYER`, `HAS_WEIGHT`, `HAS_RG`, `HAS_DW`, `HAS_DB`;
// - layout (``LaunchConfiguration``): `TPR`, `RPB`, `CLUSTER`, `VEC`, `VPT`, `MAXREG` as in the forward
//   kernel; `HOLD` (1: x and dy of a row in registers, the next row's loads in flight during the reductions:
//   in registers with `PREFETCH`, in shared memory by `cp.async` with `STAGE`; 0: one CTA streams each row
//   three times, for rows too long to hold), `ACC_SHARED` (the dweight/dbias sums in shared memory: HOLD,
//   this thread's own slots; streaming, the CTA's [N] sums).
//
// Per row, with μ and r saved by the forward pass (or recomputed from x when `rstd` is null),
// ŝ = (x − μ)·r and g = dy·(w + offset):
// RMSNorm dx = r·(g − ŝ·Σ(g·ŝ)/N); LayerNorm dx = r·(g − Σg/N − ŝ·Σ(g·ŝ)/N); dx += residual gradient.
//
// dweight = Σ_rows dy·ŝ and dbias = Σ_rows dy, deterministic: team t = part·H + h (a CTA, or a cluster of
// CLUSTER CTAs splitting the row's columns) owns weight row h and the contiguous share [k_begin, k_end) of
// that head's rows h + H·k (row group g of a CTA: k_begin + g, + RPB, ...); it sums them in row order in
// fp32 and writes one partial row (groups of a CTA combined in group order). `reduce_partials` then adds
// the P partials of each element in a fixed order and stores dweight/dbias (`DW_T`, `DB_T`).

#include "Common.cuh"
#include "Parameters.cuh"  // ForwardParams, BackwardParams, ReduceParams: generated from NormParameters.swift


#include "NormBackwardRows.cuh"

extern "C" __global__ void __maxnreg__(MAXREG) FN_CLUSTER_DIMS norm_backward(const BackwardParams p) {
    const int lane = threadIdx.x % TPR;
    [[maybe_unused]] const int group = threadIdx.x / TPR;
    const long long n = p.columns;
    const float count = (float)n;
    const long long heads = p.weight_rows;
    // Team t = part·H + head (one CTA, or one cluster) owns weight row `head` and the contiguous share
    // [k_begin, k_end) of that head's rows head + H·k.
    const long long team = blockIdx.x / CLUSTER;
    const long long head = team % heads;
    const long long part = team / heads;
    const long long per_head = head < p.rows ? (p.rows - head + heads - 1) / heads : 0;
    const long long k_begin = part * per_head / p.parts;
    const long long k_end = (part + 1) * per_head / p.parts;
    [[maybe_unused]] float* dw_partial = p.partials + team * n;
    [[maybe_unused]] float* db_partial = p.partials + (HAS_DW ? p.parts * heads * n : 0) + team * n;
    [[maybe_unused]] int phase = 0;
    team_start();

#if HOLD
    // ---- The row (x and dy) in registers, the next row's loads in flight while this one is reduced.
    // Thread `lane` of cluster rank q owns the columns (q·VPT·TPR + k·TPR + lane)·VEC + j in every row; its
    // dweight/dbias sums live in its own shared-memory slots acc[a][k][threadIdx.x] (VEC floats each), the
    // weight is read where used (it stays in L1). ----
    const long long first = ((long long)cluster_rank() * VPT * TPR + lane) * VEC;
    const long long left = n - first;  // columns of the row from `first` on (may be <= 0)
    [[maybe_unused]] const W_T* w_row = static_cast<const W_T*>(p.weight) + head * p.weight_stride + first;
    float* acc = reinterpret_cast<float*>(fn_dynamic_shared);
    const float zeros[VEC] = {};
#pragma unroll
    for (int a = 0; a < HAS_DW + HAS_DB; ++a)
#pragma unroll
        for (int k = 0; k < VPT; ++k) store_vec<float, VEC>(acc + ((a * VPT + k) * TPR * RPB + threadIdx.x) * VEC, zeros);

#if PREFETCH
    Raw<X_T, VEC> x[VPT];
    Raw<DY_T, VEC> dy[VPT];
    float saved_mean, saved_rstd;
    load_row(p, head + heads * (k_begin + group), k_begin + group < k_end, first, x, dy, saved_mean, saved_rstd);
#elif STAGE
    float saved_mean, saved_rstd;
    stage_row(p, head + heads * (k_begin + group), k_begin + group < k_end, first, saved_mean, saved_rstd);
#endif
    for (long long kb = k_begin; kb < k_end; kb += RPB) {
        const long long k_row = kb + group;
        const bool valid = k_row < k_end;
        const long long row = head + heads * k_row;
#if PREFETCH
        // The next row of this group, loaded before this one's reductions.
        Raw<X_T, VEC> x_next[VPT];
        Raw<DY_T, VEC> dy_next[VPT];
        float next_mean, next_rstd;
        load_row(p, row + heads * RPB, k_row + RPB < k_end, first, x_next, dy_next, next_mean, next_rstd);
#elif STAGE
        Raw<X_T, VEC> x[VPT];
        Raw<DY_T, VEC> dy[VPT];
        wait_async();
#pragma unroll
        for (int k = 0; k < VPT; ++k) {
            x[k] = staged_x(k);
            dy[k] = staged_dy(k);
        }
        float next_mean, next_rstd;
#else
        Raw<X_T, VEC> x[VPT];
        Raw<DY_T, VEC> dy[VPT];
        float saved_mean, saved_rstd;
        load_row(p, row, valid, first, x, dy, saved_mean, saved_rstd);
#endif

        float mean = LAYER ? saved_mean : 0.0f, rstd = saved_rstd;  // RMSNorm: μ = 0 known to the compiler
        if (p.rstd == nullptr) {
            float sum[1] = {0.0f};
#if LAYER
#pragma unroll
            for (int k = 0; k < VPT; ++k) {
                float xf[VEC];
                unpack(x[k], xf);
#pragma unroll
                for (int j = 0; j < VEC; ++j) sum[0] += xf[j];
            }
            team_sum<TPR, 1>(sum, phase);
            mean = sum[0] / count;
            sum[0] = 0.0f;
#pragma unroll
            for (int k = 0; k < VPT; ++k) {
                if (k * TPR * VEC < left) {
                    float xf[VEC];
                    unpack_again(x[k], xf);
#pragma unroll
                    for (int j = 0; j < VEC; ++j) {
                        const float d = xf[j] - mean;
                        sum[0] += d * d;
                    }
                }
            }
#else
#pragma unroll
            for (int k = 0; k < VPT; ++k) {
                float xf[VEC];
                unpack(x[k], xf);
#pragma unroll
                for (int j = 0; j < VEC; ++j) sum[0] += xf[j] * xf[j];
            }
#endif
            team_sum<TPR, 1>(sum, phase);
            rstd = 1.0f / sqrtf(sum[0] / count + p.epsilon);
        }
        // Σg and Σg·ŝ over the row (zeros past its end: dy is 0 there), with ŝ = (x − μ)·r computed as the
        // streaming path and the CPU backend compute it (a row of N = 1 gives ŝ = 0 and dx = 0 exactly).
        Raw<W_T, VEC> wr[VPT];
        load_weights(w_row, left, wr);
        float sums[2] = {0.0f, 0.0f};
#pragma unroll
        for (int k = 0; k < VPT; ++k) {
            float xf[VEC], df[VEC], w[VEC];
            unpack_again(x[k], xf);
            unpack_again(dy[k], df);
            effective_weight(p, wr[k], w);
#pragma unroll
            for (int j = 0; j < VEC; ++j) {
                // g rounded once, the same in both passes (never fused into a later add), so that
                // g − mean(g) is exactly 0 where the row's g are all equal.
                const float hat = (xf[j] - mean) * rstd;
                const float g = __fmul_rn(df[j], w[j]);
                sums[0] += g;
                sums[1] += g * hat;
            }
        }
#if STAGE
        // x and dy were read out of the slots (and used above): the next row may be copied into them.
        stage_row(p, row + heads * RPB, k_row + RPB < k_end, first, next_mean, next_rstd);
#endif
        team_sum<TPR, 2>(sums, phase);
        const float mean_g = LAYER ? sums[0] / count : 0.0f;
        const float mean_gh = sums[1] / count;
#pragma unroll
        for (int k = 0; k < VPT; ++k) {
            float xf[VEC], df[VEC], w[VEC], dx[VEC];
            unpack_again(x[k], xf);
            unpack_again(dy[k], df);
            effective_weight(p, wr[k], w);
#pragma unroll
            for (int j = 0; j < VEC; ++j) {
                const float g = __fmul_rn(df[j], w[j]);
                xf[j] = (xf[j] - mean) * rstd;  // ŝ
                dx[j] = rstd * ((g - mean_g) - xf[j] * mean_gh);
            }
            if (valid && k * TPR * VEC < left) store_dx(p, row, first + k * TPR * VEC, dx);
            // dweight and dbias of this thread's columns; an invalid row has dy = 0 and adds nothing.
#if HAS_DW
            {
                float* slot = acc + (k * TPR * RPB + threadIdx.x) * VEC;
                float sum[VEC];
                load_vec<float, VEC>(slot, sum);
#pragma unroll
                for (int j = 0; j < VEC; ++j) sum[j] = fmaf(df[j], xf[j], sum[j]);
                store_vec<float, VEC>(slot, sum);
            }
#endif
#if HAS_DB
            {
                float* slot = acc + ((HAS_DW * VPT + k) * TPR * RPB + threadIdx.x) * VEC;
                float sum[VEC];
                load_vec<float, VEC>(slot, sum);
#pragma unroll
                for (int j = 0; j < VEC; ++j) sum[j] += df[j];
                store_vec<float, VEC>(slot, sum);
            }
#endif
        }
#if PREFETCH
#pragma unroll
        for (int k = 0; k < VPT; ++k) {
            x[k] = x_next[k];
            dy[k] = dy_next[k];
        }
#endif
#if PREFETCH || STAGE
        saved_mean = next_mean;
        saved_rstd = next_rstd;
#endif
    }
#if STAGE
    wait_async();  // the last copy (of a row past the share: zeros) is not left in flight
#endif
    // The partial row: this thread's columns, the CTA's row groups added in group order.
#if HAS_DW || HAS_DB
    if (RPB > 1) __syncthreads();
    if (group == 0) {
#pragma unroll
        for (int a = 0; a < HAS_DW + HAS_DB; ++a) {
            float* out = (HAS_DW && a == 0) ? dw_partial : db_partial;
#pragma unroll
            for (int k = 0; k < VPT; ++k) {
                if (k * TPR * VEC < left) {
                    float total[VEC];
                    load_vec<float, VEC>(acc + ((a * VPT + k) * TPR * RPB + lane) * VEC, total);
                    for (int g = 1; g < RPB; ++g) {
                        float more[VEC];
                        load_vec<float, VEC>(acc + ((a * VPT + k) * TPR * RPB + g * TPR + lane) * VEC, more);
#pragma unroll
                        for (int j = 0; j < VEC; ++j) total[j] += more[j];
                    }
                    store_vec<float, VEC>(out + first + k * TPR * VEC, total);
                }
            }
        }
    }
#endif
    team_finish();
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
    // The first row's sums are stored, later rows' added (no pass of zeros, no read of them); a team without
    // rows stores zeros.
    const float zeros[VEC] = {};
    for (long long c = (long long)lane * VEC; k_begin == k_end && c < n; c += step) {
#if HAS_DW
        store_vec<float, VEC>(dw_acc + c, zeros);
#endif
#if HAS_DB
        store_vec<float, VEC>(db_acc + c, zeros);
#endif
    }
    for (long long kk = k_begin; kk < k_end; ++kk) {
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
            team_sum<TPR, 1>(sum, phase);
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
            team_sum<TPR, 1>(sum, phase);
            rstd = 1.0f / sqrtf(sum[0] / count + p.epsilon);
        }
        float sums[2] = {0.0f, 0.0f};
        for (long long c = (long long)lane * VEC; c < n; c += step) {
            float x[VEC], dy[VEC], w[VEC];
            load_vec<X_T, VEC>(x_row + c, x);
            load_vec<DY_T, VEC>(dy_row + c, dy);
            load_weight(p, head, c, w);
#if HAS_DW
            float dw[VEC] = {};
            if (kk != k_begin) load_vec<float, VEC>(dw_acc + c, dw);
#endif
#if HAS_DB
            float db[VEC] = {};
            if (kk != k_begin) load_vec<float, VEC>(db_acc + c, db);
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
        team_sum<TPR, 2>(sums, phase);
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

#include "NormBackwardReduce.cuh"
