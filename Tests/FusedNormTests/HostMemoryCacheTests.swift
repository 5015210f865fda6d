import Testing

@testable import FusedNorm

@Suite("Host caching allocator")
struct HostMemoryCacheTests {
    @Test(
        "size classes: at least the request, at most 25% over, 64-byte multiples",
        arguments: [1, 63, 64, 65, 1000, 4096, 5000, 1 << 20, (1 << 20) + 1, 67_108_864, 100_000_007])
    func sizeClasses(request: Int) {
        let size = HostMemoryCache.sizeClass(request)
        #expect(size >= request && size % 64 == 0)
        #expect(size <= max(64, request + request / 4 + 64))
    }

    @Test("a released block is taken back by the next allocation of its class; release frees everything")
    func reuse() {
        let cache = HostMemoryCache()
        let first = cache.allocate(byteCount: 1_000_000)
        #expect(UInt(bitPattern: first.pointer) % 64 == 0 && first.byteCount >= 1_000_000)
        cache.release(first.pointer, byteCount: first.byteCount)
        #expect(cache.cachedBytes == first.byteCount)
        let second = cache.allocate(byteCount: 999_000)  // same class
        #expect(second.pointer == first.pointer)
        #expect(cache.cachedBytes == 0)
        let third = cache.allocate(byteCount: 1_000_000)
        #expect(third.pointer != first.pointer, "a block in use is never handed out twice")
        cache.release(second.pointer, byteCount: second.byteCount)
        cache.release(third.pointer, byteCount: third.byteCount)
        #expect(cache.cachedBytes == 2 * first.byteCount)
        cache.releaseAll()
        #expect(cache.cachedBytes == 0)
    }

    @Test("the cache keeps at most its limit")
    func limit() {
        let cache = HostMemoryCache()
        cache.limit = 1 << 20
        let blocks = (0..<3).map { _ in cache.allocate(byteCount: 600_000) }
        for block in blocks { cache.release(block.pointer, byteCount: block.byteCount) }
        #expect(cache.cachedBytes <= 1 << 20 && cache.cachedBytes > 0)
        cache.limit = 0
        #expect(cache.cachedBytes == 0)
    }

    @Test("threads allocating and releasing at once never share a block")
    func concurrent() async {
        let cache = HostMemoryCache()
        await withTaskGroup(of: Bool.self) { group in
            for task in 0..<8 {
                group.addTask {
                    var ok = true
                    for round in 0..<200 {
                        let block = cache.allocate(byteCount: 4096 * (1 + (task + round) % 3))
                        let marker = UInt64(task << 32 | round)
                        block.pointer.storeBytes(of: marker, as: UInt64.self)
                        await Task.yield()
                        ok = ok && block.pointer.load(as: UInt64.self) == marker
                        cache.release(block.pointer, byteCount: block.byteCount)
                    }
                    return ok
                }
            }
            for await ok in group { #expect(ok) }
        }
        cache.releaseAll()
        #expect(cache.cachedBytes == 0)
    }

    @Test("an allocating call reuses the memory of a released output: the same pages, not fresh ones")
    func allocatingCallsReuse() throws {
        // An unusual size, so that other tests running at the same time do not take the block.
        let x = try Tensor.ones([3, 77_777], dtype: .bfloat16)
        let first = try rmsNorm(x).dataAddress
        let second = try rmsNorm(x).dataAddress
        #expect(first == second)
        try Device.cpu.releaseCachedMemory()
    }
}
