/// An RMSNorm layer: its weight and options, applied with `callAsFunction`.
///
/// y = x / sqrt(mean(x²) + ε) · (w + weightOffset), statistics in fp32.
///
/// ```swift
/// let norm = try RMSNorm(dimensions: 4096, style: .llama, dtype: .bfloat16)
/// let y = try norm(x)                                   // LLaMA, Mistral, Qwen
/// let (h, stream) = try norm(x, residual: stream)       // pre-norm block, residual add fused
/// ```
public struct RMSNorm: Sendable {
    /// The weight and rounding of a model family.
    public struct Style: Sendable, Hashable {
        /// Added to the stored weight.
        public var weightOffset: Float
        public var casting: RMSNormCasting
        /// The value a new weight starts at, so that a new layer scales by 1.
        public var initialWeight: Float { 1 - weightOffset }

        public init(weightOffset: Float, casting: RMSNormCasting) {
            self.weightOffset = weightOffset
            self.casting = casting
        }

        /// `LlamaRMSNorm`: y = w · round(ŝ); also Mistral and Qwen.
        public static let llama = Style(weightOffset: 0, casting: .llama)
        /// `GemmaRMSNorm`: y = round(ŝ · (1 + w)), weights stored as w − 1.
        public static let gemma = Style(weightOffset: 1, casting: .gemma)
        /// Offset 0 with a single rounding: the most accurate for weights stored as w.
        public static let standard = Style(weightOffset: 0, casting: .gemma)
    }

    /// Shape (dimensions) or per-head (H, dimensions); nil for a weightless norm.
    public var weight: Tensor?
    /// Length of the normalized dimension.
    public let dimensions: Int
    public var epsilon: Float
    public var style: Style

    /// A layer whose weight starts so that it scales by 1 (ones, or zeros for Gemma).
    /// - Parameters:
    ///   - dimensions: N, >= 1.
    ///   - epsilon: finite and > 0; default 1e-6.
    ///   - style: `.llama` (default), `.gemma` or `.standard`.
    ///   - heads: nil for a weight of shape (N); H for a per-head weight (H, N) (QK-norm).
    ///   - affine: false for a weightless norm; default true.
    ///   - dtype: the weight's dtype; default `.float32`.
    ///   - device: where the weight lives; default `.cpu`.
    public init(
        dimensions: Int, epsilon: Float = 1e-6, style: Style = .llama, heads: Int? = nil, affine: Bool = true,
        dtype: DType = .float32, device: Device = .cpu
    ) throws {
        try NormArguments.check(epsilon: epsilon)
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

    /// A layer around an existing weight (for example one loaded from a checkpoint).
    public init(weight: Tensor, epsilon: Float = 1e-6, style: Style = .llama) throws {
        try NormArguments.check(epsilon: epsilon)
        self.weight = weight
        dimensions = weight.columns
        self.epsilon = epsilon
        self.style = style
    }

    /// y = RMSNorm(x), in x's dtype.
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try rmsNorm(x, weight: weight, epsilon: epsilon, weightOffset: style.weightOffset, casting: style.casting)
    }

    /// s = x + residual; y = RMSNorm(s). Returns y and s, the new residual stream.
    public func callAsFunction(_ x: Tensor, residual: Tensor) throws -> (output: Tensor, residual: Tensor) {
        try rmsNorm(x, residual: residual, weight: weight, epsilon: epsilon, weightOffset: style.weightOffset, casting: style.casting)
    }

    /// The training forward pass: y, s when a residual is given, and the rstd that ``backward(_:input:rstd:residualGradient:)`` takes.
    public func forward(_ x: Tensor, residual: Tensor? = nil) throws -> NormForwardResult {
        try rmsNormForward(
            x, residual: residual, weight: weight, epsilon: epsilon, weightOffset: style.weightOffset, casting: style.casting)
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
            epsilon: epsilon, weightOffset: style.weightOffset)
    }
}
