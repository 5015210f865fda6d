/// The rules a tensor's layout must follow, checked whenever a tensor is made over memory FusedNorm did
/// not lay out itself (wrapped caller memory, DLPack) or a view changes the strides.
extension Tensor {
    /// Elements from row 0, element 0 to one past the last element the rows reach (0 without rows).
    ///
    /// Uniform rows: `(rows - 1) * rowStride + columns`; grouped rows:
    /// `(groups - 1) * groupStride + (rowsPerGroup - 1) * rowStride + columns`.
    /// - Returns: nil when the extent overflows `Int`.
    static func extent(shape: [Int], rowStride: Int, groupStride: Int) -> Int? {
        let columns = shape[shape.count - 1]
        let rows = shape.dropLast().reduce(1, *)
        guard rows > 0 else { return 0 }
        let rowsPerGroup = shape.count >= 3 ? shape[shape.count - 2] : rows
        let groups = rows / max(rowsPerGroup, 1)
        let (inGroup, o1) = (rowsPerGroup - 1).multipliedReportingOverflow(by: rowStride)
        let (acrossGroups, o2) = (groups - 1).multipliedReportingOverflow(by: groupStride)
        let (sum, o3) = inGroup.addingReportingOverflow(acrossGroups)
        let (extent, o4) = sum.addingReportingOverflow(columns)
        guard !(o1 || o2 || o3 || o4) else { return nil }
        return extent
    }

    /// Checks that strides describe rows that do not overlap and that fit in `byteCount` bytes after
    /// `byteOffset`, and that the data address is aligned for `dtype`.
    ///
    /// Rows must not overlap: with uniform rows, `rowStride >= columns` (when there are 2 or more rows);
    /// with grouped rows, taking the smaller of the two strides as `a` (with its count `na`) and the larger
    /// as `b`: `a >= columns` and `b >= (na - 1) * a + columns`. This admits the layouts that views of
    /// row-major tensors produce (heads of a qkv projection, transposed heads) and refuses overlap.
    /// - Parameters:
    ///   - address: the buffer's address; `address + byteOffset` is row 0, element 0.
    ///   - argument: the name errors blame.
    /// - Throws: ``FusedNormError`` (`invalidShape`, `bufferTooSmall`, `misalignedAddress`).
    static func validateLayout(
        shape: [Int], dtype: DType, rowStride: Int, groupStride: Int,
        address: UInt, byteOffset: Int, byteCount: Int, argument: String
    ) throws {
        try validate(shape: shape, argument: argument)
        let columns = shape[shape.count - 1]
        let rows = shape.dropLast().reduce(1, *)
        guard rowStride >= 0, groupStride >= 0, byteOffset >= 0, byteCount >= 0 else {
            throw FusedNormError.invalidShape(
                argument: argument, shape: shape,
                reason:
                    "strides, offset and byte count must not be negative (rowStride \(rowStride), groupStride \(groupStride))"
            )
        }
        let view = RowView(
            address: 0, rowStride: rowStride, dtype: dtype, rows: rows,
            rowsPerGroup: shape.count >= 3 ? shape[shape.count - 2] : rows, groupStride: groupStride)
        if view.isGrouped {
            let groups = rows / view.rowsPerGroup
            let pairs = [(stride: rowStride, count: view.rowsPerGroup), (stride: groupStride, count: groups)]
                .sorted { $0.stride < $1.stride }
            let (inner, outer) = (pairs[0], pairs[1])
            let (span, overflow) = (inner.count - 1).multipliedReportingOverflow(by: inner.stride)
            guard inner.stride >= columns, !overflow, outer.stride >= span + columns else {
                throw FusedNormError.invalidShape(
                    argument: argument, shape: shape,
                    reason:
                        "rowStride \(rowStride) and groupStride \(groupStride) make rows of \(columns) elements overlap"
                )
            }
        } else if rows > 1, view.rowStride < columns {
            throw FusedNormError.invalidShape(
                argument: argument, shape: shape,
                reason:
                    "rowStride \(view.rowStride) is smaller than a row of \(columns) elements, so rows would overlap")
        }
        guard let extent = extent(shape: shape, rowStride: rowStride, groupStride: groupStride) else {
            throw FusedNormError.invalidShape(
                argument: argument, shape: shape, reason: "the strides reach past the address space")
        }
        let (elementBytes, o1) = extent.multipliedReportingOverflow(by: dtype.byteCount)
        let (required, o2) = elementBytes.addingReportingOverflow(byteOffset)
        guard !o1, !o2, required <= byteCount else {
            throw FusedNormError.bufferTooSmall(
                argument: argument, requiredBytes: o1 || o2 ? Int.max : required, byteCount: byteCount)
        }
        let start = address &+ UInt(byteOffset)
        guard start % UInt(dtype.byteCount) == 0 else {
            throw FusedNormError.misalignedAddress(argument: argument, address: start, alignment: dtype.byteCount)
        }
    }

