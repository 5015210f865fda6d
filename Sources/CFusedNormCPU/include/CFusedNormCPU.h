#ifndef CFUSEDNORMCPU_H
#define CFUSEDNORMCPU_H

// Row conversions between float32 and the 16-bit formats, for the CPU backend of FusedNorm.
//
// Swift compiles for baseline x86_64 (SSE2), where 16-bit conversions are compute-bound; C can compile
// single functions for AVX2 + F16C (`__attribute__((target))`) and pick them at run time. Every
// function gives the same bits as its portable scalar fallback and as FusedNorm's Swift conversions:
//   bfloat16 -> float32: exact (the upper half of a float).
//   float32 -> bfloat16: round to nearest, ties to even; NaN stays NaN (quiet, sign and upper payload kept).
//   float16 -> float32: exact; a signaling NaN is quieted, payload kept (like Swift's Float(Float16)).
//   float32 -> float16: round to nearest, ties to even, overflow to ±Inf, subnormals kept; NaN stays NaN
//                       (quiet, sign and upper payload kept), like Swift's Float16(Float).
// Sources and destinations need no alignment and must not overlap.

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

void cfn_bf16_to_f32(const uint16_t *source, float *destination, size_t count);
void cfn_f32_to_bf16(const float *source, uint16_t *destination, size_t count);
void cfn_f16_to_f32(const uint16_t *source, float *destination, size_t count);
void cfn_f32_to_f16(const float *source, uint16_t *destination, size_t count);

// The same, with non-temporal stores where possible: for outputs that are not read again soon (they
// save reading each destination cache line before writing it). Same results. A thread must call
// cfn_store_fence() after its streaming stores, before another thread may read what they wrote.
void cfn_f32_to_bf16_streaming(const float *source, uint16_t *destination, size_t count);
void cfn_f32_to_f16_streaming(const float *source, uint16_t *destination, size_t count);
void cfn_store_fence(void);

// The portable implementations, which the functions above use when the CPU lacks AVX2/F16C/FMA
// (exposed so that tests can compare both).
void cfn_bf16_to_f32_scalar(const uint16_t *source, float *destination, size_t count);
void cfn_f32_to_bf16_scalar(const float *source, uint16_t *destination, size_t count);
void cfn_f16_to_f32_scalar(const uint16_t *source, float *destination, size_t count);
void cfn_f32_to_f16_scalar(const float *source, uint16_t *destination, size_t count);

// 1 when the functions above use the AVX2 + F16C implementations, else 0.
int cfn_uses_vector_conversions(void);

// MARK: Row kernels
//
// One row of a normalization, forward or backward, for the CPU backend's threads (which split the rows
// and the gradient groups; see FusedNorm's CPUBackend). They compute what the Swift kernels compute,
// operation for operation (fp32 statistics in blocks of 1024 elements added in double, the same roundings,
// element-wise arithmetic never fused), so the two paths differ only inside each block's sums (order of
// additions; here sums of products accumulate with fused multiply-adds) and where the C kernels fuse a
// multiply-add that the tolerances allow (see BackwardRows.c, ForwardRows.c).
// Outputs (y, s, dx) are written with non-temporal stores where their alignment allows: a thread must call
// cfn_store_fence() after its last row, before other threads may read them.
// The kernels come compiled for two instruction sets (`kernels` below), with the same results bit for bit.

// Storage dtypes of rows.
enum { CFN_FLOAT32 = 0, CFN_FLOAT16 = 1, CFN_BFLOAT16 = 2 };

// Instruction sets the row kernels are compiled for: none (not x86_64, or a CPU without AVX2), AVX2 + FMA +
// F16C, and AVX-512 (F, VL, BW, DQ, BF16; on 256-bit vectors) on top of those.
enum { CFN_KERNELS_NONE = 0, CFN_KERNELS_AVX2 = 1, CFN_KERNELS_AVX512 = 2 };

// The best instruction set of the row kernels this CPU runs (CFN_KERNELS_*). Every level below it runs too.
int cfn_row_kernels(void);

