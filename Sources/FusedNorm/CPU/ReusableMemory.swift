import Synchronization

/// Working memory kept from one call to the next: the backward pass's dweight/dbias partial buffers.
///
/// A large allocation is mapped afresh by the C library on every call (glibc maps blocks of 32 MiB and
/// more, and returns them on free), and each of its pages then costs a page fault that the kernel
/// answers by zeroing it: at N >= 16384 that was half of the backward's time (`fusednorm bench --device
/// cpu --cols 16384,65536 --ops layernorm_backward`: float16 0.50 -> 0.84 of the copy at N = 16384). So
/// the buffer is kept: a call takes it when it is large enough, else allocates its own, and gives back
/// the larger of the two. Calls running at the same time each get their own. ``CPUSettings/clearCache()``
/// frees it.
final class ReusableMemory: Sendable {
    /// The backward pass's partial buffers.
    static let backwardPartials = ReusableMemory()

    /// The kept buffer's address and size in bytes.
    private let kept = Mutex<(address: UInt, byteCount: Int)?>(nil)

    /// Bytes kept now.
    var byteCount: Int { kept.withLock { $0?.byteCount ?? 0 } }

    /// Runs `body` with at least `byteCount` bytes, 64-byte aligned, whose contents are undefined.
    func with<Result>(byteCount: Int, _ body: (UnsafeMutableRawPointer) throws -> Result) rethrows -> Result {
        let taken = kept.withLock { kept -> (address: UInt, byteCount: Int)? in
            guard let buffer = kept, buffer.byteCount >= byteCount else { return nil }
            kept = nil
            return buffer
        }
        let buffer =
            taken
            ?? (UInt(bitPattern: UnsafeMutableRawPointer.allocate(byteCount: byteCount, alignment: 64)), byteCount)
        defer { giveBack(buffer) }
        return try body(UnsafeMutableRawPointer(bitPattern: buffer.address)!)
    }

    /// Frees the kept buffer.
    func clear() {
        let buffer = kept.withLock { kept in
            let buffer = kept
            kept = nil
            return buffer
        }
        if let buffer { free(buffer) }
    }

    private func giveBack(_ buffer: (address: UInt, byteCount: Int)) {
        let unused = kept.withLock { kept -> (address: UInt, byteCount: Int)? in
            guard let current = kept else {
                kept = buffer
                return nil
            }
            if current.byteCount >= buffer.byteCount { return buffer }
            kept = buffer
            return current
        }
        if let unused { free(unused) }
    }

    private func free(_ buffer: (address: UInt, byteCount: Int)) {
        UnsafeMutableRawPointer(bitPattern: buffer.address)!.deallocate()
    }
}
