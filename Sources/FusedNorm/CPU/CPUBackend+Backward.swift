extension CPUBackend {
    /// The backward pass, through the C row kernels (``VectorBackwardRows``) unless ``CPUSettings/kernels`` is
    /// ``CPUSettings/Kernels/portable``, else the Swift kernels below: tasks are the fixed ``GradientGroups``
    /// (or slices of a group's parameter rows), which the threads take in contiguous chunks; each row's x
    /// and dy are read from memory once
    /// (converted to Floats in per-thread scratch unless they are float32), reduced (pass A), then
    /// differentiated from cache (pass B). dweight and dbias are summed per group into fp32 partials,
    /// then over the groups in a fixed order, so they are bit-identical whatever the thread count.
    func run(_ problem: NormBackwardProblem) throws {
        precondition((problem.weight == nil) == (problem.dweight == nil), "dweight comes with a weight")
        let weights = ParameterRows(
            problem.weight, rows: problem.weightRows, columns: problem.columns, offset: problem.weightOffset)
        let groups = GradientGroups(rows: problem.rows, columns: problem.columns, weightRows: problem.weightRows)
        // One allocation for both partial buffers, the bias partials 64 bytes past a page boundary relative to
        // the weight partials: rows of the two that share their low 12 address bits (4K aliasing) would make
        // each load of a bias partial wait for the store to the weight partial just before it. Kept from call
        // to call (``ReusableMemory``): fresh pages cost a page fault each.
        let partialStride = (groups.partialCount + 1023) / 1024 * 1024 + 16
        defer { weights?.deallocate() }
        ReusableMemory.backwardPartials.with(byteCount: 2 * partialStride * MemoryLayout<Float>.stride) { memory in
            let partialBuffer = memory.bindMemory(to: Float.self, capacity: 2 * partialStride)
            let weightPartials = problem.dweight.map { _ in partialBuffer }
            let biasPartials = problem.dbias.map { _ in partialBuffer + partialStride }
            // Slicing a group's parameter rows over threads changes no sum, so it may follow the thread count.
            let headSplits = min(
                problem.weightRows, max(1, (CPUSettings.threadCount + groups.count - 1) / groups.count))
            let pass = BackwardPass(
                problem: problem, weights: weights, groups: groups, headSplits: headSplits,
                weightPartials: weightPartials.map { UInt(bitPattern: $0) },
                biasPartials: biasPartials.map { UInt(bitPattern: $0) })
            let rowsPerTask = problem.rows / (groups.count * headSplits)
            if let code = CPUSettings.kernels.rowKernelCode {
                let rows = VectorBackwardRows(
                    problem: problem, weights: weights, groups: groups, headSplits: headSplits,
                    weightPartials: pass.weightPartials, biasPartials: pass.biasPartials, kernels: code)
                ParallelRows.run(count: groups.count * headSplits, workPerItem: max(rowsPerTask, 1) * problem.columns) {
                    rows.run($0)
                }
            } else {
                ParallelRows.run(count: groups.count * headSplits, workPerItem: max(rowsPerTask, 1) * problem.columns) {
                    pass.run($0)
                }
            }
            if let weightPartials, let dweight = problem.dweight { groups.reduce(weightPartials, into: dweight) }
            if let biasPartials, let dbias = problem.dbias { groups.reduce(biasPartials, into: dbias) }
        }
    }
}

/// The constant state of one backward pass, shared read-only by its threads (which write disjoint rows
/// of dx and disjoint partial rows).
private struct BackwardPass: Sendable {
    let problem: NormBackwardProblem
    let weights: ParameterRows?
    let groups: GradientGroups
    /// Slices each group's parameter rows are split into, one task each.
    let headSplits: Int
    /// Addresses of the (G, H, N) fp32 partial buffers.
    let weightPartials: UInt?
    let biasPartials: UInt?

