import CFusedNormCPU

/// How the CPU kernels read and write Floats, sixteen at a time, at any alignment.
///
/// The kernels compute on Floats only: 16-bit rows are converted to Floats, and results back, a block or
/// a row at a time by ``DType/decode(_:count:into:)`` and ``DType/encode(_:count:into:)``.
enum Float32Codec {
    /// The sixteen Floats at `pointer` (no alignment needed).
    @inline(__always)
    static func load(_ pointer: UnsafeRawPointer) -> FloatVector {
        pointer.loadUnaligned(as: FloatVector.self)
    }

    /// Stores `values` at `pointer` (no alignment needed).
    @inline(__always)
    static func store(_ values: FloatVector, to pointer: UnsafeMutableRawPointer) {
        pointer.storeBytes(of: values, as: FloatVector.self)
    }

    /// Loads `lanes` (1...16) Floats starting `index` elements after `base`; missing lanes are 0.
    @inline(__always)
    static func load(_ base: UnsafeRawPointer, at index: Int, lanes: Int) -> FloatVector {
        let pointer = base + index &* 4
        return lanes == FloatVector.scalarCount ? load(pointer) : loadPartial(pointer, lanes: lanes)
    }

    /// Stores the first `lanes` (1...16) of `values` starting `index` elements after `base`.
    @inline(__always)
    static func store(_ values: FloatVector, to base: UnsafeMutableRawPointer, at index: Int, lanes: Int) {
        let pointer = base + index &* 4
        if lanes == FloatVector.scalarCount { return store(values, to: pointer) }
        storePartial(values, to: pointer, lanes: lanes)
    }

    /// The tail of a row, through a zeroed 16-lane buffer; kept out of line so that vector loops stay small.
    @inline(never)
    private static func loadPartial(_ pointer: UnsafeRawPointer, lanes: Int) -> FloatVector {
        var padded = FloatVector()
        withUnsafeMutableBytes(of: &padded) { $0.baseAddress!.copyMemory(from: pointer, byteCount: lanes &* 4) }
        return padded
    }

    /// The tail of a row; kept out of line so that vector loops stay small.
    @inline(never)
    private static func storePartial(_ values: FloatVector, to pointer: UnsafeMutableRawPointer, lanes: Int) {
        withUnsafeBytes(of: values) { pointer.copyMemory(from: $0.baseAddress!, byteCount: lanes &* 4) }
    }
}

/// Calls `body(index, lanes)` for each vector of a row of `count` elements: full vectors of 16 lanes,
/// then one vector of the `count % 16` leftover lanes if any.
///
/// The main loop sees a constant lane count, so its loads and stores are plain vector moves. `body` is
/// called at two sites: callers make it an `@inline(__always)` local function (or are themselves
/// `@inline(__always)`), so that it is inlined at both instead of staying a call per vector.
@inline(__always)
func forEachVector(_ count: Int, _ body: (_ index: Int, _ lanes: Int) -> Void) {
    let lanes = FloatVector.scalarCount
    var index = 0
    while index &+ lanes <= count {
        body(index, lanes)
        index &+= lanes
    }
    if index < count { body(index, count &- index) }
}

extension DType {
    /// Converts `count` elements of this dtype at `source` to Floats at `destination`.
    ///
    /// The one place where the CPU kernels convert 16-bit rows: the C converters of `CFusedNormCPU`,
    /// AVX2/F16C where the CPU has them (Swift itself compiles for baseline x86_64).
    func decode(_ source: UnsafeRawPointer, count: Int, into destination: UnsafeMutablePointer<Float>) {
        switch self {
        case .float32: destination.update(from: source.assumingMemoryBound(to: Float.self), count: count)
        case .float16: cfn_f16_to_f32(source.assumingMemoryBound(to: UInt16.self), destination, count)
        case .bfloat16: cfn_bf16_to_f32(source.assumingMemoryBound(to: UInt16.self), destination, count)
        }
    }

    /// Rounds `count` Floats at `source` to this dtype (nearest, ties to even; NaN stays NaN) and stores
    /// them at `destination`.
    /// - Parameter streaming: the destination is not read again soon (a kernel's y or dx), which lets
    ///   16-bit stores bypass the cache; the thread must then call ``DType/fenceStreamingStores()``
    ///   before other threads may read the destination.
    func encode(
        _ source: UnsafePointer<Float>, count: Int, into destination: UnsafeMutableRawPointer, streaming: Bool = false
    ) {
        let halves = destination.assumingMemoryBound(to: UInt16.self)
        switch self {
        case .float32: destination.assumingMemoryBound(to: Float.self).update(from: source, count: count)
        case .float16:
            streaming ? cfn_f32_to_f16_streaming(source, halves, count) : cfn_f32_to_f16(source, halves, count)
        case .bfloat16:
            streaming ? cfn_f32_to_bf16_streaming(source, halves, count) : cfn_f32_to_bf16(source, halves, count)
        }
    }

    /// Orders this thread's streaming stores (``encode(_:count:into:streaming:)``) before its later
    /// stores, so that threads that synchronize with it afterwards see them.
    static func fenceStreamingStores() { cfn_store_fence() }

    /// Stores `count` Floats at `source` in this dtype at `destination`, and writes the stored values back
    /// to `source` as Floats (what a later load would give).
    func store(_ source: UnsafeMutablePointer<Float>, count: Int, into destination: UnsafeMutableRawPointer) {
        encode(source, count: count, into: destination)
        if self != .float32 { decode(destination, count: count, into: source) }
    }

    /// Rounds `count` Floats in place to values of this dtype (nothing to do for float32).
    func round(_ values: UnsafeMutablePointer<Float>, count: Int) {
        guard self != .float32 else { return }
        withUnsafeTemporaryAllocation(of: UInt16.self, capacity: blockLength) { buffer in
            forEachBlock(count) { start, blockCount in
                store(values + start, count: blockCount, into: UnsafeMutableRawPointer(buffer.baseAddress!))
            }
        }
    }
}

extension RowView {
    /// Host pointer to element (`row`, `column`).
    @inline(__always)
    func pointer(row: Int, column: Int = 0) -> UnsafeMutableRawPointer {
        UnsafeMutableRawPointer(bitPattern: address(row: row, column: column))!
    }

    /// The Float values of `count` elements from (`row`, `column`): the memory itself when the dtype is
    /// float32, else the elements converted into `staging`.
    @inline(__always)
    func floats(row: Int, column: Int, count: Int, staging: UnsafeMutablePointer<Float>) -> UnsafePointer<Float> {
        let source = pointer(row: row, column: column)
        if dtype == .float32 { return UnsafePointer(source.assumingMemoryBound(to: Float.self)) }
        dtype.decode(source, count: count, into: staging)
        return UnsafePointer(staging)
    }
}
