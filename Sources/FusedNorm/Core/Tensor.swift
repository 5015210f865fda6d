/// An n-dimensional array of floating-point values on a device, normalized along its last dimension.
///
/// The last dimension (length N, the *columns*) is contiguous; all leading dimensions together are the
/// *rows*, and row `i` starts `i * rowStride` elements after row 0, so a tensor can be a strided view
/// (every third row, or some columns of a wider tensor) without a copy.
///
/// Rows can also be *grouped*: with rank >= 3, the `shape[rank - 2]` rows of a group are ``rowStride``
/// apart and consecutive groups ``groupStride`` apart, so row `i` starts at
/// `(i / rowsPerGroup) * groupStride + (i % rowsPerGroup) * rowStride` (for example q of a fused qkv
/// projection of shape (T, 3·H·D) seen as (T, H, D): heads D apart, tokens 3·H·D apart).
///
/// A `Tensor` is a view of memory it shares with its copies and with the views made from it, like an
/// array in PyTorch or MLX: an operation that writes into a tensor is seen through all of them.
public struct Tensor: Sendable {
    /// The dimensions; the last one is normalized. Rank is at least 1.
    public let shape: [Int]
    /// The storage type of the elements.
    public let dtype: DType
    /// Elements between the starts of consecutive rows (at least ``columns`` unless there is one row).
    public let rowStride: Int
    /// Elements between the starts of consecutive groups of ``rowsPerGroup`` rows; equal to
    /// `rowsPerGroup * rowStride` unless the rows are grouped (only rank >= 3 tensors can be).
    public let groupStride: Int
    let buffer: any Buffer
    /// Bytes from the buffer's start to row 0, element 0.
    let byteOffset: Int

    /// The device the memory lives on; operations on this tensor run there.
    public var device: Device { buffer.device }
    /// Length of the last (normalized) dimension.
    public var columns: Int { shape[shape.count - 1] }
    /// Number of rows: the product of all leading dimensions (1 for a rank-1 tensor).
    public var rows: Int { shape.dropLast().reduce(1, *) }
    /// Number of elements, `rows * columns`.
    public var count: Int { rows * columns }
    /// The leading dimensions: the shape of per-row statistics (`[1]` for a rank-1 tensor).
    public var rowShape: [Int] { shape.count > 1 ? Array(shape.dropLast()) : [1] }
    /// Rows in one group of ``groupStride``: `shape[rank - 2]`, or all rows for rank <= 2.
    public var rowsPerGroup: Int { shape.count >= 3 ? shape[shape.count - 2] : rows }
    /// Whether the rows are packed back to back.
    public var isContiguous: Bool { !hasGroupedRows && (rowStride == columns || rows <= 1) }
    /// Whether one row stride cannot describe the rows: there are several groups, and groups are not
    /// `rowsPerGroup * rowStride` apart.
    public var hasGroupedRows: Bool { rowView.isGrouped }

    /// The rows as a backend sees them; grouped rows are collapsed to one stride when the groups are in
    /// fact uniform (one group, one row per group, or `groupStride == rowsPerGroup * rowStride`).
    var rowView: RowView {
        RowView(
            address: buffer.address &+ UInt(byteOffset), rowStride: rowStride, dtype: dtype,
            rows: rows, rowsPerGroup: rowsPerGroup, groupStride: groupStride)
    }

    /// A tensor over `buffer` as given; the caller has checked the layout (``validateLayout``).
    /// - Parameters:
    ///   - groupStride: elements between groups of `shape[rank - 2]` rows; nil for `rowsPerGroup * rowStride`
    ///     (rows uniformly `rowStride` apart).
    init(shape: [Int], dtype: DType, rowStride: Int, groupStride: Int? = nil, buffer: any Buffer, byteOffset: Int) {
        self.shape = shape
        self.dtype = dtype
        self.rowStride = rowStride
        let rowsPerGroup = shape.count >= 3 ? shape[shape.count - 2] : shape.dropLast().reduce(1, *)
        self.groupStride = groupStride ?? rowsPerGroup * rowStride
        self.buffer = buffer
        self.byteOffset = byteOffset
    }

    /// Allocates a contiguous tensor with uninitialized contents.
    init(allocating shape: [Int], dtype: DType, on device: Device) throws {
        try Tensor.validate(shape: shape, argument: "shape")
        let count = shape.reduce(1, *)
        MemoryCounters.recordAllocation()
        let buffer = try device.backend().allocate(byteCount: count * dtype.byteCount)
        self.init(shape: shape, dtype: dtype, rowStride: shape[shape.count - 1], buffer: buffer, byteOffset: 0)
    }

    /// Allocates per-row statistics: `rowShape` may hold zeros (an input with no rows).
    init(allocatingStatisticsFor rowShape: [Int], on device: Device) throws {
        let count = rowShape.reduce(1, *)
        MemoryCounters.recordAllocation()
        let buffer = try device.backend().allocate(byteCount: count * DType.float32.byteCount)
        self.init(
            shape: rowShape, dtype: .float32, rowStride: rowShape[rowShape.count - 1], buffer: buffer, byteOffset: 0)
    }

    static func validate(shape: [Int], argument: String) throws {
        guard !shape.isEmpty else { throw FusedNormError.rankZero(argument: argument) }
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw FusedNormError.invalidShape(
                argument: argument, shape: shape, reason: "dimensions must not be negative")
        }
        guard shape[shape.count - 1] > 0 else { throw FusedNormError.emptyRows(argument: argument) }
        var count = 1
        for dimension in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
            guard !overflow, product <= Int.max / 8 else {
                throw FusedNormError.invalidShape(argument: argument, shape: shape, reason: "too many elements")
            }
            count = product
        }
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        "Tensor(shape: \(shape), dtype: \(dtype), device: \(device)\(isContiguous ? "" : ", rowStride: \(rowStride)"))"
    }
}
