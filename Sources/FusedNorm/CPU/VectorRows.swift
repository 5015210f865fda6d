import CFusedNormCPU

/// The CPU backend's rows through the C row kernels of `CFusedNormCPU` (``CPUSettings/Kernels/avx512``, ``CPUSettings/Kernels/avx2``):
/// the same passes, partition and partial sums as the Swift kernels, one C call per row.
extension DType {
    /// The dtype's code in the C API (`CFN_FLOAT32`, `CFN_FLOAT16`, `CFN_BFLOAT16`).
    var rowKernelCode: Int32 {
        switch self {
        case .float32: Int32(CFN_FLOAT32)
        case .float16: Int32(CFN_FLOAT16)
        case .bfloat16: Int32(CFN_BFLOAT16)
        }
    }
}

/// LayerNorm's weight and bias rows packed in 16-bit values of the rows' dtype for the C row kernels
/// (`cfn_pack_weight_bias`): fewer bytes and loads in pass 2 (with float parameters a row of x, weight and bias
/// overflows a 32 KiB L1 at N = 4096). Made only when every value packed is exact in that dtype (the kernels
/// then compute with the same Floats).
struct PackedWeightBias: @unchecked Sendable {
    private let storage: UnsafeMutablePointer<UInt16>
    private let columns: Int

    /// The packed parameters of a forward problem whose pass 2 reads them (LayerNorm with a weight and a
    /// bias, no residual, 16-bit x normalized into its own dtype); nil for any other problem, or when a value
    /// is not exact in that dtype.
    init?(for problem: NormForwardProblem, weights: ParameterRows?, biases: ParameterRows?) {
        let dtype = problem.x.dtype
        guard let weights, let biases, problem.residual == nil, dtype != .float32, problem.output.dtype == dtype
        else { return nil }
        let rows = problem.weightRows, columns = problem.columns
        let storage = UnsafeMutablePointer<UInt16>.allocate(capacity: 2 * rows * columns)
        for row in 0..<rows {
            let packed = cfn_pack_weight_bias(
                weights.row(row), biases.row(row), columns, dtype.rowKernelCode, storage + 2 * row * columns)
            if packed == 0 {
                storage.deallocate()
                return nil
            }
        }
        self.storage = storage
        self.columns = columns
    }

    /// The packed weight and bias of parameter row `row`.
    func row(_ row: Int) -> UnsafeRawPointer { UnsafeRawPointer(storage + 2 * row * columns) }

    /// Frees the packed rows.
    func deallocate() { storage.deallocate() }
}

/// Forward rows with `cfn_forward_row`: pass 1 (statistics; with a residual, s into a per-thread stash) and
/// pass 2 (y, streamed) per row.
struct VectorForwardRows: Sendable {
    let problem: NormForwardProblem
    let weights: ParameterRows?
    let biases: ParameterRows?
    /// The weight and bias again, packed for LayerNorm's 16-bit rows, or nil.
    let packedWeightBias: PackedWeightBias?
    /// The dtype ŝ is rounded to before the weight (`.twice` rounding, the `.llama` style), or nil.
    let hatRounding: DType?
    /// Which build of the kernels (`CFN_KERNELS_*`).
    let kernels: Int32

    func run(_ chunks: Chunks) {
        defer { DType.fenceStreamingStores() }
        let p = problem
        Scratch.with(rows: 1, columns: p.columns, blocks: 0) { scratch in
            var args = cfn_forward_row_args()
            args.columns = p.columns
            args.centered = p.kind == .layer ? 1 : 0
            args.x_dtype = p.x.dtype.rowKernelCode
            args.residual_dtype = p.residual?.dtype.rowKernelCode ?? 0
            args.residual_output_dtype = p.residualOutput?.dtype.rowKernelCode ?? 0
            args.output_dtype = p.output.dtype.rowKernelCode
            args.hat_dtype = (hatRounding ?? .float32).rowKernelCode
            args.epsilon = p.epsilon
            args.stash = scratch.row(0)
            let means = p.mean.map { UnsafeMutablePointer<Float>(bitPattern: $0)! }
            let rstds = p.rstd.map { UnsafeMutablePointer<Float>(bitPattern: $0)! }
            for rows in chunks {
                for row in rows {
                    args.x = UnsafeRawPointer(p.x.pointer(row: row))
                    // The next row of the chunk is prefetched while this one is written.
                    let next = row + 1 < rows.upperBound ? row + 1 : nil
                    args.next_x = next.map { UnsafeRawPointer(p.x.pointer(row: $0)) }
                    if let residual = p.residual, let residualOutput = p.residualOutput {
                        args.residual = UnsafeRawPointer(residual.pointer(row: row))
                        args.residual_output = residualOutput.pointer(row: row)
                        args.next_residual = next.map { UnsafeRawPointer(residual.pointer(row: $0)) }
                    }
                    args.output = p.output.pointer(row: row)
                    args.weight = weights?.row(row % p.weightRows)
                    args.bias = biases?.row(row % p.weightRows)
                    args.weight_bias = packedWeightBias?.row(row % p.weightRows)
                    args.mean = means.map { $0 + row }
                    args.rstd = rstds.map { $0 + row }
                    cfn_forward_row(&args, kernels)
                }
            }
        }
    }
}

