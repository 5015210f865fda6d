/// Working memory of one worker thread, allocated once per parallel run and freed when it ends: whole
/// rows of Floats (inputs converted to Floats, kept in cache between passes) and blocks of
/// ``blockLength`` Floats (staging for one block at a time).
struct Scratch {
    private let base: UnsafeMutablePointer<Float>
    private let rowLength: Int
    private let rowCount: Int

    /// Row `index` (< the `rows` asked for), room for `columns` Floats, 64-byte aligned.
    func row(_ index: Int) -> UnsafeMutablePointer<Float> { base + index * rowLength }

    /// Block `index` (< the `blocks` asked for), room for ``blockLength`` Floats, 64-byte aligned.
    func block(_ index: Int) -> UnsafeMutablePointer<Float> { base + rowCount * rowLength + index * blockLength }

    /// Runs `body` with scratch for `rows` rows of `columns` Floats and `blocks` blocks.
    static func with<Result>(rows: Int, columns: Int, blocks: Int, _ body: (Scratch) -> Result) -> Result {
        let rowLength = (columns + 15) / 16 * 16
        let count = rows * rowLength + blocks * blockLength
        return withUnsafeTemporaryAllocation(byteCount: count * MemoryLayout<Float>.stride, alignment: 64) { buffer in
            let base = buffer.baseAddress!.bindMemory(to: Float.self, capacity: count)
            return body(Scratch(base: base, rowLength: rowLength, rowCount: rows))
        }
    }
}
