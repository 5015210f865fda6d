/// The fixed partition behind deterministic dweight/dbias: rows are grouped by batch (a batch is the
/// `weightRows` consecutive rows that use each parameter row once), each group sums its rows' dy·ŝ
/// (and dy) in row order into its own fp32 partial, and the partials are added in group order.
///
/// The groups depend only on the problem's shape, never on the thread count, so the sums are
/// bit-identical whatever ``CPUSettings/threadCount`` is; threads take whole groups, or slices of
/// a group's parameter rows, which are summed independently.
struct GradientGroups: Sendable {
    /// Parameter rows (H): 1, or the heads of a per-head parameter.
    let weightRows: Int
    /// Elements per row (N).
    let columns: Int
    /// Batches (B = rows / H).
    let batches: Int
    /// Groups (G): B up to 16, then B/16 up to 256, so the partials (G·H·N Floats) stay a small
    /// fraction of the data once there are many rows; fewer when a group would get less than a task's
    /// worth of work (``ParallelRows/minimumWorkPerTask``) or one partial buffer would pass 64 MiB.
    let count: Int

    init(rows: Int, columns: Int, weightRows: Int) {
        self.weightRows = weightRows
        self.columns = columns
        batches = rows / weightRows
        let (work, overflow) = rows.multipliedReportingOverflow(by: columns)
        let worthwhile = overflow ? Int.max : work / ParallelRows.minimumWorkPerTask
        let bytesPerGroup = weightRows * columns * MemoryLayout<Float>.stride
        count = max(1, min(batches, 256, max(16, batches / 16), worthwhile, (64 << 20) / bytesPerGroup))
    }

    /// Floats of one partial buffer: a (G, H, N) array.
    var partialCount: Int { count * weightRows * columns }

    /// The batches of group `group`.
    func batches(inGroup group: Int) -> Range<Int> {
        ParallelRows.range(group, of: count, splitting: batches)
    }

    /// Offset in a partial buffer of the row for group `group`, parameter row `head`.
    func partialOffset(group: Int, head: Int) -> Int { (group * weightRows + head) * columns }

    /// Adds the groups' partials (a (G, H, N) buffer) in group order and stores the totals in `gradient`
    /// (H rows of N), rounded to its dtype; the buffer is overwritten. Blocks of columns run in parallel.
    func reduce(_ partials: UnsafeMutablePointer<Float>, into gradient: RowView) {
        let blocksPerRow = (columns + blockLength - 1) / blockLength
        let groups = self
        let address = UInt(bitPattern: partials)
        ParallelRows.run(count: weightRows * blocksPerRow, workPerItem: count * blockLength) { chunks in
            let partials = UnsafeMutablePointer<Float>(bitPattern: address)!
            for item in chunks.joined() {
                let (head, block) = item.quotientAndRemainder(dividingBy: blocksPerRow)
                let start = block * blockLength, length = min(blockLength, groups.columns - start)
                let total = partials + groups.partialOffset(group: 0, head: head) + start
                for group in 1..<groups.count {
                    RowArithmetic.add(
                        partials + groups.partialOffset(group: group, head: head) + start, to: total, count: length)
                }
                gradient.dtype.encode(total, count: length, into: gradient.pointer(row: head, column: start))
            }
        }
    }
}
