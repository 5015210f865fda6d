import Testing

@_spi(Benchmarking) @testable import FusedNorm

/// The bench yardstick's copy kernel copies exactly, at sizes and offsets that reach its byte head, vector body,
/// unrolled steps and byte tail, and its byte loop for source and destination at different 16-byte offsets.
/// Needs a GPU (never run yet: written in a session without one; see docs/notes/gpu-runs.md's pending list).
@Suite("CUDA copy kernel copies exactly", .needsCUDAGPU)
struct CUDACopyKernelTests {
    @Test(
        "bfloat16 columns at odd offsets",
        arguments: [1, 7, 8, 9, 1000, 16384 + 3, 1 << 20], [(0, 0), (1, 0), (0, 5), (3, 3), (8, 8)])
    func copiesExactly(count: Int, offsets: (source: Int, destination: Int)) throws {
        var random = CUDATestRandom("copy \(count) \(offsets)")
        let values = random.values(count + 16, dtype: .bfloat16)
        let source = try Tensor(values, shape: [1, count + 16], dtype: .bfloat16, device: .cuda(0))
        let poison = [Float](repeating: 7.5, count: count + 16)
        let destination = try Tensor(poison, shape: [1, count + 16], dtype: .bfloat16, device: .cuda(0))
        try source.columns(offsets.source..<offsets.source + count)
            .copy(into: destination.columns(offsets.destination..<offsets.destination + count), method: .streaming)
        let copied = try destination.toArray()
        #expect(
            Array(copied[offsets.destination..<offsets.destination + count])
                == Array(values[offsets.source..<offsets.source + count]))
        #expect(copied[..<offsets.destination].allSatisfy { $0 == 7.5 })
        #expect(copied[(offsets.destination + count)...].allSatisfy { $0 == 7.5 })
    }

    @Test
    func stridedRowsAreCopiedRowByRow() throws {
        var random = CUDATestRandom("copy strided")
        let values = random.values(6 * 37, dtype: .float32)
        let source = try Tensor(values, shape: [6, 37], dtype: .float32, device: .cuda(0))
        let view = try source.rows(0..<6, step: 2).columns(1..<37)
        let destination = try Tensor.zeros(view.shape, dtype: .float32, device: .cuda(0))
        try view.copy(into: destination, method: .streaming)
        #expect(try destination.toArray() == view.toArray())
    }
}
