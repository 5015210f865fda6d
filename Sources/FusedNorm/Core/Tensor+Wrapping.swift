/// Tensors over memory the caller already has: host buffers and CUDA device pointers, without a copy.
///
/// The tensor reads and writes the caller's memory in place: an operation's result written into a wrapped
/// output is there, through the caller's pointer, when the call returns (on the CPU; on a GPU when the
/// stream the call ran on reaches it).
extension Tensor {
    /// Runs `body` with a tensor over the caller's host memory, without a copy (the recommended form).
    ///
    /// The memory is lent for the duration of `body` only. A tensor over it (or a view of it) kept past
    /// `body` cannot touch the memory any more: every later use throws ``FusedNormError/invalidArgument(name:reason:)``.
    /// Results the operations allocate (outputs not given) are FusedNorm's own and may be kept.
    ///
    ///     var activations = [BFloat16](repeating: BFloat16(0), count: tokens * hidden)
    ///     try activations.withUnsafeMutableBytes { memory in
    ///         try Tensor.withWrapping(memory, shape: [tokens, hidden], dtype: .bfloat16) { x in
    ///             _ = try rmsNorm(x, weight: w, output: x)   // in place, in the array's storage
    ///         }
    ///     }
    /// - Parameters:
    ///   - memory: the bytes; row 0, element 0 is at `memory.baseAddress`, which must be aligned to the dtype's size.
    ///   - shape: the dimensions, rank >= 1, last dimension >= 1.
    ///   - dtype: the elements' storage type.
    ///   - rowStride: elements between consecutive rows (of a group); default the last dimension.
    ///   - groupStride: elements between groups of `shape[rank - 2]` rows (rank >= 3); default
    ///     `shape[rank - 2] * rowStride` (rows uniformly `rowStride` apart).
    ///   - body: the work on the tensor.
    /// - Throws: ``FusedNormError`` when the memory is too small for the shape and strides, the strides make rows
    ///   overlap, or the address is misaligned; whatever `body` throws.
    public static func withWrapping<Result>(
        _ memory: UnsafeMutableRawBufferPointer, shape: [Int], dtype: DType, rowStride: Int? = nil,
        groupStride: Int? = nil,
        _ body: (Tensor) throws -> Result
    ) throws -> Result {
        try withLent(
            address: UInt(bitPattern: memory.baseAddress), byteCount: memory.count, isReadOnly: false,
            shape: shape, dtype: dtype, rowStride: rowStride, groupStride: groupStride, body)
    }

    /// Runs `body` with a read-only tensor over the caller's host memory, without a copy: it can be an
    /// input of any operation, and passing it as an output throws ``FusedNormError/readOnly(argument:)``.
    /// - Parameters:
    ///   - memory: the bytes; row 0, element 0 is at `memory.baseAddress`, which must be aligned to the dtype's size.
    ///   - shape: the dimensions, rank >= 1, last dimension >= 1.
    ///   - dtype: the elements' storage type.
    ///   - rowStride: elements between consecutive rows (of a group); default the last dimension.
    ///   - groupStride: elements between groups of `shape[rank - 2]` rows (rank >= 3); default rows uniformly
    ///     `rowStride` apart.
    ///   - body: the work on the tensor.
    public static func withWrapping<Result>(
        _ memory: UnsafeRawBufferPointer, shape: [Int], dtype: DType, rowStride: Int? = nil, groupStride: Int? = nil,
        _ body: (Tensor) throws -> Result
    ) throws -> Result {
        try withLent(
            address: UInt(bitPattern: memory.baseAddress), byteCount: memory.count, isReadOnly: true,
            shape: shape, dtype: dtype, rowStride: rowStride, groupStride: groupStride, body)
    }

