// The forward pass of RMSNorm and LayerNorm, one kernel specialized by `-D` definitions:
//
// - dtypes: `X_T`, `R_T` (residual), `S_T` (residual output s), `W_T`, `B_T`, `Y_T`, each `float`,
//   `half_t` or `bf16_t`;
// - variant: `LAYER` (0 RMSNorm, 1 LayerNorm), `HAS_RESIDUAL`, `HAS_WEIGHT`, `HAS_BIAS`, `LLAMA` (casting);
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
// RMSNorm: r = 1/sqrt(Σs²/N + ε), ŝ = s·r (rounded to s's dtype under llama casting), y = ŝ·(w + offset).
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


/// The stride, in elements, between a thread's consecutive vectors.
#define STRIDE (TPR * VEC)
#ifndef SPT
#define SPT 0
#endif
/// Vectors a thread holds per row: VPT in registers, then SPT (16-byte vectors, no residual) in shared memory.
#define HELD (VPT + SPT)
/// Vectors whose weight and bias are loaded together in the output pass (fewer with more registers in use).
#define PGROUP ((HAS_BIAS || HAS_RESIDUAL || VPT > 4) ? 2 : 4)

/// A row's tensors, each pointer at this thread's first column of the pass; vector k is k·STRIDE further.
struct RowPointers {
    const X_T* x;
    const R_T* r;
    S_T* s;
    Y_T* y;
};

static __device__ __forceinline__ RowPointers row_pointers(const ForwardParams& p, long long row, long long c0) {
    RowPointers q;
    q.x = static_cast<const X_T*>(p.x) + row * p.x_stride + c0;
    q.r = static_cast<const R_T*>(p.residual) + row * p.residual_stride + c0;
    q.s = static_cast<S_T*>(p.residual_output) + row * p.residual_output_stride + c0;
    q.y = static_cast<Y_T*>(p.output) + row * p.output_stride + c0;
    return q;
}

/// Loads the VPT vectors k with k·STRIDE < left (the columns left in the row from the pass's first column;
/// zeros elsewhere and for an invalid row): x, or s = x + residual, stored to s and kept as stored. Every
/// load is issued before the first store.
static __device__ __forceinline__ void load_row(const RowPointers& q, bool valid, long long left, RowVec (&v)[VPT]) {
#if HAS_RESIDUAL
    Raw<X_T, VEC> xr[VPT];
    Raw<R_T, VEC> rr[VPT];
#pragma unroll
    for (int k = 0; k < VPT; ++k) {
        if (valid && k * STRIDE < left) {
            load_raw<X_T, VEC>(q.x + k * STRIDE, xr[k]);
            load_raw<R_T, VEC>(q.r + k * STRIDE, rr[k]);
        }
    }
#pragma unroll
    for (int k = 0; k < VPT; ++k) {
        if (valid && k * STRIDE < left) {
            float x[VEC], r[VEC];
            unpack(xr[k], x);
            unpack(rr[k], r);
#pragma unroll
            for (int j = 0; j < VEC; ++j) x[j] += r[j];
            pack(x, v[k]);
            store_raw<S_T, VEC>(q.s + k * STRIDE, v[k]);
        } else {
            zero_raw(v[k]);
        }
    }
#else
#pragma unroll
    for (int k = 0; k < VPT; ++k) {
        if (valid && k * STRIDE < left) {
            load_raw<X_T, VEC>(q.x + k * STRIDE, v[k]);
        } else {
            zero_raw(v[k]);
        }
    }
#endif
}

#if SPT > 0
/// This thread's shared-memory vector k (vector VPT + k of its part of the row): slot k·TPR + lane.
static __device__ __forceinline__ RowVec& shared_vector(int k, int lane) {
    return reinterpret_cast<RowVec*>(fn_dynamic_shared)[k * TPR + lane];
}

/// Starts copying vectors VPT..HELD−1 of x into this thread's shared-memory slots (cp.async, no registers;
/// zeros past the row's end or for an invalid row). `cp.async.wait_all` before they are read.
static __device__ __forceinline__ void copy_to_shared(const RowPointers& q, bool valid, long long left, int lane, const X_T* any) {
#pragma unroll
    for (int k = 0; k < SPT; ++k) {
        const bool inside = valid && (VPT + k) * STRIDE < left;
        copy_async(shared_vector(k, lane), inside ? q.x + (VPT + k) * STRIDE : any, inside);
    }
    commit_async();
}

/// add_first_moment and add_centered_square over the shared-memory vectors.
static __device__ __forceinline__ void add_shared_first_moment(int lane, float& sum) {
#pragma unroll
    for (int k = 0; k < SPT; ++k) {
        float s[VEC];
        unpack(shared_vector(k, lane), s);
#pragma unroll
        for (int j = 0; j < VEC; ++j) sum += LAYER ? s[j] : s[j] * s[j];
    }
}

