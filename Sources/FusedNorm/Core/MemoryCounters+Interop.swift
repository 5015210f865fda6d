/// ``MemoryCounters`` for the C library (libFusedNormC), which reports how much tensor memory its calls
/// allocated and how much tensor data they copied (`fusednorm_memory_counters`).
@_spi(CInterface)
public enum InterfaceMemoryCounters {
    /// Runs `body`, counting the tensor allocations and copies it makes (see ``MemoryCounters``).
    public static func counting<R>(_ body: () throws -> R) rethrows -> (result: R, allocations: Int, copies: Int) {
        let (result, counters) = try MemoryCounters.counting(body)
        return (result, counters.allocations, counters.copies)
    }
}