    private static func withLent<Result>(
        address: UInt, byteCount: Int, isReadOnly: Bool, shape: [Int], dtype: DType, rowStride: Int?, groupStride: Int?,
        _ body: (Tensor) throws -> Result
    ) throws -> Result {
        let buffer = ExternalBuffer(address: address, byteCount: byteCount, device: .cpu, isReadOnly: isReadOnly)
        defer { buffer.revoke() }
        let tensor = try Tensor(
            over: buffer, shape: shape, dtype: dtype, rowStride: rowStride, groupStride: groupStride, argument: "memory"
        )
        return try body(tensor)
    }

    /// A tensor over the caller's host memory, without a copy, that lives as long as the caller keeps it.
    ///
    /// Prefer ``withWrapping(_:shape:dtype:rowStride:groupStride:_:)-(UnsafeMutableRawBufferPointer,_,_,_,_,_)``:
    /// here the caller promises that the memory stays valid while the tensor or any view of it exists.
    /// `owner` (for example the object that owns the memory) is kept alive until then and released
    /// exactly once after the last view is gone.
    /// - Parameters:
    ///   - memory: the bytes, as in `withWrapping`.
    ///   - isReadOnly: true when FusedNorm must never write the memory (passing the tensor as an output throws).
    ///   - owner: an object kept alive while the tensor or a view of it exists; default none.
    ///   - shape: the dimensions, rank >= 1, last dimension >= 1.
    ///   - dtype: the elements' storage type.
    ///   - rowStride: elements between consecutive rows (of a group); default the last dimension.
    ///   - groupStride: elements between groups of `shape[rank - 2]` rows (rank >= 3); default rows uniformly
    ///     `rowStride` apart.
    /// - Throws: ``FusedNormError`` as in `withWrapping`.
    public init(
        unsafeWrapping memory: UnsafeMutableRawBufferPointer, shape: [Int], dtype: DType, rowStride: Int? = nil,
        groupStride: Int? = nil, isReadOnly: Bool = false, owner: AnyObject? = nil
    ) throws {
        try self.init(
            wrappingAddress: UInt(bitPattern: memory.baseAddress), byteCount: memory.count, device: .cpu,
            shape: shape, dtype: dtype, rowStride: rowStride, groupStride: groupStride, isReadOnly: isReadOnly,
            owner: owner)
    }

    /// A tensor over CUDA device memory the caller owns (a `CUdeviceptr`, for example from PyTorch, CuPy or
    /// `cudaMalloc`), without a copy.
    ///
    /// The address must be valid in the device's primary context (the one the CUDA runtime, PyTorch and JAX
    /// use) while the tensor or a view of it exists; `owner` is kept alive until then and released exactly once.
    /// Work on the memory is ordered on the stream each call runs on (``CUDAStream``): run it on the stream the
    /// caller's producer and consumer use.
    /// - Parameters:
    ///   - address: the `CUdeviceptr` of row 0, element 0, aligned to the dtype's size.
    ///   - byteCount: bytes available from `address`.
    ///   - device: `.cuda(i)`, the device the memory is on.
    ///   - shape: the dimensions, rank >= 1, last dimension >= 1.
    ///   - dtype: the elements' storage type.
    ///   - rowStride: elements between consecutive rows (of a group); default the last dimension.
    ///   - groupStride: elements between groups of `shape[rank - 2]` rows (rank >= 3); default rows uniformly
    ///     `rowStride` apart.
    ///   - isReadOnly: true when FusedNorm must never write the memory (passing the tensor as an output throws).
    ///   - owner: an object kept alive while the tensor or a view of it exists; default none.
    /// - Throws: ``FusedNormError/deviceUnavailable(_:reason:)`` when `device` is not a usable GPU,
    ///   ``FusedNormError/deviceMismatch(argument:expected:actual:)`` when the memory is on another GPU,
    ///   ``FusedNormError/invalidArgument(name:reason:)`` when the address is not device memory the driver knows;
    ///   the layout errors of `withWrapping`.
    public init(
        unsafeWrappingDeviceAddress address: UInt, byteCount: Int, device: Device, shape: [Int], dtype: DType,
        rowStride: Int? = nil, groupStride: Int? = nil, isReadOnly: Bool = false, owner: AnyObject? = nil
    ) throws {
        guard case .cuda = device else {
            throw FusedNormError.invalidArgument(
                name: "device",
                reason: "device memory needs a .cuda device, got \(device); wrap host memory with unsafeWrapping:")
        }
        try CUDABackend.checkDeviceMemory(address, byteCount: byteCount, on: device)
        try self.init(
            wrappingAddress: address, byteCount: byteCount, device: device, shape: shape, dtype: dtype,
            rowStride: rowStride, groupStride: groupStride, isReadOnly: isReadOnly, owner: owner)
    }

