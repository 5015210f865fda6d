/// The argument block of a kernel: the fields of its `…Params` struct, packed in order as 8-byte words
/// (pointers and `long long`s one word each, two `float`s sharing one), passed as the kernel's only parameter.
struct KernelArguments {
    private(set) var words: [UInt64] = []

    init() { words.reserveCapacity(20) }

    /// A pointer field (`const void*`, `float*`); 0 for null.
    mutating func append(address: UInt?) { words.append(UInt64(address ?? 0)) }

    /// A `long long` field.
    mutating func append(_ value: Int) { words.append(UInt64(bitPattern: Int64(value))) }

    /// Two consecutive `float` fields.
    mutating func append(_ first: Float, _ second: Float) {
        words.append(UInt64(first.bitPattern) | UInt64(second.bitPattern) << 32)
    }
}

/// What a launch needs besides its arguments: the kernel specialization, the layout, and the dynamic
/// shared memory; made by ``CUDABackend/forwardPlan(for:multiprocessors:sharedMemoryPerBlock:)`` and
/// ``CUDABackend/backwardPlan(for:multiprocessors:sharedMemoryPerBlock:)`` without a GPU.
struct KernelPlan: Sendable {
    var request: KernelRequest
    var configuration: LaunchConfiguration
    /// Dynamic shared memory per block, in bytes.
    var sharedBytes: Int
    /// Backward: fp32 partial sums per column and block (dweight, dbias): 0, 1 or 2.
    var accumulators = 0
}

extension DType {
    /// The storage type's name in the kernel sources.
    var kernelTypeName: String {
        switch self {
        case .float32: "float"
        case .float16: "half_t"
        case .bfloat16: "bf16_t"
        }
    }
}

extension LaunchConfiguration.Access {
    /// The accesses to the rows of a tensor view.
    init(_ view: RowView, rows: Int) {
        self.init(address: view.address, rowStride: view.rowStride, elementBytes: view.dtype.byteCount, rows: rows)
    }
}

extension CUDADevice {
    /// Queues a kernel on `stream`.
    /// - Parameters:
    ///   - function: from a ``LoadedModule``.
    ///   - blocks: one-dimensional grid (kernels loop over their work, so any size of work fits).
    ///   - threads: threads per block.
    ///   - sharedBytes: dynamic shared memory per block.
    ///   - arguments: the kernel's parameter struct.
    ///   - name: for error messages.
    func launch(
        _ function: CUhandle, blocks: Int, threads: Int, sharedBytes: Int, stream: CUhandle,
        arguments: KernelArguments, name: String
    ) throws {
        guard blocks >= 1, blocks <= Int(Int32.max), sharedBytes <= sharedMemoryPerBlock else {
            throw CUDAError(
                library: .driver, code: 1, name: "CUDA_ERROR_INVALID_VALUE",
                operation: "launch of \(name) with \(blocks) blocks and \(sharedBytes) bytes of shared memory (limit \(sharedMemoryPerBlock))")
        }
        var words = arguments.words
        try withContext {
            try words.withUnsafeMutableBytes { bytes in
                var parameter: UnsafeMutableRawPointer? = bytes.baseAddress
                try driver.check("cuLaunchKernel(\(name), \(blocks) blocks of \(threads) threads, \(sharedBytes) bytes shared, device \(index))") {
                    $0.cuLaunchKernel(
                        function, UInt32(blocks), 1, 1, UInt32(threads), 1, 1, UInt32(sharedBytes), stream, &parameter, nil)
                }
            }
        }
    }
}