// One forward row: s = x (+ residual), statistics of s, y = ŝ·w + b with ŝ = (s − mean)·rstd.
typedef struct {
    size_t columns;               // N >= 1
    int centered;                 // 1: LayerNorm (mean subtracted); 0: RMSNorm
    int x_dtype;
    const void *x;
    int residual_dtype;
    const void *residual;         // NULL: no residual
    int residual_output_dtype;
    void *residual_output;        // s, rounded to its dtype (the rounded values are then normalized); with a residual
    int output_dtype;
    void *output;                 // y
    int hat_dtype;                // llama casting (RMSNorm): ŝ rounded to this dtype before the weight;
                                  // CFN_FLOAT32: none
    const float *weight;          // N floats, the weight offset already added; NULL: none
    const float *bias;            // N floats; NULL: none
    const void *weight_bias;      // optional: `weight` and `bias` again, packed as 16-bit values of the input and
                                  // output dtype (cfn_pack_weight_bias) for LayerNorm rows without a residual to read
                                  // instead; NULL: none
    float epsilon;
    float *stash;                 // with a residual: N floats of scratch (s as floats), 32-byte aligned
    float *mean;                  // where to store the row's mean (0 for RMSNorm), or NULL
    float *rstd;                  // where to store the row's rstd, or NULL
    const void *next_x;           // the next row's x and residual, prefetched while this row is written; NULL: none
    const void *next_residual;
} cfn_forward_row_args;

// `kernels`: CFN_KERNELS_AVX2 or CFN_KERNELS_AVX512, at most cfn_row_kernels().
void cfn_forward_row(const cfn_forward_row_args *args, int kernels);

// Packs a row of LayerNorm's weight and bias (N floats each) in 16-bit values of `dtype` (CFN_FLOAT16 or
// CFN_BFLOAT16) into `destination` (room for 2·N values), for cfn_forward_row_args.weight_bias: fewer bytes and
// loads in pass 2, where float parameters (a 32-byte load more per eight columns; with x, more than a 32 KiB L1
// at N = 4096) made a row of LayerNorm longer than RMSNorm's on Zen 4 by 32% in float16 and 21% in bfloat16,
// packed by 17% and 15% (in L2; docs/notes/cpu-packing.md). Returns 1 when every value
// packed is exactly a value of `dtype` (its bits come back unchanged), else 0: the packed row must then not be
// used. (float16 packs the weights only: see RowKernels.c.)
int cfn_pack_weight_bias(const float *weight, const float *bias, size_t columns, int dtype, uint16_t *destination);

// One backward row: ŝ = (x − mean)·rstd, g = dy·w, dx = rstd·(g − mean(g) − ŝ·mean(g·ŝ)) (+ the residual
// gradient) (RMSNorm: no mean, no mean(g)); adds dy·ŝ to the dweight partial row and dy to the dbias
// partial row, element by element (the caller keeps the order of rows fixed: deterministic sums).
typedef struct {
    size_t columns;
    int centered;
    int x_dtype;
    const void *x;
    int dy_dtype;
    const void *dy;
    int dx_dtype;
    void *dx;
    int residual_gradient_dtype;
    const void *residual_gradient;  // added to dx; NULL: none
    const float *weight;            // N floats with the offset added; NULL: none
    int statistics_saved;           // 1: `mean` and `rstd` below; 0: computed from x with `epsilon`
    float mean, rstd, epsilon;
    float *weight_gradient;         // fp32 partial row, updated in place; present exactly when `weight` is
    float *bias_gradient;           // fp32 partial row, updated in place; NULL: none
    const void *next_x;             // the next row's x and dy, prefetched while this row's dx is written; NULL: none
    const void *next_dy;
} cfn_backward_row_args;

// `kernels`: as for cfn_forward_row.
void cfn_backward_row(const cfn_backward_row_args *args, int kernels);

// MARK: Streaming copy (the CPU bench's yardstick; StreamingCopy.c)
//
// Copies `bytes` bytes with non-temporal stores (AVX2: 32-byte streaming stores to the 32-byte-aligned part
// of the destination, memcpy for the head, the tail and copies under 256 bytes), then a store fence. Unlike
// memcpy it does not read each destination cache line before writing it. Any alignment; no overlap.
// Without AVX2 (cfn_copy_streams() == 0) it is memcpy.
void cfn_copy_streaming(void *destination, const void *source, size_t bytes);
// 1 when cfn_copy_streaming streams its stores on this CPU, else 0.
int cfn_copy_streams(void);

#ifdef __cplusplus
}
#endif

#endif
