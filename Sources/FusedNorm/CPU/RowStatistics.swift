/// The statistics of one row, accumulated block by block (fp32 vectors within a block, Double across
/// blocks).
///
/// RMSNorm: r = 1 / sqrt(Σ s² / N + ε). LayerNorm: each block's sums are taken around a shift c, the
/// mean of the blocks before it (for the first block, of the row's first sixteen values): with
/// d = s − c, the block's mean is c + Σd/n and its M₂ = Σd² − (Σd)²/n. That subtraction loses about
/// log2(Σd² / M₂) bits; when it would lose more than four (the shift is far from the block's mean), the
/// block's sums are taken again around its mean, from cache. Blocks merge with Chan's formula
/// (M₂ = M₂ₐ + M₂ᵦ + δ² · nₐ·nᵦ / n). The variance never suffers the cancellation of E[s²] − μ², and
/// everything depends on the row alone, never on how rows are split over threads.
struct RowStatistics {
    /// Whether the statistics are centered (LayerNorm) or not (RMSNorm, mean 0).
    let centered: Bool
    /// The value the next block's centered sums are taken around.
    private(set) var shift: Float = 0
    private var count = 0.0
    private var mean = 0.0
    /// Σ (s − mean)² when centered, else Σ s².
    private var squares = 0.0

    /// Statistics whose first shift (LayerNorm) is the mean of the first sixteen values of `view`'s row
    /// `row`. With a residual, x's values stand in for s's: any finite shift is correct, a close one
    /// saves a pass over the first block.
    init(centered: Bool, shiftFrom view: RowView, row: Int, columns: Int) {
        self.centered = centered
        guard centered else { return }
        let lanes = min(columns, FloatVector.scalarCount)
        var first = FloatVector()
        withUnsafeMutablePointer(to: &first) {
            $0.withMemoryRebound(to: Float.self, capacity: lanes) {
                view.dtype.decode(view.pointer(row: row), count: lanes, into: $0)
            }
        }
        let estimate = first.sum() / Float(lanes)
        shift = estimate.isFinite ? estimate : 0
    }

    /// Reads a block of `blockCount` elements of `view` from (`row`, `column`) as Floats and adds it.
    /// - Parameter staging: room for the block's Floats, used unless the dtype is float32.
    /// - Returns: the block's Floats (the view's own memory when it is float32).
    mutating func load(
        _ view: RowView, row: Int, column: Int, count blockCount: Int, staging: UnsafeMutablePointer<Float>
    ) -> UnsafePointer<Float> {
        let values = view.floats(row: row, column: column, count: blockCount, staging: staging)
        add(
            values, count: blockCount,
            sums: BlockSumsKernel(values: values, count: blockCount, centered: centered, shift: shift).run())
        return values
    }

    /// Adds a block of `blockCount` Floats whose sums, taken around ``shift``, are `sums` (Σ s² alone when
    /// not centered).
    mutating func add(_ values: UnsafePointer<Float>, count blockCount: Int, sums: BlockSums) {
        let n = Double(blockCount)
        guard centered else {
            squares += Double(sums.squares)
            count += n
            return
        }
        var center = shift, sums = sums
        if !(sums.squares - sums.sum * sums.sum / Float(blockCount) >= sums.squares / 16) {
            // Far from the block's mean (or not finite): take the sums again around it.
            center += sums.sum / Float(blockCount)
            sums = RowReductions.deviationSums(values, count: blockCount, from: center)
        }
        let blockMean = Double(center) + Double(sums.sum) / n
        let blockSquares = Double(sums.squares) - Double(sums.sum) * Double(sums.sum) / n
        let total = count + n
        let delta = blockMean - mean
        mean += delta * (n / total)
        squares += blockSquares + delta * delta * (count * n / total)
        count = total
        let next = Float(mean)
        shift = next.isFinite ? next : 0
    }

    /// The row's mean (0 when not centered) and r = 1 / sqrt(variance or mean square + ε).
    func finish(epsilon: Float) -> NormStatistics {
        let quotient = squares / count
        let variance = quotient < 0 ? 0 : quotient  // rounding can leave a constant row's variance at -tiny
        let roundedMean = Float(mean), rstd = 1 / (variance + Double(epsilon)).squareRoot()
        // The error matters when the mean is large against the spread; below 2^-26 after scaling (a quarter
        // of an ulp of 1) it changes ŝ by less than its own rounding, and is dropped.
        let meanError = mean - Double(roundedMean)
        return NormStatistics(
            mean: roundedMean, meanError: abs(meanError * rstd) < 0x1p-26 ? 0 : Float(meanError), rstd: Float(rstd))
    }
}

/// A row's mean and rstd as the kernels use them.
///
/// The mean is carried as two Floats, `mean + meanError`, and the kernels subtract both: with a large
/// mean and a small spread (s ≈ 300 ± 0.01), rounding the mean to one Float alone would shift every
/// s − μ by up to half an ulp of μ, far more than fp32 rounding of the result.
struct NormStatistics {
    /// The mean rounded to Float (0 for RMSNorm); the value saved for the backward pass.
    var mean: Float
    /// The mean's rounding error; 0 when the mean is a saved Float or the error is negligible.
    var meanError: Float
    var rstd: Float
}
