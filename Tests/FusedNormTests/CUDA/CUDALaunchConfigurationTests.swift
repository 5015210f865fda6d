@testable import FusedNorm
import Testing

/// The launch heuristic and the vector-width choice: pure functions, checked on every machine.
@Suite("CUDA launch configuration")
struct CUDALaunchConfigurationTests {
    static let columns = [1, 2, 3, 8, 33, 64, 128, 1000, 2048, 3584, 4095, 4096, 5120, 8192, 16384, 20000, 32768, 65537, 262_144, 1_048_576]

    @Test("every layout is launchable and covers the row", arguments: [LaunchConfiguration.Pass.forward, .backward])
    func layoutsAreValid(_ pass: LaunchConfiguration.Pass) {
        for n in Self.columns {
            for width in [1, 2, 4, 8] where n % width == 0 {
                for rows in [1, 7, 1000, 1_000_000] {
                    for bytes in [2, 4] {
                        let c = LaunchConfiguration.choose(
                            for: pass, columns: n, rows: rows, weightRows: 1, vectorWidth: width, rowElementBytes: bytes,
                            accumulators: pass == .backward ? 2 : 0, multiprocessors: 132, sharedMemoryPerBlock: 232_448)
                        let label = "\(pass) N=\(n) rows=\(rows) width=\(width): \(c)"
                        #expect(c.blockSize % 32 == 0 && c.blockSize <= 1024, "\(label)")
                        #expect(c.threadsPerRow == nextPowerOfTwo(c.threadsPerRow), "\(label)")
                        #expect(c.threadsPerRow <= 32 || c.rowsPerBlock == 1, "\(label)")
                        #expect(c.blocks >= 1, "\(label)")
                        if c.rowStorage == .registers {
                            #expect(c.threadsPerRow * c.vectorsPerThread * width >= n, "\(label)")
                            #expect(c.vectorsPerThread * width <= LaunchConfiguration.registerBudget(pass) || width == 1 && c.vectorsPerThread <= LaunchConfiguration.registerBudget(pass), "\(label)")
                        }
                        if c.rowStorage == .sharedMemory { #expect(n * bytes <= 232_448 - 1024, "\(label)") }
                        if pass == .backward, c.rowStorage == .registers, c.rowsPerBlock > 1 {
                            #expect(c.rowsPerBlock * n * 4 <= 48 * 1024, "\(label)")
                        }
                    }
                }
            }
        }
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

    @Test("kernel arguments pack as the kernels' structs lay them out")
    func argumentPacking() {
        var arguments = KernelArguments()
        arguments.append(address: 0x10)
        arguments.append(address: nil)
        arguments.append(-3)
        arguments.append(1.5, -2)
        #expect(arguments.words == [0x10, 0, UInt64(bitPattern: -3), UInt64(Float(1.5).bitPattern) | UInt64(Float(-2).bitPattern) << 32])
    }
}
