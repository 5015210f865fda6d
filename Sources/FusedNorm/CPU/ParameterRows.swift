/// Weight or bias rows as Floats with the weight offset added: the tensor's own memory when it is
/// float32 and the offset is 0, else a converted copy made once per call (so that no row converts the
/// same parameters again). Call ``deallocate()`` when the pass is done.
struct ParameterRows: @unchecked Sendable {
    private let base: UnsafePointer<Float>
    private let stride: Int
    private let copy: UnsafeMutablePointer<Float>?

    /// - Parameters:
    ///   - view: the parameter; nil gives nil.
    ///   - rows: 1, or H for a per-head parameter.
    ///   - columns: N.
    ///   - offset: added to every element (the weight offset of RMSNorm, 0 otherwise).
    init?(_ view: RowView?, rows: Int, columns: Int, offset: Float) {
        guard let view else { return nil }
        if view.dtype == .float32, offset == 0 {
            base = UnsafePointer(view.pointer(row: 0).assumingMemoryBound(to: Float.self))
            stride = view.rowStride
            copy = nil
            return
        }
        let copy = UnsafeMutablePointer<Float>.allocate(capacity: rows * columns)
        for row in 0..<rows {
            let destination = copy + row * columns
            view.dtype.decode(view.pointer(row: row), count: columns, into: destination)
            if offset != 0 { RowArithmetic.add(offset, to: destination, count: columns) }
        }
        base = UnsafePointer(copy)
        stride = columns
        self.copy = copy
    }

    /// The Floats of parameter row `row`.
    func row(_ row: Int) -> UnsafePointer<Float> { base + row * stride }

    /// Frees the converted copy, if one was made.
    func deallocate() { copy?.deallocate() }
}