    /// Runs the tasks of the chunks it takes (group = task / headSplits), with scratch for x and dy as
    /// Floats and two staging blocks (the residual gradient's Floats, a 16-bit dx's Floats).
    func run(_ chunks: Chunks) {
        defer { DType.fenceStreamingStores() }  // dx's 16-bit stores stream (see `differentiate`)
        Scratch.with(rows: 2, columns: problem.columns, blocks: 2) { scratch in
            for task in chunks.joined() {
                let (group, split) = task.quotientAndRemainder(dividingBy: headSplits)
                let heads = ParallelRows.range(split, of: headSplits, splitting: problem.weightRows)
                for head in heads {
                    let offset = groups.partialOffset(group: group, head: head)
                    partial(weightPartials, offset)?.initialize(repeating: 0, count: problem.columns)
                    partial(biasPartials, offset)?.initialize(repeating: 0, count: problem.columns)
                }
                for batch in groups.batches(inGroup: group) {
                    for head in heads {
                        differentiate(
                            row: batch * problem.weightRows + head,
                            partialOffset: groups.partialOffset(group: group, head: head),
                            scratch: scratch)
                    }
                }
            }
        }
    }

    /// The partial row at `offset` in the buffer at `address`.
    private func partial(_ address: UInt?, _ offset: Int) -> UnsafeMutablePointer<Float>? {
        address.map { UnsafeMutablePointer<Float>(bitPattern: $0)! + offset }
    }

    /// Differentiates row `row`: reads x and dy as Floats (their own memory when float32, else scratch),
    /// takes x's statistics (saved, or computed from x), then pass A (mean(g), mean(g·ŝ)) and pass B (dx,
    /// and dy·ŝ and dy into the group's partials) from cache.
    private func differentiate(row: Int, partialOffset: Int, scratch: Scratch) {
        let p = problem, n = p.columns
        let centered = p.kind == .layer
        let xStash = scratch.row(0)
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
        let x =
            p.x.dtype == .float32
            ? UnsafePointer(p.x.pointer(row: row).assumingMemoryBound(to: Float.self)) : UnsafePointer(xStash)
        let dy = p.dy.floats(row: row, column: 0, count: n, staging: scratch.row(1))
        let weight = weights?.row(row % p.weightRows)

        // Pass A.
        var sums = GradientSums()
        forEachBlock(n) { start, count in
            sums.add(
                GradientSumsKernel(
                    x: x + start, dy: dy + start, count: count, centered: centered, statistics: stats,
                    weight: weight.map { $0 + start }
                ).run())
        }

        // Pass B: dx in fp32, into a staging block when dx is 16-bit, then converted in one go with
        // streaming stores.
        let meanG = Float(sums.sumG / Double(n)), meanGHat = Float(sums.sumGHat / Double(n))
        let weightGradient = partial(weightPartials, partialOffset), biasGradient = partial(biasPartials, partialOffset)
        let direct = p.dx.dtype == .float32
        forEachBlock(n) { start, count in
            let residualGradient = p.residualGradient.map {
                $0.floats(row: row, column: start, count: count, staging: scratch.block(0))
            }
            let output = p.dx.pointer(row: row, column: start)
            let dx = direct ? output.assumingMemoryBound(to: Float.self) : scratch.block(1)
            InputGradientKernel(
                x: x + start, dy: dy + start, count: count, centered: centered, statistics: stats, meanG: meanG,
                meanGHat: meanGHat, weight: weight.map { $0 + start }, residualGradient: residualGradient,
                weightGradient: weightGradient.map { $0 + start }, biasGradient: biasGradient.map { $0 + start },
                output: dx
            ).run()
            if !direct { p.dx.dtype.encode(dx, count: count, into: output, streaming: true) }
        }
    }
}

/// A row's pass-A sums across blocks, in Double.
private struct GradientSums {
    var sumG = 0.0
    var sumGHat = 0.0

    mutating func add(_ block: GradientBlockSums) {
        sumG += Double(block.sumG)
        sumGHat += Double(block.sumGHat)
    }
}
