/// An RMSNorm layer: its weight and options, applied with `callAsFunction`.
///
/// y = x / sqrt(mean(x²) + ε) · (w + style.weightOffset), statistics in fp32, rounded as the style says.
///
/// ```swift
/// let norm = try RMSNorm(dimensions: 4096, dtype: .bfloat16)   // torch.nn.RMSNorm, MLX
/// let y = try norm(x)
/// let (h, stream) = try norm(x, residual: stream)              // pre-norm block, residual add fused
/// let llama = try RMSNorm(dimensions: 4096, style: .llama, dtype: .bfloat16)  // LlamaRMSNorm's two roundings
/// ```
public struct RMSNorm: Sendable {
    /// Shape (dimensions) or per-head (H, dimensions); nil for a weightless norm.
    public var weight: Tensor?
    /// Length of the normalized dimension.
    public let dimensions: Int
    public var epsilon: Float
    /// The weight offset and rounding; default ``RMSNormStyle/standard``.
    public var style: RMSNormStyle

    /// A layer whose weight starts so that it scales by 1 (ones, or zeros for ``RMSNormStyle/gemma``).
    /// - Parameters:
    ///   - dimensions: N, >= 1.
    ///   - epsilon: finite and > 0; default 1e-6.
    ///   - style: ``RMSNormStyle/standard`` (default), ``RMSNormStyle/llama`` or ``RMSNormStyle/gemma``.
    ///   - heads: nil for a weight of shape (N); H for a per-head weight (H, N) (QK-norm).
    ///   - affine: false for a weightless norm; default true.
    ///   - dtype: the weight's dtype; default `.float32`.
    ///   - device: where the weight lives; default `.cpu`.
    public init(
        dimensions: Int, epsilon: Float = 1e-6, style: RMSNormStyle = .standard, heads: Int? = nil, affine: Bool = true,
        dtype: DType = .float32, device: Device = .cpu
    ) throws {
        try NormArguments.check(epsilon: epsilon)
        try NormArguments.check(weightOffset: style.weightOffset)
        if let heads, heads < 1 {
            throw FusedNormError.invalidArgument(name: "heads", reason: "must be at least 1, got \(heads)")
        }
        let shape = heads.map { [$0, dimensions] } ?? [dimensions]
        try Tensor.validate(shape: shape, argument: "dimensions")
        self.dimensions = dimensions
        self.epsilon = epsilon
        self.style = style
        weight = affine ? try Tensor(repeating: style.initialWeight, shape: shape, dtype: dtype, device: device) : nil
    }

    /// A layer around an existing weight (for example one loaded from a checkpoint); ``dimensions`` is the
    /// weight's last dimension.
    /// - Parameters:
    ///   - weight: shape (N), or (H, N) per head.
    ///   - epsilon: finite and > 0; default 1e-6.
    ///   - style: as the checkpoint's model stores and rounds; default ``RMSNormStyle/standard``.
    public init(weight: Tensor, epsilon: Float = 1e-6, style: RMSNormStyle = .standard) throws {
        try NormArguments.check(epsilon: epsilon)
        try NormArguments.check(weightOffset: style.weightOffset)
        self.weight = weight
        dimensions = weight.columns
        self.epsilon = epsilon
        self.style = style
    }

    /// y = RMSNorm(x), in x's dtype.
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try rmsNorm(x, weight: weight, epsilon: epsilon, style: style)
    }

    /// s = x + residual; y = RMSNorm(s). Returns y and s, the new residual stream.
    public func callAsFunction(_ x: Tensor, residual: Tensor) throws -> (output: Tensor, residual: Tensor) {
        try rmsNorm(x, residual: residual, weight: weight, epsilon: epsilon, style: style)
    }

    /// The training forward pass: y, s when a residual is given, and the rstd that ``backward(_:input:rstd:residualGradient:)`` takes.
    public func forward(_ x: Tensor, residual: Tensor? = nil) throws -> NormForwardResult {
        try rmsNormForward(
            x, residual: residual, weight: weight, epsilon: epsilon, style: style)
    }

    /// The backward pass: dx (also the residual's gradient) and dweight.
    /// - Parameters:
    ///   - outputGradient: dy.
    ///   - input: what was normalized: x, or s (`forward(...).residual`) when a residual was fused.
    ///   - rstd: `forward(...).rstd`; recomputed when nil.
    ///   - residualGradient: the gradient reaching s from downstream, when s was used.
    public func backward(
        _ outputGradient: Tensor, input: Tensor, rstd: Tensor? = nil, residualGradient: Tensor? = nil
    ) throws -> NormGradients {
        try rmsNormBackward(
            outputGradient, input: input, weight: weight, rstd: rstd, residualGradient: residualGradient,
            epsilon: epsilon, style: style)
    }
}
