@testable import FusedNorm
import Testing

/// The launch heuristic and the vector-width choice: pure functions, checked on every machine.
@Suite("CUDA launch configuration")
struct CUDALaunchConfigurationTests {
    static let columns = [
        1, 2, 3, 8, 33, 64, 128, 256, 512, 1000, 1024, 2048, 3584, 4095, 4096, 5120, 8192, 16384, 20000, 32768, 65536,
        65537, 131_072, 262_144, 524_288, 1_048_576, 4_194_304,
    ]

    @Test("every layout is launchable and covers the row", arguments: [LaunchConfiguration.Pass.forward, .backward])
    func layoutsAreValid(_ pass: LaunchConfiguration.Pass) {
        for gpu in [LaunchConfiguration.GPU.h200, LaunchConfiguration.GPU(multiprocessors: 80, sharedMemoryPerBlock: 101_376, sharedMemoryPerMultiprocessor: 102_400, maxClusterSize: 1)] {
            for n in Self.columns {
                for width in [1, 2, 4, 8] where n % width == 0 {
                    for rows in [1, 7, 1000, 1_000_000] {
                        for bytes in [2, 4] {
                            for (residual, bias) in pass == .forward ? [(false, false), (true, false), (false, true)] : [(false, false)] {
                                let c = LaunchConfiguration.choose(
                                    for: pass, columns: n, rows: rows, weightRows: 1, vectorWidth: width,
                                    rowElementBytes: pass == .forward ? bytes : 2 * bytes,
                                    parameterElementBytes: pass == .forward ? (bias ? [bytes, bytes] : [bytes]) : [], residual: residual, bias: bias,
                                    accumulators: pass == .backward ? 2 : 0, gpu: gpu)
                                let label = "\(pass) N=\(n) rows=\(rows) width=\(width) bytes=\(bytes) residual=\(residual): \(c)"
                                #expect(c.blockSize % 32 == 0 && c.blockSize <= 1024, "\(label)")
                                #expect(c.threadsPerRow == nextPowerOfTwo(c.threadsPerRow), "\(label)")
                                #expect(c.threadsPerRow <= 32 || c.rowsPerBlock == 1, "\(label)")
                                #expect(c.clusterSize == nextPowerOfTwo(c.clusterSize) && c.clusterSize <= gpu.maxClusterSize, "\(label)")
                                #expect(c.clusterSize == 1 || c.rowsPerBlock == 1, "\(label)")
                                #expect(c.teams >= 1 && c.maxRegisters * c.blockSize <= 65536, "\(label)")
                                let vectors = (n + width - 1) / width
                                switch (pass, c.rowStorage) {
                                case (_, .registers):
                                    #expect(c.clusterSize * c.threadsPerRow * (c.vectorsPerThread + c.sharedVectorsPerThread) >= vectors, "\(label)")
                                    #expect(c.vectorsPerThread <= 16 && c.sharedVectorsPerThread <= 10, "\(label)")
                                    #expect(LaunchConfiguration.forwardSharedBytes(c, rowElementBytes: bytes) <= gpu.sharedMemoryPerBlock - 1024, "\(label)")
                                case (.forward, .streaming):
                                    #expect(c.clusterSize * c.segments * c.threadsPerRow * c.vectorsPerThread >= vectors, "\(label)")
                                case (.backward, .streaming):
                                    #expect(c.clusterSize == 1 && c.rowsPerBlock == 1, "\(label)")
                                }
                                if pass == .backward {
                                    #expect(LaunchConfiguration.backwardSharedBytes(c, columns: n, accumulators: 2) <= gpu.sharedMemoryPerBlock - 1024, "\(label)")
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
            LaunchConfiguration.choose(for: .forward, columns: n, rows: rows, vectorWidth: 8, rowElementBytes: 2, residual: residual, gpu: gpu)
        }
        #expect(forward(4096).clusterSize == 1 && forward(4096).rowStorage == .registers)
        #expect(forward(65536).clusterSize > 1 && forward(65536).rowStorage == .registers)
        #expect(forward(1_048_576).clusterSize == 16 && forward(1_048_576).rowStorage == .registers)
        #expect(forward(1_048_576).threadsPerRow == 512 && forward(1_048_576).sharedVectorsPerThread == 10)
        #expect(forward(4_194_304).rowStorage == .streaming)
        #expect(forward(262_144, residual: true).rowStorage == .registers)
        // The grid never grows with the rows.
        #expect(forward(65536, rows: 1 << 20).teams == forward(65536, rows: 1 << 16).teams)
        let backward = LaunchConfiguration.choose(
            for: .backward, columns: 262_144, rows: 512, vectorWidth: 8, rowElementBytes: 4, accumulators: 1, gpu: gpu)
        #expect(backward.rowStorage == .registers && backward.clusterSize <= 16)
        let heads = LaunchConfiguration.choose(
            for: .backward, columns: 128, rows: 32 * 4096, weightRows: 32, vectorWidth: 8, rowElementBytes: 4, accumulators: 1, gpu: gpu)
        #expect(heads.teams % 32 == 0 && heads.teams <= 132 * 8)
    }

    @Test("Forward rows between powers of two: half the threads where that fills more vector slots (LayerNorm: also where none idle), never at powers of two")
    func forwardRowsBetweenPowersOfTwo() {
        func layout(_ n: Int, bytes: Int = 2, layer: Bool = true) -> String {
            let c = LaunchConfiguration.choose(
                for: .forward, columns: n, rows: 1 << 16, vectorWidth: 16 / bytes, rowElementBytes: bytes,
                parameterElementBytes: layer ? [bytes, bytes] : [bytes], bias: layer, layer: layer, gpu: .h200)
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
        typealias Access = LaunchConfiguration.Access
        let aligned = Access(address: 0x1000, rowStride: 4096, elementBytes: 2, rows: 8)
        #expect(LaunchConfiguration.vectorWidth(columns: 4096, accesses: [aligned]) == 8)
        #expect(LaunchConfiguration.vectorWidth(columns: 4096, accesses: [Access(address: 0x1000, rowStride: 4096, elementBytes: 4, rows: 8)]) == 4)
        // Mixed dtypes: 8 elements (16 bytes of bf16, 32 of fp32).
        #expect(LaunchConfiguration.vectorWidth(columns: 4096, accesses: [aligned, Access(address: 0x2000, rowStride: 4096, elementBytes: 4, rows: 8)]) == 8)
        // N = 3584 bf16 at an odd element offset: scalar.
        #expect(LaunchConfiguration.vectorWidth(columns: 3584, accesses: [aligned, Access(address: 0x1002, rowStride: 3585, elementBytes: 2, rows: 8)]) == 1)
        // A row stride that breaks 16-byte alignment of later rows: 4 elements (8 bytes).
        #expect(LaunchConfiguration.vectorWidth(columns: 4096, accesses: [Access(address: 0x1000, rowStride: 4100, elementBytes: 2, rows: 8)]) == 4)
        // One row: the stride does not matter.
        #expect(LaunchConfiguration.vectorWidth(columns: 4096, accesses: [Access(address: 0x1000, rowStride: 4100, elementBytes: 2, rows: 1)]) == 8)
        // N odd: scalar; N = 6: pairs.
        #expect(LaunchConfiguration.vectorWidth(columns: 4095, accesses: [aligned]) == 1)
        #expect(LaunchConfiguration.vectorWidth(columns: 6, accesses: [aligned]) == 2)
    }
}
