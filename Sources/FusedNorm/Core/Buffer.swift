import Synchronization

/// Memory that holds a tensor's elements, owned by the buffer and released in its `deinit`.
///
/// `address` is a host pointer's bits on the CPU and a `CUdeviceptr` on a GPU; several tensors
/// (views) may share one buffer.
protocol Buffer: AnyObject, Sendable {
    var device: Device { get }
    var address: UInt { get }
    var byteCount: Int { get }
    /// False once lent memory has been taken back (the end of a `Tensor.withWrapping` scope): tensors over
    /// it must no longer touch it.
    var isAccessible: Bool { get }
}

extension Buffer {
    var isAccessible: Bool { true }
}

/// Host memory, aligned to 64 bytes so that rows can start on cache lines, from ``HostMemoryCache``
/// (given back to it in `deinit`, for the next tensor of that size).
final class HostBuffer: Buffer, @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
    let byteCount: Int
    /// The size class reserved (at least `byteCount`).
    private let reservedBytes: Int
    var device: Device { .cpu }
    var address: UInt { UInt(bitPattern: pointer) }

    init(byteCount: Int) {
        self.byteCount = byteCount
        (pointer, reservedBytes) = HostMemoryCache.shared.allocate(byteCount: byteCount)
    }

    deinit { HostMemoryCache.shared.release(pointer, byteCount: reservedBytes) }
}

/// Memory that FusedNorm does not own: a caller's host pointer or `CUdeviceptr`, a DLPack tensor's data.
///
/// `release` runs exactly once, when the last tensor viewing the memory is gone (for an owner object to
/// be let go, or a DLPack deleter to be called).
final class ExternalBuffer: Buffer, @unchecked Sendable {
    let device: Device
    let address: UInt
    let byteCount: Int
    /// Tensors over this memory are never written (a read-only DLPack tensor).
    let isReadOnly: Bool
    private let release: (@Sendable () -> Void)?
    private let revoked = Atomic<Bool>(false)
    var isAccessible: Bool { !revoked.load(ordering: .acquiring) }

    init(
        address: UInt, byteCount: Int, device: Device, isReadOnly: Bool = false, release: (@Sendable () -> Void)? = nil
    ) {
        self.address = address
        self.byteCount = byteCount
        self.device = device
        self.isReadOnly = isReadOnly
        self.release = release
    }

    /// Marks the memory as taken back: every later use of a tensor over it throws.
    func revoke() { revoked.store(true, ordering: .releasing) }

    deinit { release?() }
}
