extension KernelSource {
    /// RMSNorm and LayerNorm backward and the dweight/dbias reduction (Kernels/NormBackward.cu.swift).
    static let normBackward = KernelSource(
        name: "norm_backward", text: normBackwardSource, entryPoints: ["norm_backward", "reduce_partials"])
}

extension CUDABackend {
    /// The kernel specialization and layout for a backward problem (see ``forwardPlan(for:multiprocessors:sharedMemoryPerBlock:)``).
    /// `configuration.blocks` is the number of partial sums per dweight element (blocks per weight row).
    static func backwardPlan(for problem: NormBackwardProblem, multiprocessors: Int, sharedMemoryPerBlock: Int) -> KernelPlan {
        let rows = problem.rows, columns = problem.columns
        var accesses = [
            LaunchConfiguration.Access(problem.dy, rows: rows), LaunchConfiguration.Access(problem.x, rows: rows),
            LaunchConfiguration.Access(problem.dx, rows: rows),
        ]
        if let residualGradient = problem.residualGradient {
            accesses.append(LaunchConfiguration.Access(residualGradient, rows: rows))
        }
        if let weight = problem.weight {
            accesses.append(LaunchConfiguration.Access(weight, rows: problem.weightRows))
        }
        let accumulators = (problem.dweight != nil ? 1 : 0) + (problem.dbias != nil ? 1 : 0)
        let configuration = LaunchConfiguration.choose(
            for: .backward, columns: columns, rows: rows, weightRows: problem.weightRows,
            vectorWidth: LaunchConfiguration.vectorWidth(columns: columns, accesses: accesses),
            rowElementBytes: problem.x.dtype.byteCount, accumulators: accumulators,
            multiprocessors: multiprocessors, sharedMemoryPerBlock: sharedMemoryPerBlock)

        let absent = "float"
        let definitions = [
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
        ] + configuration.definitions
        let sharedBytes: Int
        switch configuration.rowStorage {
        case .registers:
            // Combining the row groups of a block: [rowsPerBlock][columns] fp32.
            sharedBytes = configuration.rowsPerBlock > 1 && accumulators > 0 ? configuration.rowsPerBlock * columns * 4 : 0
        case .sharedMemory, .global:
            sharedBytes = configuration.sharedAccumulators ? accumulators * columns * 4 : 0
        }
        return KernelPlan(
            request: KernelRequest(source: .normBackward, definitions: definitions), configuration: configuration,
            sharedBytes: sharedBytes, accumulators: accumulators)
    }

    /// Runs a backward pass: `norm_backward` writes dx and, per block, fp32 partial sums of dweight and
    /// dbias for a fixed set of rows into a scratch buffer; `reduce_partials` adds the partials in a fixed
    /// order and stores dweight/dbias, so they are bit-identical from run to run.
    func run(_ problem: NormBackwardProblem) throws {
        let plan = Self.backwardPlan(
            for: problem, multiprocessors: gpu.multiprocessorCount, sharedMemoryPerBlock: gpu.sharedMemoryPerBlock)
        let columns = problem.columns, heads = problem.weightRows, parts = plan.configuration.blocks
        let (blocks, overflow) = parts.multipliedReportingOverflow(by: heads)
        guard !overflow, blocks <= Int(Int32.max) else {
            throw FusedNormError.invalidArgument(name: "weight", reason: "\(heads) weight rows need more blocks than a CUDA grid holds")
        }
        let module = try module(for: plan.request)

        // Scratch for the partial sums: [accumulators][parts][heads][columns] fp32, released (stream-ordered)
        // when this call returns, after the kernels queued here.
        let partials = plan.accumulators > 0 ? try DeviceBuffer(gpu: gpu, byteCount: plan.accumulators * blocks * columns * 4) : nil
        try withExtendedLifetime(partials) {
            let stream = gpu.currentStream
            var arguments = KernelArguments()
            arguments.append(address: problem.dy.address)
            arguments.append(address: problem.x.address)
            arguments.append(address: problem.weight?.address)
            arguments.append(address: problem.mean)
            arguments.append(address: problem.rstd)
            arguments.append(address: problem.residualGradient?.address)
            arguments.append(address: problem.dx.address)
            arguments.append(address: partials?.address)
            arguments.append(problem.rows)
            arguments.append(columns)
            arguments.append(heads)
            arguments.append(parts)
            arguments.append(problem.dy.rowStride)
            arguments.append(problem.x.rowStride)
            arguments.append(problem.weight?.rowStride ?? 0)
            arguments.append(problem.residualGradient?.rowStride ?? 0)
            arguments.append(problem.dx.rowStride)
            arguments.append(problem.epsilon, problem.weightOffset)
            try gpu.launch(
                module.function("norm_backward"), blocks: blocks, threads: plan.configuration.blockSize,
                sharedBytes: plan.sharedBytes, stream: stream, arguments: arguments, name: "norm_backward")

            guard let partials else { return }
            var reduce = KernelArguments()
            reduce.append(address: partials.address)
            reduce.append(address: problem.dweight?.address)
            reduce.append(address: problem.dbias?.address)
            reduce.append(parts)
            reduce.append(heads * columns)
            reduce.append(columns)
            reduce.append(problem.dweight?.rowStride ?? 0)
            reduce.append(problem.dbias?.rowStride ?? 0)
            let threads = 256
            let reduceBlocks = max(1, min((heads * columns + threads - 1) / threads, gpu.multiprocessorCount * 8))
            try gpu.launch(
                module.function("reduce_partials"), blocks: reduceBlocks, threads: threads, sharedBytes: 0,
                stream: stream, arguments: reduce, name: "reduce_partials")
        }
    }
}
