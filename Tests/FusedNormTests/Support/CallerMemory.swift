import Testing

@testable import FusedNorm

/// Where a test puts a (T, H, D) tensor in memory it owns itself, as a caller of the zero-copy API would.
enum CallerLayout: String, Sendable, CaseIterable, CustomStringConvertible {
    /// Packed: rows D apart.
    case contiguous
    /// Rows D + 3 apart (uniform).
    case strided
    /// q of a padded qkv projection: heads D apart, tokens 3·H·D + 2 apart.
    case grouped
    /// (H, T, D) memory seen as (T, H, D): heads T·D apart, tokens D apart.
    case transposedHeads

    var description: String { rawValue }

    /// (rowStride, groupStride) in elements for shape (T, H, D).
    func strides(_ shape: [Int]) -> (row: Int, group: Int) {
        let (t, h, d) = (shape[0], shape[1], shape[2])
        switch self {
        case .contiguous: return (d, h * d)
        case .strided: return (d + 3, h * (d + 3))
        case .grouped: return (d, 3 * h * d + 2)
        case .transposedHeads: return (t * d, d)
        }
    }

    /// Element offset of row `row` (flattened), column `column`.
    func offset(_ shape: [Int], row: Int, column: Int) -> Int {
        let (rowStride, groupStride) = strides(shape)
        return (row / shape[1]) * groupStride + (row % shape[1]) * rowStride + column
    }

    /// Elements the layout spans.
    func extent(_ shape: [Int]) -> Int {
        offset(shape, row: shape[0] * shape[1] - 1, column: shape[2] - 1) + 1
    }
}

/// Host memory a test owns, poisoned (0xFF bytes: NaN in every dtype) and freed on `deinit`.
final class CallerMemory: @unchecked Sendable {
    let memory: UnsafeMutableRawBufferPointer

    init(byteCount: Int) {
        memory = .allocate(byteCount: byteCount, alignment: 64)
        memory.initializeMemory(as: UInt8.self, repeating: 0xFF)
    }

    deinit { memory.deallocate() }

    /// Raw bits of element `index` of `dtype` (widened to 32 bits).
    func bits(at index: Int, _ dtype: DType) -> UInt32 {
        switch dtype {
        case .float32: memory.load(fromByteOffset: 4 * index, as: UInt32.self)
        case .float16, .bfloat16: UInt32(memory.load(fromByteOffset: 2 * index, as: UInt16.self))
        }
    }
}

/// A tensor in caller memory holding `values`: (T, H, D) laid out as `layout`, or packed when `layout` is nil.
struct CallerTensor {
    let owner: CallerMemory
    let tensor: Tensor
    let layout: CallerLayout
    let shape: [Int]

    init(_ values: [Float], shape: [Int], dtype: DType, layout: CallerLayout?) throws {
        if let layout {
            owner = CallerMemory(byteCount: layout.extent(shape) * dtype.byteCount + 64)
            let (rowStride, groupStride) = layout.strides(shape)
            tensor = try Tensor(
                unsafeWrapping: owner.memory, shape: shape, dtype: dtype, rowStride: rowStride,
                groupStride: groupStride,
                owner: owner)
        } else {
            owner = CallerMemory(byteCount: shape.reduce(1, *) * dtype.byteCount)
            tensor = try Tensor(unsafeWrapping: owner.memory, shape: shape, dtype: dtype, owner: owner)
        }
        try tensor.write(values)
        self.layout = layout ?? .contiguous
        self.shape = shape
    }

    /// The elements' bits read through the caller's own memory (not through the library).
    func bitsThroughCallerMemory() -> [UInt32] {
        let rows = shape[0] * shape[1]
        return (0..<rows).flatMap { row in
            (0..<shape[2]).map { owner.bits(at: layout.offset(shape, row: row, column: $0), tensor.dtype) }
        }
    }
}

/// The bits of a tensor's elements in row-major order, widened to 32 bits.
func elementBits(_ tensor: Tensor) throws -> [UInt32] {
    switch tensor.dtype {
    case .float32: try tensor.toArray(of: Float.self).map(\.bitPattern)
    case .float16: try tensor.toArray(of: Float16.self).map { UInt32($0.bitPattern) }
    case .bfloat16: try tensor.toArray(of: BFloat16.self).map { UInt32($0.bitPattern) }
    }
}
