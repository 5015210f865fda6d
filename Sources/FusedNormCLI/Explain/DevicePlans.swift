@_spi(Explain) import FusedNorm

/// How FusedNorm lays one problem out on a device, for `fusednorm explain` (text and the HTML page).
/// GPU plans come from ``FusedNorm/LaunchPlanDescription`` (the heuristic itself, no copy of it).
struct DevicePlan: Codable, Equatable {
    /// `cpu`, `cuda:0`, or a named GPU (`h100 (offline)`).
    var device: String
    /// A description of the device.
    var detail: String
    /// The plan's settings in order, as (name, value) pairs.
    var settings: [[String]]

    /// The CPU's plan: the kernel family, its vector width and the threads rows are split over.
    static func cpu(rows: Int, columns: Int) -> DevicePlan {
        let threads = CPUSettings.threadCount
        return DevicePlan(
            device: "cpu", detail: CPUSettings.simdDescription,
            settings: [
                ["kernel family", CPUSettings.kernels.rawValue],
                ["vector width", "\(CPUSettings.vectorLanes) float32 lanes per register"],
                [
                    "threads",
                    "\(CPUSettings.threadsUsed(rows: rows, columns: columns)) of \(threads) (rows in contiguous chunks; a thread per 2^15 elements of work at most)",
                ],
                [
                    "statistics",
                    CPUSettings.kernels == .portable
                        ? "SIMD16<Float> sums of each row, in float32"
                        : "row sums in 8-lane float32 vectors (FMA, 4 accumulators; LayerNorm's around a shift), "
                            + "blocks of 4096 elements combined in float64; "
                            + "rstd = float32(1 / sqrt(mean square or variance + ε)) computed in float64",
                ],
                [
                    "per row",
                    "pass 1 reads the row once and reduces it to its statistics; pass 2 normalizes it from cache and writes it once",
                ],
            ])
    }

    /// The plan the heuristic picks on a named GPU, without a GPU.
    static func gpu(
        _ operation: ExplainOperation, rows: Int, columns: Int, dtype: DType, weight: Bool,
        named gpu: LaunchPlanDescription.NamedGPU
    ) -> DevicePlan {
        let plan = LaunchPlanDescription.plan(
            for: operation.planOperation, rows: rows, columns: columns, dtype: dtype, weight: weight, gpu: gpu)
        return DevicePlan(device: "\(gpu.rawValue) (offline)", detail: gpu.displayName, plan: plan)
    }

    /// The plan the heuristic picks on CUDA device `index` of this machine.
    static func gpu(
        _ operation: ExplainOperation, rows: Int, columns: Int, dtype: DType, weight: Bool, device index: Int
    ) throws -> DevicePlan {
        let plan = try LaunchPlanDescription.plan(
            for: operation.planOperation, rows: rows, columns: columns, dtype: dtype, weight: weight, device: index)
        let info = CUDA.status.devices.first { $0.index == index }
        let detail =
            info.map {
                "\($0.name), sm_\($0.computeCapability.replacing(".", with: "")), \($0.multiprocessorCount) SMs"
            } ?? "GPU \(index)"
        return DevicePlan(device: "cuda:\(index)", detail: detail, plan: plan)
    }

    private init(device: String, detail: String, settings: [[String]]) {
        self.device = device
        self.detail = detail
        self.settings = settings
    }

    private init(device: String, detail: String, plan p: LaunchPlanDescription) {
        self.device = device
        self.detail = detail
        var settings: [[String]] = [
            ["kernel", "norm_\(p.pass)"],
            ["threads per row", "\(p.threadsPerRow)"],
            ["rows per block", "\(p.rowsPerBlock) (\(p.threadsPerBlock) threads per block)"],
            ["vector width", "\(p.vectorWidth) elements"],
            [
                "vectors per thread",
                "\(p.vectorsPerThread)"
                    + (p.sharedVectorsPerThread > 0 ? " (+\(p.sharedVectorsPerThread) in shared memory)" : ""),
            ],
            ["cluster size", p.clusterSize > 1 ? "\(p.clusterSize) CTAs per row" : "1 (no cluster)"],
            [
                "row storage",
                p.rowStorage + (p.rowStorage == "streaming" && p.segments > 1 ? " (\(p.segments) passes)" : ""),
            ],
            [
                "staging",
                p.stagedBytes > 0 ? "next row copied to shared memory by cp.async (\(p.stagedBytes) B)" : "none",
            ],
        ]
        if p.parameterBytes > 0 { settings.append(["parameters", "in shared memory (\(p.parameterBytes) B)"]) }
        if p.weightInRegisters { settings.append(["weight", "in registers across rows"]) }
        if p.prefetch { settings.append(["prefetch", "next row's loads issued early into registers"]) }
        settings += [
            ["register cap", "\(p.maxRegisters) per thread"],
            ["grid", "\(p.teams) teams, \(p.blocks) blocks, \(p.sharedBytes) B dynamic shared memory per block"],
        ]
        self.settings = settings
    }

    /// The plan as lines of text.
    var lines: [String] {
        let width = settings.map { $0[0].count }.max() ?? 0
        return ["\(device): \(detail)"]
            + settings.map { "  " + $0[0] + String(repeating: " ", count: width - $0[0].count) + "  " + $0[1] }
    }
}

extension ExplainOperation {
    /// The plan API's name for the operation.
    var planOperation: LaunchPlanDescription.Operation {
        switch self {
        case .rmsnorm: .rmsnorm
        case .layernorm: .layernorm
        case .rmsnormResidual: .rmsnormResidual
        case .rmsnormBackward: .rmsnormBackward
        }
    }
}