static __device__ __forceinline__ void add_shared_centered_square(int lane, long long left, float mean, float& sum) {
#pragma unroll
    for (int k = 0; k < SPT; ++k) {
        if ((VPT + k) * STRIDE < left) {
            float s[VEC];
            unpack(shared_vector(k, lane), s);
#pragma unroll
            for (int j = 0; j < VEC; ++j) {
                const float d = s[j] - mean;
                sum += d * d;
            }
        }
    }
}
#endif

#ifndef STAGE
#define STAGE 0
#endif
#if STAGE
/// Staging: while a row is reduced and written, the next row of the group (x, and the residual) is copied
/// into shared memory with cp.async, so that every CTA always has a row's loads in flight. Thread t's
/// vector k is slot k·(TPR·RPB) + t: x's slots, then the residual's. Each thread reads only its own slots.
typedef Raw<X_T, VEC> XVec;
typedef Raw<R_T, VEC> RVec;
static __device__ __forceinline__ XVec& staged_x(int k) {
    return reinterpret_cast<XVec*>(fn_dynamic_shared)[k * TPR * RPB + threadIdx.x];
}
static __device__ __forceinline__ RVec& staged_r(int k) {
    return reinterpret_cast<RVec*>(reinterpret_cast<XVec*>(fn_dynamic_shared) + VPT * TPR * RPB)[k * TPR * RPB + threadIdx.x];
}

/// Starts the copy of a row's VPT vectors into this thread's slots (zeros past the row's end or for an
/// invalid row, whose addresses are then not read).
static __device__ __forceinline__ void stage_row(const RowPointers& q, bool valid, long long left) {
#pragma unroll
    for (int k = 0; k < VPT; ++k) {
        const bool inside = valid && k * STRIDE < left;
        copy_async(staged_x(k), q.x + k * STRIDE, inside);
#if HAS_RESIDUAL
        copy_async(staged_r(k), q.r + k * STRIDE, inside);
#endif
    }
    commit_async();
}

/// load_row from the staged copy: waits for it, then x, or s = x + residual (stored to s).
static __device__ __forceinline__ void receive_row(const RowPointers& q, bool valid, long long left, RowVec (&v)[VPT]) {
    wait_async();
#pragma unroll
    for (int k = 0; k < VPT; ++k) {
#if HAS_RESIDUAL
        if (valid && k * STRIDE < left) {
            float x[VEC], r[VEC];
            unpack(staged_x(k), x);
            unpack(staged_r(k), r);
#pragma unroll
            for (int j = 0; j < VEC; ++j) x[j] += r[j];
            pack(x, v[k]);
            store_raw<S_T, VEC>(q.s + k * STRIDE, v[k]);
        } else {
            zero_raw(v[k]);
        }
#else
        v[k] = staged_x(k);
#endif
    }
}
#endif

#ifndef WSHARED
#define WSHARED 0
#endif
#if WSHARED
/// The weight and bias of the thread's columns in shared memory (one weight row, SPT == 0), after the staged
/// rows: copied once per kernel, read per row (no reload from L2 per row). Slot k·(TPR·RPB) + t.
typedef Raw<W_T, VEC> WVec;
typedef Raw<B_T, VEC> BVec;
#define STAGED_BYTES (STAGE ? VPT * TPR * RPB * ((int)sizeof(Raw<X_T, VEC>) + (HAS_RESIDUAL ? (int)sizeof(Raw<R_T, VEC>) : 0)) : 0)
static __device__ __forceinline__ WVec& shared_weight(int k) {
    return reinterpret_cast<WVec*>(reinterpret_cast<char*>(fn_dynamic_shared) + STAGED_BYTES)[k * TPR * RPB + threadIdx.x];
}
static __device__ __forceinline__ BVec& shared_bias(int k) {
    char* after_weight = reinterpret_cast<char*>(fn_dynamic_shared) + STAGED_BYTES + (HAS_WEIGHT ? VPT * TPR * RPB * (int)sizeof(WVec) : 0);
    return reinterpret_cast<BVec*>(after_weight)[k * TPR * RPB + threadIdx.x];
}
#endif

#if !HOLD
/// The VPT vectors again, as stored (s, or x), zeros past the row's end. The same thread stored s there.
static __device__ __forceinline__ void reload_row(const RowPointers& q, long long left, RowVec (&v)[VPT]) {
#pragma unroll
    for (int k = 0; k < VPT; ++k) {
        if (k * STRIDE < left) {
#if HAS_RESIDUAL
            load_raw<S_T, VEC>(q.s + k * STRIDE, v[k]);
#else
            load_raw<X_T, VEC>(q.x + k * STRIDE, v[k]);
#endif
        } else {
            zero_raw(v[k]);
        }
    }
}
#endif

