import FusedNorm
import FusedNormReference
import Testing

/// Which normalization a case computes.
enum Norm: String, Sendable, CustomStringConvertible {
    case rms, layer
    var description: String { rawValue }
}

/// Which entry point a forward case calls.
enum ForwardAPI: String, Sendable {
    /// `rmsNormForward` / `layerNormForward` with preallocated, NaN-poisoned outputs (in the case's layouts).
    case training
    /// `rmsNorm` / `layerNorm` (plain or with `residual:`), which allocate their outputs.
    case plain
}

/// One forward problem: shapes, dtypes, options and memory layouts. Inputs are random (seeded from the
/// description) and rounded to their dtypes; the float64 reference gets the rounded values.
struct ForwardCase: Sendable, CustomTestStringConvertible {
    var norm: Norm
    /// x's shape, (..., N).
    var shape: [Int]
    var x: DType
    /// The weight's dtype; nil for no weight.
    var weight: DType? = .float32
    /// The bias's dtype (LayerNorm); nil for no bias.
    var bias: DType? = nil
    /// Weight and bias of shape (H, D) for x of shape (..., H, D).
    var perHead = false
    var weightOffset: Float = 0
    var rounding: RMSNormStyle.Rounding = .once
    /// The style the operations take: ``weightOffset`` and ``rounding``.
    var style: RMSNormStyle { RMSNormStyle(weightOffset: weightOffset, rounding: rounding) }
    /// The residual's dtype; nil for no fused residual.
    var residual: DType? = nil
    /// `residualDType:`; nil for the default (the residual's dtype).
    var residualDType: DType? = nil
    /// `outputDType:`; nil for the default (x's dtype).
    var output: DType? = nil
    var xLayout: Layout = .contiguous
    var residualLayout: Layout = .contiguous
    var weightLayout: Layout = .contiguous
    var outputLayout: Layout = .contiguous
    var residualOutputLayout: Layout = .contiguous
    var epsilon: Float = 1e-5
    /// Magnitude of x and the residual (values uniform in ±2·scale).
    var scale: Float = 1
    /// Added to x's values (a mean large against the spread).
    var xOffset: Float = 0
    var api: ForwardAPI = .training

    var columns: Int { shape[shape.count - 1] }
    var rows: Int { shape.dropLast().reduce(1, *) }
    var parameterShape: [Int] { perHead ? Array(shape.suffix(2)) : [columns] }
    var weightRows: Int { perHead ? shape[shape.count - 2] : 1 }
    var outputDType: DType { output ?? x }
    /// The dtype s is stored in, when a residual is fused.
    var sDType: DType? { residual.map { residualDType ?? $0 } }

    var testDescription: String {
        var parts = ["\(norm) \(shape) x:\(x)"]
        if let residual { parts.append("residual:\(residual)->\(residualDType.map(\.description) ?? "default")") }
        parts.append("w:\(weight.map(\.description) ?? "none")\(perHead ? "(per-head)" : "")")
        if let bias { parts.append("b:\(bias)") }
        if norm == .rms { parts.append("\(style)") }
        parts.append("out:\(output.map(\.description) ?? "default")")
        let layouts = [
            ("x", xLayout), ("res", residualLayout), ("w", weightLayout), ("y", outputLayout),
            ("s", residualOutputLayout),
        ]
        .filter { $0.1 != .contiguous }.map { "\($0.0)@\($0.1)" }
        parts += layouts
        if epsilon != 1e-5 { parts.append("eps:\(epsilon)") }
        if scale != 1 { parts.append("scale:\(scale)") }
        if xOffset != 0 { parts.append("x+\(xOffset)") }
        if api != .training { parts.append("api:\(api.rawValue)") }
        return parts.joined(separator: " ")
    }
}

/// Input values for a normalization: x and the residual around zero (LayerNorm's x shifted so that its
/// mean matters); weights near 1 (or near 0 when an offset of 1 is added, as Gemma stores them).
struct ForwardInputs {
    let x: Input
    let residual: Input?
    let weight: Input?
    let bias: Input?

