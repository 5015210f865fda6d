import Testing

@_spi(Benchmarking) @testable import FusedNorm

/// The bench yardstick's copy with non-temporal stores copies exactly what `memcpy` copies, at any size and alignment.
struct StreamingCopyTests {
    /// Copies `bytes` bytes from `sourceOffset` in one buffer to `destinationOffset` in another (both 64-byte
    /// aligned), the destination poisoned: every copied byte equals its source, every byte around is untouched.
    @Test(
        "bytes at odd offsets",
        arguments: [1, 31, 32, 255, 256, 257, 1000, 4097, 65_536 + 13],
        [(0, 0), (1, 0), (0, 5), (3, 17), (31, 1), (16, 48)])
    func copiesExactly(bytes: Int, offsets: (source: Int, destination: Int)) {
        let guardBytes = 64
        let source = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes + 2 * guardBytes, alignment: 64)
        let destination = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes + 2 * guardBytes, alignment: 64)
        defer {
            source.deallocate()
            destination.deallocate()
        }
        var state: UInt32 = 0x1234_5678 ^ UInt32(bytes)
        for i in source.indices {
            state = state &* 1_664_525 &+ 1_013_904_223
            source[i] = UInt8(truncatingIfNeeded: state >> 24)
        }
        for i in destination.indices { destination[i] = 0xA5 }
        CPUBackend.copyStreaming(
            bytes: bytes, from: UInt(bitPattern: source.baseAddress! + offsets.source),
            to: UInt(bitPattern: destination.baseAddress! + offsets.destination))
        let copied = (0..<bytes).filter { destination[offsets.destination + $0] != source[offsets.source + $0] }
        #expect(copied.isEmpty, "\(copied.count) bytes differ, first at \(copied.first ?? -1)")
        let outside = destination.indices.filter { !(offsets.destination..<offsets.destination + bytes).contains($0) }
        #expect(outside.allSatisfy { destination[$0] == 0xA5 }, "a byte outside the destination was written")
    }

    @Test("tensor copies by both methods agree, contiguous, offset and strided", arguments: DType.allCases)
    func tensorCopyMatchesLibraryCopy(dtype: DType) throws {
        let values = (0..<(7 * 1031)).map { Float($0 % 97) - 48.5 }
        let source = try Tensor(values, shape: [7, 1031], dtype: dtype, device: .cpu)
        // Columns 3... of every other row: row starts not aligned, rows not contiguous.
        let view = try source.rows(0..<7, step: 2).columns(3..<1031)
        // Grouped rows: a (2, 3, 4) view of columns 0..<12 of a (2, 20) tensor, rows 4 apart within a group of
        // 3, groups 20 apart (the q of a fused qkv tensor).
        let qkv = try Tensor((0..<40).map { Float($0) }, shape: [2, 20], dtype: dtype, device: .cpu)
        let grouped = try qkv.columns(0..<12).reshaped([2, 3, 4])
        #expect(grouped.hasGroupedRows)
        for input in [source, view, grouped] {
            let expected = try Tensor.zeros(input.shape, dtype: dtype, device: .cpu)
            let streamed = try Tensor.zeros(input.shape, dtype: dtype, device: .cpu)
            try input.copy(into: expected, method: .library)
            try input.copy(into: streamed, method: .streaming)
            #expect(try streamed.toArray() == expected.toArray())
            #expect(try streamed.toArray() == input.toArray())
        }
    }

    @Test
    func streamingCopyRejectsAReadOnlyDestination() throws {
        let source = try Tensor.zeros([2, 8], dtype: .float32, device: .cpu)
        let frozen = [Float](repeating: 7, count: 16)
        _ = try frozen.withUnsafeBytes { memory in
            try Tensor.withWrapping(memory, shape: [2, 8], dtype: .float32) { readOnly in
                #expect(throws: FusedNormError.readOnly(argument: "destination")) {
                    try source.copy(into: readOnly, method: .streaming)
                }
            }
        }
        #expect(frozen.allSatisfy { $0 == 7 })
    }

    @Test
    func streamingCopyRejectsAMismatchedDestination() throws {
        let source = try Tensor.zeros([4, 8], dtype: .float32, device: .cpu)
        #expect(throws: FusedNormError.self) {
            try source.copy(into: Tensor.zeros([4, 9], dtype: .float32, device: .cpu), method: .streaming)
        }
        #expect(throws: FusedNormError.self) {
            try source.copy(into: Tensor.zeros([4, 8], dtype: .float16, device: .cpu), method: .streaming)
        }
    }

    @Test
    func methodNamesSayWhatRuns() {
        #expect(CopyMethod.library.name(on: .cpu) == "memcpy")
        #expect(
            CopyMethod.streaming.name(on: .cpu)
                == (CPUBackend.copyStreams ? "streaming" : "memcpy (no AVX2 for streaming stores)"))
        #expect(CopyMethod.library.name(on: .cuda(0)) == "cuMemcpyDtoD")
        #expect(CopyMethod.streaming.name(on: .cuda(0)) == "copy_kernel")
    }
}
