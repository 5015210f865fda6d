/// `norm_forward`'s parameters (`ForwardParams` in NormForward.cu, declared from this struct). Strides are in
/// elements between rows; a stride or pointer of an absent tensor is 0.
struct ForwardParameters: KernelParameters {
    static let cudaName = "ForwardParams"
    var x = InputPointer()
    var residual = InputPointer()
    var weight = InputPointer()
    var bias = InputPointer()
    var output = OutputPointer()
    /// s = x + residual, stored (only with a residual).
    var residualOutput = OutputPointer()
    var mean = FloatOutputPointer()
    var rstd = FloatOutputPointer()
    var rows = 0
    var columns = 0
    var weightRows = 0
    var xStride = 0
    var residualStride = 0
    var weightStride = 0
    var biasStride = 0
    var outputStride = 0
    var residualOutputStride = 0
    /// Streaming (`HOLD` 0): passes of VPT vectors per thread over its CTA's part of the row.
    var segments = 0
    var epsilon: Float = 0
    /// RMSNorm: added to the weight (0 for LayerNorm).
    var weightOffset: Float = 0

    init() {}

    /// The parameters of a forward problem.
    init(_ problem: NormForwardProblem, segments: Int) {
        x = InputPointer(problem.x.address)
        residual = InputPointer(problem.residual?.address)
        weight = InputPointer(problem.weight?.address)
        bias = InputPointer(problem.bias?.address)
        output = OutputPointer(problem.output.address)
        residualOutput = OutputPointer(problem.residualOutput?.address)
        mean = FloatOutputPointer(problem.mean)
        rstd = FloatOutputPointer(problem.rstd)
        rows = problem.rows
        columns = problem.columns
        weightRows = problem.weightRows
        xStride = problem.x.rowStride
        residualStride = problem.residual?.rowStride ?? 0
        weightStride = problem.weight?.rowStride ?? 0
        biasStride = problem.bias?.rowStride ?? 0
        outputStride = problem.output.rowStride
        residualOutputStride = problem.residualOutput?.rowStride ?? 0
        self.segments = segments
        epsilon = problem.epsilon
        weightOffset = problem.kind == .rms ? problem.weightOffset : 0
    }
}

/// `norm_backward`'s parameters (`BackwardParams` in NormBackward.cu, declared from this struct).
struct BackwardParameters: KernelParameters {
    static let cudaName = "BackwardParams"
    var dy = InputPointer()
    var x = InputPointer()
    var weight = InputPointer()
    /// Saved statistics (null: recomputed from x).
    var mean = FloatInputPointer()
    var rstd = FloatInputPointer()
    var residualGradient = InputPointer()
    var dx = OutputPointer()
    /// The fp32 partial sums, [dweight, dbias present][parts][weight rows][columns].
    var partials = FloatOutputPointer()
    var rows = 0
    var columns = 0
    /// H.
    var weightRows = 0
    /// P: teams per weight row.
    var parts = 0
    var dyStride = 0
    var xStride = 0
    var weightStride = 0
    var residualGradientStride = 0
    var dxStride = 0
    var epsilon: Float = 0
    var weightOffset: Float = 0

    init() {}

    /// The parameters of a backward problem with `parts` teams per weight row writing into `partials`
    /// (0 without dweight and dbias).
    init(_ problem: NormBackwardProblem, parts: Int, partials: UInt) {
        dy = InputPointer(problem.dy.address)
        x = InputPointer(problem.x.address)
        weight = InputPointer(problem.weight?.address)
        mean = FloatInputPointer(problem.mean)
        rstd = FloatInputPointer(problem.rstd)
        residualGradient = InputPointer(problem.residualGradient?.address)
        dx = OutputPointer(problem.dx.address)
        self.partials = FloatOutputPointer(partials)
        rows = problem.rows
        columns = problem.columns
        weightRows = problem.weightRows
        self.parts = parts
        dyStride = problem.dy.rowStride
        xStride = problem.x.rowStride
        weightStride = problem.weight?.rowStride ?? 0
        residualGradientStride = problem.residualGradient?.rowStride ?? 0
        dxStride = problem.dx.rowStride
        epsilon = problem.epsilon
        weightOffset = problem.weightOffset
    }
}

/// `reduce_partials`' parameters (`ReduceParams` in NormBackward.cu, declared from this struct).
struct ReduceParameters: KernelParameters {
    static let cudaName = "ReduceParams"
    /// As `norm_backward` wrote them.
    var partials = FloatInputPointer()
    var dweight = OutputPointer()
    var dbias = OutputPointer()
    /// P.
    var parts = 0
    /// H·N.
    var count = 0
    /// N.
    var columns = 0
    var dweightStride = 0
    var dbiasStride = 0

    init() {}

    /// The parameters of the reduction of a backward problem's `parts` partial sums at `partials`.
    init(_ problem: NormBackwardProblem, parts: Int, partials: UInt) {
        self.partials = FloatInputPointer(partials)
        dweight = OutputPointer(problem.dweight?.address)
        dbias = OutputPointer(problem.dbias?.address)
        self.parts = parts
        count = problem.weightRows * problem.columns
        columns = problem.columns
        dweightStride = problem.dweight?.rowStride ?? 0
        dbiasStride = problem.dbias?.rowStride ?? 0
    }
}

extension KernelFiles {
    /// Every kernel parameter struct, in the order Parameters.cuh declares them.
    static var parameterTypes: [any KernelParameters.Type] {
        [ForwardParameters.self, BackwardParameters.self, ReduceParameters.self, CopyParameters.self]
    }

    /// `Parameters.cuh`: the parameter structs' CUDA C declarations, generated from the Swift structs.
    static var parametersHeader: String {
        "#pragma once\n\n" + parameterTypes.map { $0.cudaDeclaration }.joined(separator: "\n")
    }
}
