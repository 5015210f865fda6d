/// One GPU in use: its primary context, its default stream and the properties kernels are sized by.
///
/// Made once per device by ``CUDABackend/backend(forDevice:)`` and kept for the life of the process.
/// Driver calls that need a context run inside ``withContext(_:)``, which pushes the primary context
/// on the calling thread and pops it after, so any thread may use any device.
final class CUDADevice: @unchecked Sendable {
    // @unchecked: every stored property is immutable after init; the handles are used only through the
    // thread-safe driver API.

    let index: Int
    let driver: CUDADriver
    let handle: CUdevice
    /// The device's primary context, retained in init and released in deinit.
    let context: CUhandle
    /// The stream operations run on when no ``CUDAStream`` is current: created once, blocking
    /// (ordered with the legacy stream that copies, allocations and frees use).
    let defaultStream: CUhandle
    /// Compute capability as one number: 90 for 9.0.
    let architecture: Int
    let multiprocessorCount: Int
    /// The most dynamic shared memory one block may ask for (after raising the kernel's limit).
    let sharedMemoryPerBlock: Int
    /// Shared memory and registers of one SM (what resident CTAs share).
    let sharedMemoryPerMultiprocessor: Int
    let registersPerMultiprocessor: Int
    /// The widest pitch `cuMemcpy2D` accepts.
    let maxPitch: Int
    /// Whether `cuMemAllocAsync` can be used (stream-ordered allocation from the default pool).
    let usesMemoryPool: Bool

    init(index: Int, driver: CUDADriver) throws {
        self.index = index
        self.driver = driver
        var device: CUdevice = 0
        try driver.check("cuDeviceGet(\(index))") { $0.cuDeviceGet(&device, Int32(index)) }
        handle = device
        architecture =
            try driver.attribute(.computeCapabilityMajor, of: device) * 10
            + driver.attribute(.computeCapabilityMinor, of: device)
        multiprocessorCount = try driver.attribute(.multiprocessorCount, of: device)
        sharedMemoryPerBlock = try driver.attribute(.maxSharedMemoryPerBlockOptin, of: device)
        sharedMemoryPerMultiprocessor = try driver.attribute(.maxSharedMemoryPerMultiprocessor, of: device)
        registersPerMultiprocessor = try driver.attribute(.maxRegistersPerMultiprocessor, of: device)
        maxPitch = try driver.attribute(.maxPitch, of: device)
        usesMemoryPool = try driver.attribute(.memoryPoolsSupported, of: device) != 0

        var context: CUhandle?
        try driver.check("cuDevicePrimaryCtxRetain(device \(index))") { $0.cuDevicePrimaryCtxRetain(&context, device) }
        guard let context else {
            throw CUDAError(
                library: .driver, code: 0, name: "no context", operation: "cuDevicePrimaryCtxRetain(device \(index))")
        }
        self.context = context

        var stream: CUhandle?
        do {
            try driver.check("cuCtxPushCurrent(device \(index))") { $0.cuCtxPushCurrent(context) }
            defer {
                var popped: CUhandle?
                _ = driver.cuCtxPopCurrent(&popped)
            }
            try driver.check("cuStreamCreate(device \(index))") { $0.cuStreamCreate(&stream, 0) }
            if usesMemoryPool {
                // Keep freed memory in the pool across synchronizations, so that allocation on the hot
                // path stays cheap (the default threshold of 0 returns it to the system at each one).
                var pool: CUhandle?
                try driver.check("cuDeviceGetDefaultMemPool(device \(index))") {
                    $0.cuDeviceGetDefaultMemPool(&pool, device)
                }
                var threshold = UInt64.max
                try driver.check("cuMemPoolSetAttribute(release threshold, device \(index))") {
                    $0.cuMemPoolSetAttribute(pool, memPoolAttributeReleaseThreshold, &threshold)
                }
            }
        } catch {
            _ = driver.cuDevicePrimaryCtxRelease(device)
            throw error
        }
        defaultStream = stream!
    }

    deinit {
        _ = try? withContext { try driver.check("cuStreamDestroy") { $0.cuStreamDestroy(defaultStream) } }
        _ = driver.cuDevicePrimaryCtxRelease(handle)
    }

    /// Runs `body` with this device's primary context current on the calling thread.
    @inline(__always)
    func withContext<R>(_ body: () throws -> R) throws -> R {
        try driver.check("cuCtxPushCurrent(device \(index))") { $0.cuCtxPushCurrent(context) }
        defer {
            var popped: CUhandle?
            _ = driver.cuCtxPopCurrent(&popped)
        }
        return try body()
    }

    /// The stream work on this device goes to now: the current ``CUDAStream`` when it belongs to this
    /// device, else the default stream.
    var currentStream: CUhandle {
        if let stream = CUDAStream.current, stream.deviceIndex == index { return stream.handle }
        return defaultStream
    }
}
