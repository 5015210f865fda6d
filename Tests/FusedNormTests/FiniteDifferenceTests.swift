import FusedNorm
import FusedNormReference
import Testing

/// A float64 forward pass written independently of `Reference`, for the scalar loss L = Σ dy·y (+ Σ ds·s).
struct Loss64 {
    var norm: Norm
    var rows: Int
    var columns: Int
    var weightRows: Int
    var epsilon: Double
    var weightOffset: Double
    var dy: [Double]
    /// The gradient reaching the input from elsewhere (a fused residual's output used downstream).
    var ds: [Double]?

    func callAsFunction(x: [Double], weight: [Double]?, bias: [Double]?) -> Double {
        var loss = 0.0
        for r in 0..<rows {
            let xs = x[r * columns..<(r + 1) * columns]
            let mean = norm == .layer ? xs.reduce(0, +) / Double(columns) : 0
            let variance = xs.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(columns)
            let scale = 1 / (variance + epsilon).squareRoot()
            let h = (r % weightRows) * columns
            for c in 0..<columns {
                let w = weight.map { $0[h + c] + weightOffset } ?? 1
                let y = (x[r * columns + c] - mean) * scale * w + (bias?[h + c] ?? 0)
                loss += dy[r * columns + c] * y
                if let ds { loss += ds[r * columns + c] * x[r * columns + c] }
            }
        }
        return loss
    }

    /// Central differences of the loss in each component of `values` (the others held), step `h`.
    func gradient(of values: [Double], step h: Double, _ loss: ([Double]) -> Double) -> [Double] {
        (0..<values.count).map { i in
            var plus = values, minus = values
            plus[i] += h
            minus[i] -= h
            return (loss(plus) - loss(minus)) / (2 * h)
        }
    }
}

struct GradientCase: Sendable, CustomTestStringConvertible {
    var norm: Norm
    var rows: Int
    var columns: Int
    var weight = true
    var bias = false
    var heads = 1
    var weightOffset: Float = 0
    var residualGradient = false
    var epsilon: Float = 1e-5

    var testDescription: String {
        "\(norm) \(rows)×\(columns) w:\(weight) b:\(bias) heads:\(heads) offset:\(weightOffset) ds:\(residualGradient) eps:\(epsilon)"
    }

    static let all: [GradientCase] = [
        GradientCase(norm: .rms, rows: 3, columns: 1, epsilon: 0.01),
        GradientCase(norm: .rms, rows: 2, columns: 2),
        GradientCase(norm: .rms, rows: 3, columns: 7, weightOffset: 1),
        GradientCase(norm: .rms, rows: 2, columns: 16, weight: false),
        GradientCase(norm: .rms, rows: 4, columns: 5, heads: 2, residualGradient: true),
        GradientCase(norm: .rms, rows: 2, columns: 33, epsilon: 0.5),
        GradientCase(norm: .layer, rows: 3, columns: 1, bias: true),
        GradientCase(norm: .layer, rows: 2, columns: 3, bias: true),
        GradientCase(norm: .layer, rows: 3, columns: 8, weight: false, bias: true),
        GradientCase(norm: .layer, rows: 4, columns: 6, bias: true, heads: 2, residualGradient: true),
        GradientCase(norm: .layer, rows: 2, columns: 33, epsilon: 0.5),
    ]
}

/// The inputs of one gradient case, as Floats (what the library and the reference take).
struct GradientInputs {
    var x: [Float], dy: [Float], weight: [Float]?, bias: [Float]?, ds: [Float]?

    init(_ c: GradientCase) {
        var rng = SplitMix64(label: c.testDescription)
        x = rng.values(c.rows * c.columns, -2, 2).map { c.norm == .layer ? $0 + 0.5 : $0 }
        dy = rng.values(c.rows * c.columns, -1, 1)
        let count = c.heads * c.columns
        weight = c.weight ? rng.values(count, c.weightOffset == 0 ? 0.5 : -0.5, c.weightOffset == 0 ? 1.5 : 0.5) : nil
        bias = c.bias ? rng.values(count, -0.5, 0.5) : nil
        ds = c.residualGradient ? rng.values(c.rows * c.columns, -1, 1) : nil
    }

    func loss(_ c: GradientCase) -> Loss64 {
        Loss64(
            norm: c.norm, rows: c.rows, columns: c.columns, weightRows: c.heads, epsilon: Double(c.epsilon),
            weightOffset: Double(c.weightOffset), dy: doubles(dy), ds: ds.map(doubles))
    }

    /// dL/dx, dL/dw, dL/db by central differences in float64.
    func finiteDifferences(_ c: GradientCase, step: Double = 1e-5) -> (x: [Double], weight: [Double]?, bias: [Double]?)
    {
        let loss = loss(c)
        let x64 = doubles(x), w64 = weight.map(doubles), b64 = bias.map(doubles)
        let dx = loss.gradient(of: x64, step: step) { loss(x: $0, weight: w64, bias: b64) }
        let dw = w64.map { w in loss.gradient(of: w, step: step) { loss(x: x64, weight: $0, bias: b64) } }
        let db = b64.map { b in loss.gradient(of: b, step: step) { loss(x: x64, weight: w64, bias: $0) } }
        return (dx, dw, db)
    }
}

/// ‖a − b‖ / ‖b‖, with an absolute floor for round-off: central differences of a loss of size |L| carry an
/// error of about 1e-16·|L|/h per component.
func gradientError(_ a: [Double], _ b: [Double]) -> Double {
    let difference = zip(a, b).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot()
    let norm = b.reduce(0) { $0 + $1 * $1 }.squareRoot()
    return difference / max(norm, 1e-6)
}

