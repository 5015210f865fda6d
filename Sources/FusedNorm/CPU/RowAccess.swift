/// How the CPU kernels read and write one storage format, sixteen elements at a time, at any alignment.
///
/// Kernels are generic over a codec so that the conversion is inlined into their vector loops; a
/// ``DType`` picks the codec once per call through ``DType/withCodec(_:)``.
protocol ElementCodec {
    /// Bytes per element.
    static var byteCount: Int { get }

    /// The sixteen elements at `pointer` (no alignment needed), converted exactly to Float.
    static func load(_ pointer: UnsafeRawPointer) -> FloatVector

    /// Rounds `values` to this format (nearest, ties to even), stores them at `pointer` and returns
    /// the stored values as Floats (what a later load would give).
    /// - Parameter nanFree: the caller guarantees that no lane is NaN, which lets the 16-bit formats skip
    ///   their NaN handling.
    @discardableResult
    static func store(_ values: FloatVector, to pointer: UnsafeMutableRawPointer, nanFree: Bool) -> FloatVector
}

/// float32: loads and stores are plain moves.
enum Float32Codec: ElementCodec {
    static var byteCount: Int { 4 }

    @inline(__always)
    static func load(_ pointer: UnsafeRawPointer) -> FloatVector {
        pointer.loadUnaligned(as: FloatVector.self)
    }

    @inline(__always) @discardableResult
    static func store(_ values: FloatVector, to pointer: UnsafeMutableRawPointer, nanFree: Bool) -> FloatVector {
        pointer.storeBytes(of: values, as: FloatVector.self)
        return values
    }
}

/// bfloat16: the upper halves of Floats.
enum BFloat16Codec: ElementCodec {
    static var byteCount: Int { 2 }

    @inline(__always)
    static func load(_ pointer: UnsafeRawPointer) -> FloatVector {
        FloatVector(bfloat16Bits: pointer.loadUnaligned(as: HalfBitsVector.self))
    }

    @inline(__always) @discardableResult
    static func store(_ values: FloatVector, to pointer: UnsafeMutableRawPointer, nanFree: Bool) -> FloatVector {
        let bits = values.bfloat16Bits(nanFree: nanFree)
        pointer.storeBytes(of: bits, as: HalfBitsVector.self)
        return FloatVector(bfloat16Bits: bits)
    }
}

/// IEEE float16.
enum Float16Codec: ElementCodec {
    static var byteCount: Int { 2 }

    @inline(__always)
    static func load(_ pointer: UnsafeRawPointer) -> FloatVector {
        FloatVector(float16Bits: pointer.loadUnaligned(as: HalfBitsVector.self))
    }

    @inline(__always) @discardableResult
    static func store(_ values: FloatVector, to pointer: UnsafeMutableRawPointer, nanFree: Bool) -> FloatVector {
        let bits = values.float16Bits(nanFree: nanFree)
        pointer.storeBytes(of: bits, as: HalfBitsVector.self)
        return FloatVector(float16Bits: bits)
    }
}

extension ElementCodec {
    /// Loads `lanes` (1...16) elements starting `index` elements after `base`; missing lanes are 0.
    @inline(__always)
    static func load(_ base: UnsafeRawPointer, at index: Int, lanes: Int) -> FloatVector {
        let pointer = base + index &* byteCount
        return lanes == FloatVector.scalarCount ? load(pointer) : loadPartial(pointer, lanes: lanes)
    }

    /// Stores the first `lanes` (1...16) of `values` starting `index` elements after `base`, rounded to
    /// this format; returns the stored values as Floats.
    /// - Parameter nanFree: the caller guarantees that no lane is NaN (see ``store(_:to:nanFree:)``).
    @inline(__always) @discardableResult
    static func store(
        _ values: FloatVector, to base: UnsafeMutableRawPointer, at index: Int, lanes: Int, nanFree: Bool = false
    ) -> FloatVector {
        let pointer = base + index &* byteCount
        if lanes == FloatVector.scalarCount { return store(values, to: pointer, nanFree: nanFree) }
        return storePartial(values, to: pointer, lanes: lanes)
    }

