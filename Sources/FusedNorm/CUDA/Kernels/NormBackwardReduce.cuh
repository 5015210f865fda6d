// Included by NormBackward.cu (after its definitions, which it uses): `reduce_partials`, the second kernel of
// the backward module, which adds the teams' partial dweight/dbias rows in a fixed order.
#pragma once

/// dweight[h][c] = Σ_{q<P} partial[q][h][c] (likewise dbias), stored in DW_T / DB_T. A block takes 32
/// consecutive elements (coalesced) and 8 slices of the partials: slice s adds q ≡ s (mod 8) in q order,
/// then the 8 slice sums are added in slice order: a fixed order, so the result is the same every run.
extern "C" __global__ void __launch_bounds__(256) reduce_partials(const ReduceParams p) {
    __shared__ float slices[2][8][33];
    const int lane = threadIdx.x % 32;
    const int slice = threadIdx.x / 32;
    [[maybe_unused]] const float* db_partial = p.partials + (HAS_DW ? p.parts * p.count : 0);
    for (long long base = (long long)blockIdx.x * 32; base < p.count; base += (long long)gridDim.x * 32) {
        const long long i = base + lane;
        float dw = 0.0f, db = 0.0f;
        if (i < p.count) {
#pragma unroll 4
            for (long long q = slice; q < p.parts; q += 8) {
#if HAS_DW
                dw += p.partials[q * p.count + i];
#endif
#if HAS_DB
                db += db_partial[q * p.count + i];
#endif
            }
        }
        slices[0][slice][lane] = dw;
        slices[1][slice][lane] = db;
        __syncthreads();
        if (slice < 2 && i < p.count) {
            const long long h = i / p.columns;
            const long long c = i - h * p.columns;
            float total = 0.0f;
#pragma unroll
            for (int s = 0; s < 8; ++s) total += slices[slice][s][lane];
#if HAS_DW
            if (slice == 0) static_cast<DW_T*>(p.dweight)[h * p.dweight_stride + c] = from_float<DW_T>(total);
#endif
#if HAS_DB
            if (slice == 1) static_cast<DB_T*>(p.dbias)[h * p.dbias_stride + c] = from_float<DB_T>(total);
#endif
        }
        __syncthreads();
    }
}
