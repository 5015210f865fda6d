extension CPUBackend {
    /// The forward pass, through the C row kernels (``VectorForwardRows``) unless ``CPUSettings/kernels`` is
    /// ``CPUSettings/Kernels/portable``, else the Swift kernels below: rows go to the threads in contiguous
    /// chunks (``ParallelRows``); pass 1 reads a row from memory once (converting it to Floats in per-thread scratch unless it is float32, adding
    /// the residual and storing s) and reduces it to its statistics; pass 2 normalizes it from cache and
    /// writes y once. Per-row results never depend on the thread count.
    func run(_ problem: NormForwardProblem) throws {
        let offset = problem.kind == .rms ? problem.weightOffset : 0
        let weights = ParameterRows(problem.weight, rows: problem.weightRows, columns: problem.columns, offset: offset)
        let biases = ParameterRows(problem.bias, rows: problem.weightRows, columns: problem.columns, offset: 0)
        defer {
            weights?.deallocate()
            biases?.deallocate()
        }
        let pass = ForwardPass(problem: problem, weights: weights, biases: biases)
        if let code = CPUSettings.kernels.rowKernelCode {
            let packed = PackedWeightBias(for: problem, weights: weights, biases: biases)
            defer { packed?.deallocate() }
            let rows = VectorForwardRows(
                problem: problem, weights: weights, biases: biases, packedWeightBias: packed,
                hatRounding: pass.hatRounding, kernels: code)
            ParallelRows.run(count: problem.rows, workPerItem: problem.columns) { chunks in
                rows.run(chunks)
            }
            return
        }
        ParallelRows.run(count: problem.rows, workPerItem: problem.columns) { chunks in
            pass.run(chunks)
        }
    }
}

/// The constant state of one forward pass, shared read-only by its threads (which write disjoint rows).
private struct ForwardPass: Sendable {
    let problem: NormForwardProblem
    let weights: ParameterRows?
    let biases: ParameterRows?

    /// The dtype ŝ is rounded to before the weight multiplies it: under `.twice` rounding, the dtype of s
    /// (the residual output's, else x's); nil when there is no rounding to do.
    var hatRounding: DType? {
        guard problem.kind == .rms, problem.rounding == .twice else { return nil }
        let dtype = problem.residualOutput?.dtype ?? problem.x.dtype
        return dtype == .float32 ? nil : dtype
    }

    /// Rows whose second pass runs together, column block by column block, so that each block of the
    /// parameters is read from L1 once per group instead of from L2 once per row. It pays off only with
    /// two parameter streams (weight and bias): with one, re-reading s from L2 costs as much as it saves.
    /// The group's rows of s must fit in a quarter of a 1 MiB L2.
    var rowsPerGroup: Int {
        weights != nil && biases != nil && problem.columns <= 8192 ? 8 : 1
    }

    /// Normalizes the rows of the chunks it takes, with scratch for a group's rows of s and two staging blocks.
    func run(_ chunks: Chunks) {
        defer { DType.fenceStreamingStores() }  // y's 16-bit stores stream (see `write`)
        let groupRows = rowsPerGroup
        Scratch.with(rows: groupRows, columns: problem.columns, blocks: 2) { scratch in
            withUnsafeTemporaryAllocation(of: PreparedRow.self, capacity: groupRows) { prepared in
                for rows in chunks {
                    var start = rows.lowerBound
                    while start < rows.upperBound {
                        let group = start..<min(start + groupRows, rows.upperBound)
                        for (index, row) in group.enumerated() {
                            prepared.initializeElement(
                                at: index, to: prepare(row: row, stash: scratch.row(index), scratch: scratch))
                        }
                        forEachBlock(problem.columns, length: groupRows > 1 ? blockLength / 4 : blockLength) {
                            start, count in
                            for index in 0..<group.count {
                                write(prepared[index], column: start, count: count, scratch: scratch)
                            }
                        }
                        start = group.upperBound
                    }
                }
            }
        }
    }

