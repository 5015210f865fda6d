extension KernelSource {
    /// RMSNorm and LayerNorm forward (Kernels/NormForward.cu.swift).
    static let normForward = KernelSource(name: "norm_forward", text: normForwardSource, entryPoints: ["norm_forward"])
}

extension CUDABackend {
    /// The kernel specialization and layout for a forward problem on a GPU with `multiprocessors` SMs and
    /// `sharedMemoryPerBlock` bytes of shared memory per block. Needs no GPU (tests compile every plan).
    static func forwardPlan(for problem: NormForwardProblem, multiprocessors: Int, sharedMemoryPerBlock: Int) -> KernelPlan {
        let rows = problem.rows, columns = problem.columns
        // The dtype s is stored in: the residual output's with a residual, else x's.
        let rowDType = problem.residualOutput?.dtype ?? problem.x.dtype
        var accesses = [
            LaunchConfiguration.Access(problem.x, rows: rows), LaunchConfiguration.Access(problem.output, rows: rows),
        ]
        for view in [problem.residual, problem.residualOutput].compactMap({ $0 }) {
            accesses.append(LaunchConfiguration.Access(view, rows: rows))
        }
        for view in [problem.weight, problem.bias].compactMap({ $0 }) {
            accesses.append(LaunchConfiguration.Access(view, rows: problem.weightRows))
        }
        let configuration = LaunchConfiguration.choose(
            for: .forward, columns: columns, rows: rows, weightRows: problem.weightRows,
            vectorWidth: LaunchConfiguration.vectorWidth(columns: columns, accesses: accesses),
            rowElementBytes: rowDType.byteCount, multiprocessors: multiprocessors,
            sharedMemoryPerBlock: sharedMemoryPerBlock)

        let absent = "float"
        let definitions = [
            "X_T=\(problem.x.dtype.kernelTypeName)",
            "R_T=\(problem.residual?.dtype.kernelTypeName ?? absent)",
            "S_T=\(problem.residualOutput?.dtype.kernelTypeName ?? absent)",
            "W_T=\(problem.weight?.dtype.kernelTypeName ?? absent)",
            "B_T=\(problem.bias?.dtype.kernelTypeName ?? absent)",
            "Y_T=\(problem.output.dtype.kernelTypeName)",
            "LAYER=\(problem.kind == .layer ? 1 : 0)",
            "HAS_RESIDUAL=\(problem.residual != nil ? 1 : 0)",
            "HAS_WEIGHT=\(problem.weight != nil ? 1 : 0)",
            "HAS_BIAS=\(problem.bias != nil ? 1 : 0)",
            "LLAMA=\(problem.kind == .rms && problem.casting == .llama ? 1 : 0)",
        ] + configuration.definitions
        return KernelPlan(
            request: KernelRequest(source: .normForward, definitions: definitions), configuration: configuration,
            sharedBytes: configuration.rowStorage == .sharedMemory ? columns * rowDType.byteCount : 0)
    }

    /// Runs a forward pass: one launch of `norm_forward`, specialized for the problem's dtypes and
    /// variant and laid out by ``LaunchConfiguration``.
    func run(_ problem: NormForwardProblem) throws {
        let plan = Self.forwardPlan(
            for: problem, multiprocessors: gpu.multiprocessorCount, sharedMemoryPerBlock: gpu.sharedMemoryPerBlock)
        let module = try module(for: plan.request)

        var arguments = KernelArguments()
        arguments.append(address: problem.x.address)
        arguments.append(address: problem.residual?.address)
        arguments.append(address: problem.weight?.address)
        arguments.append(address: problem.bias?.address)
        arguments.append(address: problem.output.address)
        arguments.append(address: problem.residualOutput?.address)
        arguments.append(address: problem.mean)
        arguments.append(address: problem.rstd)
        arguments.append(problem.rows)
        arguments.append(problem.columns)
        arguments.append(problem.weightRows)
        arguments.append(problem.x.rowStride)
        arguments.append(problem.residual?.rowStride ?? 0)
        arguments.append(problem.weight?.rowStride ?? 0)
        arguments.append(problem.bias?.rowStride ?? 0)
        arguments.append(problem.output.rowStride)
        arguments.append(problem.residualOutput?.rowStride ?? 0)
        arguments.append(problem.epsilon, problem.kind == .rms ? problem.weightOffset : 0)

        try gpu.launch(
            module.function("norm_forward"), blocks: plan.configuration.blocks, threads: plan.configuration.blockSize,
            sharedBytes: plan.sharedBytes, stream: gpu.currentStream, arguments: arguments, name: "norm_forward")
    }
}
