/// One GPU as the CUDA driver describes it.
public struct CUDADeviceInfo: Sendable {
    public var index: Int
    public var name: String
    /// "major.minor", e.g. "9.0".
    public var computeCapability: String
    public var multiprocessorCount: Int
    public var memoryBytes: Int
}

/// What the CUDA backend found on this machine, and why it is not usable when it is not.
public struct CUDAStatus: Sendable {
    /// e.g. "13.0", from cuDriverGetVersion; nil when no driver was loaded.
    public var driverVersion: String?
    /// e.g. "13.0", from nvrtcVersion; nil when NVRTC was not found.
    public var nvrtcVersion: String?
    /// The NVRTC library that was loaded.
    public var nvrtcPath: String?
    public var devices: [CUDADeviceInfo]
    /// Where compiled kernels are cached on disk.
    public var kernelCacheDirectory: String?
    /// Why GPUs cannot be used (no driver, no NVRTC, no device); nil when they can.
    public var problem: String?
}

/// The CUDA backend's entry points that do not concern a single tensor.
public enum CUDA {
    /// Probes the driver and NVRTC once (later calls return the same answer).
    public static var status: CUDAStatus {
        CUDAStatus(driverVersion: nil, nvrtcVersion: nil, nvrtcPath: nil, devices: [], kernelCacheDirectory: nil,
                   problem: "the CUDA backend is not built yet")
    }
}
