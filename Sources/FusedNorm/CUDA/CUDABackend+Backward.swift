extension CUDABackend {
    /// The widest vector every tensor of a backward problem allows (no allocation: the hot path).
    static func backwardVectorWidth(_ problem: NormBackwardProblem) -> Int {
        let narrowest = min(
            problem.dy.dtype.byteCount, problem.x.dtype.byteCount, problem.dx.dtype.byteCount,
            problem.residualGradient?.dtype.byteCount ?? 4, problem.weight?.dtype.byteCount ?? 4)
        var finder = VectorWidthFinder(columns: problem.columns, narrowestBytes: narrowest)
        finder.include(problem.dy, rows: problem.rows)
        finder.include(problem.x, rows: problem.rows)
        finder.include(problem.dx, rows: problem.rows)
        finder.include(problem.residualGradient, rows: problem.rows)
        finder.include(problem.weight, rows: problem.weightRows)
        return finder.width
    }

    /// The kernel specialization and layout for a backward problem (see ``forwardPlan(for:gpu:)``).
    /// `configuration.teams` is parts × weight rows: each team writes one partial sum per dweight element.
    static func backwardPlan(for problem: NormBackwardProblem, gpu: LaunchConfiguration.GPU) -> KernelPlan {
        backwardPlan(
            for: problem,
            configuration: BackwardPlan(problem, vectorWidth: backwardVectorWidth(problem)).configuration(gpu: gpu))
    }

    /// The kernel specialization of a backward problem with a given layout.
    static func backwardPlan(for problem: NormBackwardProblem, configuration: LaunchConfiguration) -> KernelPlan {
        let accumulators = (problem.dweight != nil ? 1 : 0) + (problem.dbias != nil ? 1 : 0)
        let absent = "float"
        let definitions =
            [
                "DY_T=\(problem.dy.dtype.kernelTypeName)",
                "X_T=\(problem.x.dtype.kernelTypeName)",
                "W_T=\(problem.weight?.dtype.kernelTypeName ?? absent)",
                "RG_T=\(problem.residualGradient?.dtype.kernelTypeName ?? absent)",
                "DX_T=\(problem.dx.dtype.kernelTypeName)",
                "DW_T=\(problem.dweight?.dtype.kernelTypeName ?? absent)",
                "DB_T=\(problem.dbias?.dtype.kernelTypeName ?? absent)",
                "LAYER=\(problem.kind == .layer ? 1 : 0)",
                "HAS_WEIGHT=\(problem.weight != nil ? 1 : 0)",
                "HAS_RG=\(problem.residualGradient != nil ? 1 : 0)",
                "HAS_DW=\(problem.dweight != nil ? 1 : 0)",
                "HAS_DB=\(problem.dbias != nil ? 1 : 0)",
                "OFFSET=\(problem.weight != nil && problem.weightOffset != 0 ? 1 : 0)",
            ] + configuration.definitions
        return KernelPlan(
            request: KernelRequest(source: .normBackward, definitions: definitions), configuration: configuration,
            sharedBytes: LaunchConfiguration.backwardSharedBytes(
                configuration, columns: problem.columns, accumulators: accumulators),
            accumulators: accumulators)
    }

    /// The signature a backward plan depends on.
    static func backwardKey(_ problem: NormBackwardProblem, device: Int, vectorWidth: Int) -> PlanKey {
        let dtypes =
            PlanKey.code(problem.dy.dtype) | PlanKey.code(problem.x.dtype) << 4
            | PlanKey.code(problem.weight?.dtype) << 8 | PlanKey.code(problem.residualGradient?.dtype) << 12
            | PlanKey.code(problem.dx.dtype) << 16 | PlanKey.code(problem.dweight?.dtype) << 20
            | PlanKey.code(problem.dbias?.dtype) << 24
        let flags: UInt32 =
            (problem.kind == .layer ? 1 : 0) | (problem.weight != nil && problem.weightOffset != 0 ? 2 : 0)
        return PlanKey(
            device: device, backward: true, dtypes: dtypes, flags: flags, columns: problem.columns, rows: problem.rows,
            weightRows: problem.weightRows, vectorWidth: vectorWidth)
    }

    /// Makes a backward plan ready on this GPU (see ``prepare(_:plan:teams:)``): the teams are fixed here,
    /// since they fix the partial sums and so the order dweight is added in.
    private func prepareBackward(_ problem: NormBackwardProblem) throws -> PreparedLaunch {
        let heads = problem.weightRows
        let ready = try prepare("norm_backward", plan: { Self.backwardPlan(for: problem, gpu: $0) }) {
            BackwardPlan.teams($0, residentClusters: $1, weightRows: heads)
        }
        let c = ready.plan.configuration
        let (blocks, overflow) = c.teams.multipliedReportingOverflow(by: c.clusterSize)
        guard !overflow, blocks <= Int(Int32.max) else {
            throw FusedNormError.invalidArgument(
                name: "weight", reason: "\(heads) weight rows need more blocks than a CUDA grid holds")
        }
        let launch = PreparedLaunch(
            function: ready.function,
            reduce: ready.plan.accumulators > 0 ? ready.module.function("reduce_partials") : nil,
            blocks: blocks, threads: c.blockSize, sharedBytes: ready.plan.sharedBytes, segments: 0,
            parts: c.teams / heads,
            accumulators: ready.plan.accumulators, configuration: c)
        CUDALaunchLog.record(
            "backward", launch, gpu: gpu, activeClusters: ready.activeClusters,
            problem: "\(problem.kind) N=\(problem.columns) rows=\(problem.rows) x=\(problem.x.dtype) H=\(heads)")
        return launch
    }

    /// The launch a backward problem gets (prepared once per signature).
    func preparedBackward(_ problem: NormBackwardProblem) throws -> PreparedLaunch {
        let key = Self.backwardKey(problem, device: gpu.index, vectorWidth: Self.backwardVectorWidth(problem))
        return try KernelCache.current.preparedLaunch(key) { try prepareBackward(problem) }
    }

    /// Runs a backward pass: `norm_backward` writes dx and, per team, fp32 partial sums of dweight and
    /// dbias over a fixed, contiguous share of one weight row's rows into a scratch buffer; `reduce_partials`
    /// adds the partials in a fixed order and stores dweight/dbias, so they are bit-identical from run to run.
    /// The scratch is allocated and freed on the stream the kernels run on (stream-ordered, from the pool).
    func run(_ problem: NormBackwardProblem) throws {
        let launch = try preparedBackward(problem)
        let stream = gpu.currentStream
        let partialBytes = launch.accumulators * launch.parts * problem.weightRows * problem.columns * 4
        try gpu.withContext {
            if launch.accumulators == 0 {
                try queueBackward(problem, launch, partials: 0, stream: stream)
            } else if stream == gpu.defaultStream {
                // The default stream's buffer, kept between calls; locked until both kernels are queued.
                try defaultStreamScratch.withLock { scratch in
                    let partials = try scratch.reserve(partialBytes, gpu: gpu, stream: stream)
                    try queueBackward(problem, launch, partials: partials, stream: stream)
                }
            } else {
                // A caller's stream: scratch allocated and freed in that stream's order.
                let partials = try gpu.allocateScratch(byteCount: partialBytes, stream: stream)
                defer { gpu.freeScratch(partials, stream: stream) }
                try queueBackward(problem, launch, partials: partials, stream: stream)
            }
        }
    }

    /// Queues `norm_backward` and `reduce_partials` on `stream` with `partials` as the partial sums'
    /// buffer (0 without dweight and dbias). The context must be current.
    private func queueBackward(
        _ problem: NormBackwardProblem, _ launch: PreparedLaunch, partials: UInt, stream: CUhandle
    ) throws {
        let columns = problem.columns, heads = problem.weightRows, parts = launch.parts
        var arguments = KernelArguments(BackwardParameters(problem, parts: parts, partials: partials))
        try gpu.launchInContext(
            launch.function, blocks: launch.blocks, threads: launch.threads, sharedBytes: launch.sharedBytes,
            stream: stream, arguments: &arguments, name: "norm_backward")

        guard let reduceFunction = launch.reduce else { return }
        var reduce = KernelArguments(ReduceParameters(problem, parts: parts, partials: partials))
        // 32 elements per block (8 slices of the parts each), as many blocks as fill the GPU.
        let reduceBlocks = max(1, min((heads * columns + 31) / 32, gpu.multiprocessorCount * 8))
        try gpu.launchInContext(
            reduceFunction, blocks: reduceBlocks, threads: 256, sharedBytes: 0, stream: stream, arguments: &reduce,
            name: "reduce_partials")
    }
}
