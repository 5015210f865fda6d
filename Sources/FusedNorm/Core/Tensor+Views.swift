extension Tensor {
    /// A view of rows `range` taking every `step`-th one, without a copy. The result has shape
    /// `[count, columns]` (leading dimensions flattened) and row stride `rowStride * step`.
    /// - Parameters:
    ///   - range: rows of the flattened leading dimensions, within `0..<rows`.
    ///   - step: >= 1; default 1.
    /// - Throws: ``FusedNormError/invalidArgument(name:reason:)`` for grouped rows (``hasGroupedRows``):
    ///   their rows have no single stride; select groups with ``reshaped(_:)`` and views of a wider tensor instead.
    public func rows(_ range: Range<Int>, step: Int = 1) throws -> Tensor {
        let view = rowView
        guard !view.isGrouped else {
            throw FusedNormError.invalidArgument(
                name: "rows",
                reason: "a tensor with grouped rows (groupStride \(groupStride)) has no single row stride to flatten")
        }
        guard step >= 1 else {
            throw FusedNormError.invalidArgument(name: "step", reason: "must be at least 1, got \(step)")
        }
        guard range.lowerBound >= 0, range.upperBound <= rows else {
            throw FusedNormError.invalidArgument(name: "range", reason: "rows \(range) are outside 0..<\(rows)")
        }
        let count = (range.count + step - 1) / step
        return Tensor(
            shape: [count, columns], dtype: dtype, rowStride: view.rowStride * step, buffer: buffer,
            byteOffset: byteOffset + range.lowerBound * view.rowStride * dtype.byteCount)
    }

    /// A view of columns `range` of every row (for example q out of a fused qkv projection), without a copy.
    /// - Parameter range: within `0..<columns`, not empty.
    public func columns(_ range: Range<Int>) throws -> Tensor {
        guard range.lowerBound >= 0, range.upperBound <= columns, !range.isEmpty else {
            throw FusedNormError.invalidArgument(
                name: "range", reason: "columns \(range) are empty or outside 0..<\(columns)")
        }
        var shape = self.shape
        shape[shape.count - 1] = range.count
        return Tensor(
            shape: shape, dtype: dtype, rowStride: rowStride, groupStride: groupStride, buffer: buffer,
            byteOffset: byteOffset + range.lowerBound * dtype.byteCount)
    }

    /// The same elements with another shape, without a copy.
    ///
    /// Any shape with the same last dimension keeps the strides (grouped rows need the same rows per
    /// group, `shape[rank - 2]`). Changing the last dimension needs contiguous rows, except splitting it:
    /// a strided (R, H·D) view reshaped to (..., H, D) has grouped rows, D apart within a group of H and
    /// groups `rowStride` apart, for example q of a fused qkv projection seen as (T, H, D):
    ///
    ///     let q = try qkv.columns(0..<h * d).reshaped([t, h, d])   // heads d apart, tokens 3·h·d apart
    public func reshaped(_ shape: [Int]) throws -> Tensor {
        try Tensor.validate(shape: shape, argument: "shape")
        guard shape.reduce(1, *) == count else {
            throw FusedNormError.shapeMismatch(argument: "shape", expected: "\(count) elements", actual: shape)
        }
        let view = rowView
        if shape[shape.count - 1] == columns {
            if !view.isGrouped {
                return Tensor(
                    shape: shape, dtype: dtype, rowStride: view.rowStride, buffer: buffer, byteOffset: byteOffset)
            }
            guard shape.count >= 3, shape[shape.count - 2] == rowsPerGroup else {
                throw FusedNormError.invalidArgument(
                    name: "shape",
                    reason: "grouped rows keep \(rowsPerGroup) rows per group (shape[rank - 2]); \(shape) needs a copy")
            }
            return Tensor(
                shape: shape, dtype: dtype, rowStride: rowStride, groupStride: groupStride, buffer: buffer,
                byteOffset: byteOffset)
        }
        if isContiguous {
            return Tensor(
                shape: shape, dtype: dtype, rowStride: shape[shape.count - 1], buffer: buffer, byteOffset: byteOffset)
        }
        let splitsLastDimension = shape.count >= 3 && shape[shape.count - 2] * shape[shape.count - 1] == columns
        guard !view.isGrouped, splitsLastDimension else {
            throw FusedNormError.invalidArgument(
                name: "shape", reason: "changing the last dimension of a strided view needs a copy")
        }
        return Tensor(
            shape: shape, dtype: dtype, rowStride: shape[shape.count - 1], groupStride: view.rowStride,
            buffer: buffer, byteOffset: byteOffset)
    }
}
