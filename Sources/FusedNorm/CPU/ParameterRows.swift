import CFusedNormCPU

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

/// LayerNorm's weight and bias rows packed in 16-bit values of the rows' dtype for the C row kernels
/// (`cfn_pack_weight_bias`): fewer bytes and loads in pass 2 (with float parameters a row of x, weight and bias
/// overflows a 32 KiB L1 at N = 4096). Made only when every value packed is exact in that dtype (the kernels
/// then compute with the same Floats).
struct PackedWeightBias: @unchecked Sendable {
    private let storage: UnsafeMutablePointer<UInt16>
    private let columns: Int

    /// The packed parameters of a forward problem whose pass 2 reads them (LayerNorm with a weight and a
    /// bias, no residual, 16-bit x normalized into its own dtype); nil for any other problem, or when a value
    /// is not exact in that dtype.
    init?(for problem: NormForwardProblem, weights: ParameterRows?, biases: ParameterRows?) {
        let dtype = problem.x.dtype
        guard let weights, let biases, problem.residual == nil, dtype != .float32, problem.output.dtype == dtype
        else { return nil }
        let rows = problem.weightRows, columns = problem.columns
        let storage = UnsafeMutablePointer<UInt16>.allocate(capacity: 2 * rows * columns)
        for row in 0..<rows {
            let packed = cfn_pack_weight_bias(
                weights.row(row), biases.row(row), columns, dtype.rowKernelCode, storage + 2 * row * columns)
            if packed == 0 {
                storage.deallocate()
                return nil
            }
        }
        self.storage = storage
        self.columns = columns
    }

    /// The packed weight and bias of parameter row `row`.
    func row(_ row: Int) -> UnsafeRawPointer { UnsafeRawPointer(storage + 2 * row * columns) }

    /// Frees the packed rows.
    func deallocate() { storage.deallocate() }
}
