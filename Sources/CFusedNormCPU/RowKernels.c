// The row kernels' entry points: which copy of the kernels (Lanes.h) this CPU can run, and the calls.

#include "Lanes.h"
#include "RowKernels.h"
#include "RowLoops.h"

// `value` as a 16-bit value of `dtype`, in *half; 0 when it is not exactly one (its bits would not come back).
static int exact_half(float value, int dtype, uint16_t *half) {
    uint32_t bits = cfn_float_bits(value);
    *half = dtype == CFN_FLOAT16 ? cfn_f16_from_bits(bits) : cfn_bf16_from_bits(bits);
    return cfn_float_bits(cfn_load1(half, 0, dtype)) == bits;
}

// The layouts cfn_weight_bias (LanePairs.h) reads: bfloat16, one 32-bit lane per column, the weight in its low half
// and the bias in its high half (one load and two integer operations for both); float16, the N weights alone
// (each eight converted by one vcvtph2ps: converting the biases too cost more than loading them as floats).
int cfn_pack_weight_bias(const float *weight, const float *bias, size_t columns, int dtype, uint16_t *destination) {
    for (size_t i = 0; i < columns; i++) {
        uint16_t w, b;
        if (!exact_half(weight[i], dtype, &w)) return 0;
        if (dtype == CFN_FLOAT16) {
            destination[i] = w;
            continue;
        }
        if (!exact_half(bias[i], dtype, &b)) return 0;
        destination[2 * i] = w;
        destination[2 * i + 1] = b;
    }
    return 1;
}

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
