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
    /// Forward, streaming: the kernel's `segments` argument (0 backward).
    var segments: Int
    /// Backward: parts, the teams per weight row (0 forward).
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
