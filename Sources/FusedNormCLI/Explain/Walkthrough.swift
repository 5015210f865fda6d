import FusedNorm

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// What `fusednorm explain` walks through.
enum ExplainOperation: String, CaseIterable, Sendable {
    case rmsnorm, layernorm
    /// RMSNorm with the residual add fused: s = x + residual; y = RMSNorm(s).
    case rmsnormResidual = "rmsnorm-residual"
    /// RMSNorm backward, with its two row reductions Σ x² and Σ g·ŝ.
    case rmsnormBackward = "rmsnorm-backward"
}

/// The blocked, row-per-program kernel walked through one row at a time: each row is read in blocks of
/// `block` elements, the blocks' partial sums are added into the row's sum, the row's statistics follow, and
/// the output is written block by block.
///
/// Per-block and per-row sums are the walkthrough's own float32 arithmetic (in block order, each block's
/// elements in order); the statistics FusedNorm saves (rstd, LayerNorm's mean) and every output (y, s, dx,
/// dweight) come from FusedNorm's operations, bit for bit what `fusednorm run` writes. RMSNorm's statistics
/// from the walkthrough's sum use FusedNorm's formula: rstd = float32(1 / sqrt(Σx² · (1/N) + ε)) in float64
/// (`walkthroughRstd`), so that they equal FusedNorm's whenever the two sums agree (always, when the sums of
/// squares are exact, as for the default matrix).
struct Walkthrough: Codable, Equatable {
    /// One block of one row.
    struct Block: Codable, Equatable {
        var index: Int
        var start: Int
        var end: Int
        /// The block's partial sum of the reduced quantity (x², (x − mean)², or g·ŝ), float32.
        var partial: Float
        /// The row's running sum after this block.
        var running: Float
        /// LayerNorm's first pass: the block's Σ x.
        var partialSum: Float?
    }

    /// One row: its blocks, its statistics and its output.
    struct Row: Codable, Equatable {
        var row: Int
        /// The values reduced: x, or s = x + residual.
        var values: [Float]
        var blocks: [Block]
        /// Σ x² (RMSNorm; backward: the first reduction) or Σ (x − mean)² (LayerNorm).
        var sumOfSquares: Float
        /// Σ x² / N, or the variance.
        var meanSquare: Float
        /// sqrt(mean square + ε).
        var rms: Float
        /// 1 / sqrt(mean square + ε) from the walkthrough's sum.
        var walkthroughRstd: Float
        /// FusedNorm's rstd (what `fusednorm run --rstd` writes).
        var rstd: Float
        var rstdBits: String
        /// LayerNorm: FusedNorm's mean, and the walkthrough's Σ x.
        var mean: Float?
        var sum: Float?
        /// Backward: g = dy · w, the second reduction Σ g·ŝ and its mean.
        var gradient: [Float]?
        var dotBlocks: [Block]?
        var dot: Float?
        var meanDot: Float?
        /// y (forward) or dx (backward) from FusedNorm.
        var output: [Float]
        var outputBits: [String]
    }

    var operation: String
    var rows: Int
    var columns: Int
    var block: Int
    var dtype: String
    var epsilon: Float
    var x: [[Float]]
    var weight: [Float]?
    var residual: [[Float]]?
    var outputGradient: [[Float]]?
    var steps: [Row]
    /// Backward: FusedNorm's dweight.
    var weightGradient: [Float]?
    /// Whether the rows and columns recorded are the first ``recordedRows`` and ``recordedColumns`` of a larger
    /// input (each recorded row's sums and statistics still cover the whole row).
    var truncated = false

    /// The most rows and columns a walkthrough records (tables, JSON, page).
    static let recordedRows = 16, recordedColumns = 64
}

/// The inputs of one walkthrough, already rounded to the dtype.
struct WalkthroughInputs {
    var x: Tensor
    var weight: Tensor?
    var residual: Tensor?
    var outputGradient: Tensor?
}

extension Walkthrough {
    /// The float32 bits of `value`, as `0x3f1b3a2c`.
    static func bits(_ value: Float) -> String { "0x" + String(printf: "%08x", value.bitPattern) }

