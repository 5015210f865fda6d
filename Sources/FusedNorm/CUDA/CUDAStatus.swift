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
///
/// The driver (`libcuda.so.1`) and NVRTC are loaded at run time: NVRTC from `FUSEDNORM_NVRTC` (a path),
/// else the loader's path, the CUDA toolkit folders and Python's `nvidia` wheels. Kernels are compiled
/// for the GPU at hand on first use and cached in memory and on disk, in `FUSEDNORM_KERNEL_CACHE`, else
/// `$XDG_CACHE_HOME/fusednorm/kernels`, else `~/.cache/fusednorm/kernels`.
///
/// Operations on a `.cuda(i)` tensor run on that device's default stream, or on a ``CUDAStream`` made
/// current with `CUDAStream.withCurrent(_:_:)`; they return once queued.
/// `Tensor.toArray()` and `Device.synchronize()` wait for the results.
public enum CUDA {
    /// Probes the driver and NVRTC once (later calls return the same answer).
    public static var status: CUDAStatus {
        CUDAEnvironment.shared.status
    }
}