    /// The tail of a row, through a zeroed 16-lane buffer; kept out of line so that vector loops stay small.
    @inline(never)
    private static func loadPartial(_ pointer: UnsafeRawPointer, lanes: Int) -> FloatVector {
        var padded = FloatVector()
        return withUnsafeMutableBytes(of: &padded) { buffer in
            buffer.baseAddress!.copyMemory(from: pointer, byteCount: lanes &* byteCount)
            return load(buffer.baseAddress!)
        }
    }

    /// The tail of a row, through a 16-lane buffer; kept out of line so that vector loops stay small.
    @inline(never)
    private static func storePartial(_ values: FloatVector, to pointer: UnsafeMutableRawPointer, lanes: Int) -> FloatVector {
        var padded = FloatVector()
        return withUnsafeMutableBytes(of: &padded) { buffer in
            let stored = store(values, to: buffer.baseAddress!, nanFree: false)
            pointer.copyMemory(from: buffer.baseAddress!, byteCount: lanes &* byteCount)
            return stored
        }
    }

    /// Converts `count` elements at `source` to Floats at `destination`.
    @inline(__always)
    static func decode(_ source: UnsafeRawPointer, count: Int, into destination: UnsafeMutablePointer<Float>) {
        forEachVector(count) { index, lanes in
            Float32Codec.store(load(source, at: index, lanes: lanes), to: destination, at: index, lanes: lanes)
        }
    }

    /// Rounds `count` Floats at `source` to this format and stores them at `destination`.
    @inline(__always)
    static func encode(_ source: UnsafePointer<Float>, count: Int, into destination: UnsafeMutableRawPointer) {
        forEachVector(count) { index, lanes in
            store(Float32Codec.load(source, at: index, lanes: lanes), to: destination, at: index, lanes: lanes)
        }
    }

    /// Rounds `count` Floats in place to the values this format can hold.
    @inline(__always)
    static func round(_ values: UnsafeMutablePointer<Float>, count: Int) {
        var scratch = FloatVector()
        withUnsafeMutableBytes(of: &scratch) { buffer in
            forEachVector(count) { index, lanes in
                let rounded = store(Float32Codec.load(values, at: index, lanes: lanes), to: buffer.baseAddress!, nanFree: false)
                Float32Codec.store(rounded, to: values, at: index, lanes: lanes)
            }
        }
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

/// Code that runs with the codec of a dtype: ``visit(_:)`` is specialized for each of the three codecs.
protocol CodecVisitor {
    associatedtype Result
    func visit<Codec: ElementCodec>(_ codec: Codec.Type) -> Result
}

extension DType {
    /// Runs `visitor` with this dtype's codec.
    @inline(__always)
    func withCodec<Visitor: CodecVisitor>(_ visitor: Visitor) -> Visitor.Result {
        switch self {
        case .float32: visitor.visit(Float32Codec.self)
        case .float16: visitor.visit(Float16Codec.self)
        case .bfloat16: visitor.visit(BFloat16Codec.self)
        }
    }

    /// Converts `count` elements of this dtype at `source` to Floats at `destination`.
    func decode(_ source: UnsafeRawPointer, count: Int, into destination: UnsafeMutablePointer<Float>) {
        switch self {
        case .float32: destination.update(from: source.assumingMemoryBound(to: Float.self), count: count)
        case .float16: Float16Codec.decode(source, count: count, into: destination)
        case .bfloat16: BFloat16Codec.decode(source, count: count, into: destination)
        }
    }

    /// Rounds `count` Floats at `source` to this dtype and stores them at `destination`.
    func encode(_ source: UnsafePointer<Float>, count: Int, into destination: UnsafeMutableRawPointer) {
        switch self {
        case .float32: destination.assumingMemoryBound(to: Float.self).update(from: source, count: count)
        case .float16: Float16Codec.encode(source, count: count, into: destination)
        case .bfloat16: BFloat16Codec.encode(source, count: count, into: destination)
        }
    }

    /// Rounds `count` Floats in place to values of this dtype (nothing to do for float32).
    func round(_ values: UnsafeMutablePointer<Float>, count: Int) {
        switch self {
        case .float32: break
        case .float16: Float16Codec.round(values, count: count)
        case .bfloat16: BFloat16Codec.round(values, count: count)
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
