// Included by NormForward.cu (after its definitions, which it uses): the steps of `norm_forward` per row: the moments
// of a held or streamed row, the output of one vector, and the parameters loaded or unpacked for it.
#pragma once

/// y of one vector from s, the row's statistics and the parameters (w = 1 and b = 0 when absent).
static __device__ __forceinline__ void store_output(
    const ForwardParams& p, Y_T* y_out, const RowVec& sv, float mean, float rstd, const float (&w)[VEC], const float (&b)[VEC]) {
    float s[VEC], y[VEC];
    unpack_again(sv, s);
#pragma unroll
    for (int j = 0; j < VEC; ++j) {
        float hat = (s[j] - mean) * rstd;
        if constexpr (LAYER) {
            y[j] = hat * w[j] + b[j];
        } else {
            if constexpr (LLAMA) hat = round_to<row_t>(hat);
            y[j] = HAS_WEIGHT ? hat * (w[j] + p.weight_offset) : hat;
        }
    }
    store_vec<Y_T, VEC>(y_out, y);
}

/// The weight and bias of one vector as fp32: 1 and 0 where absent. AGAIN: converted again where used
/// (`unpack_again`), for parameters held as storage words across rows.
template <bool AGAIN>
static __device__ __forceinline__ void unpack_parameters(
    const Raw<W_T, VEC>& wv, const Raw<B_T, VEC>& bv, float (&w)[VEC], float (&b)[VEC]) {
#pragma unroll
    for (int j = 0; j < VEC; ++j) {
        w[j] = 1.0f;
        b[j] = 0.0f;
    }
    if constexpr (HAS_WEIGHT) {
        if constexpr (AGAIN) unpack_again(wv, w); else unpack(wv, w);
    }
    if constexpr (HAS_BIAS) {
        if constexpr (AGAIN) unpack_again(bv, b); else unpack(bv, b);
    }
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

#if WSHARED
/// Copies the weight and bias of this thread's columns into its shared-memory slots (once per kernel).
static __device__ __forceinline__ void copy_parameters_to_shared(const ForwardParams& p, long long first, long long left0) {
    const W_T* w = static_cast<const W_T*>(p.weight) + first;
    const B_T* b = static_cast<const B_T*>(p.bias) + first;
#pragma unroll
    for (int k = 0; k < VPT; ++k) {
        if constexpr (HAS_WEIGHT) copy_async(shared_weight(k), w + k * STRIDE, k * STRIDE < left0);
        if constexpr (HAS_BIAS) copy_async(shared_bias(k), b + k * STRIDE, k * STRIDE < left0);
    }
    commit_async();
    wait_async();
}
#endif

#if WREG
/// The weight and bias of this thread's columns in one weight row, as storage words (zeros past the row's end).
static __device__ __forceinline__ void load_parameters(
    const W_T* w_row, const B_T* b_row, long long left0, Raw<W_T, VEC> (&wr)[VPT], Raw<B_T, VEC> (&br)[VPT]) {
#pragma unroll
    for (int k = 0; k < VPT; ++k) {
        zero_raw(wr[k]);
        zero_raw(br[k]);
        if (k * STRIDE < left0) {
            if constexpr (HAS_WEIGHT) load_raw<W_T, VEC>(w_row + k * STRIDE, wr[k]);
            if constexpr (HAS_BIAS) load_raw<B_T, VEC>(b_row + k * STRIDE, br[k]);
        }
    }
}
#endif

#if HOLD
/// Loads the group's row into v (from its staged copy, then the next row is staged into the slots just
/// read; or from global memory), its vectors past VPT into shared memory, and adds its first moment to sum.
static __device__ __forceinline__ void load_held_row(
    const ForwardParams& p, const RowPointers& q, long long row, bool valid, long long step, long long first,
    long long left0, int lane, RowVec (&v)[VPT], float& sum) {
#if SPT > 0
    copy_to_shared(q, valid, left0, lane, static_cast<const X_T*>(p.x));
#endif
#if STAGE
    receive_row(q, valid, left0, v);
    add_first_moment(v, sum);
    // The slots were read (their values are used above): the next row may be copied into them.
    stage_row(row_pointers(p, row + step, first), row + step < p.rows, left0);
#else
    load_row(q, valid, left0, v);
    add_first_moment(v, sum);
#endif
#if SPT > 0
    wait_async();
    add_shared_first_moment(lane, sum);
#endif
}

/// The held row's mean over the team (0 for RMSNorm), and in sum[0] its Σ(s − μ)² (LayerNorm) or Σs²
/// (RMSNorm) over the team, from this thread's first moment in sum[0].
static __device__ __forceinline__ float held_row_moments(
    const RowVec (&v)[VPT], long long n, float count, long long left0, int lane, unsigned int rank, float (&sum)[1], int& phase) {
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
    return mean;
#else
    team_sum<TPR, 1>(sum, phase);
    if constexpr (!LAYER) return 0.0f;
    const float mean = sum[0] / count;
    sum[0] = 0.0f;
    add_centered_square(v, left0, mean, sum[0]);
#if SPT > 0
    add_shared_centered_square(lane, left0, mean, sum[0]);
#endif
    team_sum<TPR, 1>(sum, phase);
    return mean;
#endif
}
#endif

#if SPT > 0
/// Writes y for the vectors this thread keeps in shared memory, two at a time.
static __device__ __forceinline__ void write_shared_vectors(
    const ForwardParams& p, const RowPointers& q, long long left0, int lane, const W_T* w_row, const B_T* b_row,
    float mean, float rstd) {
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
                if constexpr (HAS_WEIGHT) load_raw<W_T, VEC>(w_row + k * STRIDE, wv[i]);
                if constexpr (HAS_BIAS) load_raw<B_T, VEC>(b_row + k * STRIDE, bv[i]);
            }
        }
#pragma unroll
        for (int i = 0; i < 2 && k0 + i < SPT; ++i) {
            const int k = VPT + k0 + i;
            if (k * STRIDE < left0) {
                float w[VEC], b[VEC];
                unpack_parameters<false>(wv[i], bv[i], w, b);
                store_output(p, q.y + k * STRIDE, shared_vector(k0 + i, lane), mean, rstd, w, b);
            }
        }
    }
}
#endif
