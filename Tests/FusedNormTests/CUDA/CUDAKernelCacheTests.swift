import Foundation
import FusedNormReference
import Testing

@testable import FusedNorm

/// The disk cache of compiled kernels, each test with its own cache folder and in-memory state
/// (installed for the test's task with `KernelCache.$current`), so tests running beside it are unaffected.
@Suite("CUDA kernel cache", .needsCUDAGPU)
struct CUDAKernelCacheTests {
    /// A fresh, empty cache folder.
    static func temporaryFolder(_ name: String) throws -> String {
        let path = NSTemporaryDirectory() + "fusednorm-cache-test-\(name)-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Entries in a cache folder.
    static func entries(_ folder: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".bin") }.sorted()
    }

    /// A small RMSNorm forward and backward on the GPU, checked against the reference; compiles two modules.
    static func runAndCheck(_ label: String) throws {
        let columns = 1000, rows = 7
        var random = CUDATestRandom("cache \(label)")
        let x = random.values(rows * columns, dtype: .bfloat16),
            weight = random.values(columns, dtype: .bfloat16, 0.5, 1.5)
        let dy = random.values(rows * columns, dtype: .bfloat16)
        let xTensor = try Tensor(x, shape: [rows, columns], dtype: .bfloat16, device: .cuda(0))
        let wTensor = try Tensor(weight, dtype: .bfloat16, device: .cuda(0))
        let y = try rmsNorm(xTensor, weight: wTensor)
        let reference = Reference.rmsNorm(x: x, weight: weight, rows: rows, columns: columns, epsilon: 1e-6)
        let error = Reference.relativeError(try y.toArray(), reference.output)
        #expect(error <= Reference.tolerance(.bfloat16), "\(label): forward error \(error)")
        let gradients = try rmsNormBackward(
            try Tensor(dy, shape: [rows, columns], dtype: .bfloat16, device: .cuda(0)), input: xTensor, weight: wTensor)
        let backward = Reference.rmsNormBackward(
            outputGradient: dy, x: x, weight: weight, rows: rows, columns: columns, epsilon: 1e-6)
        let dxError = Reference.relativeError(try gradients.input.toArray(), backward.input)
        #expect(dxError <= Reference.tolerance(.bfloat16), "\(label): dx error \(dxError)")
    }

    @Test("cold: an empty folder gets entries; warm: a reload uses them and compiles nothing")
    func coldThenWarm() throws {
        let folder = try Self.temporaryFolder("warm")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let cache = KernelCache(directory: folder)
        try KernelCache.$current.withValue(cache) {
            try Self.runAndCheck("cold")
            let cold = cache.statistics
            #expect(cold.compilations == 2 && cold.diskWrites == 2 && cold.diskHits == 0, "cold: \(cold)")
            #expect(try Self.entries(folder).count == 2)

            // As a new process would: nothing in memory, everything from disk.
            cache.clearMemory()
            try Self.runAndCheck("warm")
            let warm = cache.statistics
            #expect(warm.compilations == 2, "warm: compiled again: \(warm)")
            #expect(warm.diskHits == 2, "warm: \(warm)")
            #expect(warm.corruptEntries == 0)
        }
    }

    @Test("corrupt: garbage or a truncated entry is recompiled, not trusted, and results stay right")
    func corruptEntries() throws {
        let folder = try Self.temporaryFolder("corrupt")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let cache = KernelCache(directory: folder)
        try KernelCache.$current.withValue(cache) {
            try Self.runAndCheck("first")
            let entries = try Self.entries(folder)
            #expect(entries.count == 2)
            // One entry: garbage of the same length. The other: a valid header, then a cut-off payload.
            let garbagePath = "\(folder)/\(entries[0])", truncatedPath = "\(folder)/\(entries[1])"
            let size = try FileManager.default.attributesOfItem(atPath: garbagePath)[.size] as! Int
            try Data((0..<size).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ 7) }).write(
                to: URL(fileURLWithPath: garbagePath))
            let truncated = try Data(contentsOf: URL(fileURLWithPath: truncatedPath))
            try truncated.prefix(truncated.count / 2).write(to: URL(fileURLWithPath: truncatedPath))

            cache.clearMemory()
            try Self.runAndCheck("after corruption")
            let statistics = cache.statistics
            #expect(statistics.corruptEntries == 2, "\(statistics)")
            #expect(statistics.compilations == 4, "\(statistics)")

            // The rewritten entries are good again.
            cache.clearMemory()
            try Self.runAndCheck("rewritten")
            #expect(cache.statistics.compilations == 4 && cache.statistics.diskHits == 2, "\(cache.statistics)")
        }
    }

    @Test("a cache folder that cannot be created leaves caching in memory only")
    func unwritableFolder() throws {
        let cache = KernelCache(directory: "/proc/fusednorm-cannot-exist/kernels")
        try KernelCache.$current.withValue(cache) {
            try Self.runAndCheck("memory only")
            #expect(cache.statistics.diskWrites == 0 && cache.statistics.compilations == 2)
        }
    }
}
