/// A LayerNorm layer: its weight, bias and epsilon, applied with `callAsFunction`.
///
/// y = (x − mean(x)) / sqrt(var(x) + ε) · w + b, statistics in fp32.
public struct LayerNorm: Sendable {
    /// Shape (dimensions) or per-head (H, dimensions); nil for none.
    public var weight: Tensor?
    /// Shaped like the weight; nil for none.
    public var bias: Tensor?
    /// Length of the normalized dimension.
    public let dimensions: Int
    public var epsilon: Float

    /// A layer with weight ones and bias zeros.
    /// - Parameters:
    ///   - dimensions: N, >= 1.
    ///   - epsilon: finite and > 0; default 1e-5.
    ///   - affine: false for no weight and no bias; default true.
    ///   - bias: false for a weight without a bias; default true.
    ///   - dtype: the parameters' dtype; default `.float32`.
    ///   - device: where they live; default `.cpu`.
    public init(
        dimensions: Int, epsilon: Float = 1e-5, affine: Bool = true, bias: Bool = true,
        dtype: DType = .float32, device: Device = .cpu
    ) throws {
        try NormArguments.check(epsilon: epsilon)
        try Tensor.validate(shape: [dimensions], argument: "dimensions")
        self.dimensions = dimensions
        self.epsilon = epsilon
        weight = affine ? try Tensor.ones([dimensions], dtype: dtype, device: device) : nil
        self.bias = affine && bias ? try Tensor.zeros([dimensions], dtype: dtype, device: device) : nil
    }

    /// A layer around existing parameters (for example loaded from a checkpoint); ``dimensions`` is the
    /// weight's last dimension.
    /// - Parameters:
    ///   - weight: shape (N), or (H, N) per head.
    ///   - bias: the weight's shape and device; nil for none.
    ///   - epsilon: finite and > 0; default 1e-5.
    /// - Throws: ``FusedNormError/shapeMismatch(argument:expected:actual:)`` when the bias's shape is not the
    ///   weight's, ``FusedNormError/deviceMismatch(argument:expected:actual:)`` when it lives elsewhere.
    public init(weight: Tensor, bias: Tensor? = nil, epsilon: Float = 1e-5) throws {
        try NormArguments.check(epsilon: epsilon)
        if let bias {
            guard bias.shape == weight.shape else {
                throw FusedNormError.shapeMismatch(
                    argument: "bias", expected: "\(weight.shape) (the weight's shape)", actual: bias.shape)
            }
            guard bias.device == weight.device else {
                throw FusedNormError.deviceMismatch(argument: "bias", expected: weight.device, actual: bias.device)
            }
        }
        self.weight = weight
        self.bias = bias
        dimensions = weight.columns
        self.epsilon = epsilon
    }

    /// y = LayerNorm(x), in x's dtype.
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try layerNorm(x, weight: weight, bias: bias, epsilon: epsilon)
    }

    /// s = x + residual; y = LayerNorm(s). Returns y and s.
    public func callAsFunction(_ x: Tensor, residual: Tensor) throws -> (output: Tensor, residual: Tensor) {
        try layerNorm(x, residual: residual, weight: weight, bias: bias, epsilon: epsilon)
    }

    /// The training forward pass: y, s when a residual is given, mean and rstd.
    public func forward(_ x: Tensor, residual: Tensor? = nil) throws -> NormForwardResult {
        try layerNormForward(x, residual: residual, weight: weight, bias: bias, epsilon: epsilon)
    }

    /// The backward pass: dx (also the residual's gradient), dweight and dbias.
    public func backward(
        _ outputGradient: Tensor, input: Tensor, mean: Tensor? = nil, rstd: Tensor? = nil,
        residualGradient: Tensor? = nil
    ) throws -> NormGradients {
        try layerNormBackward(
            outputGradient, input: input, weight: weight, bias: bias, mean: mean, rstd: rstd,
            residualGradient: residualGradient, epsilon: epsilon)
    }
}
