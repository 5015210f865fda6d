/// A CUDA graph captured from the work queued on a stream, instantiated for replay.
///
/// Capture records FusedNorm calls (and any other work queued on the stream) without running them;
/// ``launch(on:)`` replays the recorded kernels on the same device memory, so new data written into the
/// captured tensors' memory before a launch is processed by it:
///
///     _ = try CUDAStream.withCurrent(stream) { try rmsNorm(x, weight: w, output: y) }   // warm-up: compiles
///     let graph = try CUDAGraph.capture(on: stream) { _ = try rmsNorm(x, weight: w, output: y) }
///     try graph.launch(on: stream)
///
/// Give every output (`output:`, `inputGradient:` ...) preallocated: a tensor allocated during capture is
/// graph memory, valid only within a replay. Kernels are compiled on a call's first use, which is not
/// allowed during capture: run each call once first.
public final class CUDAGraph: @unchecked Sendable {
    // @unchecked: immutable after init; the driver API is thread-safe.
    let gpu: CUDADevice
    private let graph: CUhandle
    private let executable: CUhandle

    /// Captures the work `body` queues on `stream` (made current inside `body`) into a graph, in
    /// thread-local capture mode (other threads' CUDA calls do not disturb it).
    /// - Throws: ``FusedNormError/deviceUnavailable(_:reason:)`` when the driver has no graph API; a
    ///   ``CUDAError`` when capture fails (for example a call that is illegal during capture); what `body` throws.
    public static func capture(on stream: CUDAStream, _ body: () throws -> Void) throws -> CUDAGraph {
        let gpu = stream.gpu, driver = gpu.driver
        guard let begin = driver.cuStreamBeginCapture, let end = driver.cuStreamEndCapture,
            let instantiate = driver.cuGraphInstantiateWithFlags, driver.cuGraphLaunch != nil,
            let destroy = driver.cuGraphDestroy, driver.cuGraphExecDestroy != nil
        else {
            throw FusedNormError.deviceUnavailable(
                stream.device, reason: "the CUDA driver has no graph capture API (CUDA 11.4 or later needed)")
        }
        let threadLocalMode: Int32 = 1  // CU_STREAM_CAPTURE_MODE_THREAD_LOCAL
        try gpu.withContext {
            try driver.check("cuStreamBeginCapture(device \(gpu.index))") { _ in begin(stream.handle, threadLocalMode) }
        }
        var captured: CUhandle?
        do {
            try CUDAStream.withCurrent(stream, body)
        } catch {
            _ = try? gpu.withContext {
                _ = end(stream.handle, &captured)
                if let captured { _ = destroy(captured) }
            }
            throw error
        }
        try gpu.withContext {
            try driver.check("cuStreamEndCapture(device \(gpu.index))") { _ in end(stream.handle, &captured) }
        }
        guard let graph = captured else {
            throw CUDAError(
                library: .driver, code: 0, name: "no graph", operation: "cuStreamEndCapture(device \(gpu.index))")
        }
        var executable: CUhandle?
        do {
            try gpu.withContext {
                try driver.check("cuGraphInstantiateWithFlags(device \(gpu.index))") { _ in
                    instantiate(&executable, graph, 0)
                }
            }
        } catch {
            _ = try? gpu.withContext { _ = destroy(graph) }
            throw error
        }
        return CUDAGraph(gpu: gpu, graph: graph, executable: executable!)
    }

    private init(gpu: CUDADevice, graph: CUhandle, executable: CUhandle) {
        self.gpu = gpu
        self.graph = graph
        self.executable = executable
    }

    deinit {
        let gpu = self.gpu, graph = self.graph, executable = self.executable
        _ = try? gpu.withContext {
            _ = gpu.driver.cuGraphExecDestroy?(executable)
            _ = gpu.driver.cuGraphDestroy?(graph)
        }
    }

    /// Queues one replay of the captured work on `stream` (of the graph's device); returns without waiting.
    public func launch(on stream: CUDAStream) throws {
        guard stream.deviceIndex == gpu.index else {
            throw FusedNormError.deviceMismatch(argument: "stream", expected: .cuda(gpu.index), actual: stream.device)
        }
        try gpu.withContext {
            try gpu.driver.check("cuGraphLaunch(device \(gpu.index))") { $0.cuGraphLaunch!(executable, stream.handle) }
        }
    }
}
