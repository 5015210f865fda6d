// Included by NormBackward.cu (after its definitions, which it uses): the steps of `norm_backward` per row: the gradient
// sums, dx and the dweight/dbias shares of a held row; the statistics, sums and dx of a streamed row.
#pragma once

/// This thread's share of Σg and Σg·ŝ over the held row (zeros past its end: dy is 0 there), g = dy·w and
/// ŝ = (x − μ)·r computed as the streaming path and the CPU backend compute them (a row of N = 1 gives
/// ŝ = 0 and dx = 0 exactly).
static __device__ __forceinline__ void add_held_gradient_sums(
    const BackwardParams& p, const Raw<X_T, VEC> (&x)[VPT], const Raw<DY_T, VEC> (&dy)[VPT], const Raw<W_T, VEC> (&wr)[VPT],
    float mean, float rstd, float (&sums)[2]) {
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
}

/// Stores dx of the held row (a valid one) and adds dy·ŝ and dy to this thread's dweight and dbias slots
/// (an invalid row has dy = 0 and adds nothing).
static __device__ __forceinline__ void write_held_row(
    const BackwardParams& p, long long row, bool valid, long long first, long long left, const Raw<X_T, VEC> (&x)[VPT],
    const Raw<DY_T, VEC> (&dy)[VPT], const Raw<W_T, VEC> (&wr)[VPT], float mean, float rstd, float mean_g, float mean_gh,
    float* acc) {
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
        if constexpr (HAS_DW) {
            float* slot = acc + (k * TPR * RPB + threadIdx.x) * VEC;
            float sum[VEC];
            load_vec<float, VEC>(slot, sum);
#pragma unroll
            for (int j = 0; j < VEC; ++j) sum[j] = fmaf(df[j], xf[j], sum[j]);
            store_vec<float, VEC>(slot, sum);
        }
        if constexpr (HAS_DB) {
            float* slot = acc + ((HAS_DW * VPT + k) * TPR * RPB + threadIdx.x) * VEC;
            float sum[VEC];
            load_vec<float, VEC>(slot, sum);
#pragma unroll
            for (int j = 0; j < VEC; ++j) sum[j] += df[j];
            store_vec<float, VEC>(slot, sum);
        }
    }
}

/// The team's partial dweight/dbias row: this thread's columns, the CTA's row groups added in group order.
static __device__ __forceinline__ void write_partial_row(
    const float* acc, float* dw_partial, float* db_partial, long long first, long long left, int lane, int group) {
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
}

/// x's statistics over the team when none were saved, the row read from global memory (see
/// held_statistics): μ (0 for RMSNorm) and r.
static __device__ __forceinline__ void streamed_statistics(
    const X_T* x_row, int lane, long long n, float count, float epsilon, float& mean, float& rstd, int& phase) {
    const long long step = (long long)TPR * VEC;
    float sum[1] = {0.0f};
    if constexpr (LAYER) {
        for (long long c = (long long)lane * VEC; c < n; c += step) {
            float x[VEC];
            load_vec<X_T, VEC>(x_row + c, x);
#pragma unroll
            for (int j = 0; j < VEC; ++j) sum[0] += x[j];
        }
        team_sum<TPR, 1>(sum, phase);
        mean = sum[0] / count;
        sum[0] = 0.0f;
    }
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
    rstd = 1.0f / sqrtf(sum[0] / count + epsilon);
}

/// This thread's share of Σg and Σg·ŝ over a streamed row, and dy·ŝ and dy added to its dweight and dbias
/// sums (stored, not added, for the share's first row).
static __device__ __forceinline__ void add_streamed_gradient_sums(
    const BackwardParams& p, long long head, const X_T* x_row, const DY_T* dy_row, int lane, long long n, bool first_row,
    float mean, float rstd, float* dw_acc, float* db_acc, float (&sums)[2]) {
    const long long step = (long long)TPR * VEC;
    for (long long c = (long long)lane * VEC; c < n; c += step) {
        float x[VEC], dy[VEC], w[VEC];
        load_vec<X_T, VEC>(x_row + c, x);
        load_vec<DY_T, VEC>(dy_row + c, dy);
        load_weight(p, head, c, w);
        float dw[VEC] = {}, db[VEC] = {};
        if constexpr (HAS_DW) {
            if (!first_row) load_vec<float, VEC>(dw_acc + c, dw);
        }
        if constexpr (HAS_DB) {
            if (!first_row) load_vec<float, VEC>(db_acc + c, db);
        }
#pragma unroll
        for (int j = 0; j < VEC; ++j) {
            const float hat = (x[j] - mean) * rstd;
            const float g = dy[j] * w[j];
            sums[0] += g;
            sums[1] += g * hat;
            if constexpr (HAS_DW) dw[j] += dy[j] * hat;
            if constexpr (HAS_DB) db[j] += dy[j];
        }
        if constexpr (HAS_DW) store_vec<float, VEC>(dw_acc + c, dw);
        if constexpr (HAS_DB) store_vec<float, VEC>(db_acc + c, db);
    }
}

/// Stores dx of a streamed row (read a third time).
static __device__ __forceinline__ void write_streamed_dx(
    const BackwardParams& p, long long head, long long row, const X_T* x_row, const DY_T* dy_row, int lane, long long n,
    float mean, float rstd, float mean_g, float mean_gh) {
    const long long step = (long long)TPR * VEC;
    for (long long c = (long long)lane * VEC; c < n; c += step) {
        float x[VEC], dy[VEC], w[VEC];
        load_vec<X_T, VEC>(x_row + c, x);
        load_vec<DY_T, VEC>(dy_row + c, dy);
        load_weight(p, head, c, w);
        store_dx(p, row, c, x, dy, w, mean, rstd, mean_g, mean_gh);
    }
}
