/// Rows of a tensor as a backend sees them: row `i` starts `i * rowStride` elements after `address`
/// (or, with grouped rows, `(i / rowsPerGroup) * groupStride + (i % rowsPerGroup) * rowStride`), and its
/// elements are contiguous.
struct RowView: Sendable {
    /// Byte address of row 0, element 0 (host pointer bits or `CUdeviceptr`).
    var address: UInt
    /// Elements between the starts of consecutive rows (of one group, when grouped).
    var rowStride: Int
    var dtype: DType
    /// Rows per group when the rows are grouped, else 0 (rows uniformly `rowStride` apart).
    private(set) var rowsPerGroup = 0
    /// Elements between the starts of consecutive groups; meaningful only when ``isGrouped``.
    private(set) var groupStride = 0

    /// Whether rows need two strides (``rowsPerGroup`` > 0); backends with one stride per tensor
    /// (the CUDA kernels) cannot take such a view.
    var isGrouped: Bool { rowsPerGroup != 0 }

    /// Rows uniformly `rowStride` apart.
    init(address: UInt, rowStride: Int, dtype: DType) {
        self.address = address
        self.rowStride = rowStride
        self.dtype = dtype
    }

    /// `rows` rows in groups of `rowsPerGroup`, collapsed to one stride whenever one describes them:
    /// a single group, a single row per group (rows are then `groupStride` apart), or
    /// `groupStride == rowsPerGroup * rowStride`.
    init(address: UInt, rowStride: Int, dtype: DType, rows: Int, rowsPerGroup: Int, groupStride: Int) {
        self.init(address: address, rowStride: rowStride, dtype: dtype)
        if rowsPerGroup <= 0 || rows <= rowsPerGroup || groupStride == rowsPerGroup &* rowStride { return }
        if rowsPerGroup == 1 {
            self.rowStride = groupStride
            return
        }
        self.rowsPerGroup = rowsPerGroup
        self.groupStride = groupStride
    }

    /// Byte address of `row`, element `column`.
    @inline(__always)
    func address(row: Int, column: Int = 0) -> UInt {
        let start =
            rowsPerGroup == 0
            ? row &* rowStride
            : (row / rowsPerGroup) &* groupStride &+ (row % rowsPerGroup) &* rowStride
        return address &+ UInt(bitPattern: (start &+ column) &* dtype.byteCount)
    }
}

/// Which normalization a problem computes.
enum NormKind: Sendable, Equatable {
    /// y = ŝ · (w + offset), ŝ = s / sqrt(mean(s²) + ε)
    case rms
    /// y = ŝ · w + b, ŝ = (s − mean(s)) / sqrt(var(s) + ε)
    case layer
}

/// A validated forward pass over `rows` rows of `columns` elements.
///
/// Per row i: s = x[i] (+ residual[i]), stored to `residualOutput` when given and then read back
/// rounded to its dtype; statistics in fp32; y = norm(s) with weight/bias row `i % weightRows`.
struct NormForwardProblem: Sendable {
    var kind: NormKind
    var rows: Int
    var columns: Int
    var x: RowView
    var residual: RowView?
    /// Weight rows: 1 for a weight of shape (N), H for a per-head weight of shape (H, N).
    var weightRows: Int
    var weight: RowView?
    var bias: RowView?
    var output: RowView
    /// s = x + residual; present exactly when `residual` is.
    var residualOutput: RowView?
    /// One fp32 per row, contiguous; LayerNorm only.
    var mean: UInt?
    /// One fp32 per row, contiguous.
    var rstd: UInt?
    var epsilon: Float
    /// Added to the weight (1 for Gemma); RMSNorm only.
    var weightOffset: Float
    /// Where RMSNorm rounds y (``RMSNormStyle/Rounding``).
    var rounding: RMSNormStyle.Rounding
}

/// A validated backward pass.
///
/// g = dy · (w + offset); RMSNorm: dx = r · (g − ŝ · mean(g·ŝ));
/// LayerNorm: dx = r · (g − mean(g) − ŝ · mean(g·ŝ)); dx += residualGradient when given;
/// dweight = Σ_rows dy·ŝ and dbias = Σ_rows dy, accumulated in fp32 in a fixed order.
struct NormBackwardProblem: Sendable {
    var kind: NormKind
    var rows: Int
    var columns: Int
    var dy: RowView
    /// The tensor that was normalized (s when a residual was fused).
    var x: RowView
    var weightRows: Int
    var weight: RowView?
    /// Saved statistics (fp32, one per row, contiguous); recomputed from x when absent.
    var mean: UInt?
    var rstd: UInt?
    /// Gradient reaching the fused residual output s from downstream; added to dx.
    var residualGradient: RowView?
    var dx: RowView
    /// (weightRows, columns), contiguous rows; present only with a weight.
    var dweight: RowView?
    /// (weightRows, columns); LayerNorm only, when dbias was asked for.
    var dbias: RowView?
    var epsilon: Float
    var weightOffset: Float
}
