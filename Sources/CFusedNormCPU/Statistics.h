#ifndef CFUSEDNORMCPU_STATISTICS_H
#define CFUSEDNORMCPU_STATISTICS_H

// Internal: the row statistics (Statistics.c), on the primitives and loops below them (Lanes.h, RowLoops.h),
// for the row kernels above.

#include "RowLoops.h"

#ifdef CFN_HAS_LANES

// Each copy's names (CFN_NAME, Lanes.h).
#define cfn_stats_init CFN_NAME(cfn_stats_init)
#define cfn_stats_add CFN_NAME(cfn_stats_add)
#define cfn_stats_finish CFN_NAME(cfn_stats_finish)
#define cfn_row_statistics CFN_NAME(cfn_row_statistics)
#define cfn_block_sums CFN_NAME(cfn_block_sums)

// Elements per block of the row statistics, more than the gradient sums' CFN_BLOCK (RowLoops.h) and the Swift
// kernels' 1024: each block ends in horizontal sums, a test and a merge in double that the loops do not hide
// (4096: LayerNorm forward +8% in float16 and bfloat16 with the data in cache, +20% in float32; RMSNorm +5%;
// bench/cpu-rows, docs/notes/cpu-statistics.md).
#define CFN_STATS_BLOCK 4096

// The statistics of one row, accumulated block by block as FusedNorm's Swift `RowStatistics` (whose blocks
// are 1024 long, these CFN_STATS_BLOCK):
// RMSNorm: Σ s² per block in fp32, added in double. LayerNorm: each block's sums taken around a shift
// (the mean so far; first, the mean of the row's first sixteen values), taken again around the block's
// own mean when the subtraction would lose more than four bits, blocks merged with Chan's formula.
typedef struct {
    int centered;
    float shift;
    double count, mean, squares;
} cfn_stats;

void cfn_stats_init(cfn_stats *stats, int centered, const void *x, int dtype, size_t columns);
// Adds the block [start, start + count) of a row of `dtype`, whose sums around stats->shift are `sum` and
// `squares` (Σ s² alone when not centered); reads the block again if the sums must be taken again.
void cfn_stats_add(cfn_stats *stats, const void *row, int dtype, size_t start, size_t count, float sum, float squares);
// mean (0 when not centered), its rounding error (0 when negligible), rstd.
void cfn_stats_finish(const cfn_stats *stats, float epsilon, float *mean, float *meanError, float *rstd);
// The sums of the float32 block [start, start + count) of `values` around `shift` (Σ v² alone when not centered),
// its lanes always in the same order from `start`: the sums do not depend on where the row lies in memory.
void cfn_block_sums(const float *values, size_t start, size_t count, int centered, float shift, float *sum, float *squares);
// The statistics of row `x` (`columns` elements of `dtype`).
void cfn_row_statistics(
    const void *x, int dtype, size_t columns, int centered, float epsilon, float *mean, float *meanError, float *rstd,
    cfn_prefetch prefetch);

#endif  // CFN_HAS_LANES

#endif
