import Testing

@testable import FusedNorm

/// The launch heuristic and the vector-width choice: pure functions, checked on every machine.
@Suite("CUDA launch configuration")
struct CUDALaunchConfigurationTests {
    static let columns = [
        1, 2, 3, 8, 33, 64, 128, 256, 512, 1000, 1024, 2048, 3584, 4095, 4096, 5120, 8192, 16384, 20000, 32768, 65536,
        65537, 131_072, 262_144, 524_288, 1_048_576, 4_194_304,
    ]

    enum Pass: Sendable { case forward, backward }

    @Test("every layout is launchable and covers the row", arguments: [Pass.forward, .backward])
    func layoutsAreValid(_ pass: Pass) {
        for gpu in [
            LaunchConfiguration.GPU.h200,
            LaunchConfiguration.GPU(
                multiprocessors: 80, sharedMemoryPerBlock: 101_376, sharedMemoryPerMultiprocessor: 102_400,
                maxClusterSize: 1),
        ] {
            for n in Self.columns {
                for width in [1, 2, 4, 8] where n % width == 0 {
                    for rows in [1, 7, 1000, 1_000_000] {
                        for bytes in [2, 4] {
                            for (residual, bias) in pass == .forward
                                ? [(false, false), (true, false), (false, true)] : [(false, false)]
                            {
                                let c =
                                    switch pass {
                                    case .forward:
                                        ForwardPlan(
                                            columns: n, rows: rows, vectorWidth: width, rowElementBytes: bytes,
                                            parameterElementBytes: bias ? [bytes, bytes] : [bytes], residual: residual,
                                            bias: bias
                                        ).configuration(gpu: gpu)
                                    case .backward:
                                        BackwardPlan(
                                            columns: n, rows: rows, vectorWidth: width, pairBytes: 2 * bytes,
                                            accumulators: 2
                                        ).configuration(gpu: gpu)
                                    }
                                let label =
                                    "\(pass) N=\(n) rows=\(rows) width=\(width) bytes=\(bytes) residual=\(residual): \(c)"
                                #expect(c.blockSize % 32 == 0 && c.blockSize <= 1024, "\(label)")
                                #expect(c.threadsPerRow == nextPowerOfTwo(c.threadsPerRow), "\(label)")
                                #expect(c.threadsPerRow <= 32 || c.rowsPerBlock == 1, "\(label)")
                                #expect(
                                    c.clusterSize == nextPowerOfTwo(c.clusterSize)
                                        && c.clusterSize <= gpu.maxClusterSize, "\(label)")
                                #expect(c.clusterSize == 1 || c.rowsPerBlock == 1, "\(label)")
                                #expect(c.teams >= 1 && c.maxRegisters * c.blockSize <= 65536, "\(label)")
                                let vectors = (n + width - 1) / width
                                switch (pass, c.rowStorage) {
                                case (_, .registers):
                                    #expect(
                                        c.clusterSize * c.threadsPerRow
                                            * (c.vectorsPerThread + c.sharedVectorsPerThread) >= vectors, "\(label)")
                                    #expect(c.vectorsPerThread <= 16 && c.sharedVectorsPerThread <= 10, "\(label)")
                                    #expect(
                                        LaunchConfiguration.forwardSharedBytes(c, rowElementBytes: bytes) <= gpu
                                            .sharedMemoryPerBlock - 1024, "\(label)")
                                case (.forward, .streaming):
                                    #expect(
                                        c.clusterSize * c.segments * c.threadsPerRow * c.vectorsPerThread >= vectors,
                                        "\(label)")
                                case (.backward, .streaming):
                                    #expect(c.clusterSize == 1 && c.rowsPerBlock == 1, "\(label)")
                                }
                                if pass == .backward {
                                    #expect(
                                        LaunchConfiguration.backwardSharedBytes(c, columns: n, accumulators: 2) <= gpu
                                            .sharedMemoryPerBlock - 1024, "\(label)")
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    @Test("rows in registers up to N = 1,048,576 bf16 (clusters of up to 16 CTAs), streaming past it; persistent grids")
    func largeRows() {
        let gpu = LaunchConfiguration.GPU.h200
        func forward(_ n: Int, rows: Int = 128, residual: Bool = false) -> LaunchConfiguration {
            ForwardPlan(columns: n, rows: rows, vectorWidth: 8, rowElementBytes: 2, residual: residual).configuration(
                gpu: gpu)
        }
        #expect(forward(4096).clusterSize == 1 && forward(4096).rowStorage == .registers)
        #expect(forward(65536).clusterSize > 1 && forward(65536).rowStorage == .registers)
        #expect(forward(1_048_576).clusterSize == 16 && forward(1_048_576).rowStorage == .registers)
        #expect(forward(1_048_576).threadsPerRow == 512 && forward(1_048_576).sharedVectorsPerThread == 10)
        #expect(forward(4_194_304).rowStorage == .streaming)
        #expect(forward(262_144, residual: true).rowStorage == .registers)
        // The grid never grows with the rows.
        #expect(forward(65536, rows: 1 << 20).teams == forward(65536, rows: 1 << 16).teams)
        let backward = BackwardPlan(columns: 262_144, rows: 512, vectorWidth: 8, pairBytes: 4, accumulators: 1)
            .configuration(gpu: gpu)
        #expect(backward.rowStorage == .registers && backward.clusterSize <= 16)
        let heads = BackwardPlan(
            columns: 128, rows: 32 * 4096, weightRows: 32, vectorWidth: 8, pairBytes: 4, accumulators: 1
        ).configuration(gpu: gpu)
        #expect(heads.teams % 32 == 0 && heads.teams <= 132 * 8)
    }

    @Test(
        "Forward rows between powers of two: half the threads where that fills more vector slots (LayerNorm: also where none idle), never at powers of two"
    )
    func forwardRowsBetweenPowersOfTwo() {
        func layout(_ n: Int, bytes: Int = 2, layer: Bool = true) -> String {
            let c = ForwardPlan(
                columns: n, rows: 1 << 16, vectorWidth: 16 / bytes, rowElementBytes: bytes,
                parameterElementBytes: layer ? [bytes, bytes] : [bytes], bias: layer, layer: layer
            ).configuration(gpu: .h200)
            return "\(c.threadsPerRow)x\(c.vectorsPerThread)"
        }
        // Medium rows (one CTA per row).
        #expect(layout(3584) == "64x7")
        #expect(layout(5120) == "128x5")
        #expect(layout(7168) == "128x7")
        #expect(layout(7168, bytes: 4) == "256x7")
        for n in [2048, 4096, 8192] { #expect(layout(n) == "\(n / 32)x4") }
        // Short rows (sub-warp groups): idle slots filled for both norms, LayerNorm also at equal slots, never
        // below 4 threads per row.
        #expect(layout(160) == "4x5" && layout(160, layer: false) == "4x5")
        #expect(layout(768) == "16x6" && layout(768, layer: false) == "32x3")
        #expect(layout(96) == "4x3" && layout(48, layer: false) == "2x3")
        for n in [256, 512, 1024] { #expect(layout(n) == "\(n / 32)x4") }
    }

    @Test("16-byte vectors only where every tensor's start and row stride allow them")
    func vectorWidth() {
        /// The width for N columns and tensors of (address, row stride, element bytes, rows).
        func width(_ columns: Int, _ accesses: [(UInt, Int, Int, Int)]) -> Int {
            var finder = VectorWidthFinder(columns: columns, narrowestBytes: accesses.map(\.2).min() ?? 4)
            for (address, stride, bytes, rows) in accesses {
                finder.include(address: address, rowStride: stride, elementBytes: bytes, rows: rows)
            }
            return finder.width
        }
        let aligned: (UInt, Int, Int, Int) = (0x1000, 4096, 2, 8)
        #expect(width(4096, [aligned]) == 8)
        #expect(width(4096, [(0x1000, 4096, 4, 8)]) == 4)
        // Mixed dtypes: 8 elements (16 bytes of bf16, 32 of fp32).
        #expect(width(4096, [aligned, (0x2000, 4096, 4, 8)]) == 8)
        // N = 3584 bf16 at an odd element offset: scalar.
        #expect(width(3584, [aligned, (0x1002, 3585, 2, 8)]) == 1)
        // A row stride that breaks 16-byte alignment of later rows: 4 elements (8 bytes).
        #expect(width(4096, [(0x1000, 4100, 2, 8)]) == 4)
        // One row: the stride does not matter.
        #expect(width(4096, [(0x1000, 4100, 2, 1)]) == 8)
        // N odd: scalar; N = 6: pairs.
        #expect(width(4095, [aligned]) == 1)
        #expect(width(6, [aligned]) == 2)
    }

    @Test("a cluster no GPU can hold is halved until one can; the teams then fit the resident clusters")
    func clusterFallback() throws {
        func view(_ n: Int) -> RowView { RowView(address: 0x10_0000, rowStride: n, dtype: .bfloat16) }
        let n = 1_048_576, rows = 4096
        let forward = NormForwardProblem(
            kind: .rms, rows: rows, columns: n, x: view(n), residual: nil, weightRows: 1, weight: view(n), bias: nil,
            output: view(n), residualOutput: nil, mean: nil, rstd: 0x3000, epsilon: 1e-6, weightOffset: 0,
            rounding: .once)
        let plan = { (gpu: LaunchConfiguration.GPU) in CUDABackend.forwardPlan(for: forward, gpu: gpu) }
        #expect(plan(.h200).configuration.clusterSize == 16)
        // The driver holds no cluster of more than 4 CTAs, and 5 of 4.
        var asked: [Int] = []
        let (fitted, active) = CUDABackend.fit(.h200, plan: plan, teams: ForwardPlan.teams(_:residentClusters:)) {
            plan in
            asked.append(plan.configuration.clusterSize)
            return plan.configuration.clusterSize > 4 ? 0 : 5
        }
        var four = LaunchConfiguration.GPU.h200
        four.maxClusterSize = 4
        var expected = plan(four)
        expected.configuration.teams = min(expected.configuration.teams, 5)
        #expect(asked == [16, 8, 4])
        #expect(
            active == 5 && fitted.configuration == expected.configuration && fitted.sharedBytes == expected.sharedBytes)
        // Unknown (nil): the plan as made; no cluster: not asked.
        let unknown = CUDABackend.fit(.h200, plan: plan, teams: ForwardPlan.teams(_:residentClusters:)) { _ in nil }
        #expect(unknown.activeClusters == nil && unknown.plan.configuration == plan(.h200).configuration)
        let short = NormForwardProblem(
            kind: .rms, rows: rows, columns: 1024, x: view(1024), residual: nil, weightRows: 1, weight: view(1024),
            bias: nil,
            output: view(1024), residualOutput: nil, mean: nil, rstd: 0x3000, epsilon: 1e-6, weightOffset: 0,
            rounding: .once)
        let single = try CUDABackend.fit(
            .h200, plan: { CUDABackend.forwardPlan(for: short, gpu: $0) }, teams: ForwardPlan.teams(_:residentClusters:)
        ) { _ in
            throw CUDAError(
                library: .driver, code: 1, name: "CUDA_ERROR_INVALID_VALUE", operation: "not asked for a single CTA")
        }
        #expect(single.activeClusters == nil && single.plan.configuration.clusterSize == 1)
        // Backward: whole parts per weight row, at least one.
        var c = plan(.h200).configuration
        c.teams = 64
        #expect(BackwardPlan.teams(c, residentClusters: 7, weightRows: 2) == 6)
        #expect(BackwardPlan.teams(c, residentClusters: 1, weightRows: 2) == 2)
        #expect(BackwardPlan.teams(c, residentClusters: 100, weightRows: 2) == 64)
    }
}
