/// The launch plan FusedNorm's heuristic picks for a problem, as plain values for `fusednorm explain`: the one
/// place outside the CUDA backend that reads ``LaunchConfiguration`` and ``KernelPlan`` (a pure function of
/// the problem and the GPU description, so it needs no GPU for a named one).
@_spi(Explain) public struct LaunchPlanDescription: Sendable, Equatable {
    /// The operation a plan is made for; tensors contiguous and aligned, as FusedNorm allocates them, every
    /// tensor in one dtype (as `fusednorm run` rounds every input to `--dtype`).
    public enum Operation: String, Sendable, CaseIterable {
        case rmsnorm, layernorm
        /// RMSNorm with the residual add fused: s = x + residual; y = RMSNorm(s).
        case rmsnormResidual = "rmsnorm-residual"
        case rmsnormBackward = "rmsnorm-backward"
    }

    /// A GPU described without a GPU: the heuristic's inputs (SM count, shared memory, clusters).
    public enum NamedGPU: String, Sendable, CaseIterable {
        case h100, h200

        var description: LaunchConfiguration.GPU {
            switch self {
            case .h100: .h100
            case .h200: .h200
            }
        }

        /// The name a person reads.
        public var displayName: String {
            switch self {
            case .h100: "H100 SXM (132 SMs, sm_90)"
            case .h200: "H200 (132 SMs, sm_90)"
            }
        }
    }

    public var pass: String
    public var threadsPerRow: Int
    public var rowsPerBlock: Int
    public var threadsPerBlock: Int
    public var vectorWidth: Int
    public var vectorsPerThread: Int
    /// Vectors per thread held in shared memory after those in registers (forward, long rows).
    public var sharedVectorsPerThread: Int
    public var clusterSize: Int
    /// `registers` (each tensor read once) or `streaming` (rows too long for the team: read again).
    public var rowStorage: String
    /// Forward streaming: passes over a CTA's part of the row.
    public var segments: Int
    /// Bytes of the next row staged in shared memory by `cp.async` (0: none).
    public var stagedBytes: Int
    /// Bytes of weight and bias held in shared memory (0: none).
    public var parameterBytes: Int
    public var weightInRegisters: Bool
    public var prefetch: Bool
    public var maxRegisters: Int
    public var teams: Int
    public var blocks: Int
    /// Dynamic shared memory per CTA.
    public var sharedBytes: Int
    /// The `-D` definitions the kernel is compiled with.
    public var definitions: [String]
    /// The heuristic's one-line summary.
    public var summary: String

    init(pass: String, plan: KernelPlan) {
        let c = plan.configuration
        self.pass = pass
        threadsPerRow = c.threadsPerRow
        rowsPerBlock = c.rowsPerBlock
        threadsPerBlock = c.blockSize
        vectorWidth = c.vectorWidth
        vectorsPerThread = c.vectorsPerThread
        sharedVectorsPerThread = c.sharedVectorsPerThread
        clusterSize = c.clusterSize
        rowStorage = c.rowStorage == .registers ? "registers" : "streaming"
        segments = c.segments
        stagedBytes = c.stagedBytes
        parameterBytes = c.parameterBytes
        weightInRegisters = c.weightInRegisters
        prefetch = c.prefetch
        maxRegisters = c.maxRegisters
        teams = c.teams
        blocks = c.blocks
        sharedBytes = plan.sharedBytes
        definitions = plan.request.definitions
        summary = c.description
    }

    /// The plan for `operation` over `rows` × `columns` elements of `dtype` on a GPU described by `gpu`.
    /// - Parameters:
    ///   - operation: what runs.
    ///   - rows: M.
    ///   - columns: N.
    ///   - dtype: of every tensor.
    ///   - weight: whether a weight is given (LayerNorm: and a bias).
    ///   - gpu: a named GPU.
    public static func plan(
        for operation: Operation, rows: Int, columns: Int, dtype: DType, weight: Bool, gpu: NamedGPU
    ) -> LaunchPlanDescription {
        plan(for: operation, rows: rows, columns: columns, dtype: dtype, weight: weight, shape: gpu.description)
    }

    /// The plan FusedNorm makes for `operation` on CUDA device `index` (its SM count, shared memory,
    /// architecture and the `FUSEDNORM_CUDA_*` overrides), before the driver's cluster occupancy check.
    /// - Throws: ``FusedNormError/deviceUnavailable(_:reason:)`` when the GPU cannot be opened.
    public static func plan(
        for operation: Operation, rows: Int, columns: Int, dtype: DType, weight: Bool, device index: Int
    ) throws -> LaunchPlanDescription {
        let shape = try CUDABackend.cudaBackend(forDevice: index).gpu.launchShape
        return plan(for: operation, rows: rows, columns: columns, dtype: dtype, weight: weight, shape: shape)
    }

    static func plan(
        for operation: Operation, rows: Int, columns: Int, dtype: DType, weight: Bool, shape: LaunchConfiguration.GPU
    ) -> LaunchPlanDescription {
        // Addresses far apart and 256-byte aligned, as the allocator returns them; contiguous rows.
        var next: UInt = 0x1000_0000
        func view() -> RowView {
            defer { next += 0x1000_0000 }
            return RowView(address: next, rowStride: columns, dtype: dtype)
        }
        let layer = operation == .layernorm
        switch operation {
        case .rmsnorm, .layernorm, .rmsnormResidual:
            let residual = operation == .rmsnormResidual
            let problem = NormForwardProblem(
                kind: layer ? .layer : .rms, rows: rows, columns: columns, x: view(), residual: residual ? view() : nil,
                weightRows: 1, weight: weight ? view() : nil, bias: layer && weight ? view() : nil, output: view(),
                residualOutput: residual ? view() : nil, mean: layer ? next : nil, rstd: next + 0x100_0000,
                epsilon: 1e-6, weightOffset: 0, rounding: .once)
            return LaunchPlanDescription(pass: "forward", plan: CUDABackend.forwardPlan(for: problem, gpu: shape))
        case .rmsnormBackward:
            let problem = NormBackwardProblem(
                kind: .rms, rows: rows, columns: columns, dy: view(), x: view(), weightRows: 1,
                weight: weight ? view() : nil, mean: nil, rstd: next, residualGradient: nil, dx: view(),
                dweight: weight ? view() : nil, dbias: nil, epsilon: 1e-6, weightOffset: 0)
            return LaunchPlanDescription(pass: "backward", plan: CUDABackend.backwardPlan(for: problem, gpu: shape))
        }
    }
}
