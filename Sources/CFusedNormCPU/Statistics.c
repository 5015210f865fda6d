// Row statistics for the row kernels, block by block (CFN_STATS_BLOCK), as FusedNorm's Swift `RowStatistics` takes them
// (see Statistics.h).

#include "LanePairs.h"
#include "Statistics.h"

#ifdef CFN_HAS_LANES
#include <math.h>

void cfn_stats_init(cfn_stats *stats, int centered, const void *x, int dtype, size_t columns) {
    stats->centered = centered;
    stats->shift = 0;
    stats->count = stats->mean = stats->squares = 0;
    if (!centered) return;
    // The first shift: the mean of the row's first sixteen values (any finite value is correct).
    size_t lanes = columns < 16 ? columns : 16;
    float sum = 0;
    for (size_t i = 0; i < lanes; i++) sum += cfn_load1(x, i, dtype);
    float estimate = sum / (float)lanes;
    stats->shift = isfinite(estimate) ? estimate : 0;
}

// Σ (v − center) and Σ (v − center)² over elements [start, start + count) of a row of `dtype`.
CFN_VECTOR static void deviation_sums(
    const void *row, int dtype, size_t start, size_t count, float center, float *sum, float *squares
) {
    __m256 z = _mm256_setzero_ps(), acc[4] = {z, z, z, z}, sq[4] = {z, z, z, z}, c = _mm256_set1_ps(center);
    cfn_prefetch none = {0};
#define STEP(i, lanes, k, stream_)                                                                \
    {                                                                                             \
        __m256 d = _mm256_sub_ps(cfn_load(row, i, lanes, dtype), c);                              \
        if (lanes != 8) d = _mm256_and_ps(d, cfn_lane_mask(lanes));                               \
        acc[CFN_ACC(k)] = _mm256_add_ps(acc[CFN_ACC(k)], d);                                                \
        sq[CFN_ACC(k)] = _mm256_fmadd_ps(d, d, sq[CFN_ACC(k)]);                                             \
    }
    CFN_FOR_LANES(start, start + count, 0, 0, 2, none, STEP);
#undef STEP
    *sum = cfn_sum4(acc);
    *squares = cfn_sum4(sq);
}

// The mean and Σ (s − mean)² of the block [start, start + count) of a row, from its sums around `center`
// (`inverse` = 1 / count): when they cancel (the center far from the block's mean) or are not finite, the sums are
// taken again around the block's mean first.
static inline void block_moments(
    const void *row, int dtype, size_t start, size_t count, float center, float sum, float squares, double inverse,
    double *blockMean, double *blockSquares
) {
    float inverseFloat = (float)inverse;
    if (!(squares - sum * sum * inverseFloat >= squares * 0.0625f)) {
        center += sum * inverseFloat;
        deviation_sums(row, dtype, start, count, center, &sum, &squares);
    }
    *blockMean = (double)center + (double)sum * inverse;
    *blockSquares = (double)squares - (double)sum * (double)sum * inverse;
}

void cfn_stats_add(cfn_stats *stats, const void *row, int dtype, size_t start, size_t count, float sum, float squares) {
    double n = (double)count;
    if (!stats->centered) {
        stats->squares += (double)squares;
        stats->count += n;
        return;
    }
    double blockMean, blockSquares;
    block_moments(row, dtype, start, count, stats->shift, sum, squares, 1 / n, &blockMean, &blockSquares);
    double total = stats->count + n;
    double delta = blockMean - stats->mean;
    stats->mean += delta * (n / total);
    stats->squares += blockSquares + delta * delta * (stats->count * n / total);
    stats->count = total;
    float next = (float)stats->mean;
    stats->shift = isfinite(next) ? next : 0;
}

// mean, its error and rstd from the mean and Σ (s − mean)² / n (`quotient`) in double.
static inline void finish_statistics(
    double exactMean, double quotient, float epsilon, float *mean, float *meanError, float *rstd
) {
    double variance = quotient < 0 ? 0 : quotient;  // rounding can leave a constant row's variance at -tiny
    float roundedMean = (float)exactMean;
    double r = 1 / sqrt(variance + (double)epsilon);
    // The mean's rounding error matters when the mean is large against the spread; below 2^-26 after
    // scaling it changes ŝ by less than its own rounding, and is dropped.
    double error = exactMean - (double)roundedMean;
    *mean = roundedMean;
    *meanError = fabs(error * r) < 0x1p-26 ? 0 : (float)error;
    *rstd = (float)r;
}

void cfn_stats_finish(const cfn_stats *stats, float epsilon, float *mean, float *meanError, float *rstd) {
    finish_statistics(stats->mean, stats->squares / stats->count, epsilon, mean, meanError, rstd);
}

// The sums of one block of x around `shift` (Σ v² alone when not centered; centered == 2: around 0, the
// shift ignored). bfloat16 pairs are loaded out of order, without shuffles (cfn_load_k_unordered): LayerNorm
// forward's bfloat16 rows 4% shorter, RMSNorm's 2% (bench/cpu-rows in L2, docs/notes/cpu-statistics.md).
CFN_LANES void block_sums(
    const void *x, int dtype, size_t start, size_t count, int centered, float shift, float *sum, float *squares,
    cfn_prefetch prefetch
) {
    __m256 z = _mm256_setzero_ps(), acc[4] = {z, z, z, z}, sq[4] = {z, z, z, z}, c = _mm256_set1_ps(shift);
    __m256 pending = z;
#define STEP(i, lanes, k, stream_)                                                                \
    {                                                                                             \
        __m256 v = cfn_load_k_unordered(x, i, lanes, dtype, k, &pending);                         \
        __m256 d = v;                                                                             \
        if (centered) {                                                                           \
            if (centered == 1) d = _mm256_sub_ps(v, c);                                           \
            if (lanes != 8 && centered == 1) d = _mm256_and_ps(d, cfn_lane_mask(lanes));          \
            acc[CFN_ACC(k)] = _mm256_add_ps(acc[CFN_ACC(k)], d);                                            \
        }                                                                                         \
        sq[CFN_ACC(k)] = _mm256_fmadd_ps(d, d, sq[CFN_ACC(k)]);                                             \
    }
    CFN_FOR_LANES(start, start + count, 0, 0, 2, prefetch, STEP);
#undef STEP
    *sum = cfn_sum4(acc);
    *squares = cfn_sum4(sq);
}

