extension CPUBackend {
    /// The backward pass: tasks are the fixed ``GradientGroups`` (or slices of a group's parameter rows),
    /// split over the threads; each row is read from memory once into cache (converted to Floats in
    /// per-task scratch unless it is float32), reduced, then differentiated from cache. dweight and dbias
    /// are summed per group into fp32 partials, then over the groups in a fixed order.
    func run(_ problem: NormBackwardProblem) throws {
        precondition((problem.weight == nil) == (problem.dweight == nil), "dweight comes with a weight")
        let weights = ParameterRows(problem.weight, rows: problem.weightRows, columns: problem.columns, offset: problem.weightOffset)
        let groups = GradientGroups(rows: problem.rows, columns: problem.columns, weightRows: problem.weightRows)
        let weightPartials = problem.dweight.map { _ in UnsafeMutablePointer<Float>.allocate(capacity: groups.partialCount) }
        let biasPartials = problem.dbias.map { _ in UnsafeMutablePointer<Float>.allocate(capacity: groups.partialCount) }
        defer {
            weights?.deallocate()
            weightPartials?.deallocate()
            biasPartials?.deallocate()
        }
        // Slicing a group's parameter rows over threads changes no sum, so it may follow the thread count.
        let headSplits = min(problem.weightRows, max(1, (CPUSettings.threadCount + groups.count - 1) / groups.count))
        let pass = BackwardPass(
            problem: problem, weights: weights, groups: groups, headSplits: headSplits,
            weightPartials: weightPartials.map { UInt(bitPattern: $0) }, biasPartials: biasPartials.map { UInt(bitPattern: $0) })
        let rowsPerTask = problem.rows / (groups.count * headSplits)
        ParallelRows.run(count: groups.count * headSplits, workPerItem: max(rowsPerTask, 1) * problem.columns) { chunks in
            pass.run(chunks)
        }
        if let weightPartials, let dweight = problem.dweight { groups.reduce(weightPartials, into: dweight) }
        if let biasPartials, let dbias = problem.dbias { groups.reduce(biasPartials, into: dbias) }
    }
}

/// The constant state of one backward pass, shared read-only by its tasks (which write disjoint rows of
/// dx and disjoint partial rows).
private struct BackwardPass: Sendable {
    let problem: NormBackwardProblem
    let weights: ParameterRows?
    let groups: GradientGroups
    /// Slices each group's parameter rows are split into, one task each.
    let headSplits: Int
    /// Addresses of the (G, H, N) fp32 partial buffers.
    let weightPartials: UInt?
    let biasPartials: UInt?

    /// Rows whose pass B runs together, column block by column block, so that each block of the weight
    /// and of the partial gradients is read from L1 once per group instead of from L2 once per row. The
    /// group's rows of x and dy must fit in half of a 1 MiB L2.
    var rowsPerGroup: Int { problem.columns <= 8192 ? 8 : 1 }

    /// Runs the tasks of the chunks it takes (group = task / headSplits), with scratch for a group's
    /// rows of x and dy as Floats and one staging block.
    func run(_ chunks: Chunks) {
        let groupRows = rowsPerGroup
        Scratch.with(rows: 2 * groupRows, columns: problem.columns, blocks: 1) { scratch in
            withUnsafeTemporaryAllocation(of: PreparedRow.self, capacity: groupRows) { prepared in
                for task in chunks.joined() {
                    let (group, split) = task.quotientAndRemainder(dividingBy: headSplits)
                    let heads = ParallelRows.range(split, of: headSplits, splitting: problem.weightRows)
                    for head in heads {
                        let offset = groups.partialOffset(group: group, head: head)
                        partial(weightPartials, offset)?.initialize(repeating: 0, count: problem.columns)
                        partial(biasPartials, offset)?.initialize(repeating: 0, count: problem.columns)
                    }
                    var count = 0
                    for batch in groups.batches(inGroup: group) {
                        for head in heads {
                            prepared.initializeElement(
                                at: count,
                                to: prepare(
                                    row: batch * problem.weightRows + head, partialOffset: groups.partialOffset(group: group, head: head),
                                    x: scratch.row(2 * count), dy: scratch.row(2 * count + 1)))
                            count += 1
                            if count == groupRows {
                                differentiate(UnsafeMutableBufferPointer(rebasing: prepared[0..<count]), scratch: scratch)
                                count = 0
                            }
                        }
                    }
                    if count > 0 { differentiate(UnsafeMutableBufferPointer(rebasing: prepared[0..<count]), scratch: scratch) }
                }
            }
        }
    }

