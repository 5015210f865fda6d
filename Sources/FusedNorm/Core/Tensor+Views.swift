extension Tensor {
    /// A view of rows `range` taking every `step`-th one, without a copy. The result has shape
    /// `[count, columns]` (leading dimensions flattened) and row stride `rowStride * step`.
    /// - Parameters:
    ///   - range: rows of the flattened leading dimensions, within `0..<rows`.
    ///   - step: >= 1; default 1.
    public func rows(_ range: Range<Int>, step: Int = 1) throws -> Tensor {
        guard step >= 1 else { throw FusedNormError.invalidArgument(name: "step", reason: "must be at least 1, got \(step)") }
        guard range.lowerBound >= 0, range.upperBound <= rows else {
            throw FusedNormError.invalidArgument(name: "range", reason: "rows \(range) are outside 0..<\(rows)")
        }
        let count = (range.count + step - 1) / step
        return Tensor(
            shape: [count, columns], dtype: dtype, rowStride: rowStride * step, buffer: buffer,
            byteOffset: byteOffset + range.lowerBound * rowStride * dtype.byteCount)
    }

    /// A view of columns `range` of every row (for example q out of a fused qkv projection), without a copy.
    /// - Parameter range: within `0..<columns`, not empty.
    public func columns(_ range: Range<Int>) throws -> Tensor {
        guard range.lowerBound >= 0, range.upperBound <= columns, !range.isEmpty else {
            throw FusedNormError.invalidArgument(name: "range", reason: "columns \(range) are empty or outside 0..<\(columns)")
        }
        var shape = self.shape
        shape[shape.count - 1] = range.count
        return Tensor(
            shape: shape, dtype: dtype, rowStride: rowStride, buffer: buffer,
            byteOffset: byteOffset + range.lowerBound * dtype.byteCount)
    }

    /// The same elements with another shape. Any shape with the same last dimension keeps the row
    /// stride; changing the last dimension needs contiguous rows.
    public func reshaped(_ shape: [Int]) throws -> Tensor {
        try Tensor.validate(shape: shape, argument: "shape")
        guard shape.reduce(1, *) == count else {
            throw FusedNormError.shapeMismatch(argument: "shape", expected: "\(count) elements", actual: shape)
        }
        if shape[shape.count - 1] == columns {
            return Tensor(shape: shape, dtype: dtype, rowStride: rowStride, buffer: buffer, byteOffset: byteOffset)
        }
        guard isContiguous else {
            throw FusedNormError.invalidArgument(name: "shape", reason: "changing the last dimension of a strided view needs a copy")
        }
        return Tensor(shape: shape, dtype: dtype, rowStride: shape[shape.count - 1], buffer: buffer, byteOffset: byteOffset)
    }
}