/// y of one vector from s, the row's statistics and the parameters (w = 1 and b = 0 when absent).
static __device__ __forceinline__ void store_output(
    const ForwardParams& p, Y_T* y_out, const RowVec& sv, float mean, float rstd, const float (&w)[VEC], const float (&b)[VEC]) {
    float s[VEC], y[VEC];
    unpack_again(sv, s);
#pragma unroll
    for (int j = 0; j < VEC; ++j) {
        float hat = (s[j] - mean) * rstd;
#if LAYER
        y[j] = hat * w[j] + b[j];
#else
#if LLAMA
        hat = round_to<row_t>(hat);
#endif
        y[j] = HAS_WEIGHT ? hat * (w[j] + p.weight_offset) : hat;
#endif
    }
    store_vec<Y_T, VEC>(y_out, y);
}

/// Adds this thread's share of Σs (LayerNorm's first pass) or Σs² (RMSNorm) over the vectors.
static __device__ __forceinline__ void add_first_moment(const RowVec (&v)[VPT], float& sum) {
#pragma unroll
    for (int k = 0; k < VPT; ++k) {
        float s[VEC];
        unpack(v[k], s);
#pragma unroll
        for (int j = 0; j < VEC; ++j) sum += LAYER ? s[j] : s[j] * s[j];
    }
}

/// Adds Σ(s − μ)² over the vectors inside the row (LayerNorm's second pass).
static __device__ __forceinline__ void add_centered_square(const RowVec (&v)[VPT], long long left, float mean, float& sum) {
#pragma unroll
    for (int k = 0; k < VPT; ++k) {
        if (k * STRIDE < left) {
            float s[VEC];
            unpack_again(v[k], s);
#pragma unroll
            for (int j = 0; j < VEC; ++j) {
                const float d = s[j] - mean;
                sum += d * d;
            }
        }
    }
}

extern "C" __global__ void __maxnreg__(MAXREG) FN_CLUSTER_DIMS norm_forward(const ForwardParams p) {
    const int lane = threadIdx.x % TPR;
    const int group = threadIdx.x / TPR;
    const long long n = p.columns;
    const float count = (float)n;
    const long long heads = p.weight_rows;
    const long long team = blockIdx.x / CLUSTER, teams = gridDim.x / CLUSTER;
    const unsigned int rank = cluster_rank();
#if HOLD
    const long long segments = 1;
#else
    const long long segments = p.segments;
#endif
    // This thread's first column; vector k of segment g is (g·VPT + k)·STRIDE further.
    const long long first = ((long long)rank * segments * HELD * TPR + lane) * VEC;
    const long long left0 = n - first;  // columns of the row from `first` on (may be <= 0)
    [[maybe_unused]] int phase = 0;
    team_start();
#if WSHARED
    {
        const W_T* w = static_cast<const W_T*>(p.weight) + first;
        const B_T* b = static_cast<const B_T*>(p.bias) + first;
#pragma unroll
        for (int k = 0; k < VPT; ++k) {
#if HAS_WEIGHT
            copy_async(shared_weight(k), w + k * STRIDE, k * STRIDE < left0);
#endif
#if HAS_BIAS
            copy_async(shared_bias(k), b + k * STRIDE, k * STRIDE < left0);
#endif
        }
        commit_async();
        wait_async();
    }
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
#pragma unroll
            for (int k = 0; k < VPT; ++k) {
                zero_raw(wr[k]);
                zero_raw(br[k]);
                if (k * STRIDE < left0) {
#if HAS_WEIGHT
                    load_raw<W_T, VEC>(w_row + k * STRIDE, wr[k]);
#endif
#if HAS_BIAS
                    load_raw<B_T, VEC>(b_row + k * STRIDE, br[k]);
#endif
                }
            }
            cached_head = head;
        }
#endif
        const RowPointers q = row_pointers(p, row, first);
        float sum[1] = {0.0f};
#if HOLD
        RowVec v[VPT];
#if SPT > 0
        copy_to_shared(q, valid, left0, lane, static_cast<const X_T*>(p.x));
#endif
#if STAGE
        receive_row(q, valid, left0, v);
        add_first_moment(v, sum[0]);
        // The slots were read (their values are used above): the next row may be copied into them.
        stage_row(row_pointers(p, row + step, first), row + step < p.rows, left0);
#else
        load_row(q, valid, left0, v);
        add_first_moment(v, sum[0]);
