/// What a forward pass returns for training: the output, the new residual stream, and the statistics
/// the backward pass needs.
public struct NormForwardResult: Sendable {
    /// y, in the output dtype.
    public var output: Tensor
    /// s = x + residual, the new residual stream; present when a residual was fused.
    public var residual: Tensor?
    /// Per-row mean (fp32, shape ``Tensor/rowShape`` of x); LayerNorm only.
    public var mean: Tensor?
    /// Per-row 1 / sqrt(mean square or variance + ε) (fp32, shape ``Tensor/rowShape`` of x).
    public var rstd: Tensor
}

/// The gradients of a backward pass.
public struct NormGradients: Sendable {
    /// dL/dx (and, when a residual was fused, also dL/dresidual: the two are equal).
    public var input: Tensor
    /// dL/dweight, accumulated in fp32 in a fixed order (bit-identical run to run), stored in the weight's dtype.
    public var weight: Tensor?
    /// dL/dbias (LayerNorm with a bias), like ``weight``.
    public var bias: Tensor?
}
