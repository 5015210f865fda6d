// A device-to-device copy of 16-byte vectors: the CUDA bench's second bandwidth yardstick, measured beside
// cuMemcpyDtoD (the faster of the two is the copy every kernel is compared with).
//
// Grid-stride over 16-byte vectors, UNROLL of them loaded per thread before any is stored (UNROLL × 16
// bytes in flight per thread, as a kernel that reads a row before writing it has). Where source and
// destination are not at the same offset from a 16-byte boundary, a byte loop (correct, slow: a yardstick
// never asks for it). The bytes before the first 16-byte boundary of the destination and after the last
// are copied by single bytes.
//
// Compiled by NVRTC. Its parameters, CopyVectorsParams, are declared in Parameters.cuh, generated from the Swift
// struct CopyParameters (CUDABackend+Copy.swift), whose bytes are the argument block.

#include "Parameters.cuh"

#ifndef UNROLL
#define UNROLL 4
#endif

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
    unsigned char* const to_bytes = (unsigned char*)p.destination;
    const unsigned char* const from_bytes = (const unsigned char*)p.source;
    const unsigned long long destination = (unsigned long long)to_bytes;
    const unsigned long long source = (unsigned long long)from_bytes;

    if (((destination ^ source) & 15) != 0) {
        for (long long i = thread; i < p.bytes; i += threads) to_bytes[i] = from_bytes[i];
        return;
    }
    long long head = (long long)((16 - (destination & 15)) & 15);
    if (head > p.bytes) head = p.bytes;
    const long long vectors = (p.bytes - head) / 16;
    const long long tail = head + vectors * 16;
    if (thread < head) to_bytes[thread] = from_bytes[thread];
    if (thread < p.bytes - tail) to_bytes[tail + thread] = from_bytes[tail + thread];

    Vector16* to = (Vector16*)(to_bytes + head);
    const Vector16* from = (const Vector16*)(from_bytes + head);
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
