// Included by NormBackward.cu (after its definitions, which it uses): the row accesses of `norm_backward`: the weight,
// dx stores, and a row's x and dy loaded into registers or staged into shared memory.
#pragma once

/// The effective weight at [c, c+VEC) of weight row h: w + offset, or 1 without a weight.
static __device__ __forceinline__ void load_weight(const BackwardParams& p, long long h, long long c, float (&w)[VEC]) {
#if HAS_WEIGHT
    load_vec<W_T, VEC>(static_cast<const W_T*>(p.weight) + h * p.weight_stride + c, w);
#if OFFSET
#pragma unroll
    for (int j = 0; j < VEC; ++j) w[j] += p.weight_offset;
#endif
#else
#pragma unroll
    for (int j = 0; j < VEC; ++j) w[j] = 1.0f;
#endif
}

/// The weight vectors of this thread's columns (k·TPR·VEC < left; zeros elsewhere), all loads issued first.
static __device__ __forceinline__ void load_weights(const W_T* w, long long left, Raw<W_T, VEC> (&r)[VPT]) {
#pragma unroll
    for (int k = 0; k < VPT; ++k) {
        if (HAS_WEIGHT && k * TPR * VEC < left) {
            load_raw<W_T, VEC>(w + k * TPR * VEC, r[k]);
        } else {
            zero_raw(r[k]);
        }
    }
}

/// The effective weight of one vector: w + offset, or 1 without a weight (where dy is 0 it does not matter).
static __device__ __forceinline__ void effective_weight(const BackwardParams& p, const Raw<W_T, VEC>& r, float (&f)[VEC]) {
#if HAS_WEIGHT
    unpack_again(r, f);
#if OFFSET
#pragma unroll
    for (int j = 0; j < VEC; ++j) f[j] += p.weight_offset;
#endif
#else
#pragma unroll
    for (int j = 0; j < VEC; ++j) f[j] = 1.0f;
#endif
}

/// Stores dx at [c, c+VEC) of `row`, plus the residual gradient.
static __device__ __forceinline__ void store_dx(const BackwardParams& p, long long row, long long c, float (&dx)[VEC]) {
#if HAS_RG
    float rg[VEC];
    load_vec<RG_T, VEC>(static_cast<const RG_T*>(p.residual_gradient) + row * p.residual_gradient_stride + c, rg);
#pragma unroll
    for (int j = 0; j < VEC; ++j) dx[j] += rg[j];
#endif
    store_vec<DX_T, VEC>(static_cast<DX_T*>(p.dx) + row * p.dx_stride + c, dx);
}

/// dx at [c, c+VEC) of `row` from x, dy and the effective weight, plus the residual gradient (streaming).
static __device__ __forceinline__ void store_dx(
    const BackwardParams& p, long long row, long long c, const float (&x)[VEC], const float (&dy)[VEC],
    const float (&w)[VEC], float mean, float rstd, float mean_g, float mean_gh) {
    float dx[VEC];
#pragma unroll
    for (int j = 0; j < VEC; ++j) {
        const float hat = (x[j] - mean) * rstd;
        const float g = dy[j] * w[j];
        dx[j] = rstd * (g - mean_g - hat * mean_gh);
    }
    store_dx(p, row, c, dx);
}

/// The VPT vectors of x and dy of `row` at columns c0 + k·TPR·VEC (zeros past the row's end or for an
/// invalid row), and its saved statistics when there are any.
static __device__ __forceinline__ void load_row(
    const BackwardParams& p, long long row, bool valid, long long c0, Raw<X_T, VEC> (&x)[VPT], Raw<DY_T, VEC> (&dy)[VPT],
    float& mean, float& rstd) {
    mean = 0.0f;
    rstd = 0.0f;
#pragma unroll
    for (int k = 0; k < VPT; ++k) {
        const long long c = c0 + (long long)k * TPR * VEC;
        if (valid && c < p.columns) {
            load_raw<X_T, VEC>(static_cast<const X_T*>(p.x) + row * p.x_stride + c, x[k]);
            load_raw<DY_T, VEC>(static_cast<const DY_T*>(p.dy) + row * p.dy_stride + c, dy[k]);
        } else {
            zero_raw(x[k]);
            zero_raw(dy[k]);
        }
    }
    if (valid && p.rstd != nullptr) {
        rstd = p.rstd[row];
#if LAYER
        mean = p.mean[row];
#endif
    }
}

#ifndef STAGE
#define STAGE 0
#endif
#if STAGE
/// Staging: the group's next row of x and dy is copied into shared memory (after the dweight/dbias slots)
/// while this one is reduced and written; thread t's vector k is slot k·(TPR·RPB) + t, x's then dy's.
typedef Raw<X_T, VEC> XVec;
typedef Raw<DY_T, VEC> DYVec;
static __device__ __forceinline__ XVec& staged_x(int k) {
    float* after_sums = reinterpret_cast<float*>(fn_dynamic_shared) + (HAS_DW + HAS_DB) * VPT * TPR * RPB * VEC;
    return reinterpret_cast<XVec*>(after_sums)[k * TPR * RPB + threadIdx.x];
}
static __device__ __forceinline__ DYVec& staged_dy(int k) {
    float* after_sums = reinterpret_cast<float*>(fn_dynamic_shared) + (HAS_DW + HAS_DB) * VPT * TPR * RPB * VEC;
    return reinterpret_cast<DYVec*>(reinterpret_cast<XVec*>(after_sums) + VPT * TPR * RPB)[k * TPR * RPB + threadIdx.x];
}

/// Starts the copy of `row`'s x and dy at columns c0 + k·TPR·VEC into this thread's slots (zeros past the
/// row's end or for an invalid row, whose addresses are then not read), and loads its saved statistics.
static __device__ __forceinline__ void stage_row(
    const BackwardParams& p, long long row, bool valid, long long c0, float& mean, float& rstd) {
    const X_T* x = static_cast<const X_T*>(p.x) + row * p.x_stride + c0;
    const DY_T* dy = static_cast<const DY_T*>(p.dy) + row * p.dy_stride + c0;
#pragma unroll
    for (int k = 0; k < VPT; ++k) {
        const bool inside = valid && c0 + (long long)k * TPR * VEC < p.columns;
        copy_async(staged_x(k), x + k * TPR * VEC, inside);
        copy_async(staged_dy(k), dy + k * TPR * VEC, inside);
    }
    commit_async();
    mean = 0.0f;
    rstd = 0.0f;
    if (valid && p.rstd != nullptr) {
        rstd = p.rstd[row];
#if LAYER
        mean = p.mean[row];
#endif
    }
}
#endif
