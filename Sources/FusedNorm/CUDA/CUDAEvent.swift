/// A CUDA event: a marker in a stream, for timing GPU work and ordering streams. Destroyed in `deinit`.
///
///     let start = try CUDAEvent(), end = try CUDAEvent()
///     try start.record()
///     _ = try rmsNorm(x, weight: w)
///     try end.record()
///     try end.synchronize()
///     let milliseconds = try end.elapsedMilliseconds(since: start)
public final class CUDAEvent: @unchecked Sendable {
    // @unchecked: immutable after init; the driver API is thread-safe.

    /// The device the event belongs to.
    public let device: Device
    let gpu: CUDADevice
    let handle: CUhandle

    /// Creates an event on a GPU, with timing enabled.
    /// - Parameter device: `.cuda(i)`; default `.cuda(0)`.
    public init(device: Device = .cuda(0)) throws {
        let gpu = try CUDABackend.gpu(for: device)
        self.gpu = gpu
        self.device = device
        var event: CUhandle?
        try gpu.withContext {
            try gpu.driver.check("cuEventCreate(device \(gpu.index))") { $0.cuEventCreate(&event, 0) }
        }
        handle = event!
    }

    deinit {
        let gpu = self.gpu, handle = self.handle
        _ = try? gpu.withContext { _ = gpu.driver.cuEventDestroy(handle) }
    }

    /// Records the event after the work queued so far on `stream`.
    /// - Parameter stream: a stream of the event's device; nil (default): the stream operations
    ///   use now (the current ``CUDAStream``, else the device's default stream).
    public func record(on stream: CUDAStream? = nil) throws {
        if let stream, stream.deviceIndex != gpu.index {
            throw FusedNormError.deviceMismatch(argument: "stream", expected: device, actual: stream.device)
        }
        let target = stream?.handle ?? gpu.currentStream
        try gpu.withContext {
            try gpu.driver.check("cuEventRecord(device \(gpu.index))") { $0.cuEventRecord(handle, target) }
        }
    }

    /// Waits until the work before the event's last record has finished.
    public func synchronize() throws {
        try gpu.withContext {
            try gpu.driver.check("cuEventSynchronize(device \(gpu.index))") { $0.cuEventSynchronize(handle) }
        }
    }

    /// Milliseconds of GPU time between `start`'s record and this event's (both must have completed).
    public func elapsedMilliseconds(since start: CUDAEvent) throws -> Float {
        var milliseconds: Float = 0
        try gpu.withContext {
            try gpu.driver.check("cuEventElapsedTime(device \(gpu.index))") {
                $0.cuEventElapsedTime(&milliseconds, start.handle, handle)
            }
        }
        return milliseconds
    }
}
