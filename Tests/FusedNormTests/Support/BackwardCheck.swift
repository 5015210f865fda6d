import FusedNorm
import FusedNormReference
import Testing

/// One backward problem. The gradient is checked against `Reference.rmsNormBackward`/`layerNormBackward`,
/// which the finite-difference tests check in turn.
struct BackwardCase: Sendable, CustomTestStringConvertible {
    var norm: Norm
    var shape: [Int]
    /// The dtype of the normalized input (x, or s when a residual was fused).
    var x: DType
    /// dy's dtype; nil for x's.
    var dy: DType? = nil
    var weight: DType? = .float32
    /// LayerNorm: the bias's dtype (sets dbias's dtype); nil for no bias.
    var bias: DType? = nil
    var perHead = false
    var weightOffset: Float = 0
    /// Pass the rstd (and mean) saved by the forward pass instead of letting the backward recompute them.
    var savedStatistics = false
    /// The dtype of the gradient reaching a fused residual's output s; nil for none.
    var residualGradient: DType? = nil
    /// The dtype of a preallocated, NaN-poisoned `inputGradient:`; nil to let the library allocate dx.
    var inputGradient: DType? = nil
    var xLayout: Layout = .contiguous
    var dyLayout: Layout = .contiguous
    var residualGradientLayout: Layout = .contiguous
    var inputGradientLayout: Layout = .contiguous
    var epsilon: Float = 1e-5
    /// Added to x's values (a mean large against the spread: LayerNorm's exact centering).
    var xOffset: Float = 0

    var columns: Int { shape[shape.count - 1] }
    var rows: Int { shape.dropLast().reduce(1, *) }
    var parameterShape: [Int] { perHead ? Array(shape.suffix(2)) : [columns] }
    var weightRows: Int { perHead ? shape[shape.count - 2] : 1 }
    var dxDType: DType { inputGradient ?? x }

    var testDescription: String {
        var parts = ["\(norm) \(shape) x:\(x) dy:\(dy.map(\.description) ?? "x's")"]
        parts.append("w:\(weight.map(\.description) ?? "none")\(perHead ? "(per-head)" : "")")
        if let bias { parts.append("b:\(bias)") }
        if norm == .rms { parts.append("offset:\(weightOffset)") }
        parts.append(savedStatistics ? "saved-stats" : "recomputed-stats")
        if let residualGradient { parts.append("ds:\(residualGradient)") }
        if let inputGradient { parts.append("dx:\(inputGradient)") }
        let layouts = [("x", xLayout), ("dy", dyLayout), ("ds", residualGradientLayout), ("dx", inputGradientLayout)]
            .filter { $0.1 != .contiguous }.map { "\($0.0)@\($0.1)" }
        parts += layouts
        if epsilon != 1e-5 { parts.append("eps:\(epsilon)") }
        if xOffset != 0 { parts.append("x+\(xOffset)") }
        return parts.joined(separator: " ")
    }
}

struct BackwardInputs {
    let x: Input
    let dy: Input
    let weight: Input?
    let bias: Input?
    let residualGradient: Input?

    init(_ c: BackwardCase, device: Device) throws {
        var rng = SplitMix64(label: c.testDescription)
        let count = c.rows * c.columns
        x = try Input(
            (c.norm == .layer ? rng.values(count, -1.5, 2.5) : rng.values(count)).map { $0 + c.xOffset },
            shape: c.shape, dtype: c.x, layout: c.xLayout, device: device)
        dy = try Input(rng.values(count, -1, 1), shape: c.shape, dtype: c.dy ?? c.x, layout: c.dyLayout, device: device)
        let parameterCount = c.parameterShape.reduce(1, *)
        let weightValues =
            c.weightOffset == 0 ? rng.values(parameterCount, 0.5, 1.5) : rng.values(parameterCount, -0.5, 0.5)
        weight = try c.weight.map { try Input(weightValues, shape: c.parameterShape, dtype: $0, device: device) }
        bias = try c.bias.map {
            try Input(rng.values(parameterCount, -0.5, 0.5), shape: c.parameterShape, dtype: $0, device: device)
        }
        residualGradient = try c.residualGradient.map {
            try Input(
                rng.values(count, -1, 1), shape: c.shape, dtype: $0, layout: c.residualGradientLayout, device: device)
        }
    }

