/// CUDA C helpers every FusedNorm kernel starts with: storage types and their conversions to and from
/// fp32 (no CUDA headers: bit operations and inline PTX), vector loads and stores of 2 to 16 bytes,
/// and deterministic sums over a row's threads.
///
/// Conversions round to nearest even, as the CPU backend does: fp16 through `cvt.rn.f16.f32`; bf16
/// through `cvt.rn.bf16.f32` on sm_80 and later, else bit operations (NaN kept quiet, sign kept).
let kernelCommonSource = #"""
typedef unsigned short fn_u16;

// Storage types: each is its bits; arithmetic is always in fp32.
struct half_t { fn_u16 bits; };
struct bf16_t { fn_u16 bits; };

static __device__ __forceinline__ float to_float(float v) { return v; }
static __device__ __forceinline__ float to_float(half_t v) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(v.bits));
    return f;
}
static __device__ __forceinline__ float to_float(bf16_t v) {
    return __uint_as_float(((unsigned int)v.bits) << 16);
}

template <typename T> struct Convert;
template <> struct Convert<float> {
    static __device__ __forceinline__ float from(float f) { return f; }
};
template <> struct Convert<half_t> {
    static __device__ __forceinline__ half_t from(float f) {
        half_t h;
        asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h.bits) : "f"(f));
        return h;
    }
};
template <> struct Convert<bf16_t> {
    static __device__ __forceinline__ bf16_t from(float f) {
        bf16_t h;
#if __CUDA_ARCH__ >= 800
        asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h.bits) : "f"(f));
#else
        const unsigned int u = __float_as_uint(f);
        if ((u & 0x7fffffffu) > 0x7f800000u) {
            h.bits = (fn_u16)((u >> 16) | 0x40u);
        } else {
            h.bits = (fn_u16)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
        }
#endif
        return h;
    }
};

/// f rounded to T (as storing it would), T's storage returned.
template <typename T> static __device__ __forceinline__ T from_float(float f) { return Convert<T>::from(f); }
/// f rounded to T and back: the value a store then a load would give.
template <typename T> static __device__ __forceinline__ float round_to(float f) { return to_float(from_float<T>(f)); }

// Words for vector accesses of 2, 4, 8 and 16 bytes.
struct alignas(8) fn_u32x2 { unsigned int a, b; };
struct alignas(16) fn_u32x4 { unsigned int a, b, c, d; };
template <int BYTES> struct Word;
template <> struct Word<2> { typedef fn_u16 type; };
template <> struct Word<4> { typedef unsigned int type; };
template <> struct Word<8> { typedef fn_u32x2 type; };
template <> struct Word<16> { typedef fn_u32x4 type; };

/// WIDTH elements of T as whole words: one access of WIDTH*sizeof(T) bytes, or several of 16.
template <typename T, int WIDTH> struct VectorWords {
    static constexpr int bytes = WIDTH * (int)sizeof(T);
    static constexpr int word_bytes = bytes < 16 ? bytes : 16;
    static constexpr int count = bytes / word_bytes;
    typedef typename Word<word_bytes>::type word;
};

/// Loads WIDTH consecutive elements at p (aligned to min(16, WIDTH*sizeof(T)) bytes) as fp32.
template <typename T, int WIDTH>
static __device__ __forceinline__ void load_vec(const T* p, float (&f)[WIDTH]) {
    typedef VectorWords<T, WIDTH> W;
    union { typename W::word w[W::count]; T e[WIDTH]; } u;
#pragma unroll
    for (int k = 0; k < W::count; ++k) u.w[k] = reinterpret_cast<const typename W::word*>(p)[k];
#pragma unroll
    for (int k = 0; k < WIDTH; ++k) f[k] = to_float(u.e[k]);
}

/// Stores WIDTH fp32 values at p (aligned as for load_vec), each rounded to T.
template <typename T, int WIDTH>
static __device__ __forceinline__ void store_vec(T* p, const float (&f)[WIDTH]) {
    typedef VectorWords<T, WIDTH> W;
    union { typename W::word w[W::count]; T e[WIDTH]; } u;
#pragma unroll
    for (int k = 0; k < WIDTH; ++k) u.e[k] = from_float<T>(f[k]);
#pragma unroll
    for (int k = 0; k < W::count; ++k) reinterpret_cast<typename W::word*>(p)[k] = u.w[k];
}

/// Sums K values over the GROUP threads of a row; every thread gets the same bits.
/// GROUP <= 32: a butterfly of shuffles inside the group (lane i and lane i^o add the same two values,
/// so all lanes agree). GROUP > 32 (one row per block): warps first, then the warp sums in warp order.
/// Every thread of the block must call it (it may hold a barrier).
template <int GROUP, int K>
static __device__ __forceinline__ void row_sum(float (&v)[K]) {
    constexpr int width = GROUP < 32 ? GROUP : 32;
#pragma unroll
    for (int offset = width / 2; offset > 0; offset /= 2) {
#pragma unroll
        for (int k = 0; k < K; ++k) v[k] += __shfl_xor_sync(0xffffffffu, v[k], offset);
    }
    if constexpr (GROUP > 32) {
        __shared__ float warp_sums[K][32];
        const int warp = threadIdx.x / 32;
        if (threadIdx.x % 32 == 0) {
#pragma unroll
            for (int k = 0; k < K; ++k) warp_sums[k][warp] = v[k];
        }
        __syncthreads();
#pragma unroll
        for (int k = 0; k < K; ++k) {
            float total = 0.0f;
#pragma unroll
            for (int w = 0; w < GROUP / 32; ++w) total += warp_sums[k][w];
            v[k] = total;
        }
        __syncthreads();
    }
}

/// Dynamic shared memory, 16-byte aligned.
extern __shared__ fn_u32x4 fn_dynamic_shared[];
"""#
