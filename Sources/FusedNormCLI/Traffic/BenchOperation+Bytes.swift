import FusedNorm

extension BenchOperation {
    /// Bytes one run of the operation must move (the fused floor): each input read once, each output written
    /// once; `fusednorm bench` divides by it and `fusednorm traffic` predicts times from it.
    ///
    /// With T = rows·N·b (a tensor), P = heads·N·b (a weight or bias row set), S = rows·4 (fp32 statistics):
    /// rmsnorm 2T + P (x, w; y); rmsnorm_residual 4T + P (x, residual, w; y, s); rmsnorm_backward
    /// 3T + 2P + S (dy, x, w, rstd; dx, dw); layernorm 2T + 2P (x, w, b; y); layernorm_backward
    /// 3T + 4P + 2S (dy, x, w, b, mean, rstd; dx, dw, db); the allocating forms as theirs; tensor_from_array and
    /// tensor_to_array 2T (one copy).
    /// - Parameters:
    ///   - rows: rows of the problem.
    ///   - columns: N.
    ///   - heads: weight rows (1, or H for per-head weights).
    ///   - dtype: of every tensor.
    func bytes(rows: Int, columns: Int, heads: Int = 1, dtype: DType) -> Int {
        let tensorBytes = rows * columns * dtype.byteCount
        let parameterBytes = heads * columns * dtype.byteCount, statisticBytes = rows * 4
        switch self {
        case .rmsnorm, .rmsnormAllocating: return 2 * tensorBytes + parameterBytes
        case .rmsnormResidual: return 4 * tensorBytes + parameterBytes
        case .rmsnormBackward, .rmsnormBackwardAllocating: return 3 * tensorBytes + 2 * parameterBytes + statisticBytes
        case .tensorFromArray, .tensorToArray: return 2 * tensorBytes
        case .layernorm: return 2 * tensorBytes + 2 * parameterBytes
        case .layernormBackward: return 3 * tensorBytes + 4 * parameterBytes + 2 * statisticBytes
        }
    }
}
