import Synchronization

/// Counts the tensor memory a piece of work allocates and the tensor data it copies, so that tests can
/// assert that calls on wrapped memory with preallocated outputs allocate and copy nothing.
///
/// Counted: every buffer a tensor allocates (outputs, statistics, gradients the call makes, tensors
/// made from arrays) and every copy of tensor data between host and device or between tensors. Not
/// counted: working memory inside a backend (partial sums, converted parameters).
final class MemoryCounters: Sendable {
    /// The counters of the current task, set by ``counting(_:)``; nil outside.
    @TaskLocal static var current: MemoryCounters?

    private let allocationCount = Atomic<Int>(0)
    private let copyCount = Atomic<Int>(0)

    var allocations: Int { allocationCount.load(ordering: .relaxed) }
    var copies: Int { copyCount.load(ordering: .relaxed) }

    static func recordAllocation() { current?.allocationCount.add(1, ordering: .relaxed) }
    static func recordCopy() { current?.copyCount.add(1, ordering: .relaxed) }

    /// Runs `body` counting what it (and the tasks it creates) allocate and copy.
    static func counting<R>(_ body: () throws -> R) rethrows -> (result: R, counters: MemoryCounters) {
        let counters = MemoryCounters()
        let result = try $current.withValue(counters, operation: body)
        return (result, counters)
    }
}
