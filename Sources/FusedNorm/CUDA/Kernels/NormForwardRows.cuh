// Included by NormForward.cu (after its definitions, which it uses): the row accesses of `norm_forward`: a row's
// pointers, its loads (x, or s = x + residual stored), the vectors kept in shared memory, the staged next row,
// the parameters in shared memory, and the streaming reload.
#pragma once

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
        if constexpr (HAS_RESIDUAL) copy_async(staged_r(k), q.r + k * STRIDE, inside);
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