    init(_ c: ForwardCase, device: Device) throws {
        var rng = SplitMix64(label: c.testDescription)
        let count = c.rows * c.columns
        let xValues = (c.norm == .layer ? rng.values(count, -1.5, 2.5) : rng.values(count)).map {
            $0 * c.scale + c.xOffset
        }
        x = try Input(xValues, shape: c.shape, dtype: c.x, layout: c.xLayout, device: device)
        residual = try c.residual.map {
            try Input(
                rng.values(count).map { $0 * c.scale }, shape: c.shape, dtype: $0, layout: c.residualLayout,
                device: device)
        }
        let parameterCount = c.parameterShape.reduce(1, *)
        let weightValues =
            c.weightOffset == 0 ? rng.values(parameterCount, 0.5, 1.5) : rng.values(parameterCount, -0.5, 0.5)
        weight = try c.weight.map {
            try Input(weightValues, shape: c.parameterShape, dtype: $0, layout: c.weightLayout, device: device)
        }
        bias = try c.bias.map {
            try Input(rng.values(parameterCount, -0.5, 0.5), shape: c.parameterShape, dtype: $0, device: device)
        }
    }

    func reference(_ c: ForwardCase) -> Reference.Forward {
        switch c.norm {
        case .rms:
            Reference.rmsNorm(
                x: x.values, residual: residual?.values, weight: weight?.values, rows: c.rows, columns: c.columns,
                weightRows: c.weightRows, epsilon: c.epsilon, style: c.style,
                roundingDType: c.sDType ?? c.x, residualDType: c.sDType)
        case .layer:
            Reference.layerNorm(
                x: x.values, residual: residual?.values, weight: weight?.values, bias: bias?.values, rows: c.rows,
                columns: c.columns, weightRows: c.weightRows, epsilon: c.epsilon, residualDType: c.sDType)
        }
    }
}

/// The tolerance for y: the output dtype's, and rounded twice at least that of the dtype ŝ is
/// rounded to (a float32 output cannot be more accurate than the bf16 rounding of ŝ inside it: where the
/// kernel's fp32 ŝ and the float64 ŝ fall on either side of a rounding boundary they differ by one ulp).
func outputTolerance(_ c: ForwardCase) -> Double {
    guard c.norm == .rms else { return Reference.tolerance(c.outputDType) }
    guard c.rounding == .twice else { return Reference.tolerance(c.outputDType, rounding: c.rounding) }
    return Reference.tolerance(coarser(c.outputDType, c.sDType ?? c.x), rounding: .twice)
}

/// The tolerance for per-row statistics, stored in fp32.
let statisticsTolerance = Reference.tolerance(.float32)

