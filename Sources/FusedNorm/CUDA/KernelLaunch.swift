/// The argument block of a kernel: the fields of its `…Params` struct, packed in order as 8-byte words
/// (pointers and `long long`s one word each, two `float`s sharing one), passed as the kernel's only
/// parameter. Fixed storage: building one allocates nothing.
struct KernelArguments {
    static let capacity = 24
    private var storage: (
        UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
        UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64
    ) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    private(set) var count = 0

    init() {}

    /// The words appended so far.
    var words: [UInt64] {
        var copy = storage
        return withUnsafeBytes(of: &copy) { Array($0.bindMemory(to: UInt64.self).prefix(count)) }
    }

    private mutating func append(word: UInt64) {
        precondition(count < Self.capacity, "kernel argument block overflow")
        withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: word, toByteOffset: count * 8, as: UInt64.self) }
        count += 1
    }

    /// A pointer field (`const void*`, `float*`); 0 for null.
    mutating func append(address: UInt?) { append(word: UInt64(address ?? 0)) }

    /// A `long long` field.
    mutating func append(_ value: Int) { append(word: UInt64(bitPattern: Int64(value))) }

    /// Two consecutive `float` fields.
    mutating func append(_ first: Float, _ second: Float) {
        append(word: UInt64(first.bitPattern) | UInt64(second.bitPattern) << 32)
    }

    /// Calls `body` with the block's address (valid only during the call).
    mutating func withPointer<R>(_ body: (UnsafeMutableRawPointer) throws -> R) rethrows -> R {
        try withUnsafeMutableBytes(of: &storage) { try body($0.baseAddress!) }
    }
}

/// What a launch needs besides its arguments: the kernel specialization, the layout, and the dynamic
/// shared memory; made by ``CUDABackend/forwardPlan(for:gpu:)`` and ``CUDABackend/backwardPlan(for:gpu:)``
/// without a GPU.
struct KernelPlan: Sendable {
    var request: KernelRequest
    var configuration: LaunchConfiguration
    /// Dynamic shared memory per block, in bytes.
    var sharedBytes: Int
    /// Backward: fp32 partial sums per column and team (dweight, dbias): 0, 1 or 2.
    var accumulators = 0
}

/// A plan made ready on one device: kernels looked up, grid fixed (clusters checked against the driver's
/// occupancy). Cached per problem signature (``PlanKey``), so that a repeated call does no string work,
/// no compile-cache lookup and no occupancy query.
struct PreparedLaunch: @unchecked Sendable {
    // @unchecked: CUfunction handles, immutable, used through the thread-safe driver API.
    var function: CUhandle
    /// Backward: `reduce_partials` of the same module.
    var reduce: CUhandle?
    var blocks: Int
    var threads: Int
    var sharedBytes: Int
    /// Forward, streaming: the kernel's `segments` argument. Backward: parts (teams per weight row).
    var segments: Int
    var parts: Int
    /// Backward: fp32 partial sums per column and team.
    var accumulators: Int
    var configuration: LaunchConfiguration
}

/// Everything a plan depends on, without addresses: dtypes, variant, shape, and the vector width the
/// addresses allow. Hashing it is cheap (integers only).
struct PlanKey: Hashable, Sendable {
    var device: Int
    var backward: Bool
    /// Each tensor's dtype as 2 bits (0 absent, 1 fp32, 2 fp16, 3 bf16), 4 bits apart.
    var dtypes: UInt32
    /// Variant bits (kind, casting, residual, offset, statistics, ...).
    var flags: UInt32
    var columns: Int
    var rows: Int
    var weightRows: Int
    var vectorWidth: Int

