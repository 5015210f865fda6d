import FusedNorm

/// Plain float64 implementations of every FusedNorm operation: the yardstick for tests and
/// `fusednorm check`. Inputs are the values the kernels see (already rounded to their dtype);
/// rows are packed (`rows * columns` values); a weight has `weightRows` rows (1, or H per head),
/// row `i` using weight row `i % weightRows`. Written for clarity, not speed.
public enum Reference {
    /// The results of a forward pass.
    public struct Forward: Sendable {
        public var output: [Double]
        /// s = x + residual rounded to its dtype, when a residual was given.
        public var residual: [Double]?
        public var mean: [Double]
        public var rstd: [Double]
    }

    /// The results of a backward pass.
    public struct Backward: Sendable {
        public var input: [Double]
        public var weight: [Double]?
        public var bias: [Double]?
    }

    /// The row that is normalized: x, or x + residual rounded to `residualDType` (as the kernels store it).
    static func normalizedInput(_ x: [Float], _ residual: [Float]?, residualDType: DType?) -> [Double] {
        guard let residual else { return x.map(Double.init) }
        let dtype = residualDType ?? .float32
        return zip(x, residual).map { Double(dtype.round(Float(Double($0) + Double($1)))) }
    }

    /// Mean and 1/sqrt(mean square of (s − mean) + ε) of one row; mean is 0 for RMSNorm.
    static func statistics(_ row: ArraySlice<Double>, centered: Bool, epsilon: Float) -> (mean: Double, rstd: Double) {
        let n = Double(row.count)
        let mean = centered ? row.reduce(0, +) / n : 0
        let meanSquare = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / n
        return (mean, 1 / (meanSquare + Double(epsilon)).squareRoot())
    }

    /// RMSNorm forward: y = ŝ · (w + style.weightOffset), with ŝ rounded to `roundingDType` first under
    /// ``FusedNorm/RMSNormStyle/Rounding/twice`` (the kernel's final rounding to the output dtype is left
    /// out: that is the error being measured).
    /// - Parameters:
    ///   - roundingDType: the dtype of the normalized input (x's, or s's with a residual).
    public static func rmsNorm(
        x: [Float], residual: [Float]? = nil, weight: [Float]?, rows: Int, columns: Int, weightRows: Int = 1,
        epsilon: Float, style: RMSNormStyle = .standard, roundingDType: DType = .float32,
        residualDType: DType? = nil
    ) -> Forward {
        forward(
            centered: false, x: x, residual: residual, weight: weight, bias: nil, rows: rows, columns: columns,
            weightRows: weightRows, epsilon: epsilon, weightOffset: style.weightOffset,
            roundHat: style.rounding == .twice ? roundingDType : nil, residualDType: residualDType)
    }

    /// LayerNorm forward: y = ŝ · w + b.
    public static func layerNorm(
        x: [Float], residual: [Float]? = nil, weight: [Float]?, bias: [Float]?, rows: Int, columns: Int,
        weightRows: Int = 1, epsilon: Float, residualDType: DType? = nil
    ) -> Forward {
        forward(
            centered: true, x: x, residual: residual, weight: weight, bias: bias, rows: rows, columns: columns,
            weightRows: weightRows, epsilon: epsilon, weightOffset: 0, roundHat: nil, residualDType: residualDType)
    }

    static func forward(
        centered: Bool, x: [Float], residual: [Float]?, weight: [Float]?, bias: [Float]?, rows: Int, columns: Int,
        weightRows: Int, epsilon: Float, weightOffset: Float, roundHat: DType?, residualDType: DType?
    ) -> Forward {
        let s = normalizedInput(x, residual, residualDType: residualDType)
        var output = [Double](repeating: 0, count: rows * columns)
        var means = [Double](repeating: 0, count: rows), rstds = means
        for row in 0..<rows {
            let base = row * columns, weightBase = (row % weightRows) * columns
            let (mean, rstd) = statistics(s[base..<base + columns], centered: centered, epsilon: epsilon)
            means[row] = mean
            rstds[row] = rstd
            for column in 0..<columns {
                var hat = (s[base + column] - mean) * rstd
                if let roundHat { hat = Double(roundHat.round(Float(hat))) }
                let w = weight.map { Double($0[weightBase + column]) + Double(weightOffset) } ?? 1
                let b = bias.map { Double($0[weightBase + column]) } ?? 0
                output[base + column] = hat * w + b
            }
        }
        return Forward(output: output, residual: residual == nil ? nil : s, mean: means, rstd: rstds)
    }

