/// The row reductions of the backward pass over a block, with ŝ = (x − mean − meanError) · rstd and
/// g = dy · w: Σ g (only when `centered`: LayerNorm), Σ g·ŝ, and Σ g² (only when `bounded`).
///
/// The mean is used only when `centered`; w = 1 without a weight.
struct GradientSumsKernel {
    var x: UnsafePointer<Float>
    var dy: UnsafePointer<Float>
    var count: Int
    var centered: Bool
    var bounded: Bool
    var statistics: NormStatistics
    var weight: UnsafePointer<Float>?

    /// Runs the block; sums not computed are 0.
    func run() -> GradientBlockSums {
        switch (centered, weight != nil, bounded) {
        case (false, false, false): loop(centered: false, weighted: false, bounded: false)
        case (false, false, true): loop(centered: false, weighted: false, bounded: true)
        case (false, true, false): loop(centered: false, weighted: true, bounded: false)
        case (false, true, true): loop(centered: false, weighted: true, bounded: true)
        case (true, false, false): loop(centered: true, weighted: false, bounded: false)
        case (true, false, true): loop(centered: true, weighted: false, bounded: true)
        case (true, true, false): loop(centered: true, weighted: true, bounded: false)
        case (true, true, true): loop(centered: true, weighted: true, bounded: true)
        }
    }

    /// The vector loop; called with constant flags so that each variant compiles to its own loop.
    @inline(__always)
    private func loop(centered: Bool, weighted: Bool, bounded: Bool) -> GradientBlockSums {
        let mean = statistics.mean, meanError = statistics.meanError, rstd = statistics.rstd
        var sumG = FloatVector(), sumGHat = FloatVector(), sumGSquared = FloatVector()
        @inline(__always)
        func step(_ index: Int, _ lanes: Int) {
            var hat = Float32Codec.load(x, at: index, lanes: lanes)
            if centered { hat = (hat - mean) - meanError }
            hat *= rstd
            let d = Float32Codec.load(dy, at: index, lanes: lanes)
            let g = weighted ? d * Float32Codec.load(weight!, at: index, lanes: lanes) : d
            if centered { sumG += g }
            if bounded { sumGSquared += g * g }
            sumGHat += g * hat
        }
        forEachVector(count, step)
        return GradientBlockSums(sumG: sumG.sum(), sumGHat: sumGHat.sum(), sumGSquared: sumGSquared.sum())
    }
}

/// The sums of ``GradientSumsKernel`` over one block.
struct GradientBlockSums {
    var sumG: Float
    var sumGHat: Float
    var sumGSquared: Float
}

/// dx = rstd · (g − mean(g) − ŝ · mean(g·ŝ)) (+ residual gradient) over a block, rounded to dx's dtype,
/// with ŝ = (x − mean − meanError) · rstd and g = dy · w; also adds dy·ŝ to `weightGradient` (present
/// exactly when a weight is) and dy to `biasGradient` when given.
///
/// The mean and `meanG` are used only when `centered` (LayerNorm); w = 1 without a weight.
struct InputGradientKernel: CodecVisitor {
    var x: UnsafePointer<Float>
    var dy: UnsafePointer<Float>
    var count: Int
    var centered: Bool
    var statistics: NormStatistics
    var meanG: Float
    var meanGHat: Float
    var weight: UnsafePointer<Float>?
    var residualGradient: UnsafePointer<Float>?
    /// Partial dweight row (fp32), updated in place.
    var weightGradient: UnsafeMutablePointer<Float>?
    /// Partial dbias row (fp32), updated in place.
    var biasGradient: UnsafeMutablePointer<Float>?
    /// Whether dx is known to hold no NaN (see ``BackwardPass``), which makes 16-bit stores cheaper.
    var nanFree: Bool
    var output: UnsafeMutableRawPointer

    /// Writes the block in `dtype`.
    func run(as dtype: DType) { dtype.withCodec(self) }

    // The flags are turned into constants one at a time, so that each combination compiles to its own loop.

    func visit<Output: ElementCodec>(_ codec: Output.Type) {
        switch (centered, weight != nil) {
        case (false, false): gradients(codec, centered: false, weighted: false)
        case (false, true): gradients(codec, centered: false, weighted: true)
        case (true, false): gradients(codec, centered: true, weighted: false)
        case (true, true): gradients(codec, centered: true, weighted: true)
        }
    }

    @inline(__always)
    private func gradients<Output: ElementCodec>(_ codec: Output.Type, centered: Bool, weighted: Bool) {
        switch (biasGradient != nil, residualGradient != nil, nanFree) {
        case (false, false, false): loop(codec, centered, weighted, biased: false, residual: false, nanFree: false)
        case (false, false, true): loop(codec, centered, weighted, biased: false, residual: false, nanFree: true)
        case (false, true, _): loop(codec, centered, weighted, biased: false, residual: true, nanFree: false)
        case (true, false, false): loop(codec, centered, weighted, biased: true, residual: false, nanFree: false)
        case (true, false, true): loop(codec, centered, weighted, biased: true, residual: false, nanFree: true)
        case (true, true, _): loop(codec, centered, weighted, biased: true, residual: true, nanFree: false)
        }
    }

    @inline(__always)
    private func loop<Output: ElementCodec>(
        _: Output.Type, _ centered: Bool, _ weighted: Bool, biased: Bool, residual: Bool, nanFree: Bool
    ) {
        let mean = statistics.mean, meanError = statistics.meanError, rstd = statistics.rstd
        @inline(__always)
        func step(_ index: Int, _ lanes: Int) {
            var hat = Float32Codec.load(x, at: index, lanes: lanes)
            if centered { hat = (hat - mean) - meanError }
            hat *= rstd
            let d = Float32Codec.load(dy, at: index, lanes: lanes)
            var g = d
            if weighted {
                g *= Float32Codec.load(weight!, at: index, lanes: lanes)
                let partial = Float32Codec.load(weightGradient!, at: index, lanes: lanes)
                Float32Codec.store(partial + d * hat, to: weightGradient!, at: index, lanes: lanes)
            }
            if biased {
                let partial = Float32Codec.load(biasGradient!, at: index, lanes: lanes)
                Float32Codec.store(partial + d, to: biasGradient!, at: index, lanes: lanes)
            }
            if centered { g -= meanG }
            var dx = (g - hat * meanGHat) * rstd
            if residual { dx += Float32Codec.load(residualGradient!, at: index, lanes: lanes) }
            Output.store(dx, to: output, at: index, lanes: lanes, nanFree: nanFree)
        }
        forEachVector(count, step)
    }
}
