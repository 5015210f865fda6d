import FusedNorm

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The interactive page of `fusednorm explain --html`: explain.html (a resource of this target, embedded in
/// the binary) with the walkthrough, the plans and the traffic model's coefficients put in as JSON.
enum ExplainPage {
    /// Where the data go in the page.
    static let placeholder = "/*FUSEDNORM_DATA*/null"

    /// Row counts, feature dimensions and block sizes the page offers.
    static let pageRows = 2...4, pageColumns = [2, 4, 8], pageBlocks = [1, 2, 4, 8]

    /// Whether the page can start from `walkthrough`.
    static func canShow(_ walkthrough: Walkthrough) -> Bool {
        walkthrough.operation == "rmsnorm" && pageRows.contains(walkthrough.rows)
            && pageColumns.contains(walkthrough.columns)
            && walkthrough.dtype == "float32" && walkthrough.weight == nil && pageBlocks.contains(walkthrough.block)
            && walkthrough.block <= walkthrough.columns
    }

    /// The traffic model of one configuration as per-kernel coefficients: bytes = a·M·N + b·M + c·N.
    struct TrafficCoefficients: Encodable {
        var op: String
        var dtype: String
        var residual: Bool
        /// pass → implementation → kernels as [name, a, b, c].
        var passes: [String: [String: [[String]]]]
    }

    static func coefficients(_ model: TrafficModel) -> TrafficCoefficients {
        func linear(_ bytes: (Int, Int) -> Int) -> [Int] {
            // bytes(M, N) = a·M·N + b·M + c·N, from four evaluations.
            let f11 = bytes(1, 1), f21 = bytes(2, 1), f12 = bytes(1, 2), f22 = bytes(2, 2)
            let a = f22 - f21 - f12 + f11
            return [a, f21 - f11 - a, f12 - f11 - a]
        }
        func kernels(_ list: [TrafficModel.Kernel]) -> [[String]] {
            list.map { kernel in [kernel.name] + linear { kernel.bytes(rows: $0, columns: $1) }.map(String.init) }
        }
        let fused = model.pytorchFused
        return TrafficCoefficients(
            op: model.norm.rawValue, dtype: model.dtype.rawValue, residual: model.residual,
            passes: [
                "forward": [
                    "eager": kernels(model.eagerForward), "pytorch": kernels(fused.forward),
                    "fusednorm": [
                        ["fusednorm"] + linear { model.fusedFloor(rows: $0, columns: $1).forward }.map(String.init)
                    ],
                ],
                "backward": [
                    "eager": kernels(model.eagerBackward), "pytorch": kernels(fused.backward),
                    "fusednorm": [
                        ["fusednorm"] + linear { model.fusedFloor(rows: $0, columns: $1).backward }.map(String.init)
                    ],
                ],
            ])
    }

    /// The page, with `pageInput` as its starting matrix and FusedNorm's values for it.
    static func render(walkthrough: Walkthrough, plans: [DevicePlan], pageInput: Walkthrough) throws -> String {
        struct Data: Encodable {
            var walkthrough: Walkthrough
            var explained: String
            var plans: [DevicePlan]
            var traffic: [TrafficCoefficients]
            var bandwidths: [String: Double]
        }
        var traffic: [TrafficCoefficients] = []
        for norm in TrafficModel.Norm.allCases {
            for dtype in [DType.bfloat16, .float16, .float32] {
                for residual in [false, true] {
                    traffic.append(coefficients(TrafficModel(norm: norm, dtype: dtype, residual: residual)))
                }
            }
        }
        let data = Data(
            walkthrough: pageInput,
            explained: "\(walkthrough.operation), \(walkthrough.rows) x \(walkthrough.columns) \(walkthrough.dtype)",
            plans: plans, traffic: traffic,
            bandwidths: TrafficCommand.datasheetBandwidth.mapValues(\.gbps))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // JSONEncoder writes "/" as "\/", so that no "</script>" can end the data early.
        let json = String(decoding: try encoder.encode(data), as: UTF8.self)
        let template = String(decoding: PackageResources.explain_html, as: UTF8.self)
        guard template.contains(placeholder) else { throw CLIError("explain.html has no data placeholder") }
        return template.replacing(placeholder, with: json)
    }
}
