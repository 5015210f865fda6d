#include "Lanes.h"

// MARK: Portable scalar implementations

void cfn_bf16_to_f32_scalar(const uint16_t *source, float *destination, size_t count) {
    for (size_t i = 0; i < count; i++) destination[i] = cfn_bits_float((uint32_t)source[i] << 16);
}

void cfn_f32_to_bf16_scalar(const float *source, uint16_t *destination, size_t count) {
    for (size_t i = 0; i < count; i++) destination[i] = cfn_bf16_from_bits(cfn_float_bits(source[i]));
}

void cfn_f16_to_f32_scalar(const uint16_t *source, float *destination, size_t count) {
    for (size_t i = 0; i < count; i++) destination[i] = cfn_bits_float(cfn_f16_to_f32_bits(source[i]));
}

void cfn_f32_to_f16_scalar(const float *source, uint16_t *destination, size_t count) {
    for (size_t i = 0; i < count; i++) destination[i] = cfn_f16_from_bits(cfn_float_bits(source[i]));
}

// MARK: AVX2 + F16C implementations (x86_64), the scalar code for tails

#if defined(__x86_64__) || defined(__i386__)

#define VECTOR_TARGET __attribute__((target("avx2,f16c,fma")))

// The 16-bit sources are read from memory once, block by block: prefetching this far ahead keeps the
// next block's lines coming (a prefetch past the end of the row is harmless).
#define PREFETCH_BYTES 4096

VECTOR_TARGET static void bf16_to_f32_avx2(const uint16_t *source, float *destination, size_t count) {
    size_t i = 0;
    for (; i + 16 <= count; i += 16) {
        _mm_prefetch((const char *)(source + i) + PREFETCH_BYTES, _MM_HINT_T0);
        __m256i low = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(source + i)));
        __m256i high = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(source + i + 8)));
        _mm256_storeu_si256((__m256i *)(destination + i), _mm256_slli_epi32(low, 16));
        _mm256_storeu_si256((__m256i *)(destination + i + 8), _mm256_slli_epi32(high, 16));
    }
    cfn_bf16_to_f32_scalar(source + i, destination + i, count - i);
}

VECTOR_TARGET static void f32_to_bf16_avx2(const float *source, uint16_t *destination, size_t count) {
    size_t i = 0;
    for (; i + 16 <= count; i += 16) {
        __m256i low = cfn_bf16_lanes(_mm256_loadu_ps(source + i));
        __m256i high = cfn_bf16_lanes(_mm256_loadu_ps(source + i + 8));
        // packus works per 128-bit lane: [l0-3 h0-3 l4-7 h4-7] -> reorder the 64-bit quarters.
        __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(low, high), 0xD8);
        _mm256_storeu_si256((__m256i *)(destination + i), packed);
    }
    cfn_f32_to_bf16_scalar(source + i, destination + i, count - i);
}

// Like f32_to_bf16_avx2, with non-temporal stores from the first 32-byte boundary: for outputs that are
// not read again soon, they save reading each destination line before writing it. Callers order them
// with cfn_store_fence() before other threads may read the destination.
VECTOR_TARGET static void f32_to_bf16_stream_avx2(const float *source, uint16_t *destination, size_t count) {
    size_t head = (size_t)(-(uintptr_t)destination & 31) / 2;
    if ((uintptr_t)destination & 1 || head + 16 > count) {
        f32_to_bf16_avx2(source, destination, count);
        return;
    }
    cfn_f32_to_bf16_scalar(source, destination, head);
    size_t i = head;
    for (; i + 16 <= count; i += 16) {
        __m256i low = cfn_bf16_lanes(_mm256_loadu_ps(source + i));
        __m256i high = cfn_bf16_lanes(_mm256_loadu_ps(source + i + 8));
        _mm256_stream_si256((__m256i *)(destination + i), _mm256_permute4x64_epi64(_mm256_packus_epi32(low, high), 0xD8));
    }
    cfn_f32_to_bf16_scalar(source + i, destination + i, count - i);
}

