import CFusedNormABI
import FusedNorm

/// Copies `text` into a fixed-size C char array (a tuple), truncated to fit, always NUL-terminated.
func copy<Storage>(_ text: String, into storage: inout Storage) {
    withUnsafeMutableBytes(of: &storage) { bytes in
        let utf8 = Array(text.utf8.prefix(bytes.count - 1))
        bytes.copyBytes(from: utf8)
        bytes[utf8.count] = 0
    }
}

@_cdecl("fusednorm_cuda_query")
public func fusednorm_cuda_query(_ info: UnsafeMutablePointer<fusednorm_cuda_info>?) -> fusednorm_status {
    callBoundary("fusednorm_cuda_query") {
        let info = try required(info, "info")
        let status = CUDA.status
        var result = fusednorm_cuda_info()
        result.usable = status.problem == nil && !status.devices.isEmpty ? 1 : 0
        result.device_count = Int32(status.devices.count)
        copy(status.driverVersion ?? "", into: &result.driver_version)
        copy(status.nvrtcVersion ?? "", into: &result.nvrtc_version)
        copy(status.nvrtcPath ?? "", into: &result.nvrtc_path)
        copy(status.kernelCacheDirectory ?? "", into: &result.kernel_cache_directory)
        copy(status.problem ?? (status.devices.isEmpty ? "no CUDA device" : ""), into: &result.problem)
        info.pointee = result
    }
}

@_cdecl("fusednorm_cuda_device_query")
public func fusednorm_cuda_device_query(_ index: Int32, _ device: UnsafeMutablePointer<fusednorm_cuda_device>?)
    -> fusednorm_status
{
    callBoundary("fusednorm_cuda_device_query") {
        let device = try required(device, "device")
        let devices = CUDA.status.devices
        guard index >= 0, Int(index) < devices.count else {
            throw InterfaceError.invalid("index \(index) is outside 0 ..< \(devices.count) (the CUDA devices present)")
        }
        let found = devices[Int(index)]
        var result = fusednorm_cuda_device()
        result.index = Int32(found.index)
        let capability = found.computeCapability.split(separator: ".").compactMap { Int32($0) }
        result.compute_capability_major = capability.first ?? 0
        result.compute_capability_minor = capability.count > 1 ? capability[1] : 0
        result.multiprocessor_count = Int32(found.multiprocessorCount)
        result.memory_bytes = Int64(found.memoryBytes)
        copy(found.name, into: &result.name)
        device.pointee = result
    }
}
