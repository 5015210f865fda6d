import Synchronization

/// The CUDA backend: device memory, copies, and the normalization kernels, on one GPU.
///
/// One instance per device, made on first use by ``backend(forDevice:)`` and kept for the process.
/// Operations are queued on the device's current stream (``CUDADevice/currentStream``) and return
/// without waiting; copies to the host wait.
final class CUDABackend: Backend {
    let gpu: CUDADevice
    let nvrtc: NVRTC
    var device: Device { .cuda(gpu.index) }

    /// The backward pass's partial sums for work on the default stream: kept between calls (grown as
    /// needed), so that a call allocates nothing. Held locked while a call queues its two kernels, so that
    /// the kernels of two calls never interleave on the stream (which orders every use of the buffer).
    let defaultStreamScratch = Mutex<ScratchBuffer>(ScratchBuffer())

    private init(gpu: CUDADevice, nvrtc: NVRTC) {
        self.gpu = gpu
        self.nvrtc = nvrtc
    }

    /// Whether GPUs can be used: ``CUDA/status`` found the driver, NVRTC and at least one device.
    static var isUsable: Bool { CUDA.status.problem == nil }

    private static let backends = Mutex<[Int: CUDABackend]>([:])

    /// The backend of GPU `index`, made on first use (primary context, default stream).
    /// - Throws: ``FusedNormError/deviceUnavailable(_:reason:)`` when CUDA is unusable here (the reason
    ///   says why: no driver, no NVRTC, no device), the index is out of range, or the device fails to open.
    static func backend(forDevice index: Int) throws -> any Backend {
        try cudaBackend(forDevice: index)
    }

    /// ``backend(forDevice:)`` with its concrete type.
    static func cudaBackend(forDevice index: Int) throws -> CUDABackend {
        let environment = CUDAEnvironment.shared
        let (driver, nvrtc) = try environment.require(for: .cuda(index))
        let count = environment.status.devices.count
        guard index >= 0, index < count else {
            throw FusedNormError.deviceUnavailable(
                .cuda(index),
                reason: "there is no CUDA device \(index): this machine has \(count) (cuda:0 to cuda:\(count - 1))")
        }
        return try backends.withLock { backends in
            if let backend = backends[index] { return backend }
            do {
                let backend = CUDABackend(gpu: try CUDADevice(index: index, driver: driver), nvrtc: nvrtc)
                backends[index] = backend
                return backend
            } catch {
                throw FusedNormError.deviceUnavailable(.cuda(index), reason: "opening the device failed: \(error)")
            }
        }
    }

    /// The device behind `.cuda(i)`, for streams and events.
    static func gpu(for device: Device) throws -> CUDADevice {
        guard case .cuda(let index) = device else {
            throw FusedNormError.invalidArgument(
                name: "device", reason: "CUDA streams and events need a .cuda device, got \(device)")
        }
        return try cudaBackend(forDevice: index).gpu
    }

    /// Checks that `address` is device memory of `device` (`cuPointerGetAttribute`), for wrapped memory.
    static func checkDeviceMemory(_ address: UInt, byteCount: Int, on device: Device) throws {
        guard case .cuda(let index) = device else { return }
        let gpu = try cudaBackend(forDevice: index).gpu
        guard address != 0 || byteCount == 0 else {
            throw FusedNormError.invalidArgument(name: "address", reason: "null device address with \(byteCount) bytes")
        }
        guard byteCount > 0 else { return }
        let ordinal: Int
        do {
            ordinal = try gpu.deviceOrdinal(of: address)
        } catch let error as CUDAError {
            throw FusedNormError.invalidArgument(
                name: "address",
                reason: "0x\(String(address, radix: 16)) is not CUDA device memory the driver knows (\(error))")
        }
        guard ordinal == index else {
            throw FusedNormError.deviceMismatch(argument: "address", expected: device, actual: .cuda(ordinal))
        }
    }

    func allocate(byteCount: Int) throws -> any Buffer {
        try DeviceBuffer(gpu: gpu, byteCount: byteCount)
    }

    func upload(rows: Int, rowBytes: Int, from source: UnsafeRawPointer, sourcePitch: Int, to address: UInt, pitch: Int)
        throws
    {
        try gpu.copyRows(
            rows, rowBytes: rowBytes, from: UInt(bitPattern: source), .host, sourcePitch: sourcePitch,
            to: address, .device, destinationPitch: pitch)
    }

