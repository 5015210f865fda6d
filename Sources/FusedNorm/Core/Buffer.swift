/// Memory that holds a tensor's elements, owned by the buffer and released in its `deinit`.
///
/// `address` is a host pointer's bits on the CPU and a `CUdeviceptr` on a GPU; several tensors
/// (views) may share one buffer.
protocol Buffer: AnyObject, Sendable {
    var device: Device { get }
    var address: UInt { get }
    var byteCount: Int { get }
}

/// Host memory, aligned to 64 bytes so that rows can start on cache lines.
final class HostBuffer: Buffer, @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
    let byteCount: Int
    var device: Device { .cpu }
    var address: UInt { UInt(bitPattern: pointer) }

    init(byteCount: Int) {
        self.byteCount = byteCount
        pointer = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: 64)
    }

    deinit { pointer.deallocate() }
}
