#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The CUDA driver and NVRTC as this process found them: loaded and probed once, on first use.
///
/// Nothing here throws or crashes on a machine without a GPU: what is missing is described in
/// ``status``'s `problem`, which every entry point of the backend checks first.
final class CUDAEnvironment: Sendable {
    /// The one probe of this process.
    static let shared = CUDAEnvironment()

    /// The driver table; nil when `libcuda.so.1` could not be loaded.
    let driver: CUDADriver?
    /// The compiler table; nil when NVRTC was not found.
    let nvrtc: NVRTC?
    /// What was found, and why the GPUs cannot be used when they cannot.
    let status: CUDAStatus

    private init() {
        let environment = ProcessInfo.processInfo.environment
        var status = CUDAStatus(
            driverVersion: nil, nvrtcVersion: nil, nvrtcPath: nil, devices: [],
            kernelCacheDirectory: KernelCache.defaultDirectory(environment: environment), problem: nil)
        var problems: [String] = []

        var loadedDriver: CUDADriver?
        switch CUDADriver.load() {
        case .failure(let error):
            problems.append(error.description)
        case .success(let driver):
            do {
                try driver.check("cuInit") { $0.cuInit(0) }
                var version: Int32 = 0
                try driver.check("cuDriverGetVersion") { $0.cuDriverGetVersion(&version) }
                status.driverVersion = "\(version / 1000).\(version % 1000 / 10)"
                var count: Int32 = 0
                try driver.check("cuDeviceGetCount") { $0.cuDeviceGetCount(&count) }
                status.devices = try (0..<Int(count)).map { try Self.describe(device: $0, driver: driver) }
                if count == 0 { problems.append("no CUDA device: the driver reports 0 GPUs (cuDeviceGetCount)") }
                loadedDriver = driver
            } catch {
                problems.append("the CUDA driver failed to initialize: \(error)")
            }
        }

        switch NVRTC.load(environment: environment) {
        case .failure(let failure):
            problems.append(failure.description)
            nvrtc = nil
        case .success(let compiler):
            status.nvrtcVersion = compiler.versionString
            status.nvrtcPath = compiler.library.resolvedPath(symbol: "nvrtcVersion") ?? compiler.library.path
            nvrtc = compiler
        }

        status.problem = problems.isEmpty ? nil : problems.joined(separator: "; ")
        driver = loadedDriver
        self.status = status
    }

    /// Name, compute capability, SM count and memory of one device.
    private static func describe(device index: Int, driver: CUDADriver) throws -> CUDADeviceInfo {
        var device: CUdevice = 0
        try driver.check("cuDeviceGet(\(index))") { $0.cuDeviceGet(&device, Int32(index)) }
        var name = [CChar](repeating: 0, count: 256)
        try driver.check("cuDeviceGetName(\(index))") { $0.cuDeviceGetName(&name, Int32(name.count), device) }
        var memory = 0
        try driver.check("cuDeviceTotalMem(\(index))") { $0.cuDeviceTotalMem(&memory, device) }
        let major = try driver.attribute(.computeCapabilityMajor, of: device)
        let minor = try driver.attribute(.computeCapabilityMinor, of: device)
        return CUDADeviceInfo(
            index: index, name: name.withUnsafeBufferPointer { String(cString: $0.baseAddress!) },
            computeCapability: "\(major).\(minor)",
            multiprocessorCount: try driver.attribute(.multiprocessorCount, of: device), memoryBytes: memory)
    }

    /// The driver and compiler when the GPUs are usable.
    /// - Throws: ``FusedNormError/deviceUnavailable(_:reason:)`` with ``CUDAStatus/problem`` otherwise.
    func require(for device: Device) throws -> (driver: CUDADriver, nvrtc: NVRTC) {
        if let problem = status.problem { throw FusedNormError.deviceUnavailable(device, reason: problem) }
        guard let driver, let nvrtc else {
            throw FusedNormError.deviceUnavailable(device, reason: "the CUDA backend is not initialized")
        }
        return (driver, nvrtc)
    }
}