    func download(
        rows: Int, rowBytes: Int, from address: UInt, pitch: Int, to destination: UnsafeMutableRawPointer,
        destinationPitch: Int
    ) throws {
        try gpu.copyRows(
            rows, rowBytes: rowBytes, from: address, .device, sourcePitch: pitch,
            to: UInt(bitPattern: destination), .host, destinationPitch: destinationPitch)
    }

    func copy(rows: Int, rowBytes: Int, from source: UInt, sourcePitch: Int, to destination: UInt, pitch: Int) throws {
        try gpu.copyRows(
            rows, rowBytes: rowBytes, from: source, .device, sourcePitch: sourcePitch,
            to: destination, .device, destinationPitch: pitch)
    }

    /// Waits for all work on this device, on every stream (`cuCtxSynchronize`).
    func synchronize() throws {
        try gpu.withContext { try gpu.driver.check("cuCtxSynchronize(device \(gpu.index))") { $0.cuCtxSynchronize() } }
    }

    /// The module for a kernel specialization, from ``KernelCache/current``.
    func module(for request: KernelRequest) throws -> LoadedModule {
        try KernelCache.current.module(for: request, on: gpu, nvrtc: nvrtc)
    }
}

extension CUDABackend {
    /// A plan compiled (or found) and fitted to this GPU: its kernel and module, and the clusters resident at
    /// once (nil: no cluster, or the driver cannot tell).
    struct ReadyPlan {
        var plan: KernelPlan
        var module: LoadedModule
        var function: CUhandle
        var activeClusters: Int?
    }

    /// Compiles (or finds) the kernel of the plan `plan` makes for this GPU, fitted by
    /// ``fit(_:plan:teams:residentClusters:)`` with the driver's count of resident clusters.
    /// - Parameters:
    ///   - entryPoint: the kernel's function in the module.
    ///   - plan: the plan on a GPU of the given description.
    ///   - teams: the teams of a layout given the clusters that can be resident at once (at least one).
    func prepare(
        _ entryPoint: String, plan: (LaunchConfiguration.GPU) -> KernelPlan, teams: (LaunchConfiguration, Int) -> Int
    ) throws -> ReadyPlan {
        let (fitted, active) = try Self.fit(gpu.launchShape, plan: plan, teams: teams) { plan in
            let function = try module(for: plan.request).function(entryPoint)
            let c = plan.configuration
            return try gpu.withContext {
                gpu.activeClusters(
                    function, clusterSize: c.clusterSize, threads: c.blockSize, sharedBytes: plan.sharedBytes)
            }
        }
        let loaded = try module(for: fitted.request)
        return ReadyPlan(plan: fitted, module: loaded, function: loaded.function(entryPoint), activeClusters: active)
    }

    /// The plan `plan` makes for `shape`, fitted to what the GPU holds: while no cluster of the plan's size
    /// can be resident (`residentClusters` says 0), the plan is made again for clusters of half the size (the
    /// row split anew); then `teams` gives the teams for the clusters that can be resident at once. Plans
    /// without clusters, or whose resident clusters the driver cannot tell (nil), keep their teams.
    /// - Returns: the plan, and the resident clusters (nil: no cluster, or unknown).
    static func fit(
        _ shape: LaunchConfiguration.GPU, plan: (LaunchConfiguration.GPU) -> KernelPlan,
        teams: (LaunchConfiguration, Int) -> Int,
        residentClusters: (KernelPlan) throws -> Int?
    ) rethrows -> (plan: KernelPlan, activeClusters: Int?) {
        var shape = shape
        while true {
            var fitted = plan(shape)
            let c = fitted.configuration
            guard c.clusterSize > 1 else { return (fitted, nil) }
            let active = try residentClusters(fitted)
            if active == 0 {
                shape.maxClusterSize = c.clusterSize / 2
                continue
            }
            if let active { fitted.configuration.teams = teams(c, active) }
            return (fitted, active)
        }
    }
}

/// Device scratch memory reused from call to call on one stream (see ``CUDABackend/defaultStreamScratch``).
struct ScratchBuffer: ~Copyable {
    var address: UInt = 0
    var byteCount = 0

    /// At least `bytes` bytes, ordered on `stream`: a smaller buffer is released after the work queued
    /// before on the stream and a larger one allocated. The context must be current.
    mutating func reserve(_ bytes: Int, gpu: CUDADevice, stream: CUhandle) throws -> UInt {
        if bytes <= byteCount { return address }
        if address != 0 { gpu.freeScratch(address, stream: stream) }
        address = 0
        byteCount = 0
        let size = max(bytes, 1 << 20)
        address = try gpu.allocateScratch(byteCount: size, stream: stream)
        byteCount = size
        return address
    }
}
