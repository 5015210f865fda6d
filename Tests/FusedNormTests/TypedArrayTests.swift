import Testing

@testable import FusedNorm

@Suite("Typed arrays in and out, bit for bit")
struct TypedArrayTests {
    /// Every 16-bit pattern, NaNs and infinities included.
    static let allPatterns = (0...UInt16.max).map { $0 }

    @Test("[BFloat16] round trip keeps every bit pattern")
    func bfloat16RoundTrip() throws {
        let values = Self.allPatterns.map(BFloat16.init(bitPattern:))
        let tensor = try Tensor(values, shape: [256, 256])
        #expect(tensor.dtype == .bfloat16)
        #expect(try tensor.toArray(of: BFloat16.self) == values)
    }

    @Test("[Float16] round trip keeps every bit pattern")
    func float16RoundTrip() throws {
        let values = Self.allPatterns.map(Float16.init(bitPattern:))
        let tensor = try Tensor(values, shape: [65536])
        #expect(tensor.dtype == .float16)
        #expect(try tensor.toArray(of: Float16.self).map(\.bitPattern) == Self.allPatterns)
    }

    @Test("[Float] round trip keeps NaN payloads and signed zeros")
    func floatRoundTrip() throws {
        let patterns: [UInt32] = [0, 0x8000_0000, 0x7FC0_0001, 0xFFA0_0000, 0x7F80_0000, 1, 0x3F80_0000]
        let values = patterns.map(Float.init(bitPattern:))
        let tensor = try Tensor(values, shape: [patterns.count])
        #expect(try tensor.toArray(of: Float.self).map(\.bitPattern) == patterns)
        #expect(try tensor.toArray().map(\.bitPattern) == patterns)
    }

    @Test("typed reads of strided and grouped views return the view's elements")
    func stridedViews() throws {
        let values = (0..<48).map { BFloat16(Float($0)) }
        let parent = try Tensor(values, shape: [4, 12])
        let view = try parent.columns(2..<8).reshaped([4, 2, 3])
        #expect(
            try view.toArray(of: BFloat16.self).map(\.floatValue)
                == (0..<4).flatMap { r in (2..<8).map { Float(r * 12 + $0) } })
        try view.write([BFloat16](repeating: BFloat16(-1), count: 24))
        let after = try parent.toArray()
        #expect(after.enumerated().allSatisfy { i, v in (2..<8).contains(i % 12) ? v == -1 : v == Float(i) })
    }

    @Test("the element type must be the dtype's")
    func wrongType() throws {
        let tensor = try Tensor([1, 2, 3], dtype: .bfloat16)
        expectError(.dtypeMismatch, argument: "type", "Float16 read of bfloat16") {
            try tensor.toArray(of: Float16.self)
        }
        expectError(.dtypeMismatch, argument: "values", "Float write into bfloat16") {
            try tensor.write([Float16(1), 2, 3])
        }
        expectError(.countMismatch, "too few values") { try Tensor([BFloat16(1)], shape: [2]) }
    }

    @Test("creating from a typed array is one copy: one allocation, one copy")
    func oneCopy() throws {
        let values = [Float16](repeating: 1, count: 1000)
        let (tensor, counters) = try MemoryCounters.counting { try Tensor(values, shape: [10, 100]) }
        #expect(counters.allocations == 1 && counters.copies == 1)
        let (read, readCounters) = try MemoryCounters.counting { try tensor.toArray(of: Float16.self) }
        #expect(read == values)
        #expect(readCounters.allocations == 0 && readCounters.copies == 1)
    }
}
