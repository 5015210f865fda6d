import Testing

@testable import FusedNorm

/// A non-blocking stream made through the driver, as a caller's library would make it (not by FusedNorm).
final class CallerStream {
    let gpu: CUDADevice
    let handle: CUhandle
    init() throws {
        let gpu = try CUDABackend.gpu(for: .cuda(0))
        self.gpu = gpu
        var stream: CUhandle?
        try gpu.withContext {
            // 1: CU_STREAM_NON_BLOCKING
            try gpu.driver.check("cuStreamCreate(non-blocking)") { $0.cuStreamCreate(&stream, 1) }
        }
        handle = stream!
    }
    var bits: UInt { UInt(bitPattern: UnsafeRawPointer(handle)) }
    deinit {
        let gpu = self.gpu, handle = self.handle
        _ = try? gpu.withContext { _ = gpu.driver.cuStreamDestroy(handle) }
    }
}

/// Wrapped device memory, caller-owned streams and CUDA graph capture (issue 15). These need a GPU; on a
/// machine without one the suite shows as skipped.
@Suite("CUDA interop: wrapped device memory, caller streams, graph capture", .needsCUDAGPU)
struct CUDAInteropTests {
    static let device = Device.cuda(0)

    /// Device memory "owned by the caller": a FusedNorm device tensor's buffer, wrapped by address only.
    static func wrapped(_ values: [Float], shape: [Int], dtype: DType, rowStride: Int? = nil) throws -> (
        Tensor, owner: Tensor
    ) {
        let columns = shape[shape.count - 1], rows = shape.dropLast().reduce(1, *)
        let stride = rowStride ?? columns
        let owner = try Tensor.zeros([max(rows, 1) * stride], dtype: dtype, device: device)
        let tensor = try Tensor(
            unsafeWrappingDeviceAddress: owner.dataAddress, byteCount: owner.count * dtype.byteCount, device: device,
            shape: shape, dtype: dtype, rowStride: rowStride, owner: owner.buffer)
        try tensor.write(values)
        return (tensor, owner)
    }

    @Test(
        "every operation on wrapped device memory (strided, as outputs) equals the allocated call bit for bit",
        arguments: DType.allCases)
    func wrappedDeviceMemory(dtype: DType) throws {
        var random = SplitMix64(label: "wrapped device \(dtype)")
        let (rows, columns) = (37, 1000)
        let x = random.values(rows * columns), r = random.values(rows * columns)
        let weight = try Tensor(random.values(columns, 0.5, 1.5), dtype: dtype, device: Self.device)
        let bias = try Tensor(random.values(columns), dtype: .float32, device: Self.device)
        let (wx, xOwner) = try Self.wrapped(x, shape: [rows, columns], dtype: dtype, rowStride: columns + 24)
        #expect(wx.dataAddress == xOwner.dataAddress)
        let (wr, _) = try Self.wrapped(r, shape: [rows, columns], dtype: dtype)
        let (wy, _) = try Self.wrapped(x, shape: [rows, columns], dtype: dtype, rowStride: columns + 8)
        let (ws, _) = try Self.wrapped(x, shape: [rows, columns], dtype: dtype)
        let (wdx, _) = try Self.wrapped(x, shape: [rows, columns], dtype: dtype)
        let fx = try Tensor(x, shape: [rows, columns], dtype: dtype, device: Self.device)
        let fr = try Tensor(r, shape: [rows, columns], dtype: dtype, device: Self.device)

        let (_, counters) = try MemoryCounters.counting {
            _ = try rmsNorm(wx, residual: wr, weight: weight, output: wy, residualOutput: ws)
        }
        #expect(counters.allocations == 0 && counters.copies == 0)
        let expected = try rmsNorm(fx, residual: fr, weight: weight)
        #expect(try elementBits(wy) == (try elementBits(expected.output)))
        #expect(try elementBits(ws) == (try elementBits(expected.residual)))

        _ = try layerNorm(wx, weight: weight, bias: bias, output: wy)
        #expect(try elementBits(wy) == (try elementBits(layerNorm(fx, weight: weight, bias: bias))))

        let dweight = try Tensor.zeros([columns], device: Self.device)
        _ = try rmsNormBackward(wr, input: wx, weight: weight, inputGradient: wdx, weightGradient: dweight)
        let gradients = try rmsNormBackward(
            fr, input: fx, weight: weight, weightGradient: Tensor.zeros([columns], device: Self.device))
        #expect(try elementBits(wdx) == (try elementBits(gradients.input)))
        #expect(try elementBits(dweight) == (try elementBits(gradients.weight!)))
    }

