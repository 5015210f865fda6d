/// `CUresult`: 0 is success.
typealias CUresult = Int32
/// `CUdevice`: an ordinal.
typealias CUdevice = Int32
/// `CUdeviceptr`: a device address.
typealias CUdeviceptr = UInt64
/// `CUcontext`, `CUstream`, `CUevent`, `CUmodule`, `CUfunction`, `CUmemoryPool`: opaque handles.
typealias CUhandle = OpaquePointer

/// The CUDA driver API (`libcuda.so.1`), loaded with `dlopen` and resolved once into a table of
/// C function pointers. Every call goes through ``check(_:_:)``, which turns a failed `CUresult` into a
/// ``CUDAError`` naming the call.
struct CUDADriver: @unchecked Sendable {
    // @unchecked: an immutable table of C function pointers into a library that stays loaded
    // (`library` keeps it open); the driver API itself is thread-safe.
    let library: DynamicLibrary

    let cuInit: @convention(c) (UInt32) -> CUresult
    let cuDriverGetVersion: @convention(c) (UnsafeMutablePointer<Int32>?) -> CUresult
    let cuGetErrorName: @convention(c) (CUresult, UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> CUresult
    let cuDeviceGetCount: @convention(c) (UnsafeMutablePointer<Int32>?) -> CUresult
    let cuDeviceGet: @convention(c) (UnsafeMutablePointer<CUdevice>?, Int32) -> CUresult
    let cuDeviceGetName: @convention(c) (UnsafeMutablePointer<CChar>?, Int32, CUdevice) -> CUresult
    let cuDeviceGetAttribute: @convention(c) (UnsafeMutablePointer<Int32>?, Int32, CUdevice) -> CUresult
    let cuDeviceTotalMem: @convention(c) (UnsafeMutablePointer<Int>?, CUdevice) -> CUresult
    let cuDevicePrimaryCtxRetain: @convention(c) (UnsafeMutablePointer<CUhandle?>?, CUdevice) -> CUresult
    let cuDevicePrimaryCtxRelease: @convention(c) (CUdevice) -> CUresult
    let cuDeviceGetDefaultMemPool: @convention(c) (UnsafeMutablePointer<CUhandle?>?, CUdevice) -> CUresult
    let cuCtxPushCurrent: @convention(c) (CUhandle?) -> CUresult
    let cuCtxPopCurrent: @convention(c) (UnsafeMutablePointer<CUhandle?>?) -> CUresult
    let cuCtxSynchronize: @convention(c) () -> CUresult
    let cuMemPoolSetAttribute: @convention(c) (CUhandle?, Int32, UnsafeMutableRawPointer?) -> CUresult
    let cuMemAlloc: @convention(c) (UnsafeMutablePointer<CUdeviceptr>?, Int) -> CUresult
    let cuMemFree: @convention(c) (CUdeviceptr) -> CUresult
    let cuMemAllocAsync: @convention(c) (UnsafeMutablePointer<CUdeviceptr>?, Int, CUhandle?) -> CUresult
    let cuMemFreeAsync: @convention(c) (CUdeviceptr, CUhandle?) -> CUresult
    let cuMemGetInfo: @convention(c) (UnsafeMutablePointer<Int>?, UnsafeMutablePointer<Int>?) -> CUresult
    let cuMemcpy2D: @convention(c) (UnsafeRawPointer?) -> CUresult
    let cuMemcpyHtoD: @convention(c) (CUdeviceptr, UnsafeRawPointer?, Int) -> CUresult
    let cuMemcpyDtoH: @convention(c) (UnsafeMutableRawPointer?, CUdeviceptr, Int) -> CUresult
    let cuMemcpyDtoD: @convention(c) (CUdeviceptr, CUdeviceptr, Int) -> CUresult
    let cuMemcpy2DAsync: @convention(c) (UnsafeRawPointer?, CUhandle?) -> CUresult
    let cuMemcpyHtoDAsync: @convention(c) (CUdeviceptr, UnsafeRawPointer?, Int, CUhandle?) -> CUresult
    let cuMemcpyDtoHAsync: @convention(c) (UnsafeMutableRawPointer?, CUdeviceptr, Int, CUhandle?) -> CUresult
    let cuMemcpyDtoDAsync: @convention(c) (CUdeviceptr, CUdeviceptr, Int, CUhandle?) -> CUresult
    let cuMemPoolTrimTo: @convention(c) (CUhandle?, Int) -> CUresult
    let cuMemPoolGetAttribute: @convention(c) (CUhandle?, Int32, UnsafeMutableRawPointer?) -> CUresult
    /// `cuPointerGetAttribute(void*, CUpointer_attribute, CUdeviceptr)`.
    let cuPointerGetAttribute: @convention(c) (UnsafeMutableRawPointer?, Int32, CUdeviceptr) -> CUresult
    let cuStreamCreate: @convention(c) (UnsafeMutablePointer<CUhandle?>?, UInt32) -> CUresult
    let cuStreamDestroy: @convention(c) (CUhandle?) -> CUresult
    let cuStreamSynchronize: @convention(c) (CUhandle?) -> CUresult
    let cuStreamWaitEvent: @convention(c) (CUhandle?, CUhandle?, UInt32) -> CUresult
    /// `cuStreamIsCapturing(CUstream, CUstreamCaptureStatus*)`.
    let cuStreamIsCapturing: @convention(c) (CUhandle?, UnsafeMutablePointer<Int32>?) -> CUresult
    /// Graph capture and replay (`cuStreamBeginCapture_v2`, `cuStreamEndCapture`, `cuGraphInstantiateWithFlags`
    /// (CUDA 11.4+), `cuGraphLaunch`, `cuGraphDestroy`, `cuGraphExecDestroy`); nil on older drivers.
    let cuStreamBeginCapture: (@convention(c) (CUhandle?, Int32) -> CUresult)?
    let cuStreamEndCapture: (@convention(c) (CUhandle?, UnsafeMutablePointer<CUhandle?>?) -> CUresult)?
    let cuGraphInstantiateWithFlags: (@convention(c) (UnsafeMutablePointer<CUhandle?>?, CUhandle?, UInt64) -> CUresult)?
    let cuGraphLaunch: (@convention(c) (CUhandle?, CUhandle?) -> CUresult)?
    let cuGraphDestroy: (@convention(c) (CUhandle?) -> CUresult)?
    let cuGraphExecDestroy: (@convention(c) (CUhandle?) -> CUresult)?
    let cuEventCreate: @convention(c) (UnsafeMutablePointer<CUhandle?>?, UInt32) -> CUresult
    let cuEventDestroy: @convention(c) (CUhandle?) -> CUresult
    let cuEventRecord: @convention(c) (CUhandle?, CUhandle?) -> CUresult
    let cuEventSynchronize: @convention(c) (CUhandle?) -> CUresult
    let cuEventElapsedTime: @convention(c) (UnsafeMutablePointer<Float>?, CUhandle?, CUhandle?) -> CUresult
    let cuModuleLoadData: @convention(c) (UnsafeMutablePointer<CUhandle?>?, UnsafeRawPointer?) -> CUresult
    let cuModuleUnload: @convention(c) (CUhandle?) -> CUresult
    let cuModuleGetFunction:
        @convention(c) (UnsafeMutablePointer<CUhandle?>?, CUhandle?, UnsafePointer<CChar>?) -> CUresult
    let cuFuncGetAttribute: @convention(c) (UnsafeMutablePointer<Int32>?, Int32, CUhandle?) -> CUresult
    let cuFuncSetAttribute: @convention(c) (CUhandle?, Int32, Int32) -> CUresult
    let cuLaunchKernel:
        @convention(c) (
            CUhandle?, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, CUhandle?,
            UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?
        ) -> CUresult
    /// `cuOccupancyMaxActiveClusters(int*, CUfunction, const CUlaunchConfig*)` (CUDA 11.8+); nil on older drivers.
    let cuOccupancyMaxActiveClusters:
        (@convention(c) (UnsafeMutablePointer<Int32>?, CUhandle?, UnsafeRawPointer?) -> CUresult)?

    /// The library the driver is loaded from.
    static let libraryName = "libcuda.so.1"

    /// Loads `libcuda.so.1` and resolves every function this package calls.
    /// - Returns: the table, or why it could not be made (library missing, or symbols missing from an old driver).
    static func load() -> Result<CUDADriver, LoadError> {
        switch DynamicLibrary.open(libraryName) {
        case .failure(let failure):
            return .failure(.libraryMissing(failure.reason))
        case .success(let library):
            var r = SymbolResolver(library)
            let driver = CUDADriver(
                library: library,
                cuInit: r.function("cuInit"),
                cuDriverGetVersion: r.function("cuDriverGetVersion"),
                cuGetErrorName: r.function("cuGetErrorName"),
                cuDeviceGetCount: r.function("cuDeviceGetCount"),
                cuDeviceGet: r.function("cuDeviceGet"),
                cuDeviceGetName: r.function("cuDeviceGetName"),
                cuDeviceGetAttribute: r.function("cuDeviceGetAttribute"),
                cuDeviceTotalMem: r.function("cuDeviceTotalMem_v2", "cuDeviceTotalMem"),
                cuDevicePrimaryCtxRetain: r.function("cuDevicePrimaryCtxRetain"),
                cuDevicePrimaryCtxRelease: r.function("cuDevicePrimaryCtxRelease_v2", "cuDevicePrimaryCtxRelease"),
                cuDeviceGetDefaultMemPool: r.function("cuDeviceGetDefaultMemPool"),
                cuCtxPushCurrent: r.function("cuCtxPushCurrent_v2", "cuCtxPushCurrent"),
                cuCtxPopCurrent: r.function("cuCtxPopCurrent_v2", "cuCtxPopCurrent"),
                cuCtxSynchronize: r.function("cuCtxSynchronize"),
                cuMemPoolSetAttribute: r.function("cuMemPoolSetAttribute"),
                cuMemAlloc: r.function("cuMemAlloc_v2", "cuMemAlloc"),
                cuMemFree: r.function("cuMemFree_v2", "cuMemFree"),
                cuMemAllocAsync: r.function("cuMemAllocAsync"),
                cuMemFreeAsync: r.function("cuMemFreeAsync"),
                cuMemGetInfo: r.function("cuMemGetInfo_v2", "cuMemGetInfo"),
                cuMemcpy2D: r.function("cuMemcpy2D_v2", "cuMemcpy2D"),
                cuMemcpyHtoD: r.function("cuMemcpyHtoD_v2", "cuMemcpyHtoD"),
                cuMemcpyDtoH: r.function("cuMemcpyDtoH_v2", "cuMemcpyDtoH"),
                cuMemcpyDtoD: r.function("cuMemcpyDtoD_v2", "cuMemcpyDtoD"),
                cuMemcpy2DAsync: r.function("cuMemcpy2DAsync_v2", "cuMemcpy2DAsync"),
                cuMemcpyHtoDAsync: r.function("cuMemcpyHtoDAsync_v2", "cuMemcpyHtoDAsync"),
                cuMemcpyDtoHAsync: r.function("cuMemcpyDtoHAsync_v2", "cuMemcpyDtoHAsync"),
                cuMemcpyDtoDAsync: r.function("cuMemcpyDtoDAsync_v2", "cuMemcpyDtoDAsync"),
                cuMemPoolTrimTo: r.function("cuMemPoolTrimTo"),
                cuMemPoolGetAttribute: r.function("cuMemPoolGetAttribute"),
                cuPointerGetAttribute: r.function("cuPointerGetAttribute"),
                cuStreamCreate: r.function("cuStreamCreate"),
                cuStreamDestroy: r.function("cuStreamDestroy_v2", "cuStreamDestroy"),
                cuStreamSynchronize: r.function("cuStreamSynchronize"),
                cuStreamWaitEvent: r.function("cuStreamWaitEvent"),
                cuStreamIsCapturing: r.function("cuStreamIsCapturing"),
                cuStreamBeginCapture: r.optionalFunction("cuStreamBeginCapture_v2"),
                cuStreamEndCapture: r.optionalFunction("cuStreamEndCapture"),
                cuGraphInstantiateWithFlags: r.optionalFunction("cuGraphInstantiateWithFlags"),
                cuGraphLaunch: r.optionalFunction("cuGraphLaunch"),
                cuGraphDestroy: r.optionalFunction("cuGraphDestroy"),
                cuGraphExecDestroy: r.optionalFunction("cuGraphExecDestroy"),
                cuEventCreate: r.function("cuEventCreate"),
                cuEventDestroy: r.function("cuEventDestroy_v2", "cuEventDestroy"),
                cuEventRecord: r.function("cuEventRecord"),
                cuEventSynchronize: r.function("cuEventSynchronize"),
                cuEventElapsedTime: r.function("cuEventElapsedTime_v2", "cuEventElapsedTime"),
                cuModuleLoadData: r.function("cuModuleLoadData"),
                cuModuleUnload: r.function("cuModuleUnload"),
                cuModuleGetFunction: r.function("cuModuleGetFunction"),
                cuFuncGetAttribute: r.function("cuFuncGetAttribute"),
                cuFuncSetAttribute: r.function("cuFuncSetAttribute"),
                cuLaunchKernel: r.function("cuLaunchKernel"),
                cuOccupancyMaxActiveClusters: r.optionalFunction("cuOccupancyMaxActiveClusters"))
            guard r.missing.isEmpty else {
                return .failure(.symbolsMissing(r.missing))
            }
            return .success(driver)
        }
    }

    /// Why the driver could not be loaded.
    enum LoadError: Error, Sendable, CustomStringConvertible {
        /// `dlopen` failed; the loader's reason.
        case libraryMissing(String)
        /// The driver is too old to export these functions.
        case symbolsMissing([String])

        var description: String {
            switch self {
            case .libraryMissing(let reason):
                "no CUDA driver: \(CUDADriver.libraryName) could not be loaded (\(reason))"
            case .symbolsMissing(let names):
                "the CUDA driver in \(CUDADriver.libraryName) is too old: it lacks \(names.joined(separator: ", "))"
            }
        }
    }

    /// Runs one driver call and throws a ``CUDAError`` when it does not return `CUDA_SUCCESS`.
    /// - Parameters:
    ///   - operation: what is being done, for the error message (evaluated only on failure).
    ///   - call: the call, given this table.
    @inline(__always)
    func check(_ operation: @autoclosure () -> String, _ call: (CUDADriver) -> CUresult) throws {
        let result = call(self)
        if result != 0 { throw error(result, operation()) }
    }

    /// The error for a failed call: its code, `cuGetErrorName`'s name for it, and the operation.
    func error(_ result: CUresult, _ operation: String) -> CUDAError {
        CUDAError(library: .driver, code: result, name: errorName(result), operation: operation)
    }

    /// `cuGetErrorName` of a result code, e.g. `CUDA_ERROR_INVALID_VALUE`.
    func errorName(_ result: CUresult) -> String {
        var name: UnsafePointer<CChar>?
        guard cuGetErrorName(result, &name) == 0, let name else { return "CUresult \(result)" }
        return String(cString: name)
    }

    /// Reads an integer attribute of a device (`cuDeviceGetAttribute`).
    func attribute(_ attribute: DeviceAttribute, of device: CUdevice) throws -> Int {
        var value: Int32 = 0
        try check("cuDeviceGetAttribute(\(attribute), device \(device))") {
            $0.cuDeviceGetAttribute(&value, attribute.rawValue, device)
        }
        return Int(value)
    }
}

/// The `CUdevice_attribute` values this package reads.
enum DeviceAttribute: Int32, Sendable {
    case maxThreadsPerBlock = 1
    case maxGridDimX = 5
    case maxPitch = 11
    case multiprocessorCount = 16
    case computeCapabilityMajor = 75
    case computeCapabilityMinor = 76
    case maxSharedMemoryPerMultiprocessor = 81
    case maxRegistersPerMultiprocessor = 82
    case maxSharedMemoryPerBlockOptin = 97
    case memoryPoolsSupported = 115
}

/// `CUfunction_attribute` values.
enum FunctionAttribute: Int32, Sendable {
    case sharedSizeBytes = 1
    case localSizeBytes = 3
    case numRegisters = 4
    case maxDynamicSharedSizeBytes = 8
    case nonPortableClusterSizeAllowed = 14
}

/// `CUmemPool_attribute`: the bytes a pool keeps reserved after a synchronization instead of
/// returning them to the system.
let memPoolAttributeReleaseThreshold: Int32 = 4
/// `CUmemPool_attribute`: bytes the pool has reserved now (`CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT`, a `cuuint64_t`).
let memPoolAttributeReservedMemoryCurrent: Int32 = 5
/// `CUmemPool_attribute`: bytes of the pool in use now (`CU_MEMPOOL_ATTR_USED_MEM_CURRENT`, a `cuuint64_t`).
let memPoolAttributeUsedMemoryCurrent: Int32 = 7
/// `CUpointer_attribute`: the ordinal of the device a pointer's memory is on (`CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL`, an `int`).
let pointerAttributeDeviceOrdinal: Int32 = 9