/// Runs one forward case on `device` and checks every output against the float64 reference.
func checkForward(_ c: ForwardCase, on device: Device, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let inputs = try ForwardInputs(c, device: device)
    let reference = inputs.reference(c)
    let label = "\(c.testDescription) on \(device)"

    let output: Tensor, residualOutput: Tensor?
    var mean: Tensor?, rstd: Tensor?
    var poisonedOutput: PoisonedOutput?, poisonedResidual: PoisonedOutput?
    switch c.api {
    case .training:
        poisonedOutput = try PoisonedOutput(
            shape: c.shape, dtype: c.outputDType, layout: c.outputLayout, device: device)
        poisonedResidual = try c.sDType.map {
            try PoisonedOutput(shape: c.shape, dtype: $0, layout: c.residualOutputLayout, device: device)
        }
        let result: NormForwardResult =
            switch c.norm {
            case .rms:
                try rmsNormForward(
                    inputs.x.tensor, residual: inputs.residual?.tensor, weight: inputs.weight?.tensor,
                    epsilon: c.epsilon,
                    style: c.style, outputDType: c.output, residualDType: c.residualDType,
                    output: poisonedOutput!.tensor, residualOutput: poisonedResidual?.tensor)
            case .layer:
                try layerNormForward(
                    inputs.x.tensor, residual: inputs.residual?.tensor, weight: inputs.weight?.tensor,
                    bias: inputs.bias?.tensor, epsilon: c.epsilon, outputDType: c.output,
                    residualDType: c.residualDType,
                    output: poisonedOutput!.tensor, residualOutput: poisonedResidual?.tensor)
            }
        output = result.output
        residualOutput = result.residual
        mean = result.mean
        rstd = result.rstd
        #expect(
            try differingBits(output.toArray(), poisonedOutput!.tensor.toArray()) == 0,
            "\(label): the returned output is not the preallocated tensor", sourceLocation: sourceLocation)
    case .plain:
        switch (c.norm, inputs.residual) {
        case (.rms, nil):
            output = try rmsNorm(
                inputs.x.tensor, weight: inputs.weight?.tensor, epsilon: c.epsilon, style: c.style,
                outputDType: c.output)
            residualOutput = nil
        case (.rms, let residual?):
            (output, residualOutput) = try rmsNorm(
                inputs.x.tensor, residual: residual.tensor, weight: inputs.weight?.tensor, epsilon: c.epsilon,
                style: c.style, outputDType: c.output, residualDType: c.residualDType)
        case (.layer, nil):
            output = try layerNorm(
                inputs.x.tensor, weight: inputs.weight?.tensor, bias: inputs.bias?.tensor, epsilon: c.epsilon,
                outputDType: c.output)
            residualOutput = nil
        case (.layer, let residual?):
            (output, residualOutput) = try layerNorm(
                inputs.x.tensor, residual: residual.tensor, weight: inputs.weight?.tensor, bias: inputs.bias?.tensor,
                epsilon: c.epsilon, outputDType: c.output, residualDType: c.residualDType)
        }
        #expect(output.isContiguous, "\(label): a new output should be contiguous", sourceLocation: sourceLocation)
    }

    #expect(
        output.shape == c.shape && output.dtype == c.outputDType && output.device == device,
        "\(label): output is \(output), expected shape \(c.shape) dtype \(c.outputDType)",
        sourceLocation: sourceLocation)
    let y = try output.toArray()
    let yError = Reference.relativeError(y, reference.output)
    let yTolerance = outputTolerance(c)
    #expect(
        yError <= yTolerance, "\(label): y relative error \(yError) > \(yTolerance)", sourceLocation: sourceLocation)
    try poisonedOutput?.expectUntouchedOutside("\(label): y", sourceLocation: sourceLocation)

    if let sDType = c.sDType {
        let s = try #require(residualOutput, "\(label): no residual output", sourceLocation: sourceLocation)
        #expect(
            s.shape == c.shape && s.dtype == sDType, "\(label): s is \(s), expected dtype \(sDType)",
            sourceLocation: sourceLocation)
        let sValues = try s.toArray()
        let sError = Reference.relativeError(sValues, reference.residual!)
        #expect(
            sError <= Reference.tolerance(sDType), "\(label): s relative error \(sError)",
            sourceLocation: sourceLocation)
        // s is documented as the unfused `x + residual` stored in its dtype: fp32 add, one rounding.
        let expected = zip(inputs.x.values, inputs.residual!.values).map { sDType.round($0 + $1) }
        let mismatches = zip(bits(sValues), bits(expected)).filter { $0 != $1 }.count
        #expect(
            mismatches == 0, "\(label): \(mismatches) elements of s differ from round(x + residual)",
            sourceLocation: sourceLocation)
        try poisonedResidual?.expectUntouchedOutside("\(label): s", sourceLocation: sourceLocation)
    } else {
        #expect(residualOutput == nil, "\(label): a residual output without a residual", sourceLocation: sourceLocation)
    }

    if let rstd {
        #expect(
            rstd.shape == inputs.x.tensor.rowShape && rstd.dtype == .float32,
            "\(label): rstd is \(rstd), expected shape \(inputs.x.tensor.rowShape) float32",
            sourceLocation: sourceLocation)
        let error = Reference.relativeError(try rstd.toArray(), reference.rstd)
        #expect(error <= statisticsTolerance, "\(label): rstd relative error \(error)", sourceLocation: sourceLocation)
    }
    if c.api == .training {
        switch c.norm {
        case .rms:
            #expect(mean == nil, "\(label): RMSNorm returned a mean", sourceLocation: sourceLocation)
        case .layer:
            let mean = try #require(mean, "\(label): LayerNorm returned no mean", sourceLocation: sourceLocation)
            #expect(
                mean.shape == inputs.x.tensor.rowShape && mean.dtype == .float32,
                "\(label): mean is \(mean)", sourceLocation: sourceLocation)
            let error = Reference.relativeError(try mean.toArray(), reference.mean)
            #expect(
                error <= statisticsTolerance, "\(label): mean relative error \(error)", sourceLocation: sourceLocation)
        }
    }
}
