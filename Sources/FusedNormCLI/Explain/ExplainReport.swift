#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The terminal tables and the JSON of `fusednorm explain`.
enum ExplainReport {
    /// A float32 as Swift prints it: the shortest decimal that reads back as the same float.
    static func exact(_ value: Float) -> String { "\(value)" }

    /// A float32 with four significant digits, for rows of values.
    static func short(_ value: Float) -> String { String(printf: "%.4g", Double(value)) }

    static func list(_ values: some Sequence<Float>) -> String { "[" + values.map(short).joined(separator: ", ") + "]" }

    /// The walkthrough (step tables when small), the per-row summary and each device's plan.
    static func lines(_ w: Walkthrough, plans: [DevicePlan]) -> [String] {
        var lines: [String] = []
        let name =
            switch w.operation {
            case "layernorm": "LayerNorm"
            case "rmsnorm-residual": "RMSNorm with the residual add fused (s = x + residual)"
            case "rmsnorm-backward": "RMSNorm backward"
            default: "RMSNorm"
            }
        lines.append(
            "fusednorm explain: \(name), \(w.rows) x \(w.columns) \(w.dtype), BLOCK_SIZE \(w.block), epsilon \(exact(w.epsilon)), "
                + (w.weight == nil ? "weight 1" : "weight given"))
        lines.append(
            "One program per row: the row is read in blocks of \(w.block), the blocks' partial sums add up to the row's sum,"
        )
        lines.append(
            "then the row is normalized and written block by block. Block sums: float32, in order; rstd and outputs: FusedNorm's."
        )
        let small = w.rows <= ExplainCommand.stepRows && w.columns <= ExplainCommand.stepColumns
        if small {
            for step in w.steps { lines += [""] + rowLines(step, w) }
        } else {
            lines += [
                "",
                "(\(w.rows) x \(w.columns) is too large for step tables: at most \(ExplainCommand.stepRows) rows of \(ExplainCommand.stepColumns) columns; the per-row summary and the plan follow)",
            ]
        }
        lines +=
            ["", "Per row" + (w.steps.count < w.rows ? " (the first \(w.steps.count) of \(w.rows))" : "") + ":"]
            + summary(w).lines
        if let dweight = w.weightGradient, !w.truncated {
            lines.append("dweight = Σ_rows dy·ŝ (FusedNorm, fp32, fixed order) = \(list(dweight))")
        }
        lines += ["", "Launch plan for N = \(w.columns), \(w.rows) rows, \(w.dtype):"]
        for plan in plans { lines += plan.lines }
        if !plans.contains(where: { $0.device.hasPrefix("cuda") || $0.device.contains("offline") }) {
            lines.append("GPU: none usable here; `--gpu h100` or `--gpu h200` prints the GPU plan offline.")
        }
        return lines
    }

