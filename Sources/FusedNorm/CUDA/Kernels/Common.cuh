// CUDA C helpers every FusedNorm kernel starts with: storage types and their conversions to and from
// fp32 (no CUDA headers: bit operations and inline PTX), vector loads and stores of 2 to 16 bytes,
// and deterministic sums over a row's threads.
//
// Conversions round to nearest even, as the CPU backend does: fp16 through `cvt.rn.f16.f32`; bf16
// through `cvt.rn.bf16.f32` on sm_80 and later, else bit operations (NaN kept quiet, sign kept).
#pragma once

typedef unsigned short fn_u16;

// Storage types: each is its bits; arithmetic is always in fp32.
struct half_t { fn_u16 bits; };
struct bf16_t { fn_u16 bits; };
template <typename T> struct IsBF16 { static constexpr bool value = false; };
template <> struct IsBF16<bf16_t> { static constexpr bool value = true; };
template <typename T> struct IsHalf { static constexpr bool value = false; };
template <> struct IsHalf<half_t> { static constexpr bool value = true; };

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

/// WIDTH fp32 values rounded to T, as storage: elements, or 32-bit words of two 16-bit elements (one
/// `cvt.rn.{bf16,f16}x2.f32` per pair on sm_80 and later: the same bits as two single conversions).
template <typename T, int WIDTH> union Rounded {
    typename VectorWords<T, WIDTH>::word w[VectorWords<T, WIDTH>::count];
    T e[WIDTH];
    unsigned int pairs[(WIDTH * sizeof(T) + 3) / 4];
};

template <typename T, int WIDTH>
static __device__ __forceinline__ void round_all(const float (&f)[WIDTH], Rounded<T, WIDTH>& u) {
#if __CUDA_ARCH__ >= 800
    if constexpr ((IsBF16<T>::value || IsHalf<T>::value) && WIDTH % 2 == 0) {
#pragma unroll
        for (int k = 0; k < WIDTH / 2; ++k) {
            // The first operand goes to the upper half (the element at the higher address).
            if constexpr (IsBF16<T>::value) {
                asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(u.pairs[k]) : "f"(f[2 * k + 1]), "f"(f[2 * k]));
            } else {
                asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(u.pairs[k]) : "f"(f[2 * k + 1]), "f"(f[2 * k]));
            }
        }
        return;
    }
#endif
#pragma unroll
    for (int k = 0; k < WIDTH; ++k) u.e[k] = from_float<T>(f[k]);
}

/// Stores WIDTH fp32 values at p (aligned as for load_vec), each rounded to T.
template <typename T, int WIDTH>
static __device__ __forceinline__ void store_vec(T* p, const float (&f)[WIDTH]) {
    typedef VectorWords<T, WIDTH> W;
    Rounded<T, WIDTH> u;
    round_all(f, u);
#pragma unroll
    for (int k = 0; k < W::count; ++k) reinterpret_cast<typename W::word*>(p)[k] = u.w[k];
}

/// WIDTH elements of T kept as their storage words (half the registers of fp32 for 16-bit types);
/// `unpack` converts them to fp32, `pack` rounds fp32 values into them.
template <typename T, int WIDTH> struct Raw {
    typedef VectorWords<T, WIDTH> W;
    typename W::word w[W::count];
};

template <typename T, int WIDTH>
static __device__ __forceinline__ void load_raw(const T* p, Raw<T, WIDTH>& r) {
    typedef VectorWords<T, WIDTH> W;
#pragma unroll
    for (int k = 0; k < W::count; ++k) r.w[k] = reinterpret_cast<const typename W::word*>(p)[k];
}

template <typename T, int WIDTH>
static __device__ __forceinline__ void store_raw(T* p, const Raw<T, WIDTH>& r) {
    typedef VectorWords<T, WIDTH> W;
#pragma unroll
    for (int k = 0; k < W::count; ++k) reinterpret_cast<typename W::word*>(p)[k] = r.w[k];
}

template <typename T, int WIDTH>
static __device__ __forceinline__ void zero_raw(Raw<T, WIDTH>& r) {
    typedef VectorWords<T, WIDTH> W;
#pragma unroll
    for (int k = 0; k < W::count; ++k) r.w[k] = typename W::word{};
}

template <typename T, int WIDTH>
static __device__ __forceinline__ void unpack(const Raw<T, WIDTH>& r, float (&f)[WIDTH]) {
    typedef VectorWords<T, WIDTH> W;
    union { typename W::word w[W::count]; T e[WIDTH]; unsigned int u[(WIDTH * sizeof(T) + 3) / 4]; } u;
#pragma unroll
    for (int k = 0; k < W::count; ++k) u.w[k] = r.w[k];
    if constexpr (IsBF16<T>::value && WIDTH % 2 == 0) {
        // bf16 pairs: the low element is the word shifted up, the high one the word's top half.
#pragma unroll
        for (int k = 0; k < WIDTH / 2; ++k) {
            f[2 * k] = __uint_as_float(u.u[k] << 16);
            f[2 * k + 1] = __uint_as_float(u.u[k] & 0xffff0000u);
        }
    } else {
#pragma unroll
        for (int k = 0; k < WIDTH; ++k) f[k] = to_float(u.e[k]);
    }
}