    /// Whether the tensor's memory may be written: false for read-only wrapped memory.
    public var isWritable: Bool { !((buffer as? ExternalBuffer)?.isReadOnly ?? false) }

    /// Throws ``FusedNormError/readOnly(argument:)`` unless the tensor may be written.
    func requireWritable(_ argument: String) throws {
        guard isWritable else { throw FusedNormError.readOnly(argument: argument) }
    }

    /// Throws unless `other` has this tensor's device, shape and dtype (the checks of a copy's destination).
    /// - Parameters:
    ///   - other: the tensor to compare with this one.
    ///   - argument: `other`'s name in the error.
    /// - Throws: ``FusedNormError/deviceMismatch(argument:expected:actual:)``,
    ///   ``FusedNormError/shapeMismatch(argument:expected:actual:)`` or
    ///   ``FusedNormError/dtypeMismatch(argument:expected:actual:)``, checked in that order.
    func requireMatching(_ other: Tensor, _ argument: String) throws {
        guard other.device == device else {
            throw FusedNormError.deviceMismatch(argument: argument, expected: device, actual: other.device)
        }
        guard other.shape == shape else {
            throw FusedNormError.shapeMismatch(argument: argument, expected: "\(shape)", actual: other.shape)
        }
        guard other.dtype == dtype else {
            throw FusedNormError.dtypeMismatch(argument: argument, expected: dtype, actual: other.dtype)
        }
    }

    /// Checks that this tensor can be copied into `destination`: the same device, shape and dtype
    /// (``requireMatching(_:_:)``), a writable destination, and both tensors still usable.
    func requireCopyable(into destination: Tensor) throws {
        try requireMatching(destination, "destination")
        try destination.requireWritable("destination")
        try requireAccessible("source")
        try destination.requireAccessible("destination")
    }
}

/// Rows that one stride describes: `count` rows from `firstRow`, starting at `address`, `pitch` bytes apart.
struct RowRun {
    var firstRow: Int
    var count: Int
    var address: UInt
    var pitch: Int
}

extension RowView {
    /// The rows of `rows` as runs with one pitch each: one run for uniform rows, one per group for grouped
    /// rows (so a pitched copy can move each run in one call).
    /// One past the last row of `row`'s group (`Int.max` for uniform rows).
    func endOfGroup(containing row: Int) -> Int {
        isGrouped ? (row / rowsPerGroup + 1) * rowsPerGroup : Int.max
    }

    func runs(rows: Int) -> [RowRun] {
        let pitch = rowStride * dtype.byteCount
        guard isGrouped else {
            return rows > 0 ? [RowRun(firstRow: 0, count: rows, address: address, pitch: pitch)] : []
        }
        return stride(from: 0, to: rows, by: rowsPerGroup).map {
            RowRun(firstRow: $0, count: min(rowsPerGroup, rows - $0), address: address(row: $0), pitch: pitch)
        }
    }

}
