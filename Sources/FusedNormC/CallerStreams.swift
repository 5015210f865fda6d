import CFusedNormABI
import FusedNorm

/// Runs operations on a stream the caller owns (a `CUstream` from PyTorch, JAX, the CUDA runtime).
enum CallerStreams {
    /// Runs `body` with the caller's `stream` current on `device`: kernels, allocations, frees and copies of
    /// the call are queued on it, nothing waits for the GPU, and FusedNorm never destroys the stream.
    static func run(on stream: UnsafeMutableRawPointer, device: Device, _ body: () throws -> Void) throws {
        let wrapped = try CUDAStream(unsafeWrapping: UInt(bitPattern: stream), device: device)
        try CUDAStream.withCurrent(wrapped, body)
    }
}