/// `unpack` of words that the compiler must convert again here (an opaque copy of each word first): keeps a
/// row held as storage words from being kept as fp32 (twice the registers) between two uses.
static __device__ __forceinline__ fn_u16 opaque(fn_u16 v) { asm volatile("mov.b16 %0, %0;" : "+h"(v)); return v; }
static __device__ __forceinline__ unsigned int opaque(unsigned int v) { asm volatile("mov.b32 %0, %0;" : "+r"(v)); return v; }
static __device__ __forceinline__ fn_u32x2 opaque(fn_u32x2 v) { v.a = opaque(v.a); v.b = opaque(v.b); return v; }
static __device__ __forceinline__ fn_u32x4 opaque(fn_u32x4 v) {
    v.a = opaque(v.a); v.b = opaque(v.b); v.c = opaque(v.c); v.d = opaque(v.d);
    return v;
}

template <typename T, int WIDTH>
static __device__ __forceinline__ void unpack_again(const Raw<T, WIDTH>& r, float (&f)[WIDTH]) {
    Raw<T, WIDTH> copy;
#pragma unroll
    for (int k = 0; k < Raw<T, WIDTH>::W::count; ++k) copy.w[k] = opaque(r.w[k]);
    unpack(copy, f);
}

template <typename T, int WIDTH>
static __device__ __forceinline__ void pack(const float (&f)[WIDTH], Raw<T, WIDTH>& r) {
    typedef VectorWords<T, WIDTH> W;
    Rounded<T, WIDTH> u;
    round_all(f, u);
#pragma unroll
    for (int k = 0; k < W::count; ++k) r.w[k] = u.w[k];
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

/// The shared-memory address (32 bits) of a generic pointer into shared memory.
static __device__ __forceinline__ unsigned int shared_address(const void* p) {
    unsigned long long generic = reinterpret_cast<unsigned long long>(p), shared;
    asm("cvta.to.shared.u64 %0, %1;" : "=l"(shared) : "l"(generic));
    return (unsigned int)shared;
}

/// Starts copying one vector from global memory into shared memory (`cp.async`, sm_80 and later: no
/// registers in between; 16-byte words bypass L1), or zeros when `inside` is false (then nothing is read at
/// `source`: a source size of 0, so it may lie past the tensor's end). Words of 4, 8 or 16 bytes. `commit_async` closes a group; `wait_async` waits for all
/// of this thread's groups, after which the thread may read what they wrote.
template <typename T, int WIDTH>
static __device__ __forceinline__ void copy_async(Raw<T, WIDTH>& destination, const T* source, bool inside) {
    typedef VectorWords<T, WIDTH> W;
    static_assert(W::word_bytes >= 4, "cp.async copies 4, 8 or 16 bytes");
    unsigned long long global;
    asm("cvta.to.global.u64 %0, %1;" : "=l"(global) : "l"(reinterpret_cast<unsigned long long>(source)));
    const unsigned int shared = shared_address(&destination);
#pragma unroll
    for (int k = 0; k < W::count; ++k) {
        const unsigned long long from = global + k * W::word_bytes;
        if constexpr (W::word_bytes == 16) {
            asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;"
                         :: "r"(shared + 16 * k), "l"(from), "r"(inside ? 16 : 0) : "memory");
        } else {
            asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;"
                         :: "r"(shared + W::word_bytes * k), "l"(from), "n"(W::word_bytes), "r"(inside ? W::word_bytes : 0)
                         : "memory");
        }
    }
}

static __device__ __forceinline__ void commit_async() { asm volatile("cp.async.commit_group;" ::: "memory"); }
static __device__ __forceinline__ void wait_async() { asm volatile("cp.async.wait_all;" ::: "memory"); }

// ---- A row split over the CLUSTER CTAs of a thread-block cluster (sm_90): each CTA sums its part of the
// row with row_sum, then the CTAs exchange their sums through distributed shared memory. ----
#ifndef CLUSTER
#define CLUSTER 1
#endif
#if CLUSTER > 1
#define FN_CLUSTER_DIMS __cluster_dims__(CLUSTER, 1, 1)
/// The sums every CTA of the cluster sent this CTA, per reduction parity: [parity][rank][value]; and the
/// two mbarriers that count their bytes in. Reductions alternate between the two, so a buffer is written
/// again only after every CTA has received the next reduction's sums, which comes after this CTA read it.
__shared__ float fn_exchange[2][CLUSTER][2];
__shared__ unsigned long long fn_exchange_barrier[2];

static __device__ __forceinline__ unsigned int cluster_rank() {
    unsigned int rank;
    asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(rank));
    return rank;
}

