// The row kernels' entry points: which copy of the kernels (Lanes.h) this CPU can run, and the calls.

#include "Lanes.h"

#ifdef CFN_HAS_LANES

_Alignas(64) const char cfn_prefetch_idle[64];

// -1: not yet known. Computed once, on first use.
static int kernels_level = -1;

int cfn_row_kernels(void) {
    int level = __atomic_load_n(&kernels_level, __ATOMIC_RELAXED);
    if (level < 0) {
        __builtin_cpu_init();
        level = CFN_KERNELS_NONE;
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) {
            level = CFN_KERNELS_AVX2;
            if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
                __builtin_cpu_supports("avx512bf16")) {
                level = CFN_KERNELS_AVX512;
            }
        }
        __atomic_store_n(&kernels_level, level, __ATOMIC_RELAXED);
    }
    return level;
}

void cfn_forward_row(const cfn_forward_row_args *args, int kernels) {
    if (kernels == CFN_KERNELS_AVX512) cfn_forward_row_avx512(args);
    else cfn_forward_row_avx2(args);
}

void cfn_backward_row(const cfn_backward_row_args *args, int kernels) {
    if (kernels == CFN_KERNELS_AVX512) cfn_backward_row_avx512(args);
    else cfn_backward_row_avx2(args);
}

#else

int cfn_row_kernels(void) { return CFN_KERNELS_NONE; }
void cfn_forward_row(const cfn_forward_row_args *args, int kernels) { (void)args; (void)kernels; __builtin_trap(); }
void cfn_backward_row(const cfn_backward_row_args *args, int kernels) { (void)args; (void)kernels; __builtin_trap(); }

#endif
