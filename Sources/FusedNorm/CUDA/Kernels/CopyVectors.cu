// A device-to-device copy of 16-byte vectors: the CUDA bench's second bandwidth yardstick, measured beside
// cuMemcpyDtoD (the faster of the two is the copy every kernel is compared with).
//
// Grid-stride over 16-byte vectors, UNROLL of them loaded per thread before any is stored (UNROLL × 16
// bytes in flight per thread, as a kernel that reads a row before writing it has). Where source and
// destination are not at the same offset from a 16-byte boundary, a byte loop (correct, slow: a yardstick
// never asks for it). The bytes before the first 16-byte boundary of the destination and after the last
// are copied by single bytes.
//
// Compiled by NVRTC (no headers). Parameters as CopyVectorsParams: KernelArguments packs them as 8-byte words.

#ifndef UNROLL
#define UNROLL 4
#endif

struct CopyVectorsParams {
    unsigned char* destination;
    const unsigned char* source;
    long long bytes;
};

struct __align__(16) Vector16 {
    unsigned int x, y, z, w;
};

static __device__ __forceinline__ Vector16 load16(const Vector16* address) {
    Vector16 v;
    asm volatile("ld.global.nc.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(address));
    return v;
}

static __device__ __forceinline__ void store16(Vector16* address, Vector16 v) {
    asm volatile("st.global.v4.u32 [%0], {%1, %2, %3, %4};" ::"l"(address), "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w)
                 : "memory");
}

extern "C" __global__ void __launch_bounds__(256) copy_vectors(const CopyVectorsParams p) {
    const long long thread = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long threads = (long long)gridDim.x * blockDim.x;
    const unsigned long long destination = (unsigned long long)p.destination;
    const unsigned long long source = (unsigned long long)p.source;

    if (((destination ^ source) & 15) != 0) {
        for (long long i = thread; i < p.bytes; i += threads) p.destination[i] = p.source[i];
        return;
    }
    long long head = (long long)((16 - (destination & 15)) & 15);
    if (head > p.bytes) head = p.bytes;
    const long long vectors = (p.bytes - head) / 16;
    const long long tail = head + vectors * 16;
    if (thread < head) p.destination[thread] = p.source[thread];
    if (thread < p.bytes - tail) p.destination[tail + thread] = p.source[tail + thread];

    Vector16* to = (Vector16*)(p.destination + head);
    const Vector16* from = (const Vector16*)(p.source + head);
    long long i = thread;
    // Whole steps: UNROLL vectors per thread, loads first.
    for (; i + (UNROLL - 1) * threads < vectors; i += UNROLL * threads) {
        Vector16 v[UNROLL];
#pragma unroll
        for (int k = 0; k < UNROLL; k++) v[k] = load16(from + i + k * threads);
#pragma unroll
        for (int k = 0; k < UNROLL; k++) store16(to + i + k * threads, v[k]);
    }
    for (; i < vectors; i += threads) store16(to + i, load16(from + i));
}