    func reference(_ c: BackwardCase) -> Reference.Backward {
        switch c.norm {
        case .rms:
            Reference.rmsNormBackward(
                outputGradient: dy.values, x: x.values, weight: weight?.values, rows: c.rows, columns: c.columns,
                weightRows: c.weightRows, epsilon: c.epsilon, style: RMSNormStyle(weightOffset: c.weightOffset),
                residualGradient: residualGradient?.values)
        case .layer:
            Reference.layerNormBackward(
                outputGradient: dy.values, x: x.values, weight: weight?.values, hasBias: bias != nil, rows: c.rows,
                columns: c.columns, weightRows: c.weightRows, epsilon: c.epsilon,
                residualGradient: residualGradient?.values)
        }
    }

    /// Runs the library's backward pass (and, for saved statistics, its forward pass first).
    func run(_ c: BackwardCase, inputGradient: Tensor?) throws -> NormGradients {
        switch c.norm {
        case .rms:
            let rstd =
                c.savedStatistics
                ? try rmsNormForward(
                    x.tensor, weight: weight?.tensor, epsilon: c.epsilon,
                    style: RMSNormStyle(weightOffset: c.weightOffset)
                ).rstd
                : nil
            return try rmsNormBackward(
                dy.tensor, input: x.tensor, weight: weight?.tensor, rstd: rstd,
                residualGradient: residualGradient?.tensor,
                epsilon: c.epsilon, style: RMSNormStyle(weightOffset: c.weightOffset), inputGradient: inputGradient)
        case .layer:
            let statistics =
                c.savedStatistics
                ? try layerNormForward(x.tensor, weight: weight?.tensor, bias: bias?.tensor, epsilon: c.epsilon)
                : nil
            return try layerNormBackward(
                dy.tensor, input: x.tensor, weight: weight?.tensor, bias: bias?.tensor, mean: statistics?.mean,
                rstd: statistics?.rstd, residualGradient: residualGradient?.tensor, epsilon: c.epsilon,
                inputGradient: inputGradient)
        }
    }
}

/// Runs one backward case on `device` and checks dx, dweight and dbias against the float64 reference.
func checkBackward(_ c: BackwardCase, on device: Device, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let inputs = try BackwardInputs(c, device: device)
    let reference = inputs.reference(c)
    let label = "\(c.testDescription) on \(device)"
    let poisoned = try c.inputGradient.map {
        try PoisonedOutput(shape: c.shape, dtype: $0, layout: c.inputGradientLayout, device: device)
    }
    let gradients = try inputs.run(c, inputGradient: poisoned?.tensor)

    #expect(
        gradients.input.shape == c.shape && gradients.input.dtype == c.dxDType,
        "\(label): dx is \(gradients.input), expected dtype \(c.dxDType)", sourceLocation: sourceLocation)
    let dx = try gradients.input.toArray()
    let dxError = Reference.relativeError(dx, reference.input)
    #expect(
        dxError <= Reference.tolerance(c.dxDType), "\(label): dx relative error \(dxError)",
        sourceLocation: sourceLocation)
    if let poisoned {
        #expect(
            try differingBits(poisoned.tensor.toArray(), dx) == 0, "\(label): dx was not written into inputGradient",
            sourceLocation: sourceLocation)
        try poisoned.expectUntouchedOutside("\(label): dx", sourceLocation: sourceLocation)
    }

    if let weightDType = c.weight {
        let dweight = try #require(gradients.weight, "\(label): no dweight", sourceLocation: sourceLocation)
        #expect(
            dweight.shape == c.parameterShape && dweight.dtype == weightDType,
            "\(label): dweight is \(dweight), expected \(c.parameterShape) \(weightDType)",
            sourceLocation: sourceLocation)
        let error = Reference.relativeError(try dweight.toArray(), reference.weight!)
        #expect(
            error <= Reference.tolerance(weightDType), "\(label): dweight relative error \(error)",
            sourceLocation: sourceLocation)
    } else {
        #expect(gradients.weight == nil, "\(label): dweight without a weight", sourceLocation: sourceLocation)
    }
    if let biasDType = c.bias {
        let dbias = try #require(gradients.bias, "\(label): no dbias", sourceLocation: sourceLocation)
        #expect(
            dbias.shape == c.parameterShape && dbias.dtype == biasDType,
            "\(label): dbias is \(dbias), expected \(c.parameterShape) \(biasDType)", sourceLocation: sourceLocation)
        let error = Reference.relativeError(try dbias.toArray(), reference.bias!)
        #expect(
            error <= Reference.tolerance(biasDType), "\(label): dbias relative error \(error)",
            sourceLocation: sourceLocation)
    } else {
        #expect(gradients.bias == nil, "\(label): dbias without a bias", sourceLocation: sourceLocation)
    }
}
