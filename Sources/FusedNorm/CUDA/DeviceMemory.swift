/// Device memory owned by a tensor's buffer, released in `deinit`.
///
/// Allocation and release are stream-ordered (`cuMemAllocAsync`/`cuMemFreeAsync` from the device's
/// default pool, which keeps freed memory for reuse) on the stream of the call that allocates
/// (``CUDADevice/orderingStream``): the current ``CUDAStream`` (FusedNorm's or a caller's), else the legacy
/// stream, which every FusedNorm-created stream is ordered with. The memory is freed on that same stream,
/// after the work queued on it before the release: a tensor also used on another stream must be kept
/// alive until that stream's work is done (or that work made to precede the release with an event),
/// as with `cudaFreeAsync`. On a caller's stream this is legal during CUDA graph capture (the allocation
/// becomes a graph memory node). Devices without memory pools use `cuMemAlloc`/`cuMemFree`.
final class DeviceBuffer: Buffer, @unchecked Sendable {
    // @unchecked: immutable after init; the driver API is thread-safe.
    let gpu: CUDADevice
    let address: UInt
    let byteCount: Int
    /// The stream the memory was allocated on and is freed on (kept alive until then); nil: the legacy stream.
    let stream: CUDAStream?
    var device: Device { .cuda(gpu.index) }

    /// Allocates `byteCount` bytes (at least 1) on `gpu`, ordered on the calling task's stream.
    init(gpu: CUDADevice, byteCount: Int) throws {
        self.gpu = gpu
        self.byteCount = byteCount
        let stream = gpu.currentCUDAStream
        self.stream = stream
        var pointer: CUdeviceptr = 0
        let size = max(byteCount, 1)
        try gpu.withContext {
            if gpu.usesMemoryPool {
                try gpu.driver.check("cuMemAllocAsync(\(size) bytes, device \(gpu.index))") {
                    $0.cuMemAllocAsync(&pointer, size, stream?.handle)
                }
            } else {
                try gpu.driver.check("cuMemAlloc(\(size) bytes, device \(gpu.index))") { $0.cuMemAlloc(&pointer, size) }
            }
        }
        address = UInt(pointer)
    }

    deinit {
        let gpu = self.gpu, pointer = CUdeviceptr(address), stream = self.stream?.handle
        _ = try? gpu.withContext {
            _ = gpu.usesMemoryPool ? gpu.driver.cuMemFreeAsync(pointer, stream) : gpu.driver.cuMemFree(pointer)
        }
    }
}

extension CUDADevice {
    /// The current ``CUDAStream`` when it belongs to this device, else nil.
    var currentCUDAStream: CUDAStream? {
        guard let stream = CUDAStream.current, stream.deviceIndex == index else { return nil }
        return stream
    }

    /// The stream a call orders its allocations, releases and copies on: the current ``CUDAStream`` of this
    /// device, else nil, the legacy stream (ordered with the default stream and every FusedNorm-created
    /// stream, which are blocking). Kernels run on ``currentStream``.
    var orderingStream: CUhandle? { currentCUDAStream?.handle }

    /// Returns the pool's unused memory to the system (`cuMemPoolTrimTo(pool, 0)`). No-op without pools.
    func trimMemoryPool() throws {
        guard usesMemoryPool else { return }
        try withContext {
            let pool = try defaultMemoryPool()
            try driver.check("cuMemPoolTrimTo(device \(index))") { $0.cuMemPoolTrimTo(pool, 0) }
        }
    }

    /// Bytes the pool holds reserved but not in use (0 without pools).
    func memoryPoolUnusedBytes() throws -> Int {
        guard usesMemoryPool else { return 0 }
        return try withContext {
            let pool = try defaultMemoryPool()
            var reserved: UInt64 = 0, used: UInt64 = 0
            try driver.check("cuMemPoolGetAttribute(reserved, device \(index))") {
                $0.cuMemPoolGetAttribute(pool, memPoolAttributeReservedMemoryCurrent, &reserved)
            }
            try driver.check("cuMemPoolGetAttribute(used, device \(index))") {
                $0.cuMemPoolGetAttribute(pool, memPoolAttributeUsedMemoryCurrent, &used)
            }
            return Int(reserved > used ? reserved - used : 0)
        }
    }

    private func defaultMemoryPool() throws -> CUhandle? {
        var pool: CUhandle?
        try driver.check("cuDeviceGetDefaultMemPool(device \(index))") { $0.cuDeviceGetDefaultMemPool(&pool, handle) }
        return pool
    }

