// The forward pass of RMSNorm and LayerNorm, one kernel specialized by `-D` definitions:
//
// - dtypes: `X_T`, `R_T` (residual), `S_T` (residual output s), `W_T`, `B_T`, `Y_T`, each `float`,
//   `half_t` or `bf16_t`;
// - variant: `LAYER` (0 RMSNorm, 1 LayerNorm), `HAS_RESIDUAL`, `HAS_WEIGHT`, `HAS_BIAS`, `LLAMA` (RMSNorm rounding twice);
// - layout (``LaunchConfiguration``): `TPR` threads of a CTA per row, `RPB` rows per CTA, `CLUSTER` CTAs per
//   row (a thread-block cluster; the row's vectors split in CLUSTER contiguous parts), `VEC` elements per
//   vector, `VPT` vectors per thread and pass, `HOLD` (1: the row stays in registers between its statistics
//   and its output; 0: it is read again, `segments` passes of VPT vectors per thread), `WREG` (the weight and
//   bias of the thread's columns stay in registers across rows), `MAXREG` (the register cap), `STAGE` (the
//   group's next row is copied into shared memory by `cp.async` while this one is reduced and written),
//   `WSHARED` (the weight and bias of the thread's columns copied into shared memory once, read from there per row).
//
// Per row: s = x (+ residual, summed in fp32, stored to s in S_T and read back rounded);
// LayerNorm: μ = Σs/N, r = 1/sqrt(Σ(s−μ)²/N + ε), y = (s−μ)·r·w + b;
// RMSNorm: r = 1/sqrt(Σs²/N + ε), ŝ = s·r (rounded to s's dtype when rounding twice), y = ŝ·(w + offset).
// The weight row is `row % weight_rows`. Statistics go to `rstd` and `mean` when those are not null.
//
// Teams: blockIdx / CLUSTER numbers a team (one CTA, or one cluster); team t handles rows t·RPB + group,
// stepping by teams·RPB. Vector k (of segment g) of thread `lane` in the CTA of cluster rank q is at column
// ((q·segments + g)·VPT·TPR + k·TPR + lane)·VEC: consecutive threads read consecutive vectors.

#include "Common.cuh"
#include "Parameters.cuh"  // ForwardParams, BackwardParams, ReduceParams: generated from NormParameters.swift

#if HAS_RESIDUAL
typedef S_T row_t;  // the normalized row as stored: s
#else
typedef X_T row_t;  // the normalized row as stored: x
#endif
typedef Raw<row_t, VEC> RowVec;

#include "NormForwardRows.cuh"
#include "NormForwardSteps.cuh"