#endif
#if SPT > 0
        wait_async();
        add_shared_first_moment(lane, sum[0]);
#endif
#if LAYER && CLUSTER > 1
        // One exchange per row: each CTA's sum and its squares about its own mean, combined in rank order
        // (M2 = Σ M2_q + Σ n_q·(μ_q − μ)²).
        row_sum<TPR, 1>(sum);
        const long long part = (long long)HELD * TPR * VEC;
        const long long own_begin = (long long)rank * part;
        const float local_count = (float)(own_begin >= n ? 0 : (n - own_begin < part ? n - own_begin : part));
        const float local_mean = local_count > 0.0f ? sum[0] / local_count : 0.0f;
        float own[2] = {sum[0], 0.0f};
        sum[0] = 0.0f;
        add_centered_square(v, left0, local_mean, sum[0]);
#if SPT > 0
        add_shared_centered_square(lane, left0, local_mean, sum[0]);
#endif
        row_sum<TPR, 1>(sum);
        own[1] = sum[0];
        const float* all = cluster_gather(own, phase);  // [rank][sum, M2]
        // Lane r of each warp takes CTA r % CLUSTER's sums (the same in every group of CLUSTER lanes).
        const int from = (threadIdx.x % 32) % CLUSTER;
        const float their_sum = all[2 * from], their_m2 = all[2 * from + 1];
        const float mean = cluster_total(their_sum) / count;
        const long long begin = (long long)from * part;
        const float counted = (float)(begin >= n ? 0 : (n - begin < part ? n - begin : part));
        const float d = (counted > 0.0f ? their_sum / counted : 0.0f) - mean;
        sum[0] = cluster_total(their_m2 + counted * d * d);
#else
        team_sum<TPR, 1>(sum, phase);
#if LAYER
        const float mean = sum[0] / count;
        sum[0] = 0.0f;
        add_centered_square(v, left0, mean, sum[0]);
#if SPT > 0
        add_shared_centered_square(lane, left0, mean, sum[0]);
#endif
        team_sum<TPR, 1>(sum, phase);
#else
        const float mean = 0.0f;
#endif
#endif
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
        if (valid) {
#if HOLD
            {
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
#pragma unroll
                        for (int j = 0; j < VEC; ++j) {
                            w[j] = 1.0f;
                            b[j] = 0.0f;
                        }
#if HAS_WEIGHT
                        unpack_again(wr[k], w);
#endif
#if HAS_BIAS
                        unpack_again(br[k], b);
#endif
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
#pragma unroll
                            for (int j = 0; j < VEC; ++j) {
                                w[j] = 1.0f;
                                b[j] = 0.0f;
                            }
#if HAS_WEIGHT
                            unpack(wv[i], w);
#endif
#if HAS_BIAS
                            unpack(bv[i], b);
#endif
                            store_output(p, q.y + offset + k * STRIDE, v[k], mean, rstd, w, b);
                        }
                    }
                }
#if SPT > 0
                // The vectors kept in shared memory, two at a time.
#pragma unroll
                for (int k0 = 0; k0 < SPT; k0 += 2) {
                    Raw<W_T, VEC> wv[2];
                    Raw<B_T, VEC> bv[2];
#pragma unroll
                    for (int i = 0; i < 2 && k0 + i < SPT; ++i) {
                        const int k = VPT + k0 + i;
                        zero_raw(wv[i]);
                        zero_raw(bv[i]);
                        if (k * STRIDE < left0) {
#if HAS_WEIGHT
                            load_raw<W_T, VEC>(w_row + k * STRIDE, wv[i]);
#endif
#if HAS_BIAS
                            load_raw<B_T, VEC>(b_row + k * STRIDE, bv[i]);
#endif
                        }
                    }
#pragma unroll
                    for (int i = 0; i < 2 && k0 + i < SPT; ++i) {
                        const int k = VPT + k0 + i;
                        if (k * STRIDE < left0) {
                            float w[VEC], b[VEC];
#pragma unroll
                            for (int j = 0; j < VEC; ++j) {
                                w[j] = 1.0f;
                                b[j] = 0.0f;
                            }
#if HAS_WEIGHT
                            unpack(wv[i], w);
#endif
#if HAS_BIAS
                            unpack(bv[i], b);
#endif
                            store_output(p, q.y + k * STRIDE, shared_vector(k0 + i, lane), mean, rstd, w, b);
                        }
                    }
                }
#endif
#endif
            }
        }
        head += head_step;
        if (head >= heads) head -= heads;
    }
#if STAGE
    wait_async();  // the last copy (of a row past the end: zeros) is not left in flight
#endif
    team_finish();
}
