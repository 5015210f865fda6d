/// Checks a call's tensors and turns them into a backend problem. Shared by every operation, so the
/// rules (shapes, dtypes, devices, epsilon) are written once.
struct NormArguments {
    let x: Tensor
    let device: Device
    let backend: any Backend
    /// 1, or H for a per-head weight of shape (H, N).
    private(set) var weightRows = 1
    /// The shape of the first weight or bias checked; the others must match it.
    private var parameterShape: [Int]?

    init(x: Tensor) throws {
        self.x = x
        device = x.device
        try EnvironmentVariable.check(for: device)
        backend = try device.backend()
        try checkRowLayout(x, "x")
    }

    static func check(epsilon: Float) throws {
        guard epsilon.isFinite, epsilon > 0 else { throw FusedNormError.invalidEpsilon(epsilon) }
    }

    static func check(weightOffset: Float) throws {
        guard weightOffset.isFinite else {
            throw FusedNormError.invalidArgument(name: "weightOffset", reason: "must be finite, got \(weightOffset)")
        }
    }

    func checkDevice(_ tensor: Tensor?, _ argument: String) throws {
        guard let tensor else { return }
        guard tensor.device == device else {
            throw FusedNormError.deviceMismatch(argument: argument, expected: device, actual: tensor.device)
        }
        try checkRowLayout(tensor, argument)
    }

    /// Grouped rows (two strides) run on the CPU; the CUDA kernels take one row stride per tensor.
    /// Also: the memory of a tensor lent by `Tensor.withWrapping` may be used only inside its closure.
    func checkRowLayout(_ tensor: Tensor, _ argument: String) throws {
        try tensor.requireAccessible(argument)
        if case .cuda = device, tensor.hasGroupedRows {
            throw FusedNormError.unsupportedLayout(
                argument: argument, device: device,
                reason:
                    "grouped rows (rowStride \(tensor.rowStride), groupStride \(tensor.groupStride)) are supported on the CPU only in this version; copy into contiguous rows first"
            )
        }
    }

    /// A tensor that must have x's shape (residual, dy, preallocated outputs).
    func checkLikeX(_ tensor: Tensor?, _ argument: String, dtype: DType? = nil) throws {
        guard let tensor else { return }
        try checkDevice(tensor, argument)
        guard tensor.shape == x.shape else {
            throw FusedNormError.shapeMismatch(
                argument: argument, expected: "\(x.shape) (the shape of x)", actual: tensor.shape)
        }
        if let dtype, tensor.dtype != dtype {
            throw FusedNormError.dtypeMismatch(argument: argument, expected: dtype, actual: tensor.dtype)
        }
    }

    /// A weight or bias: shape (N), or (H, N) for a per-head weight when x is (..., H, N); a weight and a
    /// bias must have the same shape.
    mutating func checkParameter(_ tensor: Tensor?, _ argument: String) throws {
        guard let tensor else { return }
        try checkDevice(tensor, argument)
        let n = x.columns
        let perHead = x.shape.count >= 2 ? Array(x.shape.suffix(2)) : nil
        guard tensor.shape == [n] || tensor.shape == perHead else {
            let alternative = perHead.map { " or \($0) (per head)" } ?? ""
            throw FusedNormError.shapeMismatch(
                argument: argument, expected: "[\(n)]\(alternative)", actual: tensor.shape)
        }
        if let parameterShape, parameterShape != tensor.shape {
            throw FusedNormError.shapeMismatch(
                argument: argument, expected: "\(parameterShape) (the weight's shape)", actual: tensor.shape)
        }
        parameterShape = tensor.shape
        weightRows = tensor.shape.count == 2 ? tensor.shape[0] : 1
    }

    /// Per-row fp32 statistics: x's row shape (or its flattened row count), contiguous.
    func checkStatistics(_ tensor: Tensor?, _ argument: String) throws {
        guard let tensor else { return }
        try checkDevice(tensor, argument)
        guard tensor.dtype == .float32 else {
            throw FusedNormError.dtypeMismatch(argument: argument, expected: .float32, actual: tensor.dtype)
        }
        guard tensor.shape == x.rowShape || tensor.shape == [x.rows], tensor.isContiguous else {
            throw FusedNormError.shapeMismatch(
                argument: argument, expected: "\(x.rowShape), contiguous", actual: tensor.shape)
        }
    }

    /// A new contiguous tensor on x's device.
    func allocate(_ shape: [Int], _ dtype: DType) throws -> Tensor {
        try Tensor(allocating: shape, dtype: dtype, on: device)
    }

    /// A new fp32 tensor with one value per row of x (which may have zero rows).
    func allocateStatistics() throws -> Tensor {
        try Tensor(allocatingStatisticsFor: x.rowShape, on: device)
    }

    /// Statistics: `given` after checking it, or a new tensor when `wanted`, else nil.
    func statistics(_ given: Tensor?, _ argument: String, wanted: Bool) throws -> Tensor? {
        if let given {
            try checkStatistics(given, argument)
            try given.requireWritable(argument)
            return given
        }
        return wanted ? try allocateStatistics() : nil
    }

    /// A gradient of `parameter` (dweight, dbias): `given` after checking it has the parameter's shape
    /// (any dtype: an fp32 gradient of a bf16 weight is fine), or a new tensor like the parameter.
    func parameterGradient(_ given: Tensor?, _ argument: String, of parameter: Tensor?, _ parameterName: String) throws
        -> Tensor?
    {
        guard let parameter else {
            if given != nil {
                throw FusedNormError.invalidArgument(name: argument, reason: "given without a \(parameterName)")
            }
            return nil
        }
        guard let given else { return try allocate(parameter.shape, parameter.dtype) }
        try checkDevice(given, argument)
        try given.requireWritable(argument)
        guard given.shape == parameter.shape else {
            throw FusedNormError.shapeMismatch(
                argument: argument, expected: "\(parameter.shape) (the \(parameterName)'s shape)", actual: given.shape)
        }
        return given
    }

