import Foundation
import Testing

@testable import FusedNorm

/// Every launch plan over a grid of problems, compared line by line with `launch-plans.golden`: the
/// heuristic is a pure function of the problem and the GPU description, so a refactoring must give the
/// same plans. `FUSEDNORM_UPDATE_GOLDEN=1 swift test --filter CUDALaunchPlanGoldenTests` rewrites the file
/// (commit it with the reason the plans change).
@Suite("CUDA launch plans (golden file)")
struct CUDALaunchPlanGoldenTests {
    static let goldenURL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
        "launch-plans.golden")

    static let columns = [
        1, 2, 3, 8, 32, 33, 48, 64, 96, 100, 128, 160, 192, 255, 256, 320, 384, 512, 640, 768, 1000, 1024, 1536, 2048,
        2560, 3072, 3584, 4095, 4096, 5120, 6144, 7168, 8192, 10240, 12288, 16384, 20000, 24576, 32768, 49152, 65536,
        65537, 98304, 131_072, 196_608, 262_144, 393_216, 524_288, 786_432, 1_048_576, 2_097_152, 4_194_304,
    ]
    /// Around the thresholds of the heuristic: the SM count (132), twice it, and the row groups of sub-warp CTAs.
    static let rows = [1, 33, 100, 132, 133, 264, 1000, 4096, 16384, 65536]
    static let fewRows = [1, 65536]

    /// How the first tensor (x) sits in memory: 16-byte aligned with rows of N elements, 8-byte aligned,
    /// or 2 bytes off with rows of N + 1 elements.
    enum Alignment: String, CaseIterable {
        case aligned, offset8, misaligned
    }

    static func view(_ dtype: DType?, columns: Int, alignment: Alignment = .aligned, base: UInt = 0x100_0000)
        -> RowView?
    {
        guard let dtype else { return nil }
        switch alignment {
        case .aligned: return RowView(address: base, rowStride: columns, dtype: dtype)
        case .offset8: return RowView(address: base + 8, rowStride: columns, dtype: dtype)
        case .misaligned: return RowView(address: base + 2, rowStride: columns + 1, dtype: dtype)
        }
    }

    /// A forward or backward problem family: its name and the problem at (N, rows, alignment).
    struct Variant: Sendable {
        var name: String
        var weightRows = 1
        var make: @Sendable (Int, Int, Alignment) -> Plan
    }

    enum Plan: Sendable {
        case forward(NormForwardProblem)
        case backward(NormBackwardProblem)
    }

    static let f32 = DType.float32, f16 = DType.float16, bf16 = DType.bfloat16

    static func forward(
        _ kind: NormKind, x: DType, residual: DType? = nil, s: DType? = nil, weight: DType?, bias: DType? = nil,
        y: DType,
        heads: Int = 1
    ) -> Variant {
        let name =
            "forward \(kind) x=\(x) residual=\(residual?.description ?? "-") s=\(s?.description ?? "-") "
            + "weight=\(weight?.description ?? "-") bias=\(bias?.description ?? "-") y=\(y) H=\(heads)"
        return Variant(name: name, weightRows: heads) { n, rows, alignment in
            .forward(
                NormForwardProblem(
                    kind: kind, rows: rows, columns: n, x: view(x, columns: n, alignment: alignment)!,
                    residual: view(residual, columns: n), weightRows: heads, weight: view(weight, columns: n),
                    bias: view(bias, columns: n), output: view(y, columns: n)!, residualOutput: view(s, columns: n),
                    mean: kind == .layer ? 0x2000 : nil, rstd: 0x3000, epsilon: 1e-6, weightOffset: 0, rounding: .once))
        }
    }

    static func backward(
        _ kind: NormKind, dy: DType, x: DType, weight: DType?, residualGradient: DType? = nil, dx: DType,
        dweight: DType?,
        dbias: DType? = nil, heads: Int = 1
    ) -> Variant {
        let name =
            "backward \(kind) dy=\(dy) x=\(x) weight=\(weight?.description ?? "-") "
            + "residualGradient=\(residualGradient?.description ?? "-") dx=\(dx) dweight=\(dweight?.description ?? "-") "
            + "dbias=\(dbias?.description ?? "-") H=\(heads)"
        return Variant(name: name, weightRows: heads) { n, rows, alignment in
            .backward(
                NormBackwardProblem(
                    kind: kind, rows: rows, columns: n, dy: view(dy, columns: n)!,
                    x: view(x, columns: n, alignment: alignment)!,
                    weightRows: heads, weight: view(weight, columns: n), mean: nil, rstd: nil,
                    residualGradient: view(residualGradient, columns: n), dx: view(dx, columns: n)!,
                    dweight: view(dweight, columns: n), dbias: view(dbias, columns: n), epsilon: 1e-5, weightOffset: 0))
        }
    }

    /// float16 plans are those of bfloat16 (the rules see bytes per element), so float16 appears once, mixed.
    static let variants: [Variant] = [
        forward(.rms, x: f32, weight: f32, y: f32),
        forward(.rms, x: bf16, weight: bf16, y: bf16),
        forward(.rms, x: bf16, weight: nil, y: bf16),
        forward(.rms, x: bf16, weight: f32, y: bf16),
        forward(.rms, x: bf16, weight: bf16, y: f32),
        forward(.rms, x: f16, weight: f32, y: f16),
        forward(.rms, x: bf16, residual: bf16, s: bf16, weight: bf16, y: bf16),
        forward(.rms, x: bf16, residual: f32, s: f32, weight: bf16, y: bf16),
        forward(.rms, x: f32, residual: f32, s: f32, weight: f32, y: f32),
        forward(.rms, x: bf16, weight: bf16, y: bf16, heads: 8),
        forward(.rms, x: bf16, weight: bf16, y: bf16, heads: 6),
        forward(.layer, x: f32, weight: f32, bias: f32, y: f32),
        forward(.layer, x: bf16, weight: bf16, bias: bf16, y: bf16),
        forward(.layer, x: bf16, weight: f32, bias: f32, y: bf16),
        forward(.layer, x: bf16, weight: bf16, y: bf16),
        forward(.layer, x: bf16, weight: nil, y: bf16),
        forward(.layer, x: bf16, residual: bf16, s: bf16, weight: bf16, bias: bf16, y: bf16),
        backward(.rms, dy: f32, x: f32, weight: f32, dx: f32, dweight: f32),
        backward(.rms, dy: bf16, x: bf16, weight: bf16, dx: bf16, dweight: bf16),
        backward(.rms, dy: bf16, x: bf16, weight: nil, dx: bf16, dweight: nil),
        backward(.rms, dy: bf16, x: bf16, weight: bf16, dx: bf16, dweight: nil),
        backward(.rms, dy: bf16, x: bf16, weight: bf16, residualGradient: bf16, dx: bf16, dweight: bf16),
        backward(.rms, dy: f32, x: bf16, weight: bf16, dx: bf16, dweight: f32),
        backward(.rms, dy: bf16, x: bf16, weight: bf16, dx: bf16, dweight: bf16, heads: 8),
        backward(.layer, dy: f32, x: f32, weight: f32, dx: f32, dweight: f32, dbias: f32),
        backward(.layer, dy: bf16, x: bf16, weight: bf16, dx: bf16, dweight: bf16, dbias: bf16),
        backward(.layer, dy: bf16, x: bf16, weight: bf16, dx: bf16, dweight: bf16),
        backward(.layer, dy: bf16, x: bf16, weight: nil, dx: bf16, dweight: nil),
        backward(.layer, dy: f32, x: bf16, weight: f32, dx: bf16, dweight: f32, dbias: f32),
        backward(.layer, dy: bf16, x: bf16, weight: bf16, dx: bf16, dweight: bf16, dbias: bf16, heads: 8),
    ]

    /// A GPU description with a name, and the grid it is swept over.
    struct Target {
        var names: String
        var gpu: LaunchConfiguration.GPU
        var columns: [Int]
        var rows: [Int]
        var alignments: [Alignment]
    }

    static var targets: [Target] {
        var capped: [Target] = []
        for cluster in [8, 4, 2] {
            // What preparing a launch falls back to when the driver can hold no cluster of twice the size.
            var gpu = LaunchConfiguration.GPU.h200
            gpu.maxClusterSize = cluster
            capped.append(
                Target(
                    names: "h200, clusters of at most \(cluster)", gpu: gpu, columns: columns.filter { $0 >= 16384 },
                    rows: fewRows, alignments: [.aligned]))
        }
        // Made-up descriptions without clusters (sm_80-like; sm_75-like without cp.async), for the other branches.
        let sm80 = LaunchConfiguration.GPU(
            multiprocessors: 108, sharedMemoryPerBlock: 166_912, sharedMemoryPerMultiprocessor: 167_936,
            maxClusterSize: 1)
        var sm75 = LaunchConfiguration.GPU(
            multiprocessors: 40, sharedMemoryPerBlock: 65536, sharedMemoryPerMultiprocessor: 65536, maxClusterSize: 1)
        sm75.asyncCopies = false
        return [
            Target(names: "h100", gpu: .h100, columns: columns, rows: rows, alignments: [.aligned]),
            Target(names: "h200", gpu: .h200, columns: columns, rows: rows, alignments: [.aligned]),
            Target(names: "h100", gpu: .h100, columns: columns, rows: fewRows, alignments: [.offset8, .misaligned]),
            Target(names: "h200", gpu: .h200, columns: columns, rows: fewRows, alignments: [.offset8, .misaligned]),
        ] + capped + [
            Target(
                names: "sm80-like (108 SMs, no clusters)", gpu: sm80, columns: columns, rows: fewRows,
                alignments: [.aligned]),
            Target(
                names: "sm75-like (40 SMs, no clusters, no cp.async)", gpu: sm75, columns: columns, rows: fewRows,
                alignments: [.aligned]),
        ]
    }

    static let legend = """
        # Launch plans, one line per problem: generated by CUDALaunchPlanGoldenTests (FUSEDNORM_UPDATE_GOLDEN=1 rewrites).
        # Sections: "## <GPU description(s)> | <variant> | <alignment of x>"; GPUs whose plans are identical share a section.
        # Columns: N rows | threads per row, rows per CTA, CTAs per cluster, vector width, vectors per thread in registers,
        # in shared memory, row storage (reg/str), weight in registers (w), prefetch (p), shared accumulators (a),
        # register cap, staged bytes, parameter bytes, teams, segments | dynamic shared bytes, accumulators (a).
        #       N  rows |  tpr rpb cl v vpt spt hold w p a reg staged params  teams seg | shared a
        """

    static func pad(_ value: Any, _ width: Int) -> String {
        let text = "\(value)"
        return String(repeating: " ", count: max(0, width - text.count)) + text
    }

    /// One plan as a fixed-width line.
    static func line(columns: Int, rows: Int, _ plan: KernelPlan) -> String {
        let c = plan.configuration
        let fields: [(Any, Int)] = [
            (c.threadsPerRow, 5), (c.rowsPerBlock, 3), (c.clusterSize, 2), (c.vectorWidth, 1), (c.vectorsPerThread, 3),
            (c.sharedVectorsPerThread, 3), (c.rowStorage == .registers ? "reg" : "str", 4),
            (c.weightInRegisters ? 1 : 0, 1),
            (c.prefetch ? 1 : 0, 1), (c.sharedAccumulators ? 1 : 0, 1), (c.maxRegisters, 3), (c.stagedBytes, 6),
            (c.parameterBytes, 6), (c.teams, 6), (c.segments, 3),
        ]
        return pad(columns, 9) + pad(rows, 6) + " |" + fields.map { pad($0.0, $0.1) }.joined(separator: " ") + " |"
            + pad(plan.sharedBytes, 7) + pad(plan.accumulators, 2)
    }

    static func plan(_ variant: Variant, columns n: Int, rows: Int, alignment: Alignment, gpu: LaunchConfiguration.GPU)
        -> KernelPlan
    {
        switch variant.make(n, rows, alignment) {
        case .forward(let problem): return CUDABackend.forwardPlan(for: problem, gpu: gpu)
        case .backward(let problem): return CUDABackend.backwardPlan(for: problem, gpu: gpu)
        }
    }

    /// The whole file: sections per target, variant and alignment; consecutive targets with the same grid
    /// and identical plans share one section.
    static func render() -> String {
        var output = [legend]
        let targets = self.targets
        var index = 0
        while index < targets.count {
            // Targets of the same grid side by side (h100 then h200).
            var group = [targets[index]]
            while index + group.count < targets.count, targets[index + group.count].columns == group[0].columns,
                targets[index + group.count].rows == group[0].rows,
                targets[index + group.count].alignments == group[0].alignments
            {
                group.append(targets[index + group.count])
            }
            index += group.count
            for alignment in group[0].alignments {
                for variant in variants {
                    var sections: [(names: [String], lines: [String])] = []
                    for target in group {
                        var lines: [String] = []
                        for n in target.columns {
                            for rows in target.rows {
                                // Per-head weights: rows are a multiple of the weight rows.
                                let rows = (rows + variant.weightRows - 1) / variant.weightRows * variant.weightRows
                                let plan = plan(variant, columns: n, rows: rows, alignment: alignment, gpu: target.gpu)
                                lines.append(line(columns: n, rows: rows, plan))
                            }
                        }
                        if let same = sections.firstIndex(where: { $0.lines == lines }) {
                            sections[same].names.append(target.names)
                        } else {
                            sections.append(([target.names], lines))
                        }
                    }
                    for section in sections {
                        output.append("## \(section.names.joined(separator: ", ")) | \(variant.name) | \(alignment)")
                        output.append(contentsOf: section.lines)
                    }
                }
            }
        }
        return output.joined(separator: "\n") + "\n"
    }

    @Test("the launch plans match the golden file line by line")
    func plansMatchGoldenFile() throws {
        let actual = Self.render()
        if ProcessInfo.processInfo.environment["FUSEDNORM_UPDATE_GOLDEN"] == "1" {
            try actual.write(to: Self.goldenURL, atomically: true, encoding: .utf8)
            return
        }
        let expected = try String(contentsOf: Self.goldenURL, encoding: .utf8)
        let expectedLines = expected.split(separator: "\n", omittingEmptySubsequences: false)
        let actualLines = actual.split(separator: "\n", omittingEmptySubsequences: false)
        var differences: [String] = []
        var section = ""
        for (number, pair) in zip(expectedLines, actualLines).enumerated() {
            if pair.0.hasPrefix("## ") { section = String(pair.0) }
            guard pair.0 != pair.1 else { continue }
            differences.append("line \(number + 1) in \(section)\n  golden: \(pair.0)\n  now:    \(pair.1)")
        }
        #expect(
            expectedLines.count == actualLines.count,
            "golden file has \(expectedLines.count) lines, the plans \(actualLines.count)")
        let report =
            "\(differences.count) plans differ from \(Self.goldenURL.lastPathComponent) (FUSEDNORM_UPDATE_GOLDEN=1 "
            + "rewrites it); the first ones:\n" + differences.prefix(20).joined(separator: "\n")
        #expect(differences.isEmpty, "\(report)")
    }
}