VECTOR_TARGET static void f16_to_f32_avx2(const uint16_t *source, float *destination, size_t count) {
    size_t i = 0;
    for (; i + 16 <= count; i += 16) {
        _mm_prefetch((const char *)(source + i) + PREFETCH_BYTES, _MM_HINT_T0);
        _mm256_storeu_ps(destination + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(source + i))));
        _mm256_storeu_ps(destination + i + 8, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(source + i + 8))));
    }
    cfn_f16_to_f32_scalar(source + i, destination + i, count - i);
}

VECTOR_TARGET static void f32_to_f16_avx2(const float *source, uint16_t *destination, size_t count) {
    size_t i = 0;
    for (; i + 16 <= count; i += 16) {
        _mm_storeu_si128((__m128i *)(destination + i), _mm256_cvtps_ph(_mm256_loadu_ps(source + i), _MM_FROUND_TO_NEAREST_INT));
        _mm_storeu_si128((__m128i *)(destination + i + 8), _mm256_cvtps_ph(_mm256_loadu_ps(source + i + 8), _MM_FROUND_TO_NEAREST_INT));
    }
    cfn_f32_to_f16_scalar(source + i, destination + i, count - i);
}

VECTOR_TARGET static void f32_to_f16_stream_avx2(const float *source, uint16_t *destination, size_t count) {
    size_t head = (size_t)(-(uintptr_t)destination & 31) / 2;
    if ((uintptr_t)destination & 1 || head + 16 > count) {
        f32_to_f16_avx2(source, destination, count);
        return;
    }
    cfn_f32_to_f16_scalar(source, destination, head);
    size_t i = head;
    for (; i + 16 <= count; i += 16) {
        __m128i low = _mm256_cvtps_ph(_mm256_loadu_ps(source + i), _MM_FROUND_TO_NEAREST_INT);
        __m128i high = _mm256_cvtps_ph(_mm256_loadu_ps(source + i + 8), _MM_FROUND_TO_NEAREST_INT);
        _mm256_stream_si256((__m256i *)(destination + i), _mm256_set_m128i(high, low));
    }
    cfn_f32_to_f16_scalar(source + i, destination + i, count - i);
}

// -1: not yet known; 0: scalar; 1: AVX2 + F16C + FMA. Computed once, on first use.
static int vector_level = -1;

int cfn_uses_vector_conversions(void) {
    int level = __atomic_load_n(&vector_level, __ATOMIC_RELAXED);
    if (level < 0) {
        __builtin_cpu_init();
        level = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c") && __builtin_cpu_supports("fma");
        __atomic_store_n(&vector_level, level, __ATOMIC_RELAXED);
    }
    return level;
}

#define DISPATCH(name, vector, Source, Destination)                                      \
    void name(const Source *source, Destination *destination, size_t count) {            \
        if (cfn_uses_vector_conversions()) vector(source, destination, count);           \
        else name##_scalar(source, destination, count);                                  \
    }
#define DISPATCH_STREAM(name, vector, portable)                                          \
    void name(const float *source, uint16_t *destination, size_t count) {                \
        if (cfn_uses_vector_conversions()) vector(source, destination, count);           \
        else portable(source, destination, count);                                       \
    }
void cfn_store_fence(void) { _mm_sfence(); }
#else
int cfn_uses_vector_conversions(void) { return 0; }
void cfn_store_fence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
#define DISPATCH_STREAM(name, vector, portable)                                          \
    void name(const float *source, uint16_t *destination, size_t count) {                \
        portable(source, destination, count);                                           \
    }
#define DISPATCH(name, vector, Source, Destination)                                      \
    void name(const Source *source, Destination *destination, size_t count) {            \
        name##_scalar(source, destination, count);                                       \
    }
#endif

DISPATCH(cfn_bf16_to_f32, bf16_to_f32_avx2, uint16_t, float)
DISPATCH(cfn_f32_to_bf16, f32_to_bf16_avx2, float, uint16_t)
DISPATCH(cfn_f16_to_f32, f16_to_f32_avx2, uint16_t, float)
DISPATCH(cfn_f32_to_f16, f32_to_f16_avx2, float, uint16_t)
DISPATCH_STREAM(cfn_f32_to_bf16_streaming, f32_to_bf16_stream_avx2, cfn_f32_to_bf16_scalar)
DISPATCH_STREAM(cfn_f32_to_f16_streaming, f32_to_f16_stream_avx2, cfn_f32_to_f16_scalar)