    /// `given` after checking it against x, or a new tensor like x in `dtype`.
    func output(_ given: Tensor?, _ argument: String, dtype: DType?, default defaultDType: DType) throws -> Tensor {
        if let given {
            try checkLikeX(given, argument, dtype: dtype)
            try given.requireWritable(argument)
            return given
        }
        return try allocate(x.shape, dtype ?? defaultDType)
    }
}

/// The forward pass both RMSNorm and LayerNorm share.
func normForward(
    kind: NormKind, x: Tensor, residual: Tensor?, weight: Tensor?, bias: Tensor?,
    epsilon: Float, style: RMSNormStyle,
    outputDType: DType?, residualDType: DType?, output: Tensor?, residualOutput: Tensor?,
    meanOutput: Tensor? = nil, rstdOutput: Tensor? = nil, saveStatistics: Bool
) throws -> NormForwardTensors {
    try NormArguments.check(epsilon: epsilon)
    try NormArguments.check(weightOffset: style.weightOffset)
    var arguments = try NormArguments(x: x)
    try arguments.checkLikeX(residual, "residual")
    try arguments.checkParameter(weight, "weight")
    try arguments.checkParameter(bias, "bias")
    if residual == nil, residualOutput != nil || residualDType != nil {
        let name = residualOutput != nil ? "residualOutput" : "residualDType"
        throw FusedNormError.invalidArgument(name: name, reason: "given without a residual to add")
    }
    let y = try arguments.output(output, "output", dtype: outputDType, default: x.dtype)
    let s = try residual.map {
        try arguments.output(residualOutput, "residualOutput", dtype: residualDType, default: $0.dtype)
    }
    let statistics = try arguments.statistics(rstdOutput, "rstdOutput", wanted: saveStatistics)
    let mean = try arguments.statistics(meanOutput, "meanOutput", wanted: saveStatistics && kind == .layer)

    let problem = NormForwardProblem(
        kind: kind, rows: x.rows, columns: x.columns, x: x.rowView, residual: residual?.rowView,
        weightRows: arguments.weightRows, weight: weight?.rowView, bias: bias?.rowView,
        output: y.rowView, residualOutput: s?.rowView, mean: mean?.rowView.address,
        rstd: statistics?.rowView.address, epsilon: epsilon, weightOffset: style.weightOffset, rounding: style.rounding)
    if x.rows > 0 { try arguments.backend.run(problem) }
    return NormForwardTensors(output: y, residual: s, mean: mean, rstd: statistics)
}

/// The tensors a forward pass wrote; statistics only when asked for.
struct NormForwardTensors {
    var output: Tensor
    var residual: Tensor?
    var mean: Tensor?
    var rstd: Tensor?

    /// The training result; call only after a pass that saved statistics.
    var withStatistics: NormForwardResult {
        NormForwardResult(output: output, residual: residual, mean: mean, rstd: rstd!)
    }
}

/// The backward pass both RMSNorm and LayerNorm share.
func normBackward(
    kind: NormKind, outputGradient dy: Tensor, input x: Tensor, weight: Tensor?, bias: Tensor?,
    mean: Tensor?, rstd: Tensor?, residualGradient: Tensor?,
    epsilon: Float, weightOffset: Float, inputGradient: Tensor?, weightGradient: Tensor?, biasGradient: Tensor?
) throws -> NormGradients {
    try NormArguments.check(epsilon: epsilon)
    try NormArguments.check(weightOffset: weightOffset)
    var arguments = try NormArguments(x: x)
    try arguments.checkLikeX(dy, "outputGradient")
    try arguments.checkLikeX(residualGradient, "residualGradient")
    try arguments.checkParameter(weight, "weight")
    try arguments.checkParameter(bias, "bias")
    try arguments.checkStatistics(mean, "mean")
    try arguments.checkStatistics(rstd, "rstd")
    if kind == .layer, (mean == nil) != (rstd == nil) {
        throw FusedNormError.invalidArgument(
            name: "mean", reason: "LayerNorm's saved mean and rstd go together: give both or neither")
    }
    let dx = try arguments.output(inputGradient, "inputGradient", dtype: nil, default: x.dtype)
    let dweight = try arguments.parameterGradient(weightGradient, "weightGradient", of: weight, "weight")
    let dbias: Tensor?
    if bias == nil, let biasGradient {
        // dbias = Σ_rows dy needs no bias values: a destination alone asks for it, shaped like the weight.
        try arguments.checkParameter(biasGradient, "biasGradient")
        dbias = biasGradient
    } else {
        dbias = try arguments.parameterGradient(biasGradient, "biasGradient", of: bias, "bias")
    }

    let problem = NormBackwardProblem(
        kind: kind, rows: x.rows, columns: x.columns, dy: dy.rowView, x: x.rowView,
        weightRows: arguments.weightRows, weight: weight?.rowView, mean: mean?.rowView.address,
        rstd: rstd?.rowView.address, residualGradient: residualGradient?.rowView, dx: dx.rowView,
        dweight: dweight?.rowView, dbias: dbias?.rowView, epsilon: epsilon, weightOffset: weightOffset)
    if x.rows > 0 {
        try arguments.backend.run(problem)
    } else {
        try dweight?.fill(with: 0)
        try dbias?.fill(with: 0)
    }
    return NormGradients(input: dx, weight: dweight, bias: dbias)
}
