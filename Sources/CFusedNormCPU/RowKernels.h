#ifndef CFUSEDNORMCPU_ROW_KERNELS_H
#define CFUSEDNORMCPU_ROW_KERNELS_H

// Internal: the row kernels of each copy (ForwardRows.c and BackwardRows.c define them, compiled once per copy
// as Lanes.h describes; RowKernels.c calls the copy this CPU can run).

#include "CFusedNormCPU.h"

void cfn_forward_row_avx2(const cfn_forward_row_args *args);
void cfn_forward_row_avx512(const cfn_forward_row_args *args);
void cfn_backward_row_avx2(const cfn_backward_row_args *args);
void cfn_backward_row_avx512(const cfn_backward_row_args *args);

#endif
