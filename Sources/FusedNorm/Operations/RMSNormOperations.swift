/// RMSNorm: y = x / sqrt(mean(x²) + ε) · (w + style.weightOffset), statistics in fp32.
///
/// ```swift
/// let y = try rmsNorm(x, weight: w)                  // torch.nn.RMSNorm, MLX: one rounding
/// let g = try rmsNorm(x, weight: w, style: .gemma)   // GemmaRMSNorm: weights stored as w − 1
/// ```
/// - Parameters:
///   - x: the input, shape (..., N), any dtype; rows may be strided.
///   - weight: shape (N), or (H, N) for per-head (QK) norm of x shaped (..., H, N); nil for weightless RMSNorm.
///   - epsilon: added to the mean square; finite and > 0; default 1e-6.
///   - style: the weight offset and rounding: ``RMSNormStyle/standard`` (default: offset 0, one rounding at
///     the end), ``RMSNormStyle/llama`` (offset 0, two roundings) or ``RMSNormStyle/gemma`` (offset 1, one rounding).
///   - outputDType: the dtype of y; default x's.
///   - output: where to write y (x's shape, any row stride; its dtype is the output dtype), so that the call
///     allocates nothing; default a new contiguous tensor.
/// - Returns: y, with x's shape.
public func rmsNorm(
    _ x: Tensor, weight: Tensor? = nil, epsilon: Float = 1e-6, style: RMSNormStyle = .standard,
    outputDType: DType? = nil, output: Tensor? = nil
) throws -> Tensor {
    try normForward(
        kind: .rms, x: x, residual: nil, weight: weight, bias: nil, epsilon: epsilon, style: style,
        outputDType: outputDType, residualDType: nil, output: output, residualOutput: nil, saveStatistics: false
    ).output
}

/// RMSNorm with the residual add of a pre-norm block fused in one pass:
/// s = x + residual; y = s / sqrt(mean(s²) + ε) · (w + style.weightOffset).
///
/// s is stored in `residualDType` and y is computed from the stored s, exactly as the unfused
/// `residual = x + residual; y = rmsNorm(residual)` would.
/// - Parameters:
///   - x: the block's output, shape (..., N).
///   - residual: the residual stream, x's shape; its dtype may differ from x's.
///   - residualDType: the dtype of the returned s; default the residual's.
///   - weight: as in ``rmsNorm(_:weight:epsilon:style:outputDType:output:)``.
///   - epsilon: as there.
///   - style: as there.
///   - outputDType: as there.
///   - output: as there.
///   - residualOutput: where to write s (x's shape; may be `residual` itself, updating the stream in place);
///     default a new tensor.
/// - Returns: y and s (the new residual stream).
public func rmsNorm(
    _ x: Tensor, residual: Tensor, weight: Tensor? = nil, epsilon: Float = 1e-6, style: RMSNormStyle = .standard,
    outputDType: DType? = nil, residualDType: DType? = nil,
    output: Tensor? = nil, residualOutput: Tensor? = nil
) throws -> (output: Tensor, residual: Tensor) {
    let result = try normForward(
        kind: .rms, x: x, residual: residual, weight: weight, bias: nil, epsilon: epsilon, style: style,
        outputDType: outputDType, residualDType: residualDType, output: output, residualOutput: residualOutput,
        saveStatistics: false)
    return (result.output, result.residual!)
}

/// RMSNorm for training: like ``rmsNorm(_:residual:weight:epsilon:style:outputDType:residualDType:output:residualOutput:)``
/// with the residual optional, returning the per-row rstd for ``rmsNormBackward(_:input:weight:rstd:residualGradient:epsilon:style:inputGradient:weightGradient:)``,
/// and optionally writing into preallocated (possibly strided) tensors, so that a call allocates nothing.
/// - Parameters:
///   - x: the input, as in the forward forms.
///   - residual: the residual stream to add first, x's shape; nil for none.
///   - weight: as in the forward forms.
///   - epsilon: as in the forward forms.
///   - style: as in the forward forms.
///   - outputDType: the dtype of y; default x's.
///   - residualDType: the dtype of s; default the residual's.
///   - output: where to write y (x's shape; its dtype is the output dtype); default a new tensor.
///   - residualOutput: where to write s (x's shape); default a new tensor.
///   - rstdOutput: where to write rstd (fp32, x's ``Tensor/rowShape``, contiguous); default a new tensor.
public func rmsNormForward(
    _ x: Tensor, residual: Tensor? = nil, weight: Tensor? = nil, epsilon: Float = 1e-6, style: RMSNormStyle = .standard,
    outputDType: DType? = nil, residualDType: DType? = nil,
    output: Tensor? = nil, residualOutput: Tensor? = nil, rstdOutput: Tensor? = nil
) throws -> NormForwardResult {
    try normForward(
        kind: .rms, x: x, residual: residual, weight: weight, bias: nil, epsilon: epsilon, style: style,
        outputDType: outputDType, residualDType: residualDType, output: output, residualOutput: residualOutput,
        rstdOutput: rstdOutput, saveStatistics: true
    ).withStatistics
}

/// The RMSNorm backward pass: with ŝ = x·r and g = dy · (w + style.weightOffset),
/// dx = r · (g − ŝ · mean(g·ŝ)) (+ residualGradient), dweight = Σ_rows dy·ŝ (fp32, deterministic).
/// - Parameters:
///   - outputGradient: dy, x's shape.
///   - input: the tensor that was normalized (s when a residual was fused).
///   - weight: as in the forward pass; nil for weightless RMSNorm.
///   - rstd: saved by ``rmsNormForward(_:residual:weight:epsilon:style:outputDType:residualDType:output:residualOutput:rstdOutput:)``; recomputed from x when nil.
///   - residualGradient: the gradient reaching s from downstream when a residual was fused and s was used; added to dx.
///   - epsilon: as in the forward pass.
///   - style: as in the forward pass (only its weight offset matters here).
///   - inputGradient: where to write dx (x's shape); default a new tensor in x's dtype.
///   - weightGradient: where to write dweight (the weight's shape, any dtype, e.g. fp32 for a bf16 weight);
///     default a new tensor in the weight's dtype.
/// - Returns: dx (also the residual's gradient when one was fused) and dweight.
public func rmsNormBackward(
    _ outputGradient: Tensor, input: Tensor, weight: Tensor? = nil, rstd: Tensor? = nil,
    residualGradient: Tensor? = nil, epsilon: Float = 1e-6, style: RMSNormStyle = .standard,
    inputGradient: Tensor? = nil,
    weightGradient: Tensor? = nil
) throws -> NormGradients {
    try normBackward(
        kind: .rms, outputGradient: outputGradient, input: input, weight: weight, bias: nil, mean: nil, rstd: rstd,
        residualGradient: residualGradient, epsilon: epsilon, weightOffset: style.weightOffset,
        inputGradient: inputGradient,
        weightGradient: weightGradient, biasGradient: nil)
}