    /// Runs `operation` through FusedNorm on the CPU and walks through it block by block.
    /// - Parameters:
    ///   - operation: what to explain.
    ///   - inputs: x (rows, N) and the optional tensors, on the CPU, in `dtype`.
    ///   - block: BLOCK_SIZE, at least 1.
    ///   - epsilon: finite and > 0.
    static func make(_ operation: ExplainOperation, inputs: WalkthroughInputs, block: Int, epsilon: Float) throws
        -> Walkthrough
    {
        let x = inputs.x, n = x.columns
        let xValues = try x.toArray()
        // The first recordedRows rows, whole.
        func rowsOf(_ values: [Float]) -> [[Float]] {
            stride(from: 0, to: min(values.count, recordedRows * n), by: n).map { Array(values[$0..<$0 + n]) }
        }
        let weightValues = try inputs.weight?.toArray()
        var result = Walkthrough(
            operation: operation.rawValue, rows: x.rows, columns: n, block: block, dtype: x.dtype.rawValue,
            epsilon: epsilon,
            x: rowsOf(xValues), weight: weightValues, residual: try inputs.residual.map { rowsOf(try $0.toArray()) },
            outputGradient: try inputs.outputGradient.map { rowsOf(try $0.toArray()) }, steps: [], weightGradient: nil)

        switch operation {
        case .rmsnorm, .rmsnormResidual:
            let forward = try rmsNormForward(x, residual: inputs.residual, weight: inputs.weight, epsilon: epsilon)
            let reduced = try forward.residual.map { rowsOf(try $0.toArray()) } ?? result.x
            let rstd = try forward.rstd.toArray(), output = rowsOf(try forward.output.toArray())
            result.steps = reduced.indices.map { row in
                var step = rmsRow(row, values: reduced[row], block: block, epsilon: epsilon)
                step.rstd = rstd[row]
                step.rstdBits = bits(rstd[row])
                step.output = output[row]
                step.outputBits = output[row].map(bits)
                return step
            }
        case .layernorm:
            let forward = try layerNormForward(x, weight: inputs.weight, epsilon: epsilon)
            let rstd = try forward.rstd.toArray(), mean = try forward.mean!.toArray(),
                output = rowsOf(try forward.output.toArray())
            result.steps = result.x.indices.map { row in
                var step = layerRow(row, values: result.x[row], block: block, epsilon: epsilon)
                step.mean = mean[row]
                step.rstd = rstd[row]
                step.rstdBits = bits(rstd[row])
                step.output = output[row]
                step.outputBits = output[row].map(bits)
                return step
            }
        case .rmsnormBackward:
            let dy = try inputs.outputGradient ?? Tensor(repeating: 1, shape: x.shape, dtype: x.dtype)
            let forward = try rmsNormForward(x, weight: inputs.weight, epsilon: epsilon)
            let gradients = try rmsNormBackward(
                dy, input: x, weight: inputs.weight, rstd: forward.rstd, epsilon: epsilon)
            let rstd = try forward.rstd.toArray(), dx = rowsOf(try gradients.input.toArray()),
                dyRows = rowsOf(try dy.toArray())
            result.weightGradient = try gradients.weight?.toArray()
            result.steps = result.x.indices.map { row in
                var step = rmsRow(row, values: result.x[row], block: block, epsilon: epsilon)
                step.rstd = rstd[row]
                step.rstdBits = bits(rstd[row])
                let g = zip(dyRows[row], weightValues ?? Array(repeating: 1, count: n)).map { $0 * $1 }
                let hat = result.x[row].map { $0 * rstd[row] }
                let (blocks, dot) = blockSums(zip(g, hat).map { $0 * $1 }, block: block)
                step.gradient = g
                step.dotBlocks = blocks
                step.dot = dot
                step.meanDot = Float(Double(dot) / Double(n))
                step.output = dx[row]
                step.outputBits = dx[row].map(bits)
                return step
            }
        }
        if result.rows > recordedRows || n > recordedColumns { result.truncate() }
        return result
    }

    /// Keeps the first ``recordedColumns`` columns of every recorded row (and the blocks that start there).
    mutating func truncate() {
        truncated = true
        let width = Self.recordedColumns
        func cut(_ values: [Float]) -> [Float] { Array(values.prefix(width)) }
        x = x.map(cut)
        weight = weight.map(cut)
        residual = residual?.map(cut)
        outputGradient = outputGradient?.map(cut)
        weightGradient = weightGradient.map(cut)
        for index in steps.indices {
            steps[index].values = cut(steps[index].values)
            steps[index].output = cut(steps[index].output)
            steps[index].outputBits = Array(steps[index].outputBits.prefix(width))
            steps[index].gradient = steps[index].gradient.map(cut)
            steps[index].blocks = steps[index].blocks.filter { $0.start < width }
            steps[index].dotBlocks = steps[index].dotBlocks?.filter { $0.start < width }
        }
    }

    /// The blocks' partial sums of `terms` (float32, in order) and the row's sum.
    static func blockSums(_ terms: [Float], block: Int) -> ([Block], Float) {
        var blocks: [Block] = [], running: Float = 0
        for (index, start) in stride(from: 0, to: terms.count, by: block).enumerated() {
            let end = min(terms.count, start + block)
            let partial = terms[start..<end].reduce(Float(0), +)
            running += partial
            blocks.append(Block(index: index, start: start, end: end, partial: partial, running: running))
        }
        return (blocks, running)
    }

    /// An RMSNorm row: Σ x² block by block, then FusedNorm's formula for the statistics.
    static func rmsRow(_ row: Int, values: [Float], block: Int, epsilon: Float) -> Row {
        let (blocks, sum) = blockSums(values.map { $0 * $0 }, block: block)
        let meanSquare = Double(sum) * (1 / Double(values.count))
        return Row(
            row: row, values: values, blocks: blocks, sumOfSquares: sum, meanSquare: Float(meanSquare),
            rms: Float((meanSquare + Double(epsilon)).squareRoot()),
            walkthroughRstd: Float(1 / (meanSquare + Double(epsilon)).squareRoot()), rstd: 0, rstdBits: "", output: [],
            outputBits: [])
    }

    /// A LayerNorm row: Σ x block by block for the mean, then Σ (x − mean)² block by block for the variance.
    static func layerRow(_ row: Int, values: [Float], block: Int, epsilon: Float) -> Row {
        let (sumBlocks, sum) = blockSums(values, block: block)
        let mean = Float(Double(sum) / Double(values.count))
        var (blocks, squares) = blockSums(values.map { ($0 - mean) * ($0 - mean) }, block: block)
        for index in blocks.indices { blocks[index].partialSum = sumBlocks[index].partial }
        let variance = Double(squares) * (1 / Double(values.count))
        return Row(
            row: row, values: values, blocks: blocks, sumOfSquares: squares, meanSquare: Float(variance),
            rms: Float((variance + Double(epsilon)).squareRoot()),
            walkthroughRstd: Float(1 / (variance + Double(epsilon)).squareRoot()), rstd: 0, rstdBits: "", sum: sum,
            output: [], outputBits: [])
    }
}
