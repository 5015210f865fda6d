/// A failed call into the CUDA driver or NVRTC: which library, its result code and name, and what
/// was being done. An NVRTC compile failure also carries the whole compile log.
public struct CUDAError: Error, Sendable, CustomStringConvertible {
    /// The library whose call failed.
    public enum Library: String, Sendable {
        case driver
        case nvrtc
    }

    public var library: Library
    /// The `CUresult` or `nvrtcResult` code.
    public var code: Int32
    /// The code's name, e.g. `CUDA_ERROR_OUT_OF_MEMORY` (`cuGetErrorName`) or `NVRTC_ERROR_COMPILATION`.
    public var name: String
    /// What was being done, e.g. `cuMemAllocAsync(4096 bytes)`.
    public var operation: String
    /// NVRTC's compile log, for compile failures.
    public var log: String?

    public init(library: Library, code: Int32, name: String, operation: String, log: String? = nil) {
        self.library = library
        self.code = code
        self.name = name
        self.operation = operation
        self.log = log
    }

    public var description: String {
        var text = "\(operation) failed: \(name) (\(library == .driver ? "CUresult" : "nvrtcResult") \(code))"
        if let log, !log.isEmpty { text += "\ncompile log:\n\(log)" }
        return text
    }
}