    private init(
        wrappingAddress address: UInt, byteCount: Int, device: Device, shape: [Int], dtype: DType,
        rowStride: Int?, groupStride: Int?, isReadOnly: Bool, owner: AnyObject?
    ) throws {
        var release: (@Sendable () -> Void)?
        if let owner {
            let kept = UncheckedOwner(object: owner)
            release = { withExtendedLifetime(kept) {} }
        }
        let buffer = ExternalBuffer(
            address: address, byteCount: byteCount, device: device, isReadOnly: isReadOnly, release: release)
        try self.init(
            over: buffer, shape: shape, dtype: dtype, rowStride: rowStride, groupStride: groupStride, argument: "memory"
        )
    }

    /// A tensor over `buffer` after ``validateLayout`` (the entry for wrapped memory and DLPack).
    /// - Parameters:
    ///   - rowStride, groupStride: nil for the defaults (packed rows, uniform groups).
    ///   - byteOffset: bytes from the buffer's address to row 0, element 0.
    init(
        over buffer: any Buffer, shape: [Int], dtype: DType, rowStride: Int?, groupStride: Int?, byteOffset: Int = 0,
        argument: String
    ) throws {
        try Tensor.validate(shape: shape, argument: argument)
        guard buffer.address != 0 || buffer.byteCount == 0 else {
            throw FusedNormError.invalidArgument(name: argument, reason: "null address")
        }
        let rowStride = rowStride ?? shape[shape.count - 1]
        let rowsPerGroup = shape.count >= 3 ? shape[shape.count - 2] : shape.dropLast().reduce(1, *)
        let (uniform, overflow) = rowsPerGroup.multipliedReportingOverflow(by: rowStride)
        guard !overflow || groupStride != nil else {
            throw FusedNormError.invalidShape(
                argument: argument, shape: shape, reason: "rowStride \(rowStride) is too large")
        }
        let groupStride = groupStride ?? uniform
        try Tensor.validateLayout(
            shape: shape, dtype: dtype, rowStride: rowStride, groupStride: groupStride, address: buffer.address,
            byteOffset: byteOffset, byteCount: buffer.byteCount, argument: argument)
        self.init(
            shape: shape, dtype: dtype, rowStride: rowStride, groupStride: groupStride, buffer: buffer,
            byteOffset: byteOffset)
    }

    /// The address of row 0, element 0: host pointer bits on the CPU, a `CUdeviceptr` on a GPU. For wrapped
    /// memory it is the caller's address (plus the offset of a view).
    public var dataAddress: UInt { buffer.address &+ UInt(byteOffset) }

    /// Throws unless the tensor's memory may still be touched (see `withWrapping`).
    func requireAccessible(_ argument: String) throws {
        guard buffer.isAccessible else {
            throw FusedNormError.invalidArgument(
                name: argument, reason: "its memory was lent by Tensor.withWrapping only until the closure returned")
        }
    }
}

/// Keeps a caller's owner object alive inside a `@Sendable` release closure; the object is never used,
/// only released (once, when the closure is destroyed with its buffer).
private struct UncheckedOwner: @unchecked Sendable {
    let object: AnyObject
}