/// The address of `local` (a shared address of this CTA) in CTA `rank`'s shared memory.
static __device__ __forceinline__ unsigned int cluster_address(unsigned int local, unsigned int rank) {
    unsigned int remote;
    asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(remote) : "r"(local), "r"(rank));
    return remote;
}

/// Every thread of every CTA of the cluster: arrive (release) and wait (acquire). Used once at the start
/// and once at the end: the reductions in between synchronize through mbarriers only.
static __device__ __forceinline__ void cluster_barrier() {
    asm volatile("barrier.cluster.arrive.release.aligned;\n\tbarrier.cluster.wait.acquire.aligned;" ::: "memory");
}

/// The start of a clustered kernel: the exchange mbarriers initialized, and every CTA's initialized before
/// any CTA sends to it.
static __device__ __forceinline__ void team_start() {
    if (threadIdx.x == 0) {
#pragma unroll
        for (int b = 0; b < 2; ++b) {
            asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" :: "r"(shared_address(&fn_exchange_barrier[b])) : "memory");
        }
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    cluster_barrier();
}
#else
#define FN_CLUSTER_DIMS
static __device__ __forceinline__ unsigned int cluster_rank() { return 0; }
static __device__ __forceinline__ void team_start() {}
#endif

#if CLUSTER > 1
/// Sends this CTA's K values (the same in every thread) to every CTA of the cluster and gives every thread
/// all CTAs' values, by rank: thread r < CLUSTER sends them into CTA r's exchange buffer with `st.async`,
/// which counts the bytes on CTA r's mbarrier; each CTA waits for all CLUSTER·K values. No fence on global
/// memory is needed (a cluster barrier's release would wait for the CTA's outstanding stores). Returns the
/// values received, [rank][2] (K of each used), valid until the exchange after next. `phase` counts the
/// exchanges; every thread of every CTA of the cluster must call it.
template <int K>
static __device__ __forceinline__ const float* cluster_gather(const float (&v)[K], int& phase) {
    const int slot = phase & 1;
    const unsigned int parity = (phase >> 1) & 1;
    const unsigned int barrier = shared_address(&fn_exchange_barrier[slot]);
    if (threadIdx.x == 0) {
        asm volatile("{\n\t.reg .b64 state;\n\tmbarrier.arrive.expect_tx.shared::cta.b64 state, [%0], %1;\n\t}"
                     :: "r"(barrier), "r"(CLUSTER * K * 4) : "memory");
    }
    if (threadIdx.x < CLUSTER) {
        const unsigned int to = threadIdx.x;
        const unsigned int remote_barrier = cluster_address(barrier, to);
        const unsigned int remote = cluster_address(shared_address(&fn_exchange[slot][cluster_rank()][0]), to);
#pragma unroll
        for (int k = 0; k < K; ++k) {
            asm volatile("st.async.shared::cluster.mbarrier::complete_tx::bytes.b32 [%0], %1, [%2];"
                         :: "r"(remote + 4 * k), "r"(__float_as_uint(v[k])), "r"(remote_barrier) : "memory");
        }
    }
    unsigned int done = 0;
    while (!done) {
        asm volatile("{\n\t.reg .pred ready;\n\tmbarrier.try_wait.parity.acquire.cluster.shared::cta.b64 ready, [%1], %2;\n\tselp.u32 %0, 1, 0, ready;\n\t}"
                     : "=r"(done) : "r"(barrier), "r"(parity) : "memory");
    }
    ++phase;
    return &fn_exchange[slot][0][0];
}
#endif

#if CLUSTER > 1
/// The sum over the cluster's CTAs of a value that lane r of every warp holds for CTA r % CLUSTER: a
/// butterfly over groups of CLUSTER lanes, the same operations on the same values in every group, warp and
/// CTA, so every thread gets the same bits.
static __device__ __forceinline__ float cluster_total(float value) {
#pragma unroll
    for (int offset = CLUSTER / 2; offset > 0; offset /= 2) value += __shfl_xor_sync(0xffffffffu, value, offset);
    return value;
}
#endif

/// Sums K values over the whole row: the GROUP threads of this CTA (row_sum), then the CLUSTER CTAs'
/// sums (cluster_total), so every thread of every CTA gets the same bits. Every thread of every CTA of the
/// cluster must call it.
template <int GROUP, int K>
static __device__ __forceinline__ void team_sum(float (&v)[K], int& phase) {
    row_sum<GROUP, K>(v);
#if CLUSTER > 1
    const float* received = cluster_gather(v, phase);
#pragma unroll
    for (int k = 0; k < K; ++k) v[k] = cluster_total(received[2 * ((threadIdx.x % 32) % CLUSTER) + k]);
#endif
}

/// The end of a clustered kernel: no CTA may exit while another may still read its shared memory.
static __device__ __forceinline__ void team_finish() {
#if CLUSTER > 1
    cluster_barrier();
#endif
}