extern "C" __global__ void __maxnreg__(MAXREG) FN_CLUSTER_DIMS norm_forward(const ForwardParams p) {
    const int lane = threadIdx.x % TPR;
    const int group = threadIdx.x / TPR;
    const long long n = p.columns;
    const float count = (float)n;
    const long long heads = p.weight_rows;
    const long long team = blockIdx.x / CLUSTER, teams = gridDim.x / CLUSTER;
    const unsigned int rank = cluster_rank();
    const long long segments = HOLD ? 1 : p.segments;
    // This thread's first column; vector k of segment g is (g·VPT + k)·STRIDE further.
    const long long first = ((long long)rank * segments * HELD * TPR + lane) * VEC;
    const long long left0 = n - first;  // columns of the row from `first` on (may be <= 0)
    [[maybe_unused]] int phase = 0;
    team_start();
#if WSHARED
    copy_parameters_to_shared(p, first, left0);
#endif
    const long long step = teams * RPB;
    // The weight row of this group's row, advanced by step % heads per iteration (no division in the loop).
    long long head = (team * RPB + group) % heads;
    const long long head_step = step % heads;
#if WREG
    Raw<W_T, VEC> wr[VPT];
    Raw<B_T, VEC> br[VPT];
    long long cached_head = -1;
#endif
#if STAGE
    stage_row(row_pointers(p, team * RPB + group, first), team * RPB + group < p.rows, left0);
#endif
    // The loop bound is the same for every thread of the team, so barriers and shuffles inside are safe;
    // threads of a group past the last row compute on zeros and store nothing.
    for (long long base = team * RPB; base < p.rows; base += step) {
        const long long row = base + group;
        const bool valid = row < p.rows;
        [[maybe_unused]] const W_T* w_row = static_cast<const W_T*>(p.weight) + head * p.weight_stride + first;
        [[maybe_unused]] const B_T* b_row = static_cast<const B_T*>(p.bias) + head * p.bias_stride + first;
#if WREG
        if (valid && head != cached_head) {
            load_parameters(w_row, b_row, left0, wr, br);
            cached_head = head;
        }
#endif
        // Statistics: s's mean and Σ(s − μ)² (or Σs²) over the whole row.
        const RowPointers q = row_pointers(p, row, first);
        float sum[1] = {0.0f};
#if HOLD
        RowVec v[VPT];
        load_held_row(p, q, row, valid, step, first, left0, lane, v, sum[0]);
        const float mean = held_row_moments(v, n, count, left0, lane, rank, sum, phase);
#else
        for (long long g = 0; g < segments; ++g) {
            const long long offset = g * VPT * STRIDE;
            const RowPointers qg = {q.x + offset, q.r + offset, q.s + offset, q.y + offset};
            RowVec v[VPT];
            load_row(qg, valid, left0 - offset, v);
            add_first_moment(v, sum[0]);
        }
        team_sum<TPR, 1>(sum, phase);
#if LAYER
        const float mean = sum[0] / count;
        sum[0] = 0.0f;
        for (long long g = 0; g < segments; ++g) {
            const long long offset = g * VPT * STRIDE;
            const RowPointers qg = {q.x + offset, q.r + offset, q.s + offset, q.y + offset};
            RowVec v[VPT];
            reload_row(qg, left0 - offset, v);
            add_centered_square(v, left0 - offset, mean, sum[0]);
        }
        team_sum<TPR, 1>(sum, phase);
#else
        const float mean = 0.0f;
#endif
#endif
        const float rstd = 1.0f / sqrtf(sum[0] / count + p.epsilon);
        if (valid && lane == 0 && rank == 0) {
            if (p.rstd) p.rstd[row] = rstd;
            if (p.mean) p.mean[row] = mean;
        }
        // Output: y from s (held, or read again per segment), the statistics and the parameters.
        if (valid) {
#if HOLD
            const long long offset = 0;
#else
            for (long long g = 0; g < segments; ++g) {
                const long long offset = g * VPT * STRIDE;
                const RowPointers qg = {q.x + offset, q.r + offset, q.s + offset, q.y + offset};
                RowVec v[VPT];
                reload_row(qg, left0 - offset, v);
#endif
#if WREG
#pragma unroll
                for (int k = 0; k < VPT; ++k) {
                    if (offset + k * STRIDE < left0) {
                        float w[VEC], b[VEC];
                        unpack_parameters<true>(wr[k], br[k], w, b);
                        store_output(p, q.y + offset + k * STRIDE, v[k], mean, rstd, w, b);
                    }
                }
#else
                // The parameters of PGROUP vectors are loaded together (one latency), then used.
#pragma unroll
                for (int k0 = 0; k0 < VPT; k0 += PGROUP) {
                    Raw<W_T, VEC> wv[PGROUP];
                    Raw<B_T, VEC> bv[PGROUP];
#pragma unroll
                    for (int i = 0; i < PGROUP && k0 + i < VPT; ++i) {
                        const int k = k0 + i;
                        zero_raw(wv[i]);
                        zero_raw(bv[i]);
                        if (offset + k * STRIDE < left0) {
#if WSHARED
#if HAS_WEIGHT
                            wv[i] = shared_weight(k);
#endif
#if HAS_BIAS
                            bv[i] = shared_bias(k);
#endif
#else
#if HAS_WEIGHT
                            load_raw<W_T, VEC>(w_row + offset + k * STRIDE, wv[i]);
#endif
#if HAS_BIAS
                            load_raw<B_T, VEC>(b_row + offset + k * STRIDE, bv[i]);
#endif
#endif
                        }
                    }
#pragma unroll
                    for (int i = 0; i < PGROUP && k0 + i < VPT; ++i) {
                        const int k = k0 + i;
                        if (offset + k * STRIDE < left0) {
                            float w[VEC], b[VEC];
                            unpack_parameters<false>(wv[i], bv[i], w, b);
                            store_output(p, q.y + offset + k * STRIDE, v[k], mean, rstd, w, b);
                        }
                    }
                }
#if SPT > 0
                write_shared_vectors(p, q, left0, lane, w_row, b_row, mean, rstd);
#endif
#endif
#if !HOLD
            }
#endif
        }
        head += head_step;
        if (head >= heads) head -= heads;
    }
#if STAGE
    wait_async();  // the last copy (of a row past the end: zeros) is not left in flight
#endif
    team_finish();
}
