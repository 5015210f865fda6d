/// How the leading dimensions of an n-dimensional strided view collapse into rows of contiguous columns,
/// the layouts FusedNorm's kernels read: one level (row `i` at `i · rowStride`) or two (rows within a
/// group and groups, e.g. the (T, H, D) q view of a fused (T, 3·H·D) qkv projection).
///
/// Dimensions of size 1 may have any stride; strides are in elements.
struct StridedLayout: Equatable, Sendable {
    /// Elements between consecutive rows (of one group).
    var rowStride: Int
    /// Rows per group (all the rows for a one-level layout).
    var rowsPerGroup: Int
    /// Elements between consecutive groups; nil for a one-level layout.
    var groupStride: Int?
    /// Bytes from the first element to one past the last element the view reaches (0 for no elements).
    var extentBytes: Int

    /// Analyzes `shape` and `strides` (nil: contiguous row-major).
    /// - Throws: ``DLPackError/unsupported(_:)`` for a layout the kernels cannot read (negative strides,
    ///   a non-unit last stride, more than two levels), ``FusedNormError`` for malformed ones (rank 0,
    ///   negative sizes, overlapping rows, sizes that overflow).
    init(shape: [Int], strides: [Int]?, elementBytes: Int, argument: String) throws {
        try Tensor.validate(shape: shape, argument: argument)
        let columns = shape[shape.count - 1]
        // No elements: nothing is addressed, so any strides will do (NumPy and PyTorch give such views 0 or 1).
        guard let strides, !shape.contains(0) else {
            rowStride = columns
            rowsPerGroup = shape.dropLast().reduce(1, *)
            groupStride = nil
            extentBytes = shape.reduce(1, *) * elementBytes
            if let strides, strides.count != shape.count {
                throw FusedNormError.invalidArgument(name: argument, reason: "\(strides.count) strides for \(shape.count) dimensions")
            }
            return
        }
        guard strides.count == shape.count else {
            throw FusedNormError.invalidArgument(name: argument, reason: "\(strides.count) strides for \(shape.count) dimensions")
        }
        if let negative = strides.firstIndex(where: { $0 < 0 }) {
            throw DLPackError.unsupported("\(argument): negative stride \(strides[negative]) in dimension \(negative) (a reversed view)")
        }
        if columns > 1, strides[strides.count - 1] != 1 {
            throw DLPackError.unsupported("\(argument): last stride \(strides[strides.count - 1]); the normalized dimension must be contiguous (stride 1)")
        }
        // Levels from the innermost leading dimension outwards: (count, stride).
        var levels: [(count: Int, stride: Int)] = []
        for dimension in stride(from: shape.count - 2, through: 0, by: -1) where shape[dimension] != 1 {
            let (size, step) = (shape[dimension], strides[dimension])
            if let last = levels.last, size == 0 || last.count == 0 || step == Self.product(last.stride, last.count) {
                levels[levels.count - 1].count = last.count * size
            } else {
                levels.append((size, step))
            }
        }
        guard levels.count <= 2 else {
            throw DLPackError.unsupported(
                "\(argument): strides \(strides) for shape \(shape) need \(levels.count) levels of rows; at most two (rows within groups) are supported")
        }
        let inner = levels.first ?? (1, columns)
        rowsPerGroup = inner.count
        rowStride = inner.count > 1 ? inner.stride : columns
        if rowsPerGroup > 1, rowStride < columns {
            throw FusedNormError.invalidShape(
                argument: argument, shape: shape, reason: "row stride \(rowStride) is smaller than the row (\(columns) elements): rows overlap")
        }
        guard let rowSpan = Self.product(rowsPerGroup - 1, rowStride), rowSpan <= Int.max / 16 - columns else {
            throw FusedNormError.invalidShape(argument: argument, shape: shape, reason: "the view spans more memory than can be addressed")
        }
        var lastElement = rowSpan + columns - 1
        if levels.count == 2 {
            let outer = levels[1]
            guard outer.stride > lastElement else {
                throw FusedNormError.invalidShape(
                    argument: argument, shape: shape, reason: "group stride \(outer.stride) is smaller than a group (\(lastElement + 1) elements): groups overlap")
            }
            groupStride = outer.stride
            let (span, overflow) = (outer.count - 1).multipliedReportingOverflow(by: outer.stride)
            guard !overflow, span <= Int.max / 16 - lastElement else {
                throw FusedNormError.invalidShape(argument: argument, shape: shape, reason: "the view spans more memory than can be addressed")
            }
            lastElement += span
        } else {
            groupStride = nil
        }
        let (bytes, overflow) = (lastElement + 1).multipliedReportingOverflow(by: elementBytes)
        guard !overflow, bytes <= Int.max / 2 else {
            throw FusedNormError.invalidShape(argument: argument, shape: shape, reason: "the view spans more memory than can be addressed")
        }
        extentBytes = bytes
    }

    /// a · b, or nil when it overflows.
    private static func product(_ a: Int, _ b: Int) -> Int? {
        let (value, overflow) = a.multipliedReportingOverflow(by: b)
        return overflow ? nil : value
    }

    /// Whether rows are evenly spaced (a single row stride describes them all).
    var isOneLevel: Bool { groupStride == nil }
}
