import Dispatch
import Synchronization

/// Splits work over ``CPUSettings/threadCount`` threads: the items are cut into contiguous chunks that
/// the threads claim one after another, so a thread slowed down by other processes takes fewer chunks.
enum ParallelRows {
    /// Elements of work below which another thread costs more than it saves.
    static let minimumWorkPerTask = 1 << 15

    /// Chunks per thread, for balance.
    static let chunksPerThread = 8

    /// Runs `worker` once per thread; each worker takes chunks (disjoint contiguous ranges that together
    /// cover `0..<count`) from the ``Chunks`` it is given until none is left. There are at most
    /// ``CPUSettings/threadCount`` threads, fewer when each would get less than ``minimumWorkPerTask``
    /// elements of work; a single worker runs on the calling thread.
    /// - Parameters:
    ///   - count: items to split (rows, groups, blocks).
    ///   - workPerItem: elements each item touches, to size the chunks.
    ///   - worker: takes chunks from its argument; set up per-thread state (scratch) before the loop.
    static func run(count: Int, workPerItem: Int, _ worker: @Sendable (Chunks) -> Void) {
        guard count > 0 else { return }
        let (work, overflow) = count.multipliedReportingOverflow(by: max(workPerItem, 1))
        let affordable = overflow ? Int.max : max(work / minimumWorkPerTask, 1)
        let threads = min(CPUSettings.threadCount, count, affordable)
        if threads == 1 {
            worker(Chunks(count: count, chunkSize: count, counter: nil))
            return
        }
        let chunkCount = min(count, affordable, threads * chunksPerThread)
        let chunks = Chunks(count: count, chunkSize: (count + chunkCount - 1) / chunkCount, counter: ChunkCounter())
        DispatchQueue.concurrentPerform(iterations: threads) { _ in worker(chunks) }
    }

    /// Task `task`'s share of `0..<count` split into `tasks` near-equal contiguous ranges.
    static func range(_ task: Int, of tasks: Int, splitting count: Int) -> Range<Int> {
        let (quotient, remainder) = count.quotientAndRemainder(dividingBy: tasks)
        let start = task * quotient + min(task, remainder)
        return start..<(start + quotient + (task < remainder ? 1 : 0))
    }
}

/// The next chunk to claim, shared by the threads of one ``ParallelRows/run(count:workPerItem:_:)``.
final class ChunkCounter: Sendable {
    let next = Atomic<Int>(0)
}

/// The chunks of one parallel run: iterating claims the next unclaimed chunk.
struct Chunks: Sequence, IteratorProtocol, Sendable {
    let count: Int
    let chunkSize: Int
    /// nil when a single worker takes everything.
    let counter: ChunkCounter?
    private var done = false

    init(count: Int, chunkSize: Int, counter: ChunkCounter?) {
        self.count = count
        self.chunkSize = chunkSize
        self.counter = counter
    }

    mutating func next() -> Range<Int>? {
        guard let counter else {
            if done { return nil }
            done = true
            return 0..<count
        }
        let start = counter.next.wrappingAdd(chunkSize, ordering: .relaxed).oldValue
        return start < count ? start..<Swift.min(start + chunkSize, count) : nil
    }
}
