/// What a device must provide: memory, copies to and from the host, and the two normalization passes.
///
/// The public API validates every argument and resolves tensors into ``RowView``s before it calls a
/// backend, so a backend sees only well-formed problems.
protocol Backend: Sendable {
    var device: Device { get }

    /// Allocates uninitialized memory on the device.
    func allocate(byteCount: Int) throws -> any Buffer

    /// Copies `rows` rows of `rowBytes` bytes from host memory to device memory.
    func upload(rows: Int, rowBytes: Int, from source: UnsafeRawPointer, sourcePitch: Int, to address: UInt, pitch: Int)
        throws

    /// Copies `rows` rows of `rowBytes` bytes from device memory to host memory; returns when the data is there.
    func download(
        rows: Int, rowBytes: Int, from address: UInt, pitch: Int, to destination: UnsafeMutableRawPointer,
        destinationPitch: Int) throws

    /// Copies `rows` rows of `rowBytes` bytes between two places in this device's memory.
    func copy(rows: Int, rowBytes: Int, from source: UInt, sourcePitch: Int, to destination: UInt, pitch: Int) throws

    /// Waits until all work queued on this device has finished.
    func synchronize() throws

    /// Runs a forward pass (RMSNorm or LayerNorm, residual optional).
    func run(_ problem: NormForwardProblem) throws

    /// Runs a backward pass.
    func run(_ problem: NormBackwardProblem) throws
}

extension Device {
    /// Waits until all work queued on this device has finished (a no-op on the CPU, whose calls return when done).
    public func synchronize() throws {
        try backend().synchronize()
    }

    /// The backend that runs operations on this device.
    func backend() throws -> any Backend {
        switch self {
        case .cpu: return CPUBackend.shared
        case .cuda(let index): return try CUDABackend.backend(forDevice: index)
        }
    }
}
