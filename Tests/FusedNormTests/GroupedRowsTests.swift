import Testing

@testable import FusedNorm

@Suite("Grouped rows (two strides)")
struct GroupedRowsTests {
    @Test(
        "q of a fused qkv projection seen as (T, H, D) without a copy: per-head norm equals the packed copy",
        arguments: DType.allCases)
    func qkvHeads(dtype: DType) throws {
        var rng = SplitMix64(label: "qkv \(dtype)")
        let (t, h, d) = (5, 4, 24)
        let qkv = try Tensor(rng.values(t * 3 * h * d), shape: [t, 3 * h * d], dtype: dtype)
        let q = try qkv.columns(0..<h * d).reshaped([t, h, d])
        #expect(q.hasGroupedRows && q.rowStride == d && q.groupStride == 3 * h * d)
        #expect(q.dataAddress == qkv.dataAddress)
        let packed = try Tensor(q.toArray(), shape: [t, h, d], dtype: dtype)
        #expect(try packed.toArray() == qkv.toArray().chunked(3 * h * d).flatMap { $0.prefix(h * d) })
        let weight = try Tensor(rng.values(h * d, 0.5, 1.5), shape: [h, d], dtype: .float32)

        // In place into q's own memory, k untouched.
        let kBefore = try qkv.columns(h * d..<3 * h * d).toArray()
        let expected = try rmsNorm(packed, weight: weight)
        _ = try rmsNorm(q, weight: weight, output: q)
        #expect(try elementBits(q) == (try elementBits(expected)))
        #expect(try qkv.columns(h * d..<3 * h * d).toArray() == kBefore)

        let dy = try Tensor(rng.values(t * h * d), shape: [t, h, d], dtype: dtype)
        let grouped = try rmsNormBackward(dy, input: q, weight: weight)
        let reference = try rmsNormBackward(
            dy, input: try Tensor(q.toArray(), shape: [t, h, d], dtype: dtype), weight: weight)
        #expect(try elementBits(grouped.input) == (try elementBits(reference.input)))
        #expect(try elementBits(grouped.weight!) == (try elementBits(reference.weight!)))
    }

    @Test("views and copies of grouped rows")
    func views() throws {
        let (t, h, d) = (3, 2, 4)
        let wide = try Tensor((0..<(t * 3 * h * d)).map(Float.init), shape: [t, 3 * h * d])
        let k = try wide.columns(h * d..<2 * h * d).reshaped([t, h, d])
        let expected = (0..<t).flatMap { token in (0..<h * d).map { Float(token * 3 * h * d + h * d + $0) } }
        #expect(try k.toArray() == expected)
        // columns keep the grouping; reshaped with the same rows per group keeps it too.
        let firstHalf = try k.columns(0..<2)
        #expect(firstHalf.hasGroupedRows)
        #expect(try firstHalf.toArray() == expected.chunked(d).flatMap { $0.prefix(2) })
        #expect(try k.reshaped([1, t, h, d]).toArray() == expected)
        expectError(.invalidArgument, argument: "shape", "regrouping grouped rows") { try k.reshaped([t * h, d]) }
        expectError(.invalidArgument, argument: "rows", "flattening grouped rows") { try k.rows(0..<2) }
        // copy(into:) between grouped and strided views, in both directions.
        let target = try Tensor.zeros([t, h, 2 * d]).columns(0..<d)
        try k.copy(into: target)
        #expect(try target.toArray() == expected)
        let other = try Tensor.zeros([t, 3 * h * d])
        let v = try other.columns(2 * h * d..<3 * h * d).reshaped([t, h, d])
        try k.copy(into: v)
        #expect(try v.toArray() == expected)
        // Uniform groups collapse to one stride.
        let uniform = try Tensor.zeros([t, h * d]).reshaped([t, h, d])
        #expect(!uniform.hasGroupedRows && uniform.isContiguous)
    }

    @Test("grouped rows on a GPU are refused with a typed error (one row stride per tensor on CUDA)", .requiresCUDA)
    func groupedRowsOnCUDA() throws {
        let (t, h, d) = (3, 2, 8)
        let qkv = try Tensor.ones([t, 3 * h * d], device: .cuda(0))
        let q = try qkv.columns(0..<h * d).reshaped([t, h, d])
        expectError(.unsupportedLayout, argument: "x", "grouped x on CUDA") { try rmsNorm(q) }
        // Uniform groups are one stride: accepted.
        let packed = try Tensor.ones([t, h * d], device: .cuda(0)).reshaped([t, h, d])
        _ = try rmsNorm(packed)
    }
}

extension Array {
    /// Consecutive slices of `size` elements.
    func chunked(_ size: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: count, by: size).map { self[$0..<Swift.min($0 + size, count)] }
    }
}
