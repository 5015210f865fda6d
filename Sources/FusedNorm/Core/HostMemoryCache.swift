import Synchronization

/// A caching allocator for tensors' host memory: a released buffer goes to a free list of its size class
/// and the next allocation of that class takes it back, so that an operation which allocates its output
/// (the default form) reuses pages that are already mapped instead of faulting in fresh ones on every call.
///
/// Sizes are rounded up to a class: steps of a quarter of the power of two below the size (at least 64
/// bytes), so at most 25% of a block is unused. At most ``limit`` bytes are kept; a released block that
/// would go over it is freed. Thread-safe. ``Device/releaseCachedMemory()`` frees every kept block.
///
/// Measured (docs/notes/interop.md): RMSNorm forward of 8192 x 4096 bfloat16 on a 2-core CPU costs about
/// the preallocated call with the cache, where fresh pages made it about ten times slower.
final class HostMemoryCache: Sendable {
    static let shared = HostMemoryCache()

    private struct State {
        var free: [Int: [UInt]] = [:]
        var cachedBytes = 0
        var limit = 1 << 30
    }

    private let state = Mutex(State())

    /// Bytes kept in the free lists now.
    var cachedBytes: Int { state.withLock { $0.cachedBytes } }

    /// The most bytes the free lists keep; default 1 GiB. Lowering it frees blocks until the cache fits.
    var limit: Int {
        get { state.withLock { $0.limit } }
        set {
            state.withLock { $0.limit = max(newValue, 0) }
            trim()
        }
    }

    /// The size a request of `byteCount` bytes is served with.
    static func sizeClass(_ byteCount: Int) -> Int {
        let size = max(byteCount, 64)
        let power = 1 << (Int.bitWidth - 1 - size.leadingZeroBitCount)
        let step = max(power / 4, 64)
        return (size + step - 1) / step * step
    }

    /// At least `byteCount` bytes, 64-byte aligned, uninitialized: a cached block of the size class, or a new one.
    /// - Returns: the address and the size actually reserved (pass both to ``release(_:byteCount:)``).
    func allocate(byteCount: Int) -> (pointer: UnsafeMutableRawPointer, byteCount: Int) {
        let size = Self.sizeClass(byteCount)
        let cached = state.withLock { state -> UInt? in
            guard let address = state.free[size]?.popLast() else { return nil }
            state.cachedBytes -= size
            return address
        }
        if let cached { return (UnsafeMutableRawPointer(bitPattern: cached)!, size) }
        return (UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64), size)
    }

    /// Gives back a block from ``allocate(byteCount:)``: kept for reuse while the cache is under its limit.
    func release(_ pointer: UnsafeMutableRawPointer, byteCount size: Int) {
        let kept = state.withLock { state -> Bool in
            guard state.cachedBytes + size <= state.limit else { return false }
            state.free[size, default: []].append(UInt(bitPattern: pointer))
            state.cachedBytes += size
            return true
        }
        if !kept { pointer.deallocate() }
    }

    /// Frees every kept block.
    func releaseAll() {
        let blocks = state.withLock { state -> [UInt] in
            let blocks = state.free.values.flatMap { $0 }
            state.free = [:]
            state.cachedBytes = 0
            return blocks
        }
        for address in blocks { UnsafeMutableRawPointer(bitPattern: address)!.deallocate() }
    }

    /// Frees the largest kept blocks until the cache is within its limit.
    private func trim() {
        let blocks = state.withLock { state -> [UInt] in
            var freed: [UInt] = []
            for size in state.free.keys.sorted(by: >) where state.cachedBytes > state.limit {
                while state.cachedBytes > state.limit, let address = state.free[size]?.popLast() {
                    freed.append(address)
                    state.cachedBytes -= size
                }
            }
            return freed
        }
        for address in blocks { UnsafeMutableRawPointer(bitPattern: address)!.deallocate() }
    }
}

extension Device {
    /// Frees the memory this device's allocator keeps for reuse: on the CPU the cached host blocks of
    /// released tensors and the backward pass's working buffer; on a GPU the unused memory of the device's
    /// stream-ordered pool (`cuMemPoolTrimTo`; memory freed by work still queued is returned once that work
    /// has run, so synchronize first to return everything). Tensors in use keep their memory.
    public func releaseCachedMemory() throws {
        switch self {
        case .cpu:
            HostMemoryCache.shared.releaseAll()
            ReusableMemory.backwardPartials.clear()
        case .cuda(let index):
            try CUDABackend.cudaBackend(forDevice: index).gpu.trimMemoryPool()
        }
    }

    /// Bytes this device's allocator keeps for reuse now (on a GPU: reserved by the pool and not in use).
    public func cachedMemoryByteCount() throws -> Int {
        switch self {
        case .cpu:
            return HostMemoryCache.shared.cachedBytes + ReusableMemory.backwardPartials.byteCount
        case .cuda(let index):
            return try CUDABackend.cudaBackend(forDevice: index).gpu.memoryPoolUnusedBytes()
        }
    }
}
