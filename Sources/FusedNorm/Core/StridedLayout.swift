/// How the leading dimensions of an n-dimensional strided view (DLPack's shape and strides) map onto a
/// tensor's rows: one level (row `i` at `i · rowStride`) or grouped rows (the `shape[rank − 2]` rows of a
/// group `rowStride` apart, groups `groupStride` apart, e.g. the (T, H, D) q view of a fused (T, 3·H·D)
/// qkv projection).
///
/// Dimensions of size 1 may have any stride; strides are in elements. Overlap and extent are checked
/// afterwards by ``Tensor/validateLayout(shape:dtype:rowStride:groupStride:address:byteOffset:byteCount:argument:)``.
struct StridedLayout: Equatable, Sendable {
    /// Elements between consecutive rows (of one group).
    var rowStride: Int
    /// Elements between consecutive groups of `shape[rank − 2]` rows; nil when one stride describes every row.
    var groupStride: Int?

    /// Analyzes `shape` and `strides` (nil: contiguous row-major).
    /// - Throws: ``DLPackError/unsupported(_:)`` for a layout the tensor cannot express (negative strides,
    ///   a non-unit last stride, more than two levels of rows, an inner level other than `shape[rank − 2]`),
    ///   ``FusedNormError`` for a malformed shape.
    init(shape: [Int], strides: [Int]?, argument: String) throws {
        try Tensor.validate(shape: shape, argument: argument)
        let columns = shape[shape.count - 1]
        if let strides, strides.count != shape.count {
            throw FusedNormError.invalidArgument(
                name: argument, reason: "\(strides.count) strides for \(shape.count) dimensions")
        }
        // No elements: nothing is addressed, so any strides will do (NumPy and PyTorch give such views 0 or 1).
        guard let strides, !shape.contains(0) else {
            rowStride = columns
            groupStride = nil
            return
        }
        if let negative = strides.firstIndex(where: { $0 < 0 }) {
            throw DLPackError.unsupported(
                "\(argument): negative stride \(strides[negative]) in dimension \(negative) (a reversed view)")
        }
        if columns > 1, strides[strides.count - 1] != 1 {
            throw DLPackError.unsupported(
                "\(argument): last stride \(strides[strides.count - 1]); the normalized dimension must be contiguous (stride 1)"
            )
        }
        // Levels from the innermost leading dimension outwards: (count, stride, innermost dimension).
        var levels: [(count: Int, stride: Int, first: Int)] = []
        for dimension in stride(from: shape.count - 2, through: 0, by: -1) where shape[dimension] != 1 {
            let (size, step) = (shape[dimension], strides[dimension])
            let (span, overflow) = levels.last.map { $0.stride.multipliedReportingOverflow(by: $0.count) } ?? (0, true)
            if !overflow, step == span {
                levels[levels.count - 1].count *= size
            } else {
                levels.append((size, step, dimension))
            }
        }
        guard levels.count <= 2 else {
            throw DLPackError.unsupported(
                "\(argument): strides \(strides) for shape \(shape) need \(levels.count) levels of rows; at most two (rows within groups) are supported"
            )
        }
        let inner = levels.first ?? (1, columns, shape.count - 2)
        rowStride = inner.count > 1 ? inner.stride : columns
        if levels.count == 2 {
            // Grouped rows: a group is the second-to-last dimension.
            guard inner.first == shape.count - 2, inner.count == shape[shape.count - 2] else {
                throw DLPackError.unsupported(
                    "\(argument): strides \(strides) for shape \(shape) group rows across dimensions other than the second-to-last one; rows within groups must be dimension \(shape.count - 2)"
                )
            }
            groupStride = levels[1].stride
        } else {
            groupStride = nil
        }
    }
}