    /// A row after pass 1: s as Floats, in cache, and its statistics.
    private struct PreparedRow {
        var row: Int
        var s: UnsafePointer<Float>
        var statistics: NormStatistics
    }

    /// Pass 1 of row `row`: s as Floats (x's memory itself when it is float32 and there is no residual,
    /// else `stash`), the residual output, and the statistics (also stored when asked for).
    private func prepare(row: Int, stash: UnsafeMutablePointer<Float>, scratch: Scratch) -> PreparedRow {
        let p = problem, n = p.columns
        var statistics = RowStatistics(centered: p.kind == .layer, shiftFrom: p.x, row: row, columns: n)
        let s: UnsafePointer<Float>
        if let residual = p.residual, let residualOutput = p.residualOutput {
            forEachBlock(n) { start, count in
                let block = stash + start
                let x = p.x.floats(row: row, column: start, count: count, staging: block)
                let r = residual.floats(row: row, column: start, count: count, staging: scratch.block(0))
                let output = residualOutput.pointer(row: row, column: start)
                let sums: BlockSums
                if residualOutput.dtype == .float32 {
                    sums = ResidualAddKernel(
                        x: x, residual: r, count: count, output: output.assumingMemoryBound(to: Float.self),
                        rounded: block,
                        centered: statistics.centered, shift: statistics.shift
                    ).run()
                } else {
                    // s in fp32 in the stash, stored in the 16-bit dtype and replaced by the stored values.
                    RowArithmetic.add(x, r, into: block, count: count)
                    residualOutput.dtype.store(block, count: count, into: output)
                    sums = BlockSumsKernel(
                        values: block, count: count, centered: statistics.centered, shift: statistics.shift
                    ).run()
                }
                statistics.add(block, count: count, sums: sums)
            }
            s = UnsafePointer(stash)
        } else {
            forEachBlock(n) { start, count in
                _ = statistics.load(p.x, row: row, column: start, count: count, staging: stash + start)
            }
            s =
                p.x.dtype == .float32
                ? UnsafePointer(p.x.pointer(row: row).assumingMemoryBound(to: Float.self)) : UnsafePointer(stash)
        }
        let stats = statistics.finish(epsilon: p.epsilon)
        if let address = p.mean { UnsafeMutablePointer<Float>(bitPattern: address)![row] = stats.mean }
        if let address = p.rstd { UnsafeMutablePointer<Float>(bitPattern: address)![row] = stats.rstd }
        return PreparedRow(row: row, s: s, statistics: stats)
    }

    /// Pass 2 of a prepared row over `count` columns from `column`: y from s in cache, computed in fp32
    /// (into a staging block when the output is 16-bit, then converted in one go with streaming stores).
    private func write(_ prepared: PreparedRow, column start: Int, count: Int, scratch: Scratch) {
        let p = problem, row = prepared.row
        let weight = weights.map { $0.row(row % p.weightRows) + start },
            bias = biases.map { $0.row(row % p.weightRows) + start }
        let output = p.output.pointer(row: row, column: start)
        let direct = p.output.dtype == .float32
        let y = direct ? output.assumingMemoryBound(to: Float.self) : scratch.block(1)
        if let rounding = hatRounding {
            // .llama: ŝ = s·r rounded to s's dtype, then y = ŝ·(w + offset).
            let hat = scratch.block(1)
            NormalizeKernel(
                values: prepared.s + start, count: count, centered: false, statistics: prepared.statistics, weight: nil,
                bias: nil, output: hat
            ).run()
            rounding.round(hat, count: count)
            NormalizeKernel(
                values: hat, count: count, centered: false, statistics: NormStatistics(mean: 0, meanError: 0, rstd: 1),
                weight: weight, bias: nil, output: y
            ).run()
        } else {
            NormalizeKernel(
                values: prepared.s + start, count: count, centered: p.kind == .layer, statistics: prepared.statistics,
                weight: weight, bias: bias, output: y
            ).run()
        }
        if !direct { p.output.dtype.encode(y, count: count, into: output, streaming: true) }
    }
}