CFN_VECTOR void cfn_block_sums(const float *values, size_t start, size_t count, int centered, float shift, float *sum, float *squares) {
    cfn_prefetch none = {0};
    block_sums(values, CFN_FLOAT32, start, count, centered, shift, sum, squares, none);
}

// row_statistics of a row of one block (N <= CFN_STATS_BLOCK): cfn_stats_init, cfn_stats_add and cfn_stats_finish
// for that block alone (the running mean and count start at 0: no merge, no division by the count), float32's first
// shift summed in two vectors instead of a chain of sixteen scalar adds. A short row's pass 2 waits for its
// statistics: streamed LayerNorm at N = 256 ran 13-24% behind RMSNorm with the general path, 1-12% with this one
// (bench/cpu-rows/variants.sh, docs/notes/cpu-statistics.md).
CFN_LANES void block_statistics(
    const void *x, int dtype, size_t columns, int centered, float epsilon, float *mean, float *meanError, float *rstd,
    cfn_prefetch prefetch
) {
    double inverse = 1 / (double)columns;
    float sum, squares;
    if (!centered) {
        block_sums(x, dtype, 0, columns, 0, 0, &sum, &squares, prefetch);
        finish_statistics(0, (double)squares * inverse, epsilon, mean, meanError, rstd);
        return;
    }
    // 16-bit rows around 0 (as row_statistics), float32 rows around the mean of their first sixteen values.
    float center = 0;
    if (dtype == CFN_FLOAT32) {
        float estimate;
        if (columns >= 16) {
            __m256 first = _mm256_add_ps(_mm256_loadu_ps((const float *)x), _mm256_loadu_ps((const float *)x + 8));
            estimate = cfn_sum8(first) * 0.0625f;
        } else {
            estimate = 0;
            for (size_t i = 0; i < columns; i++) estimate += ((const float *)x)[i];
            estimate /= (float)columns;
        }
        center = isfinite(estimate) ? estimate : 0;
    }
    block_sums(x, dtype, 0, columns, dtype == CFN_FLOAT32 ? 1 : 2, center, &sum, &squares, prefetch);
    // (cfn_stats_add's merge term, 0 · delta², NaN when the mean is not finite, adds nothing here: the sums
    // are then not finite, taken again, and blockSquares is NaN.)
    double blockMean, blockSquares;
    block_moments(x, dtype, 0, columns, center, sum, squares, inverse, &blockMean, &blockSquares);
    finish_statistics(blockMean, blockSquares * inverse, epsilon, mean, meanError, rstd);
}

CFN_LANES void row_statistics(
    const void *x, int dtype, size_t columns, int centered, float epsilon, float *mean, float *meanError, float *rstd,
    cfn_prefetch prefetch
) {
    if (columns <= CFN_STATS_BLOCK) {
        block_statistics(x, dtype, columns, centered, epsilon, mean, meanError, rstd, prefetch);
        return;
    }
    cfn_stats stats;
    int unshifted = centered && dtype != CFN_FLOAT32;
    // (Around 0 below, the first shift is not needed: no values given for it, the shift is then 0.)
    cfn_stats_init(&stats, centered, x, dtype, unshifted ? 0 : columns);
    // 16-bit rows, centered: the blocks' sums taken around 0 (one subtraction less per element) until a
    // block's sums cancel (cfn_stats_add then takes them again around the block's mean, the test below is
    // its own), then around the running mean as for float32. Either way the subtraction Σ s² − (Σ s)²/n
    // loses at most four bits.
    for (size_t start = 0; start < columns; start += CFN_STATS_BLOCK) {
        size_t count = columns - start < CFN_STATS_BLOCK ? columns - start : CFN_STATS_BLOCK;
        float sum, squares;
        if (unshifted) {
            block_sums(x, dtype, start, count, 2, 0, &sum, &squares, prefetch);
            stats.shift = 0;
            if (!(squares - sum * sum / (float)count >= squares / 16)) unshifted = 0;
        } else {
            block_sums(x, dtype, start, count, centered, stats.shift, &sum, &squares, prefetch);
        }
        cfn_stats_add(&stats, x, dtype, start, count, sum, squares);
    }
    cfn_stats_finish(&stats, epsilon, mean, meanError, rstd);
}

CFN_VECTOR void cfn_row_statistics(
    const void *x, int dtype, size_t columns, int centered, float epsilon, float *mean, float *meanError, float *rstd,
    cfn_prefetch prefetch
) {
    // One specialization per dtype and centering, so that the loops hold no run-time switch.
#define CASE(d)                                                                                       \
    case d:                                                                                           \
        if (centered) row_statistics(x, d, columns, 1, epsilon, mean, meanError, rstd, prefetch);    \
        else row_statistics(x, d, columns, 0, epsilon, mean, meanError, rstd, prefetch);             \
        return;
    switch (dtype) {
        CASE(CFN_FLOAT32)
        CASE(CFN_FLOAT16)
        CASE(CFN_BFLOAT16)
    }
#undef CASE
}
#endif