    /// The device ordinal of the memory at `address` (`cuPointerGetAttribute`), to check wrapped device memory.
    func deviceOrdinal(of address: UInt) throws -> Int {
        var ordinal: Int32 = -1
        try withContext {
            try driver.check("cuPointerGetAttribute(device ordinal of 0x\(String(address, radix: 16)))") {
                $0.cuPointerGetAttribute(&ordinal, pointerAttributeDeviceOrdinal, CUdeviceptr(address))
            }
        }
        return Int(ordinal)
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
            try driver.check("cuMemAllocAsync(\(size) bytes, device \(index))") {
                $0.cuMemAllocAsync(&pointer, size, stream)
            }
        } else {
            try driver.check("cuMemAlloc(\(size) bytes, device \(index))") { $0.cuMemAlloc(&pointer, size) }
        }
        return UInt(pointer)
    }

    /// Releases scratch memory after the work queued on `stream` so far. Without pools, `cuMemFree`
    /// waits for the device first.
    func freeScratch(_ address: UInt, stream: CUhandle) {
        _ =
            usesMemoryPool
            ? driver.cuMemFreeAsync(CUdeviceptr(address), stream) : driver.cuMemFree(CUdeviceptr(address))
    }
}

/// `CUmemorytype` values for `CUDA_MEMCPY2D`.
enum MemoryType: UInt64 {
    case host = 1
    case device = 2
}

extension CUDADevice {
    /// Copies `rows` rows of `rowBytes` bytes with pitches, queued on ``orderingStream`` (the call's stream,
    /// or the legacy stream, ordered after all work queued before on this device's FusedNorm streams).
    ///
    /// Contiguous copies go through the 1-D calls (no size limit); pitched ones through `cuMemcpy2DAsync`
    /// when the pitches fit its limit, else row by row. A copy to host memory has finished on return (the
    /// stream is synchronized); other copies are only queued.
    /// - Parameters:
    ///   - source, destination: host pointer bits or device addresses, per `sourceType`/`destinationType`.
    func copyRows(
        _ rows: Int, rowBytes: Int,
        from source: UInt, _ sourceType: MemoryType, sourcePitch: Int,
        to destination: UInt, _ destinationType: MemoryType, destinationPitch: Int
    ) throws {
        guard rows > 0, rowBytes > 0 else { return }
        let stream = orderingStream
        try withContext {
            if rows == 1 || (sourcePitch == rowBytes && destinationPitch == rowBytes) {
                try copy1D(rows * rowBytes, from: source, sourceType, to: destination, destinationType, stream: stream)
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
                try driver.check("cuMemcpy2DAsync(\(rows) rows of \(rowBytes) bytes, device \(index))") { driver in
                    parameters.withUnsafeBytes { driver.cuMemcpy2DAsync($0.baseAddress, stream) }
                }
            } else {
                for row in 0..<rows {
                    try copy1D(
                        rowBytes, from: source + UInt(row * sourcePitch), sourceType,
                        to: destination + UInt(row * destinationPitch), destinationType, stream: stream)
                }
            }
            if destinationType == .host {
                try driver.check("cuStreamSynchronize(copy to the host, device \(index))") {
                    $0.cuStreamSynchronize(stream)
                }
            }
        }
    }

    /// One contiguous copy queued on `stream`; the context must be current.
    private func copy1D(
        _ bytes: Int, from source: UInt, _ sourceType: MemoryType, to destination: UInt, _ destinationType: MemoryType,
        stream: CUhandle?
    ) throws {
        switch (sourceType, destinationType) {
        case (.host, .device):
            try driver.check("cuMemcpyHtoDAsync(\(bytes) bytes, device \(index))") {
                $0.cuMemcpyHtoDAsync(CUdeviceptr(destination), UnsafeRawPointer(bitPattern: source), bytes, stream)
            }
        case (.device, .host):
            try driver.check("cuMemcpyDtoHAsync(\(bytes) bytes, device \(index))") {
                $0.cuMemcpyDtoHAsync(
                    UnsafeMutableRawPointer(bitPattern: destination), CUdeviceptr(source), bytes, stream)
            }
        case (.device, .device):
            try driver.check("cuMemcpyDtoDAsync(\(bytes) bytes, device \(index))") {
                $0.cuMemcpyDtoDAsync(CUdeviceptr(destination), CUdeviceptr(source), bytes, stream)
            }
        case (.host, .host):
            preconditionFailure("host-to-host copies do not go through the GPU")
        }
    }
}