    @Test("wrapping checks the device memory: a host pointer and a too-small byte count are refused")
    func badDeviceMemory() throws {
        let host = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 64)
        defer { host.deallocate() }
        expectError(.invalidArgument, argument: "address", "host memory as device memory") {
            try Tensor(
                unsafeWrappingDeviceAddress: UInt(bitPattern: host.baseAddress), byteCount: 64, device: Self.device,
                shape: [16], dtype: .float32)
        }
        let owner = try Tensor.zeros([16], device: Self.device)
        expectError(.bufferTooSmall, argument: "memory", "shape larger than the memory") {
            try Tensor(
                unsafeWrappingDeviceAddress: owner.dataAddress, byteCount: 64, device: Self.device, shape: [17],
                dtype: .float32)
        }
        expectError(.misalignedAddress, argument: "memory", "misaligned device address") {
            try Tensor(
                unsafeWrappingDeviceAddress: owner.dataAddress + 2, byteCount: 60, device: Self.device, shape: [4],
                dtype: .float32)
        }
    }

    @Test(
        "a caller's non-blocking stream: allocations, copies and kernels are ordered on it; it is never destroyed by FusedNorm"
    )
    func callerStream() throws {
        let caller = try CallerStream()
        var random = SplitMix64(label: "caller stream")
        let (rows, columns) = (300, 4096)
        let xValues = random.values(rows * columns)
        let weight = try Tensor(random.values(columns, 0.5, 1.5), dtype: .bfloat16, device: Self.device)
        let expected = try elementBits(
            rmsNorm(Tensor(xValues, shape: [rows, columns], dtype: .bfloat16, device: Self.device), weight: weight))
        do {
            let stream = try CUDAStream(unsafeWrapping: caller.bits, device: Self.device)
            #expect(!stream.isOwned && stream.rawHandle == caller.bits)
            let bits = try CUDAStream.withCurrent(stream) { () throws -> [UInt32] in
                let x = try Tensor(xValues, shape: [rows, columns], dtype: .bfloat16, device: Self.device)
                #expect((x.buffer as? DeviceBuffer)?.stream === stream, "allocated in the caller stream's order")
                let y = try rmsNorm(x, weight: weight)
                let dy = try Tensor(
                    random.values(rows * columns), shape: [rows, columns], dtype: .bfloat16, device: Self.device)
                _ = try rmsNormBackward(dy, input: x, weight: weight)  // scratch from the stream-ordered pool
                return try elementBits(y)
            }
            #expect(bits == expected)
            try stream.synchronize()
        }
        // The caller's stream still works after FusedNorm's wrapper is gone.
        try caller.gpu.withContext {
            try caller.gpu.driver.check("cuStreamSynchronize(caller stream)") { $0.cuStreamSynchronize(caller.handle) }
        }
    }

    @Test(
        "a CUDA graph captured around forward and backward calls on a caller stream replays with new data, bit-equal to uncaptured calls",
        arguments: [DType.bfloat16, .float32])
    func graphCapture(dtype: DType) throws {
        let caller = try CallerStream()
        let stream = try CUDAStream(unsafeWrapping: caller.bits, device: Self.device)
        var random = SplitMix64(label: "graph \(dtype)")
        let (rows, columns) = (128, 2048)
        let shape = [rows, columns]
        let weight = try Tensor(random.values(columns, 0.5, 1.5), dtype: dtype, device: Self.device)
        let bias = try Tensor(random.values(columns), dtype: dtype, device: Self.device)
        // Every tensor preallocated: inputs the caller refills before each replay, outputs the graph writes.
        let x = try Tensor.zeros(shape, dtype: dtype, device: Self.device)
        let residual = try Tensor.zeros(shape, dtype: dtype, device: Self.device)
        let dy = try Tensor.zeros(shape, dtype: dtype, device: Self.device)
        let y = try Tensor.zeros(shape, dtype: dtype, device: Self.device)
        let s = try Tensor.zeros(shape, dtype: dtype, device: Self.device)
        let rstd = try Tensor.zeros([rows], device: Self.device)
        let mean = try Tensor.zeros([rows], device: Self.device)
        let layerOutput = try Tensor.zeros(shape, dtype: dtype, device: Self.device)
        let dx = try Tensor.zeros(shape, dtype: dtype, device: Self.device)
        let dweight = try Tensor.zeros([columns], device: Self.device)
        let dbias = try Tensor.zeros([columns], device: Self.device)
        let layerDx = try Tensor.zeros(shape, dtype: dtype, device: Self.device)

        func calls() throws {
            _ = try rmsNormForward(
                x, residual: residual, weight: weight, output: y, residualOutput: s, rstdOutput: rstd)
            _ = try rmsNormBackward(
                dy, input: s, weight: weight, rstd: rstd, inputGradient: dx, weightGradient: dweight)
            _ = try layerNormForward(
                x, weight: weight, bias: bias, output: layerOutput, meanOutput: mean, rstdOutput: rstd)
            _ = try layerNormBackward(
                dy, input: x, weight: weight, bias: bias, mean: mean, rstd: rstd, inputGradient: layerDx,
                weightGradient: dweight, biasGradient: dbias)
        }
        func refill(_ label: String) throws {
            var values = SplitMix64(label: label)
            try CUDAStream.withCurrent(stream) {
                try x.write(values.values(rows * columns))
                try residual.write(values.values(rows * columns))
                try dy.write(values.values(rows * columns))
            }
        }
        func results() throws -> [[UInt32]] {
            try CUDAStream.withCurrent(stream) {
                try [y, s, dx, layerOutput, layerDx, dweight, dbias, rstd].map(elementBits)
            }
        }

        // Uncaptured calls on the stream (this also compiles every kernel before capture).
        try refill("data 1")
        try CUDAStream.withCurrent(stream, calls)
        let uncaptured1 = try results()
        try refill("data 2")
        try CUDAStream.withCurrent(stream, calls)
        let uncaptured2 = try results()

        let graph = try CUDAGraph.capture(on: stream) {
            #expect(try stream.isCapturing)
            try calls()
        }
        #expect(try !stream.isCapturing)
        try refill("data 1")
        try graph.launch(on: stream)
        #expect(try results() == uncaptured1, "replay with the first data")
        try refill("data 2")
        try graph.launch(on: stream)
        #expect(try results() == uncaptured2, "replay with new data")
        #expect(uncaptured1 != uncaptured2)
    }

    @Test("the GPU pool's cached memory can be released")
    func releaseCachedMemory() throws {
        do { _ = try Tensor.zeros([64 << 20], device: Self.device) }
        try Self.device.synchronize()
        let before = try Self.device.cachedMemoryByteCount()
        try Self.device.releaseCachedMemory()
        let after = try Self.device.cachedMemoryByteCount()
        #expect(after <= before)
        #expect(after < 64 << 20, "the freed 256 MiB went back to the system")
    }
}
