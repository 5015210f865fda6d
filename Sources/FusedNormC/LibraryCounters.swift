import CFusedNormABI
import Synchronization

/// The tensor allocations and copies of every operation the C library ran since it was loaded (all threads).
enum LibraryCounters {
    private static let allocations = Atomic<Int>(0)
    private static let copies = Atomic<Int>(0)

    static func add(allocations: Int, copies: Int) {
        if allocations != 0 { Self.allocations.add(allocations, ordering: .relaxed) }
        if copies != 0 { Self.copies.add(copies, ordering: .relaxed) }
    }

    static var values: (allocations: Int, copies: Int) {
        (allocations.load(ordering: .relaxed), copies.load(ordering: .relaxed))
    }
}

@_cdecl("fusednorm_memory_counters")
public func fusednorm_memory_counters(
    _ allocations: UnsafeMutablePointer<Int64>?, _ copies: UnsafeMutablePointer<Int64>?
) -> fusednorm_status {
    callBoundary("fusednorm_memory_counters") {
        let values = LibraryCounters.values
        try required(allocations, "allocations").pointee = Int64(values.allocations)
        try required(copies, "copies").pointee = Int64(values.copies)
    }
}