/// Backward rows with `cfn_backward_row`, over the tasks of ``GradientGroups`` exactly as the Swift path:
/// each group's rows in order, each adding into the group's partial rows.
struct VectorBackwardRows: Sendable {
    let problem: NormBackwardProblem
    let weights: ParameterRows?
    let groups: GradientGroups
    let headSplits: Int
    let weightPartials: UInt?
    let biasPartials: UInt?
    /// Which build of the kernels (`CFN_KERNELS_*`).
    let kernels: Int32

    func run(_ chunks: Chunks) {
        defer { DType.fenceStreamingStores() }
        let p = problem, n = p.columns
        var args = cfn_backward_row_args()
        args.columns = n
        args.centered = p.kind == .layer ? 1 : 0
        args.x_dtype = p.x.dtype.rowKernelCode
        args.dy_dtype = p.dy.dtype.rowKernelCode
        args.dx_dtype = p.dx.dtype.rowKernelCode
        args.residual_gradient_dtype = p.residualGradient?.dtype.rowKernelCode ?? 0
        args.statistics_saved = p.rstd == nil ? 0 : 1
        args.epsilon = p.epsilon
        let means = p.mean.map { UnsafePointer<Float>(bitPattern: $0)! }
        let rstds = p.rstd.map { UnsafePointer<Float>(bitPattern: $0)! }
        func partial(_ address: UInt?, _ offset: Int) -> UnsafeMutablePointer<Float>? {
            address.map { UnsafeMutablePointer<Float>(bitPattern: $0)! + offset }
        }
        for task in chunks.joined() {
            let (group, split) = task.quotientAndRemainder(dividingBy: headSplits)
            let heads = ParallelRows.range(split, of: headSplits, splitting: p.weightRows)
            for head in heads {
                let offset = groups.partialOffset(group: group, head: head)
                partial(weightPartials, offset)?.initialize(repeating: 0, count: n)
                partial(biasPartials, offset)?.initialize(repeating: 0, count: n)
            }
            let batches = groups.batches(inGroup: group)
            for batch in batches {
                for head in heads {
                    let row = batch * p.weightRows + head, offset = groups.partialOffset(group: group, head: head)
                    args.x = UnsafeRawPointer(p.x.pointer(row: row))
                    args.dy = UnsafeRawPointer(p.dy.pointer(row: row))
                    // The task's next row is prefetched while this one's dx is written.
                    let next =
                        head + 1 < heads.upperBound
                        ? row + 1 : batch + 1 < batches.upperBound ? (batch + 1) * p.weightRows + heads.lowerBound : nil
                    args.next_x = next.map { UnsafeRawPointer(p.x.pointer(row: $0)) }
                    args.next_dy = next.map { UnsafeRawPointer(p.dy.pointer(row: $0)) }
                    args.dx = p.dx.pointer(row: row)
                    args.residual_gradient = p.residualGradient.map { UnsafeRawPointer($0.pointer(row: row)) }
                    args.weight = weights?.row(head)
                    args.mean = means?[row] ?? 0
                    args.rstd = rstds?[row] ?? 0
                    args.weight_gradient = partial(weightPartials, offset)
                    args.bias_gradient = partial(biasPartials, offset)
                    cfn_backward_row(&args, kernels)
                }
            }
        }
    }
}
