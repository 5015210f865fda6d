// TEMPORARY: replaced by the CUDA backend.
enum CUDABackend {
    static var isUsable: Bool { false }
    static func backend(forDevice index: Int) throws -> any Backend {
        throw FusedNormError.deviceUnavailable(.cuda(index), reason: CUDA.status.problem ?? "unknown")
    }
}
