/// LayerNorm: y = (x − mean(x)) / sqrt(var(x) + ε) · w + b, statistics in fp32, one rounding at the end.
///
/// - Parameters:
///   - x: the input, shape (..., N), any dtype; rows may be strided.
///   - weight: shape (N) or per-head (H, N); nil for none (w = 1).
///   - bias: weight's shapes; nil for none (b = 0).
///   - epsilon: added to the variance; finite and > 0; default 1e-5.
///   - outputDType: the dtype of y; default x's.
///   - output: where to write y (x's shape, any row stride); default a new contiguous tensor.
/// - Returns: y, with x's shape.
public func layerNorm(
    _ x: Tensor, weight: Tensor? = nil, bias: Tensor? = nil, epsilon: Float = 1e-5, outputDType: DType? = nil,
    output: Tensor? = nil
) throws -> Tensor {
    try normForward(
        kind: .layer, x: x, residual: nil, weight: weight, bias: bias, epsilon: epsilon, style: .standard,
        outputDType: outputDType, residualDType: nil, output: output, residualOutput: nil,
        saveStatistics: false
    ).output
}

/// LayerNorm with a fused residual add: s = x + residual (stored in `residualDType`); y = LayerNorm(s).
/// `output` and `residualOutput` are optional destinations, as for RMSNorm.
/// - Returns: y and s (the new residual stream).
public func layerNorm(
    _ x: Tensor, residual: Tensor, weight: Tensor? = nil, bias: Tensor? = nil, epsilon: Float = 1e-5,
    outputDType: DType? = nil, residualDType: DType? = nil, output: Tensor? = nil, residualOutput: Tensor? = nil
) throws -> (output: Tensor, residual: Tensor) {
    let result = try normForward(
        kind: .layer, x: x, residual: residual, weight: weight, bias: bias, epsilon: epsilon, style: .standard,
        outputDType: outputDType, residualDType: residualDType, output: output,
        residualOutput: residualOutput,
        saveStatistics: false)
    return (result.output, result.residual!)
}

/// LayerNorm for training: returns the per-row mean and rstd for
/// ``layerNormBackward(_:input:weight:bias:mean:rstd:residualGradient:epsilon:inputGradient:weightGradient:biasGradient:)``;
/// optionally writes into preallocated (possibly strided) `output` and `residualOutput`, and preallocated
/// fp32 `meanOutput` and `rstdOutput` (x's ``Tensor/rowShape``, contiguous).
public func layerNormForward(
    _ x: Tensor, residual: Tensor? = nil, weight: Tensor? = nil, bias: Tensor? = nil, epsilon: Float = 1e-5,
    outputDType: DType? = nil, residualDType: DType? = nil, output: Tensor? = nil, residualOutput: Tensor? = nil,
    meanOutput: Tensor? = nil, rstdOutput: Tensor? = nil
) throws -> NormForwardResult {
    try normForward(
        kind: .layer, x: x, residual: residual, weight: weight, bias: bias, epsilon: epsilon, style: .standard,
        outputDType: outputDType, residualDType: residualDType, output: output,
        residualOutput: residualOutput, meanOutput: meanOutput, rstdOutput: rstdOutput, saveStatistics: true
    ).withStatistics
}

/// The LayerNorm backward pass: with ŝ = (x − μ)·r and g = dy·w,
/// dx = r · (g − mean(g) − ŝ · mean(g·ŝ)) (+ residualGradient), dweight = Σ_rows dy·ŝ, dbias = Σ_rows dy
/// (fp32, deterministic).
/// - Parameters:
///   - outputGradient: dy, x's shape.
///   - input: the tensor that was normalized (s when a residual was fused).
///   - weight: as in the forward pass.
///   - bias: as in the forward pass. dbias does not depend on the bias's values: the bias only sets the
///     shape and dtype of a new dbias.
///   - mean: saved by the forward pass, with `rstd` or not at all; recomputed from x when nil.
///   - rstd: saved by the forward pass, with `mean` or not at all; recomputed from x when nil.
///   - residualGradient: the gradient reaching s from downstream; added to dx.
///   - epsilon: as in the forward pass.
///   - inputGradient: where to write dx; default a new tensor in x's dtype.
///   - weightGradient: where to write dweight (the weight's shape, any dtype); default a new tensor in the
///     weight's dtype; nil without a weight.
///   - biasGradient: where to write dbias (the weight's shape, any dtype). dbias is computed when a bias
///     or this destination is given: with a bias, default a new tensor like the bias; without one, the
///     destination alone asks for dbias (shape (N) or (H, N), the weight's when there is one).
/// - Returns: dx, dweight (with a weight) and dbias (with a bias or a `biasGradient`).
public func layerNormBackward(
    _ outputGradient: Tensor, input: Tensor, weight: Tensor? = nil, bias: Tensor? = nil, mean: Tensor? = nil,
    rstd: Tensor? = nil, residualGradient: Tensor? = nil, epsilon: Float = 1e-5, inputGradient: Tensor? = nil,
    weightGradient: Tensor? = nil, biasGradient: Tensor? = nil
) throws -> NormGradients {
    try normBackward(
        kind: .layer, outputGradient: outputGradient, input: input, weight: weight, bias: bias, mean: mean, rstd: rstd,
        residualGradient: residualGradient, epsilon: epsilon, weightOffset: 0, inputGradient: inputGradient,
        weightGradient: weightGradient, biasGradient: biasGradient)
}
