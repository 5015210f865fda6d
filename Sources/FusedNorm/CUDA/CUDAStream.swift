/// A CUDA stream: a queue of GPU work that runs in order. Created on one device, destroyed in `deinit`
/// (work already queued still finishes).
///
/// Operations run on the device's default stream unless a stream is made current for the calling
/// task or thread:
///
///     let stream = try CUDAStream(device: .cuda(0))
///     let y = try CUDAStream.withCurrent(stream) { try rmsNorm(x, weight: w) }
///     try stream.synchronize()
///
/// Inside `withCurrent`, every operation on the stream's device is queued on `stream`; operations on
/// other devices use their default streams. Copies to and from tensors, allocations and releases use
/// the legacy stream, with which all of these streams are ordered (they are created blocking), so
/// `toArray()` sees every result queued before it. Two streams are not ordered with each other:
/// a tensor computed on one and used on another needs ``wait(for:)`` (or a synchronization).
public final class CUDAStream: @unchecked Sendable {
    // @unchecked: immutable after init; the driver API is thread-safe.

    /// The stream current for this task or thread, set by ``withCurrent(_:_:)``.
    @TaskLocal static var current: CUDAStream?

    /// The device the stream belongs to.
    public let device: Device
    let gpu: CUDADevice
    let handle: CUhandle
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
    }

    deinit {
        let gpu = self.gpu, handle = self.handle
        _ = try? gpu.withContext { _ = gpu.driver.cuStreamDestroy(handle) }
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
            try gpu.driver.check("cuStreamWaitEvent(device \(gpu.index))") { $0.cuStreamWaitEvent(handle, event.handle, 0) }
        }
    }
}