    /// RMSNorm backward from x (statistics recomputed in float64).
    public static func rmsNormBackward(
        outputGradient dy: [Float], x: [Float], weight: [Float]?, rows: Int, columns: Int, weightRows: Int = 1,
        epsilon: Float, style: RMSNormStyle = .standard, residualGradient: [Float]? = nil
    ) -> Backward {
        backward(
            centered: false, dy: dy, x: x, weight: weight, hasBias: false, rows: rows, columns: columns,
            weightRows: weightRows, epsilon: epsilon, weightOffset: style.weightOffset,
            residualGradient: residualGradient)
    }

    /// LayerNorm backward from x (statistics recomputed in float64).
    public static func layerNormBackward(
        outputGradient dy: [Float], x: [Float], weight: [Float]?, hasBias: Bool, rows: Int, columns: Int,
        weightRows: Int = 1, epsilon: Float, residualGradient: [Float]? = nil
    ) -> Backward {
        backward(
            centered: true, dy: dy, x: x, weight: weight, hasBias: hasBias, rows: rows, columns: columns,
            weightRows: weightRows, epsilon: epsilon, weightOffset: 0, residualGradient: residualGradient)
    }

    static func backward(
        centered: Bool, dy: [Float], x: [Float], weight: [Float]?, hasBias: Bool, rows: Int, columns: Int,
        weightRows: Int, epsilon: Float, weightOffset: Float, residualGradient: [Float]?
    ) -> Backward {
        let s = x.map(Double.init)
        var dx = [Double](repeating: 0, count: rows * columns)
        var dweight = [Double](repeating: 0, count: weightRows * columns), dbias = dweight
        let n = Double(columns)
        for row in 0..<rows {
            let base = row * columns, weightBase = (row % weightRows) * columns
            let (mean, rstd) = statistics(s[base..<base + columns], centered: centered, epsilon: epsilon)
            var sumG = 0.0, sumGHat = 0.0
            for column in 0..<columns {
                let hat = (s[base + column] - mean) * rstd
                let g =
                    Double(dy[base + column])
                    * (weight.map { Double($0[weightBase + column]) + Double(weightOffset) } ?? 1)
                sumG += g
                sumGHat += g * hat
                dweight[weightBase + column] += Double(dy[base + column]) * hat
                dbias[weightBase + column] += Double(dy[base + column])
            }
            let meanG = centered ? sumG / n : 0, meanGHat = sumGHat / n
            for column in 0..<columns {
                let hat = (s[base + column] - mean) * rstd
                let g =
                    Double(dy[base + column])
                    * (weight.map { Double($0[weightBase + column]) + Double(weightOffset) } ?? 1)
                dx[base + column] =
                    rstd * (g - meanG - hat * meanGHat) + (residualGradient.map { Double($0[base + column]) } ?? 0)
            }
        }
        return Backward(input: dx, weight: weight == nil ? nil : dweight, bias: hasBias ? dbias : nil)
    }

    /// ‖out − ref‖ / ‖ref‖ over the finite reference values (0 when ref is all zero and out matches).
    /// Non-finite reference values must be matched exactly (NaN by NaN, ±Inf by the same Inf); any
    /// mismatch there, or a NaN in `out` where the reference is finite, gives +infinity.
    public static func relativeError(_ out: [Float], _ ref: [Double]) -> Double {
        precondition(out.count == ref.count, "relativeError: \(out.count) values against \(ref.count)")
        var difference = 0.0, norm = 0.0
        for (o, r) in zip(out, ref) {
            if !r.isFinite {
                let matches = r.isNaN ? o.isNaN : Double(o) == r
                if !matches { return .infinity }
                continue
            }
            guard o.isFinite else { return .infinity }
            difference += (Double(o) - r) * (Double(o) - r)
            norm += r * r
        }
        if norm == 0 { return difference == 0 ? 0 : .infinity }
        return (difference / norm).squareRoot()
    }

    /// The tolerance on ``relativeError(_:_:)`` for outputs stored in `dtype`
    /// (float32 1e-5, float16 1e-3, bfloat16 8e-3; 1.5 times that when y is rounded twice).
    public static func tolerance(_ dtype: DType, rounding: RMSNormStyle.Rounding = .once) -> Double {
        let base: Double =
            switch dtype {
            case .float32: 1e-5
            case .float16: 1e-3
            case .bfloat16: 8e-3
            }
        return rounding == .twice ? base * 1.5 : base
    }
}