    /// The dtype code of an optional tensor.
    static func code(_ dtype: DType?) -> UInt32 {
        switch dtype {
        case nil: 0
        case .float32?: 1
        case .float16?: 2
        case .bfloat16?: 3
        }
    }
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

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `FUSEDNORM_CUDA_LOG=1`: each launch prepared is described on standard error (layout, registers, local
/// memory, resident clusters), for tuning.
enum CUDALaunchLog {
    static let enabled: Bool = getenv("FUSEDNORM_CUDA_LOG").map { String(cString: $0) == "1" } ?? false

    static func record(_ name: String, _ launch: PreparedLaunch, gpu: CUDADevice, activeClusters: Int?, problem: String) {
        guard enabled else { return }
        var registers: Int32 = 0, local: Int32 = 0
        _ = try? gpu.withContext {
            _ = gpu.driver.cuFuncGetAttribute(&registers, FunctionAttribute.numRegisters.rawValue, launch.function)
            _ = gpu.driver.cuFuncGetAttribute(&local, FunctionAttribute.localSizeBytes.rawValue, launch.function)
        }
        let line = "fusednorm plan \(name) \(problem): \(launch.configuration); \(launch.blocks) blocks of \(launch.threads), "
            + "\(launch.sharedBytes) B shared, \(registers) registers, \(local) B local"
            + (activeClusters.map { ", \($0) clusters resident" } ?? "") + "\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
    }
}

extension LaunchConfiguration.Tuning {
    /// The tuning switches this process was started with.
    static let environment: Self = {
        func integer(_ name: String) -> Int? { getenv(name).flatMap { Int(String(cString: $0)) } }
        var tuning = Self()
        if let staging = integer("FUSEDNORM_CUDA_STAGE"), (0...2).contains(staging) { tuning.staging = staging }
        if let waves = integer("FUSEDNORM_CUDA_WAVES"), waves >= 0 { tuning.forwardWaves = waves }
        tuning.decodeThreads = integer("FUSEDNORM_CUDA_DECODE_THREADS")
        if let vectors = integer("FUSEDNORM_CUDA_BACKWARD_VECTORS"), (1...8).contains(vectors) { tuning.backwardVectors = vectors }
        if let waves = integer("FUSEDNORM_CUDA_BACKWARD_WAVES"), (1...16).contains(waves) { tuning.backwardWaves = waves }
        if let registers = integer("FUSEDNORM_CUDA_BACKWARD_REGISTERS"), (32...255).contains(registers) { tuning.backwardRegisters = registers }
        if let parameters = integer("FUSEDNORM_CUDA_PARAMETERS") { tuning.parameters = parameters != 0 }
        if let vectors = integer("FUSEDNORM_CUDA_FORWARD_VECTORS"), (1...16).contains(vectors) { tuning.forwardVectors = vectors }
        return tuning
    }()
}

extension CUDADevice {
    /// The heuristic's view of this GPU.
    var launchShape: LaunchConfiguration.GPU {
        LaunchConfiguration.GPU(
            multiprocessors: multiprocessorCount, sharedMemoryPerBlock: sharedMemoryPerBlock,
            sharedMemoryPerMultiprocessor: sharedMemoryPerMultiprocessor, registersPerMultiprocessor: registersPerMultiprocessor,
            maxClusterSize: architecture >= 90 ? 16 : 1, asyncCopies: architecture >= 80, tuning: .environment)
    }

    /// Queues a kernel on `stream`; the context must be current (``withContext(_:)``).
    /// - Parameters:
    ///   - function: from a ``LoadedModule``.
    ///   - blocks: one-dimensional grid (kernels loop over their work, so any size of work fits); a multiple
    ///     of the kernel's compile-time cluster size.
    ///   - threads: threads per block.
    ///   - sharedBytes: dynamic shared memory per block.
    ///   - arguments: the kernel's parameter struct.
    ///   - name: for error messages.
    func launchInContext(
        _ function: CUhandle, blocks: Int, threads: Int, sharedBytes: Int, stream: CUhandle,
        arguments: inout KernelArguments, name: @autoclosure () -> String
    ) throws {
        guard blocks >= 1, blocks <= Int(Int32.max), sharedBytes <= sharedMemoryPerBlock else {
            throw CUDAError(
                library: .driver, code: 1, name: "CUDA_ERROR_INVALID_VALUE",
                operation: "launch of \(name()) with \(blocks) blocks and \(sharedBytes) bytes of shared memory (limit \(sharedMemoryPerBlock))")
        }
        try arguments.withPointer { block in
            var parameter: UnsafeMutableRawPointer? = block
            try driver.check("cuLaunchKernel(\(name()), \(blocks) blocks of \(threads) threads, \(sharedBytes) bytes shared, device \(index))") {
                $0.cuLaunchKernel(
                    function, UInt32(blocks), 1, 1, UInt32(threads), 1, 1, UInt32(sharedBytes), stream, &parameter, nil)
            }
        }
    }

    /// ``launchInContext(_:blocks:threads:sharedBytes:stream:arguments:name:)`` with the context pushed.
    func launch(
        _ function: CUhandle, blocks: Int, threads: Int, sharedBytes: Int, stream: CUhandle,
        arguments: KernelArguments, name: String
    ) throws {
        var arguments = arguments
        try withContext {
            try launchInContext(function, blocks: blocks, threads: threads, sharedBytes: sharedBytes, stream: stream, arguments: &arguments, name: name)
        }
    }

    /// Clusters of a kernel with a compile-time cluster size that can be resident at once with `threads`
    /// threads and `sharedBytes` of dynamic shared memory per CTA (`cuOccupancyMaxActiveClusters`); nil when
    /// the driver cannot tell. The context must be current.
    func activeClusters(_ function: CUhandle, clusterSize: Int, threads: Int, sharedBytes: Int) -> Int? {
        guard let query = driver.cuOccupancyMaxActiveClusters else { return nil }
        // CUlaunchConfig: grid x, y, z, block x, y, z, shared bytes (7 × UInt32), the stream at offset 32,
        // attrs at 40, numAttrs at 48: 56 bytes. No attributes: the cluster size is the kernel's own.
        var config = [UInt64](repeating: 0, count: 7)
        config.withUnsafeMutableBytes { bytes in
            let words = bytes.bindMemory(to: UInt32.self)
            words[0] = UInt32(clusterSize * multiprocessorCount)
            words[1] = 1
            words[2] = 1
            words[3] = UInt32(threads)
            words[4] = 1
            words[5] = 1
            words[6] = UInt32(sharedBytes)
        }
        var clusters: Int32 = 0
        let result = config.withUnsafeBytes { query(&clusters, function, $0.baseAddress) }
        return result == 0 ? Int(clusters) : nil
    }
}
