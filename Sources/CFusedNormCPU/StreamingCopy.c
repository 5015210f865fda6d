// A copy with non-temporal stores: the CPU bench's second bandwidth yardstick (see the header).
//
// `memcpy` (glibc) writes through the caches below its non-temporal threshold (a large fraction of the
// last-level cache, per call): each destination line is read before it is written (read for ownership),
// so the memory moves three bytes for every two a copy must move. The row kernels write their outputs with
// non-temporal stores, and so beat such a yardstick. This copy does what they do: 32-byte loads, 32-byte
// streaming stores to a 32-byte-aligned destination, `memcpy` for the unaligned head and the short tail,
// and a store fence at the end.

#include "CFusedNormCPU.h"

#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>

// Copies shorter than this go to memcpy: the fence and the head and tail would cost more than streaming saves.
#define STREAMING_MINIMUM 256

__attribute__((target("avx2"))) static void copy_streaming_avx2(unsigned char *destination, const unsigned char *source, size_t bytes) {
    size_t head = (32 - ((uintptr_t)destination & 31)) & 31;
    memcpy(destination, source, head);
    destination += head;
    source += head;
    bytes -= head;
    // Four vectors in flight per step: 128 bytes, two cache lines.
    size_t i = 0;
    for (; i + 128 <= bytes; i += 128) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(source + i));
        __m256i b = _mm256_loadu_si256((const __m256i *)(source + i + 32));
        __m256i c = _mm256_loadu_si256((const __m256i *)(source + i + 64));
        __m256i d = _mm256_loadu_si256((const __m256i *)(source + i + 96));
        _mm256_stream_si256((__m256i *)(destination + i), a);
        _mm256_stream_si256((__m256i *)(destination + i + 32), b);
        _mm256_stream_si256((__m256i *)(destination + i + 64), c);
        _mm256_stream_si256((__m256i *)(destination + i + 96), d);
    }
    for (; i + 32 <= bytes; i += 32) {
        _mm256_stream_si256((__m256i *)(destination + i), _mm256_loadu_si256((const __m256i *)(source + i)));
    }
    memcpy(destination + i, source + i, bytes - i);
    _mm_sfence();
}

static int streaming_level = -1;

int cfn_copy_streams(void) {
    int level = __atomic_load_n(&streaming_level, __ATOMIC_RELAXED);
    if (level < 0) {
        __builtin_cpu_init();
        level = __builtin_cpu_supports("avx2") ? 1 : 0;
        __atomic_store_n(&streaming_level, level, __ATOMIC_RELAXED);
    }
    return level;
}

void cfn_copy_streaming(void *destination, const void *source, size_t bytes) {
    if (bytes >= STREAMING_MINIMUM && cfn_copy_streams()) {
        copy_streaming_avx2((unsigned char *)destination, (const unsigned char *)source, bytes);
    } else {
        memcpy(destination, source, bytes);
    }
}

#else

int cfn_copy_streams(void) { return 0; }

void cfn_copy_streaming(void *destination, const void *source, size_t bytes) { memcpy(destination, source, bytes); }

#endif
