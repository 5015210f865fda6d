import CFusedNormABI
import FusedNorm

/// Runs operations on a stream the caller owns (a `CUstream` from PyTorch, JAX, the CUDA runtime).
enum CallerStreams {
    /// Runs `body` with the caller's `stream` current on `device`.
    ///
    /// FusedNorm's `CUDAStream` cannot yet wrap a stream it did not create (issue 15 item 3, in progress on
    /// another branch); until it can, a non-NULL stream is refused rather than silently ignored, since
    /// running on another stream would race with the caller's work.
    static func run(on stream: UnsafeMutableRawPointer, device: Device, _ body: () throws -> Void) throws {
        throw InterfaceError.unsupported(
            "stream 0x\(String(UInt(bitPattern: stream), radix: 16)) on \(device): caller streams are not supported by this build "
                + "(CUDAStream cannot wrap a caller's CUstream yet); pass NULL to use FusedNorm's stream for the device")
    }
}
