/// A CUDA stream: a queue of GPU work that runs in order. Created on one device and destroyed in `deinit`
/// (work already queued still finishes), or wrapping a stream the caller owns (``init(unsafeWrapping:device:)``,
/// never destroyed by FusedNorm), such as PyTorch's current stream.
///
/// Operations run on the device's default stream unless a stream is made current for the calling
/// task or thread:
///
///     let stream = try CUDAStream(device: .cuda(0))
///     let y = try CUDAStream.withCurrent(stream) { try rmsNorm(x, weight: w) }
///     try stream.synchronize()
///
/// Inside `withCurrent`, every operation on the stream's device is queued on `stream`, and so are the
/// allocations, releases and copies of its tensors: a call queues its work and returns without waiting
/// for the GPU (only reading results to the host, `toArray()`, waits), makes no synchronous allocation or
/// copy, and so can be captured into a CUDA graph (``CUDAGraph``) once its kernels are compiled (run each
/// call once before capturing). Memory allocated on a stream is freed on it, after the work queued
/// before the release; a tensor used on another stream must be kept alive until that work is done.
/// Operations on other devices use their default streams. Outside `withCurrent`, kernels run on the
/// device's default stream and allocations, releases and copies on the legacy stream; FusedNorm-created
/// streams are blocking, so they are ordered with those. A caller's stream may be non-blocking: read its
/// results inside `withCurrent` (or after ``synchronize()``). Two streams are not ordered with each other:
/// a tensor computed on one and used on another needs ``wait(for:)`` (or a synchronization).
public final class CUDAStream: @unchecked Sendable {
    // @unchecked: immutable after init; the driver API is thread-safe.

    /// The stream current for this task or thread, set by ``withCurrent(_:_:)``.
    @TaskLocal static var current: CUDAStream?

    /// The device the stream belongs to.
    public let device: Device
    let gpu: CUDADevice
    let handle: CUhandle
    /// Whether FusedNorm created the stream and destroys it in `deinit` (false for a caller's stream).
    public let isOwned: Bool
    var deviceIndex: Int { gpu.index }

    /// Creates a stream on a GPU.
    /// - Parameter device: `.cuda(i)`; default `.cuda(0)`.
    /// - Throws: ``FusedNormError/deviceUnavailable(_:reason:)`` when the device cannot be used, or ``CUDAError``.
    public init(device: Device = .cuda(0)) throws {
        let gpu = try CUDABackend.gpu(for: device)
        self.gpu = gpu
        self.device = device
        var stream: CUhandle?
        try gpu.withContext {
            try gpu.driver.check("cuStreamCreate(device \(gpu.index))") { $0.cuStreamCreate(&stream, 0) }
        }
        handle = stream!
        isOwned = true
    }

    /// Wraps a stream the caller owns (a `CUstream`/`cudaStream_t` of the device's primary context, for
    /// example `torch.cuda.current_stream().cuda_stream`), so that FusedNorm's work is ordered with the
    /// caller's. FusedNorm never destroys it: it must stay valid while this object, the work queued on it
    /// and the tensors allocated on it exist.
    /// - Parameters:
    ///   - handle: the stream's bits; 0 is the legacy default stream (`CU_STREAM_LEGACY`).
    ///   - device: the `.cuda(i)` device the stream belongs to.
    /// - Throws: ``FusedNormError/deviceUnavailable(_:reason:)`` when the device cannot be used.
    public init(unsafeWrapping handle: UInt, device: Device) throws {
        gpu = try CUDABackend.gpu(for: device)
        self.device = device
        // CU_STREAM_LEGACY is the handle 0x1: the same stream as a null handle, but not null.
        self.handle = OpaquePointer(bitPattern: handle == 0 ? 1 : handle)!
        isOwned = false
    }

    deinit {
        guard isOwned else { return }
        let gpu = self.gpu, handle = self.handle
        _ = try? gpu.withContext { _ = gpu.driver.cuStreamDestroy(handle) }
    }

    /// The stream's handle bits (`CUstream`), for passing to other CUDA libraries.
    public var rawHandle: UInt { UInt(bitPattern: UnsafeRawPointer(handle)) }

    /// Whether the stream is capturing a CUDA graph now (`cuStreamIsCapturing`).
    public var isCapturing: Bool {
        get throws {
            var status: Int32 = 0
            try gpu.withContext {
                try gpu.driver.check("cuStreamIsCapturing(device \(gpu.index))") {
                    $0.cuStreamIsCapturing(handle, &status)
                }
            }
            return status != 0
        }
    }

    /// Runs `body` with `stream` current: operations on its device inside are queued on it.
    public static func withCurrent<R>(_ stream: CUDAStream, _ body: () throws -> R) rethrows -> R {
        try $current.withValue(stream, operation: body)
    }

    /// Runs `body` with `stream` current for the task and the tasks it creates.
    public static func withCurrent<R>(_ stream: CUDAStream, _ body: () async throws -> R) async rethrows -> R {
        try await $current.withValue(stream, operation: body)
    }

    /// Waits until all work queued on this stream has finished.
    public func synchronize() throws {
        try gpu.withContext {
            try gpu.driver.check("cuStreamSynchronize(device \(gpu.index))") { $0.cuStreamSynchronize(handle) }
        }
    }

    /// Makes work queued on this stream after this call wait until `event` has completed.
    public func wait(for event: CUDAEvent) throws {
        try gpu.withContext {
            try gpu.driver.check("cuStreamWaitEvent(device \(gpu.index))") {
                $0.cuStreamWaitEvent(handle, event.handle, 0)
            }
        }
    }
}