    /// The partial row at `offset` in the buffer at `address`.
    private func partial(_ address: UInt?, _ offset: Int) -> UnsafeMutablePointer<Float>? {
        address.map { UnsafeMutablePointer<Float>(bitPattern: $0)! + offset }
    }

    /// A row after pass A: x and dy as Floats in cache, its statistics, and Σ g and Σ g·ŝ.
    private struct PreparedRow {
        var row: Int
        var x: UnsafePointer<Float>
        var dy: UnsafePointer<Float>
        var statistics: NormStatistics
        var weight: UnsafePointer<Float>?
        var weightGradient: UnsafeMutablePointer<Float>?
        var biasGradient: UnsafeMutablePointer<Float>?
        var meanG: Float
        var meanGHat: Float
    }

    /// Reads row `row`'s x and dy as Floats (their own memory when float32, else `x` and `dy`), takes x's
    /// statistics (saved, or computed from x), then pass A: mean(g) and mean(g·ŝ).
    private func prepare(
        row: Int, partialOffset: Int, x xStash: UnsafeMutablePointer<Float>, dy dyStash: UnsafeMutablePointer<Float>
    ) -> PreparedRow {
        let p = problem, n = p.columns
        let centered = p.kind == .layer
        var statistics = RowStatistics(centered: centered && p.rstd == nil, shiftFrom: p.x, row: row, columns: n)
        forEachBlock(n) { start, count in
            if p.rstd == nil {
                _ = statistics.load(p.x, row: row, column: start, count: count, staging: xStash + start)
            } else {
                _ = p.x.floats(row: row, column: start, count: count, staging: xStash + start)
            }
        }
        let stats: NormStatistics
        if let rstd = p.rstd {
            stats = NormStatistics(
                mean: p.mean.map { UnsafePointer<Float>(bitPattern: $0)![row] } ?? 0, meanError: 0,
                rstd: UnsafePointer<Float>(bitPattern: rstd)![row])
        } else {
            stats = statistics.finish(epsilon: p.epsilon)
        }
        let x = p.x.dtype == .float32 ? UnsafePointer(p.x.pointer(row: row).assumingMemoryBound(to: Float.self)) : UnsafePointer(xStash)
        let dy = p.dy.floats(row: row, column: 0, count: n, staging: dyStash)
        let weight = weights?.row(row % p.weightRows)
        var sumG = 0.0, sumGHat = 0.0
        forEachBlock(n) { start, count in
            let sums = GradientSumsKernel(
                x: x + start, dy: dy + start, count: count, centered: centered, statistics: stats,
                weight: weight.map { $0 + start }
            ).run()
            sumG += Double(sums.sumG)
            sumGHat += Double(sums.sumGHat)
        }
        return PreparedRow(
            row: row, x: x, dy: dy, statistics: stats, weight: weight, weightGradient: partial(weightPartials, partialOffset),
            biasGradient: partial(biasPartials, partialOffset), meanG: Float(sumG / Double(n)), meanGHat: Float(sumGHat / Double(n)))
    }

    /// Pass B over a group of rows, column block by column block: dx, and dy·ŝ and dy into the partials
    /// (each partial element gets its rows in row order, whatever the grouping).
    private func differentiate(_ rows: UnsafeMutableBufferPointer<PreparedRow>, scratch: Scratch) {
        let p = problem
        forEachBlock(p.columns, length: rows.count > 1 ? blockLength / 4 : blockLength) { start, count in
            for r in rows {
                let residualGradient = p.residualGradient.map {
                    $0.floats(row: r.row, column: start, count: count, staging: scratch.block(0))
                }
                InputGradientKernel(
                    x: r.x + start, dy: r.dy + start, count: count, centered: p.kind == .layer, statistics: r.statistics,
                    meanG: r.meanG, meanGHat: r.meanGHat, weight: r.weight.map { $0 + start }, residualGradient: residualGradient,
                    weightGradient: r.weightGradient.map { $0 + start }, biasGradient: r.biasGradient.map { $0 + start },
                    output: p.dx.pointer(row: r.row, column: start)
                ).run(as: p.dx.dtype)
            }
        }
    }
}