@Suite("Gradients against central finite differences")
struct FiniteDifferenceTests {
    @Test(
        "The float64 reference backward matches finite differences of the float64 forward", arguments: GradientCase.all)
    func referenceBackward(_ c: GradientCase) throws {
        let inputs = GradientInputs(c)
        let fd = inputs.finiteDifferences(c)
        let reference =
            switch c.norm {
            case .rms:
                Reference.rmsNormBackward(
                    outputGradient: inputs.dy, x: inputs.x, weight: inputs.weight, rows: c.rows, columns: c.columns,
                    weightRows: c.heads, epsilon: c.epsilon, style: RMSNormStyle(weightOffset: c.weightOffset),
                    residualGradient: inputs.ds)
            case .layer:
                Reference.layerNormBackward(
                    outputGradient: inputs.dy, x: inputs.x, weight: inputs.weight, hasBias: c.bias, rows: c.rows,
                    columns: c.columns, weightRows: c.heads, epsilon: c.epsilon, residualGradient: inputs.ds)
            }
        let dxError = gradientError(reference.input, fd.x)
        #expect(dxError <= 1e-7, "\(c): reference dx vs finite differences: \(dxError)")
        if let fdWeight = fd.weight {
            let error = gradientError(try #require(reference.weight, "\(c): no reference dweight"), fdWeight)
            #expect(error <= 1e-7, "\(c): reference dweight vs finite differences: \(error)")
        }
        if let fdBias = fd.bias {
            let error = gradientError(try #require(reference.bias, "\(c): no reference dbias"), fdBias)
            #expect(error <= 1e-7, "\(c): reference dbias vs finite differences: \(error)")
        }
        // The forward the loss is built from must agree with the reference forward, or both could be wrong together.
        let forward =
            switch c.norm {
            case .rms:
                Reference.rmsNorm(
                    x: inputs.x, weight: inputs.weight, rows: c.rows, columns: c.columns, weightRows: c.heads,
                    epsilon: c.epsilon, style: RMSNormStyle(weightOffset: c.weightOffset))
            case .layer:
                Reference.layerNorm(
                    x: inputs.x, weight: inputs.weight, bias: inputs.bias, rows: c.rows, columns: c.columns,
                    weightRows: c.heads, epsilon: c.epsilon)
            }
        var loss = inputs.loss(c)
        loss.ds = nil
        let expected = zip(inputs.dy, forward.output).reduce(0) { $0 + Double($1.0) * $1.1 }
        let actual = loss(x: doubles(inputs.x), weight: inputs.weight.map(doubles), bias: inputs.bias.map(doubles))
        #expect(
            abs(actual - expected) <= 1e-12 * max(1, abs(expected)),
            "\(c): loss \(actual) vs Σ dy·y of the reference \(expected)")
    }

    @Test("The library's float32 backward matches finite differences", arguments: GradientCase.all)
    func libraryBackwardCPU(_ c: GradientCase) throws { try checkLibrary(c, on: .cpu) }

    @Test(
        "The library's float32 backward matches finite differences (CUDA)", .requiresCUDA, arguments: GradientCase.all)
    func libraryBackwardCUDA(_ c: GradientCase) throws { try checkLibrary(c, on: .cuda(0)) }

    func checkLibrary(_ c: GradientCase, on device: Device) throws {
        let inputs = GradientInputs(c)
        let fd = inputs.finiteDifferences(c)
        let shape = c.heads > 1 ? [c.rows / c.heads, c.heads, c.columns] : [c.rows, c.columns]
        let parameterShape = c.heads > 1 ? [c.heads, c.columns] : [c.columns]
        let x = try Tensor(inputs.x, shape: shape, device: device),
            dy = try Tensor(inputs.dy, shape: shape, device: device)
        let weight = try inputs.weight.map { try Tensor($0, shape: parameterShape, device: device) }
        let bias = try inputs.bias.map { try Tensor($0, shape: parameterShape, device: device) }
        let ds = try inputs.ds.map { try Tensor($0, shape: shape, device: device) }
        let gradients =
            switch c.norm {
            case .rms:
                try rmsNormBackward(
                    dy, input: x, weight: weight, residualGradient: ds, epsilon: c.epsilon,
                    style: RMSNormStyle(weightOffset: c.weightOffset))
            case .layer:
                try layerNormBackward(
                    dy, input: x, weight: weight, bias: bias, residualGradient: ds, epsilon: c.epsilon)
            }
        let label = "\(c) on \(device)"
        // Loose: fp32 arithmetic against float64 differences.
        let tolerance = 1e-3
        let dxError = gradientError(doubles(try gradients.input.toArray()), fd.x)
        #expect(dxError <= tolerance, "\(label): dx vs finite differences: \(dxError)")
        if let fdWeight = fd.weight {
            let dweight = try #require(gradients.weight, "\(label): no dweight")
            let error = gradientError(doubles(try dweight.toArray()), fdWeight)
            #expect(error <= tolerance, "\(label): dweight vs finite differences: \(error)")
        }
        if let fdBias = fd.bias {
            let dbias = try #require(gradients.bias, "\(label): no dbias")
            let error = gradientError(doubles(try dbias.toArray()), fdBias)
            #expect(error <= tolerance, "\(label): dbias vs finite differences: \(error)")
        }
    }
}
