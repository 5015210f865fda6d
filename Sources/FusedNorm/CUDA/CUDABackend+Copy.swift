extension KernelSource {
    /// The bench yardstick's copy of 16-byte vectors (Kernels/CopyVectors.cu, embedded by Package.swift).
    static let copyVectors = KernelSource(
        name: "copy_vectors", program: KernelFiles.program("CopyVectors.cu", PackageResources.CopyVectors_cu),
        entryPoints: ["copy_vectors"])
}

/// `copy_vectors`'s parameters (`CopyVectorsParams`, declared in Parameters.cuh from this struct).
struct CopyParameters: KernelParameters {
    static let cudaName = "CopyVectorsParams"
    var destination = OutputPointer()
    var source = InputPointer()
    var bytes = 0

    init() {}
}

extension CUDABackend {
    /// Threads per block of `copy_vectors` (its `__launch_bounds__`).
    static let copyThreads = 256
    /// 16-byte vectors each thread loads before storing them (the kernel's `UNROLL`).
    static let copyUnroll = 4

    /// The specialization of the copy kernel (one for every copy).
    static var copyRequest: KernelRequest {
        KernelRequest(source: .copyVectors, definitions: ["UNROLL=\(copyUnroll)"])
    }

    /// Blocks for a copy of `bytes` bytes on a GPU with `multiprocessors` SMs: 8 blocks of 256 threads per SM
    /// (2048 threads, an H100's or H200's most), fewer when the copy has less work than one step of every thread.
    static func copyBlocks(bytes: Int, multiprocessors: Int) -> Int {
        let perBlock = copyThreads * copyUnroll * 16
        return max(1, min(8 * multiprocessors, (bytes + perBlock - 1) / perBlock))
    }

    /// Queues a copy of `bytes` bytes from `source` to `destination` (device addresses, not overlapping)
    /// with `copy_vectors` on the current stream.
    func copyWithKernel(bytes: Int, from source: UInt, to destination: UInt) throws {
        guard bytes > 0 else { return }
        let function = try module(for: Self.copyRequest).function("copy_vectors")
        var parameters = CopyParameters()
        parameters.destination = OutputPointer(destination)
        parameters.source = InputPointer(source)
        parameters.bytes = bytes
        var arguments = KernelArguments(parameters)
        let blocks = Self.copyBlocks(bytes: bytes, multiprocessors: gpu.multiprocessorCount)
        let stream = gpu.currentStream
        try gpu.withContext {
            try gpu.launchInContext(
                function, blocks: blocks, threads: Self.copyThreads, sharedBytes: 0, stream: stream,
                arguments: &arguments,
                name: "copy_vectors")
        }
    }
}
