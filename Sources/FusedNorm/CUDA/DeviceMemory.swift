/// Device memory owned by a tensor's buffer, released in `deinit`.
///
/// Allocation and release are stream-ordered (`cuMemAllocAsync`/`cuMemFreeAsync` from the device's
/// default pool) on the legacy stream, which every stream of this package waits for and is waited
/// for by (they are all blocking streams): memory is ready before any later operation on any stream,
/// and is freed only after every operation queued before the release, on any stream. Devices without
/// memory pools use `cuMemAlloc`/`cuMemFree`.
final class DeviceBuffer: Buffer, @unchecked Sendable {
    // @unchecked: immutable after init; the driver API is thread-safe.
    let gpu: CUDADevice
    let address: UInt
    let byteCount: Int
    var device: Device { .cuda(gpu.index) }

    /// Allocates `byteCount` bytes (at least 1) on `gpu`.
    init(gpu: CUDADevice, byteCount: Int) throws {
        self.gpu = gpu
        self.byteCount = byteCount
        var pointer: CUdeviceptr = 0
        let size = max(byteCount, 1)
        try gpu.withContext {
            if gpu.usesMemoryPool {
                try gpu.driver.check("cuMemAllocAsync(\(size) bytes, device \(gpu.index))") {
                    $0.cuMemAllocAsync(&pointer, size, nil)
                }
            } else {
                try gpu.driver.check("cuMemAlloc(\(size) bytes, device \(gpu.index))") { $0.cuMemAlloc(&pointer, size) }
            }
        }
        address = UInt(pointer)
    }

    deinit {
        let gpu = self.gpu, pointer = CUdeviceptr(address)
        _ = try? gpu.withContext {
            _ = gpu.usesMemoryPool ? gpu.driver.cuMemFreeAsync(pointer, nil) : gpu.driver.cuMemFree(pointer)
        }
    }
}

extension CUDADevice {
    /// Scratch memory ordered on `stream`: allocated from the pool when the stream reaches this point (or
    /// at once without pools), for work queued on `stream` until ``freeScratch(_:stream:)``. The context
    /// must be current.
    func allocateScratch(byteCount: Int, stream: CUhandle) throws -> UInt {
        var pointer: CUdeviceptr = 0
        let size = max(byteCount, 1)
        if usesMemoryPool {
            try driver.check("cuMemAllocAsync(\(size) bytes, device \(index))") { $0.cuMemAllocAsync(&pointer, size, stream) }
        } else {
            try driver.check("cuMemAlloc(\(size) bytes, device \(index))") { $0.cuMemAlloc(&pointer, size) }
        }
        return UInt(pointer)
    }

    /// Releases scratch memory after the work queued on `stream` so far. Without pools, `cuMemFree`
    /// waits for the device first.
    func freeScratch(_ address: UInt, stream: CUhandle) {
        _ = usesMemoryPool ? driver.cuMemFreeAsync(CUdeviceptr(address), stream) : driver.cuMemFree(CUdeviceptr(address))
    }
}

/// `CUmemorytype` values for `CUDA_MEMCPY2D`.
enum MemoryType: UInt64 {
    case host = 1
    case device = 2
}

extension CUDADevice {
    /// Copies `rows` rows of `rowBytes` bytes with pitches, on the legacy stream (so ordered after all
    /// work queued before on this device's streams, and before all work queued after).
    ///
    /// Contiguous copies go through the 1-D calls (no size limit); pitched ones through `cuMemcpy2D`
    /// when the pitches fit its limit, else row by row. A copy to host memory has finished on return.
    /// - Parameters:
    ///   - source, destination: host pointer bits or device addresses, per `sourceType`/`destinationType`.
    func copyRows(
        _ rows: Int, rowBytes: Int,
        from source: UInt, _ sourceType: MemoryType, sourcePitch: Int,
        to destination: UInt, _ destinationType: MemoryType, destinationPitch: Int
    ) throws {
        guard rows > 0, rowBytes > 0 else { return }
        try withContext {
            if rows == 1 || (sourcePitch == rowBytes && destinationPitch == rowBytes) {
                try copy1D(rows * rowBytes, from: source, sourceType, to: destination, destinationType)
            } else if sourcePitch <= maxPitch, destinationPitch <= maxPitch {
                // CUDA_MEMCPY2D: 16 eight-byte slots (each CUmemorytype enum padded to 8 bytes).
                var parameters = [UInt64](repeating: 0, count: 16)
                parameters[2] = sourceType.rawValue
                parameters[sourceType == .host ? 3 : 4] = UInt64(source)
                parameters[6] = UInt64(sourcePitch)
                parameters[9] = destinationType.rawValue
                parameters[destinationType == .host ? 10 : 11] = UInt64(destination)
                parameters[13] = UInt64(destinationPitch)
                parameters[14] = UInt64(rowBytes)
                parameters[15] = UInt64(rows)
                try driver.check("cuMemcpy2D(\(rows) rows of \(rowBytes) bytes, device \(index))") { driver in
                    parameters.withUnsafeBytes { driver.cuMemcpy2D($0.baseAddress) }
                }
            } else {
                for row in 0..<rows {
                    try copy1D(
                        rowBytes, from: source + UInt(row * sourcePitch), sourceType,
                        to: destination + UInt(row * destinationPitch), destinationType)
                }
            }
        }
    }

    /// One contiguous copy; the context must be current.
    private func copy1D(_ bytes: Int, from source: UInt, _ sourceType: MemoryType, to destination: UInt, _ destinationType: MemoryType) throws {
        switch (sourceType, destinationType) {
        case (.host, .device):
            try driver.check("cuMemcpyHtoD(\(bytes) bytes, device \(index))") {
                $0.cuMemcpyHtoD(CUdeviceptr(destination), UnsafeRawPointer(bitPattern: source), bytes)
            }
        case (.device, .host):
            try driver.check("cuMemcpyDtoH(\(bytes) bytes, device \(index))") {
                $0.cuMemcpyDtoH(UnsafeMutableRawPointer(bitPattern: destination), CUdeviceptr(source), bytes)
            }
        case (.device, .device):
            try driver.check("cuMemcpyDtoD(\(bytes) bytes, device \(index))") {
                $0.cuMemcpyDtoD(CUdeviceptr(destination), CUdeviceptr(source), bytes)
            }
        case (.host, .host):
            preconditionFailure("host-to-host copies do not go through the GPU")
        }
    }
}
