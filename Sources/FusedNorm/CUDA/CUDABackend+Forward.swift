extension CUDABackend {
    /// The widest vector every tensor of a forward problem allows (no allocation: the hot path).
    static func forwardVectorWidth(_ problem: NormForwardProblem) -> Int {
        let narrowest = min(
            problem.x.dtype.byteCount, problem.output.dtype.byteCount, problem.residual?.dtype.byteCount ?? 4,
            problem.residualOutput?.dtype.byteCount ?? 4, problem.weight?.dtype.byteCount ?? 4,
            problem.bias?.dtype.byteCount ?? 4)
        var finder = VectorWidthFinder(columns: problem.columns, narrowestBytes: narrowest)
        finder.include(problem.x, rows: problem.rows)
        finder.include(problem.output, rows: problem.rows)
        finder.include(problem.residual, rows: problem.rows)
        finder.include(problem.residualOutput, rows: problem.rows)
        finder.include(problem.weight, rows: problem.weightRows)
        finder.include(problem.bias, rows: problem.weightRows)
        return finder.width
    }

    /// The kernel specialization and layout for a forward problem on a GPU of shape `gpu`. Needs no GPU
    /// (tests compile every plan).
    static func forwardPlan(for problem: NormForwardProblem, gpu: LaunchConfiguration.GPU) -> KernelPlan {
        forwardPlan(
            for: problem,
            configuration: ForwardPlan(problem, vectorWidth: forwardVectorWidth(problem)).configuration(gpu: gpu))
    }

    /// The kernel specialization of a forward problem with a given layout.
    static func forwardPlan(for problem: NormForwardProblem, configuration: LaunchConfiguration) -> KernelPlan {
        let absent = "float"
        let definitions =
            [
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
                "LLAMA=\(problem.kind == .rms && problem.rounding == .twice ? 1 : 0)",
            ] + configuration.definitions
        let rowDType = problem.residualOutput?.dtype ?? problem.x.dtype
        return KernelPlan(
            request: KernelRequest(source: .normForward, definitions: definitions), configuration: configuration,
            sharedBytes: LaunchConfiguration.forwardSharedBytes(configuration, rowElementBytes: rowDType.byteCount))
    }

    /// The signature a forward plan depends on.
    static func forwardKey(_ problem: NormForwardProblem, device: Int, vectorWidth: Int) -> PlanKey {
        let dtypes =
            PlanKey.code(problem.x.dtype) | PlanKey.code(problem.residual?.dtype) << 4
            | PlanKey.code(problem.residualOutput?.dtype) << 8 | PlanKey.code(problem.weight?.dtype) << 12
            | PlanKey.code(problem.bias?.dtype) << 16 | PlanKey.code(problem.output.dtype) << 20
        let flags: UInt32 =
            (problem.kind == .layer ? 1 : 0) | (problem.kind == .rms && problem.rounding == .twice ? 2 : 0)
        return PlanKey(
            device: device, backward: false, dtypes: dtypes, flags: flags, columns: problem.columns, rows: problem.rows,
            weightRows: problem.weightRows, vectorWidth: vectorWidth)
    }

    /// Makes a forward plan ready on this GPU (see ``prepare(_:plan:teams:)``).
    private func prepareForward(_ problem: NormForwardProblem) throws -> PreparedLaunch {
        let ready = try prepare(
            "norm_forward", plan: { Self.forwardPlan(for: problem, gpu: $0) },
            teams: ForwardPlan.teams(_:residentClusters:))
        let c = ready.plan.configuration
        let launch = PreparedLaunch(
            function: ready.function, reduce: nil, blocks: c.blocks, threads: c.blockSize,
            sharedBytes: ready.plan.sharedBytes,
            segments: c.segments, parts: 0, accumulators: 0, configuration: c)
        CUDALaunchLog.record(
            "forward", launch, gpu: gpu, activeClusters: ready.activeClusters,
            problem: "\(problem.kind) N=\(problem.columns) rows=\(problem.rows) x=\(problem.x.dtype)")
        return launch
    }

    /// The launch a forward problem gets (prepared once per signature).
    func preparedForward(_ problem: NormForwardProblem) throws -> PreparedLaunch {
        let key = Self.forwardKey(problem, device: gpu.index, vectorWidth: Self.forwardVectorWidth(problem))
        return try KernelCache.current.preparedLaunch(key) { try prepareForward(problem) }
    }

    /// Runs a forward pass: one launch of `norm_forward`, specialized for the problem's dtypes and
    /// variant and laid out by ``LaunchConfiguration``.
    func run(_ problem: NormForwardProblem) throws {
        let launch = try preparedForward(problem)
        var arguments = KernelArguments(ForwardParameters(problem, segments: launch.segments))

        let stream = gpu.currentStream
        try gpu.withContext {
            try gpu.launchInContext(
                launch.function, blocks: launch.blocks, threads: launch.threads, sharedBytes: launch.sharedBytes,
                stream: stream, arguments: &arguments, name: "norm_forward")
        }
    }
}
