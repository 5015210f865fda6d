/// The row reductions of the backward pass over a block, with ŝ = (x − mean − meanError) · rstd and
/// g = dy · w: Σ g (only when `centered`: LayerNorm) and Σ g·ŝ.
///
/// The mean is used only when `centered`; w = 1 without a weight.
struct GradientSumsKernel {
    var x: UnsafePointer<Float>
    var dy: UnsafePointer<Float>
    var count: Int
    var centered: Bool
    var statistics: NormStatistics
    var weight: UnsafePointer<Float>?

    /// Runs the block; Σ g is 0 when not centered.
    func run() -> GradientBlockSums {
        switch (centered, weight != nil) {
        case (false, false): loop(centered: false, weighted: false)
        case (false, true): loop(centered: false, weighted: true)
        case (true, false): loop(centered: true, weighted: false)
        case (true, true): loop(centered: true, weighted: true)
        }
    }

    /// The vector loop; called with constant flags so that each variant compiles to its own loop.
    @inline(__always)
    private func loop(centered: Bool, weighted: Bool) -> GradientBlockSums {
        let mean = statistics.mean, meanError = statistics.meanError, rstd = statistics.rstd
        var sumG = FloatVector(), sumGHat = FloatVector()
        @inline(__always)
        func step(_ index: Int, _ lanes: Int) {
            var hat = Float32Codec.load(x, at: index, lanes: lanes)
            if centered { hat = (hat - mean) - meanError }
            hat *= rstd
            let d = Float32Codec.load(dy, at: index, lanes: lanes)
            let g = weighted ? d * Float32Codec.load(weight!, at: index, lanes: lanes) : d
            if centered { sumG += g }
            sumGHat += g * hat
        }
        forEachVector(count, step)
        return GradientBlockSums(sumG: sumG.sum(), sumGHat: sumGHat.sum())
    }
}

/// The sums of ``GradientSumsKernel`` over one block.
struct GradientBlockSums {
    var sumG: Float
    var sumGHat: Float
}

/// dx = rstd · (g − mean(g) − ŝ · mean(g·ŝ)) (+ residual gradient) over a block, written as Floats,
/// with ŝ = (x − mean − meanError) · rstd and g = dy · w; also adds dy·ŝ to `weightGradient` (present
/// exactly when a weight is) and dy to `biasGradient` when given.
///
/// The mean and `meanG` are used only when `centered` (LayerNorm); w = 1 without a weight.
struct InputGradientKernel {
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
    var output: UnsafeMutablePointer<Float>

    // The flags are turned into constants one at a time, so that each combination compiles to its own loop.

    /// Writes the block.
    func run() {
        switch (centered, weight != nil) {
        case (false, false): gradients(centered: false, weighted: false)
        case (false, true): gradients(centered: false, weighted: true)
        case (true, false): gradients(centered: true, weighted: false)
        case (true, true): gradients(centered: true, weighted: true)
        }
    }

    @inline(__always)
    private func gradients(centered: Bool, weighted: Bool) {
        switch (biasGradient != nil, residualGradient != nil) {
        case (false, false): loop(centered, weighted, biased: false, residual: false)
        case (false, true): loop(centered, weighted, biased: false, residual: true)
        case (true, false): loop(centered, weighted, biased: true, residual: false)
        case (true, true): loop(centered, weighted, biased: true, residual: true)
        }
    }

    @inline(__always)
    private func loop(_ centered: Bool, _ weighted: Bool, biased: Bool, residual: Bool) {
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
            Float32Codec.store(dx, to: output, at: index, lanes: lanes)
        }
        forEachVector(count, step)
    }
}
