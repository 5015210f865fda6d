/// y = ((s − mean − meanError) · rstd) · w + b over a block of Floats, written as Floats (callers with a
/// 16-bit output convert the block with ``DType/encode(_:count:into:)``).
///
/// The mean is used only when `centered` (LayerNorm), its error only when not 0; w = 1 without a weight
/// and b = 0 without a bias. `output` may be `values` itself.
struct NormalizeKernel {
    var values: UnsafePointer<Float>
    var count: Int
    var centered: Bool
    var statistics: NormStatistics
    var weight: UnsafePointer<Float>?
    var bias: UnsafePointer<Float>?
    var output: UnsafeMutablePointer<Float>

    // The flags are turned into constants one at a time, so that each combination compiles to its own loop.

    /// Writes the block.
    func run() {
        if !centered {
            parameters(centered: false, meanError: false)
        } else if statistics.meanError != 0 {
            parameters(centered: true, meanError: true)
        } else {
            parameters(centered: true, meanError: false)
        }
    }

    @inline(__always)
    private func parameters(centered: Bool, meanError: Bool) {
        switch (weight != nil, bias != nil) {
        case (false, false): loop(centered, meanError, weighted: false, biased: false)
        case (true, false): loop(centered, meanError, weighted: true, biased: false)
        case (false, true): loop(centered, meanError, weighted: false, biased: true)
        case (true, true): loop(centered, meanError, weighted: true, biased: true)
        }
    }

    @inline(__always)
    private func loop(_ centered: Bool, _ subtractMeanError: Bool, weighted: Bool, biased: Bool) {
        let mean = statistics.mean, meanError = statistics.meanError, rstd = statistics.rstd
        @inline(__always)
        func step(_ index: Int, _ lanes: Int) {
            var v = Float32Codec.load(values, at: index, lanes: lanes)
            if centered { v -= mean }
            if subtractMeanError { v -= meanError }
            v *= rstd
            if weighted { v *= Float32Codec.load(weight!, at: index, lanes: lanes) }
            if biased { v += Float32Codec.load(bias!, at: index, lanes: lanes) }
            Float32Codec.store(v, to: output, at: index, lanes: lanes)
        }
        forEachVector(count, step)
    }
}

/// s = x + residual over a block, for a float32 residual output: stores s to `output` and to `rounded`
/// (the Floats that are then normalized; `rounded` may be `x` itself), and returns their sums: Σ s² only,
/// or (`centered`) Σ (s − shift) and Σ (s − shift)².
struct ResidualAddKernel {
    var x: UnsafePointer<Float>
    var residual: UnsafePointer<Float>
    var count: Int
    var output: UnsafeMutablePointer<Float>
    var rounded: UnsafeMutablePointer<Float>
    var centered: Bool
    var shift: Float

    /// Stores the block.
    func run() -> BlockSums {
        centered ? loop(centered: true) : loop(centered: false)
    }

    @inline(__always)
    private func loop(centered: Bool) -> BlockSums {
        var sum = FloatVector(), squares = FloatVector()
        @inline(__always)
        func step(_ index: Int, _ lanes: Int) {
            let s = Float32Codec.load(x, at: index, lanes: lanes) + Float32Codec.load(residual, at: index, lanes: lanes)
            Float32Codec.store(s, to: output, at: index, lanes: lanes)
            Float32Codec.store(s, to: rounded, at: index, lanes: lanes)
            if centered {
                let d = RowReductions.masked(s - shift, lanes: lanes)
                sum += d
                squares += d * d
            } else {
                squares += s * s
            }
        }
        forEachVector(count, step)
        return BlockSums(sum: sum.sum(), squares: squares.sum())
    }
}