    /// One row's blocks, statistics and output.
    static func rowLines(_ step: Walkthrough.Row, _ w: Walkthrough) -> [String] {
        let layer = w.operation == "layernorm", backward = w.operation == "rmsnorm-backward"
        let valueName = w.operation == "rmsnorm-residual" ? "s" : "x"
        var lines = ["Row \(step.row): \(valueName) = \(list(step.values))"]
        let squareName = layer ? "(x - mean)²" : "\(valueName)²"
        var headers = ["block", "columns", "values"]
        if layer { headers += ["Σ x (block)", "running Σ x"] }
        headers += ["Σ \(squareName) (block)", "running"]
        var table = TextTable(
            headers: headers, alignments: [.right, .left, .left] + Array(repeating: .right, count: headers.count - 3))
        var runningSum: Float = 0
        for block in step.blocks {
            var cells = [
                "\(block.index)", "\(block.start)-\(block.end - 1)", list(step.values[block.start..<block.end]),
            ]
            if layer, let partialSum = block.partialSum {
                runningSum += partialSum
                cells += [exact(partialSum), exact(runningSum)]
            }
            cells += [exact(block.partial), exact(block.running)]
            table.append(cells)
        }
        lines += table.lines.map { "  " + $0 }
        if layer, let sum = step.sum, let mean = step.mean {
            lines.append("  Σ x = \(exact(sum)); mean = Σ x / N = \(exact(mean)) (FusedNorm's)")
            lines.append(
                "  Σ (x - mean)² = \(exact(step.sumOfSquares)); variance = \(exact(step.meanSquare)); sqrt(variance + ε) = \(exact(step.rms))"
            )
        } else {
            lines.append(
                "  Σ \(squareName) = \(exact(step.sumOfSquares)); mean square = \(exact(step.meanSquare)); RMS = sqrt(mean square + ε) = \(exact(step.rms))"
            )
        }
        let agreement =
            step.walkthroughRstd == step.rstd
            ? "the same bits as the walkthrough's"
            : "walkthrough's \(exact(step.walkthroughRstd)): the sums were added in another order"
        lines.append(
            "  rstd = 1 / sqrt(\(layer ? "variance" : "mean square") + ε) = \(exact(step.rstd)) (FusedNorm, \(step.rstdBits); \(agreement))"
        )
        if backward, let g = step.gradient, let dotBlocks = step.dotBlocks, let dot = step.dot,
            let meanDot = step.meanDot
        {
            lines.append("  g = dy · w = \(list(g)); ŝ = x · rstd; second reduction Σ g·ŝ:")
            var dots = TextTable(
                headers: ["block", "columns", "Σ g·ŝ (block)", "running"], alignments: [.right, .left, .right, .right])
            for block in dotBlocks {
                dots.append([
                    "\(block.index)", "\(block.start)-\(block.end - 1)", exact(block.partial), exact(block.running),
                ])
            }
            lines += dots.lines.map { "    " + $0 }
            lines.append("  Σ g·ŝ = \(exact(dot)); mean(g·ŝ) = \(exact(meanDot))")
            lines.append("  dx = rstd · (g - ŝ · mean(g·ŝ)), block by block (FusedNorm):")
        } else {
            let formula = layer ? "(x - mean) · rstd · w + b" : "\(valueName) · rstd · w"
            lines.append("  y = \(formula), block by block (FusedNorm):")
        }
        for block in step.blocks {
            lines.append(
                "    block \(block.index) (columns \(block.start)-\(block.end - 1)): \(list(step.output[block.start..<block.end]))"
            )
        }
        return lines
    }

    /// The per-row statistics of the recorded rows.
    static func summary(_ w: Walkthrough) -> TextTable {
        let layer = w.operation == "layernorm"
        let square = w.operation == "rmsnorm-residual" ? "Σ s²" : "Σ x²"
        let headers =
            [
                "row", layer ? "Σ (x-mean)²" : square, layer ? "variance" : "mean square",
                layer ? "sqrt(var+ε)" : "RMS", "rstd",
            ]
            + (layer ? ["mean"] : []) + [w.operation == "rmsnorm-backward" ? "dx" : "y"]
        var table = TextTable(
            headers: headers, alignments: Array(repeating: .right, count: headers.count - 1) + [.left])
        for step in w.steps {
            var cells = [
                "\(step.row)", exact(step.sumOfSquares), exact(step.meanSquare), exact(step.rms), exact(step.rstd),
            ]
            if layer { cells.append(step.mean.map(exact) ?? "-") }
            cells.append(w.columns <= 16 ? list(step.output) : list(step.output.prefix(8)).dropLast() + ", ...]")
            table.append(cells)
        }
        return table
    }

    /// The walkthrough and the plans as one JSON object.
    static func json(_ walkthrough: Walkthrough, plans: [DevicePlan]) throws -> [UInt8] {
        struct Document: Encodable {
            var walkthrough: Walkthrough
            var plans: [DevicePlan]
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return Array(try encoder.encode(Document(walkthrough: walkthrough, plans: plans))) + [10]
    }
}
