/// y = ((s − mean − meanError) · rstd) · w + b over a block of Floats, rounded to the output dtype.
///
/// The mean is used only when `centered` (LayerNorm), its error only when not 0; w = 1 without a weight
/// and b = 0 without a bias. Run it with ``run(as:)`` to get the loop specialized for the output format.
struct NormalizeKernel: CodecVisitor {
    var values: UnsafePointer<Float>
    var count: Int
    var centered: Bool
    var statistics: NormStatistics
    var weight: UnsafePointer<Float>?
    var bias: UnsafePointer<Float>?
    /// Whether y is known to hold no NaN (see ``ForwardPass``), which makes 16-bit stores cheaper.
    var nanFree: Bool
    var output: UnsafeMutableRawPointer

    /// Writes the block in `dtype`.
    func run(as dtype: DType) { dtype.withCodec(self) }

    // The flags are turned into constants one at a time, so that each combination compiles to its own loop.

    func visit<Output: ElementCodec>(_ codec: Output.Type) {
        if nanFree {
            centering(codec, nanFree: true)
        } else {
            centering(codec, nanFree: false)
        }
    }

    @inline(__always)
    private func centering<Output: ElementCodec>(_ codec: Output.Type, nanFree: Bool) {
        if !centered {
            parameters(codec, nanFree: nanFree, centered: false, meanError: false)
        } else if statistics.meanError != 0 {
            parameters(codec, nanFree: nanFree, centered: true, meanError: true)
        } else {
            parameters(codec, nanFree: nanFree, centered: true, meanError: false)
        }
    }

    @inline(__always)
    private func parameters<Output: ElementCodec>(_ codec: Output.Type, nanFree: Bool, centered: Bool, meanError: Bool) {
        switch (weight != nil, bias != nil) {
        case (false, false): loop(codec, nanFree, centered, meanError, weighted: false, biased: false)
        case (true, false): loop(codec, nanFree, centered, meanError, weighted: true, biased: false)
        case (false, true): loop(codec, nanFree, centered, meanError, weighted: false, biased: true)
        case (true, true): loop(codec, nanFree, centered, meanError, weighted: true, biased: true)
        }
    }

    @inline(__always)
    private func loop<Output: ElementCodec>(
        _: Output.Type, _ nanFree: Bool, _ centered: Bool, _ subtractMeanError: Bool, weighted: Bool, biased: Bool
    ) {
        let mean = statistics.mean, meanError = statistics.meanError, rstd = statistics.rstd
        @inline(__always)
        func step(_ index: Int, _ lanes: Int) {
            var v = Float32Codec.load(values, at: index, lanes: lanes)
            if centered { v -= mean }
            if subtractMeanError { v -= meanError }
            v *= rstd
            if weighted { v *= Float32Codec.load(weight!, at: index, lanes: lanes) }
            if biased { v += Float32Codec.load(bias!, at: index, lanes: lanes) }
            Output.store(v, to: output, at: index, lanes: lanes, nanFree: nanFree)
        }
        forEachVector(count, step)
    }
}

/// s = x + residual over a block: stores s rounded to the residual output's dtype, writes the stored
/// (rounded) values to `rounded`, the Floats that are then normalized (`rounded` may be `x` itself), and
/// returns their sums: Σ s² only, or (`centered`) Σ (s − shift) and Σ (s − shift)².
struct ResidualAddKernel: CodecVisitor {
    var x: UnsafePointer<Float>
    var residual: UnsafePointer<Float>
    var count: Int
    var output: UnsafeMutableRawPointer
    var rounded: UnsafeMutablePointer<Float>
    var centered: Bool
    var shift: Float

    /// Stores the block in `dtype`.
    func run(as dtype: DType) -> BlockSums { dtype.withCodec(self) }

    func visit<Output: ElementCodec>(_ codec: Output.Type) -> BlockSums {
        centered ? loop(codec, centered: true) : loop(codec, centered: false)
    }

    @inline(__always)
    private func loop<Output: ElementCodec>(_: Output.Type, centered: Bool) -> BlockSums {
        var sum = FloatVector(), squares = FloatVector()
        @inline(__always)
        func step(_ index: Int, _ lanes: Int) {
            let s = Float32Codec.load(x, at: index, lanes: lanes) + Float32Codec.load(residual, at: index, lanes: lanes)
            let stored = Output.store(s, to: output, at: index, lanes: lanes)
            Float32Codec.store(stored, to: rounded, at: index, lanes: lanes)
            if centered {
                let d = RowReductions.masked(stored - shift, lanes: lanes)
                sum += d
                squares += d * d
            } else {
                squares += stored * stored
            }
        }
        forEachVector(count, step)
        return BlockSums(sum: sum.sum(), squares: squares.sum())
    }
}
