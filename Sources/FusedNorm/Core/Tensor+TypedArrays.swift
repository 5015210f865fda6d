/// A Swift type whose values are stored bit for bit as one of FusedNorm's dtypes.
public protocol TensorElement: Sendable {
    /// The dtype whose storage this type's values are.
    static var dtype: DType { get }
}

extension Float: TensorElement {
    public static var dtype: DType { .float32 }
}

extension Float16: TensorElement {
    public static var dtype: DType { .float16 }
}

extension BFloat16: TensorElement {
    public static var dtype: DType { .bfloat16 }
}

extension Tensor {
    /// Creates a contiguous tensor holding `values` bit for bit, in their own dtype (`Float16` ->
    /// `.float16`, ``BFloat16`` -> `.bfloat16`): one copy of the bytes, no conversion.
    /// - Parameters:
    ///   - values: `shape.reduce(1, *)` values in row-major order.
    ///   - shape: the dimensions, rank >= 1, last dimension >= 1.
    ///   - device: where the memory lives; default `.cpu`.
    public init<Element: TensorElement>(_ values: [Element], shape: [Int], device: Device = .cpu) throws {
        try Tensor.validate(shape: shape, argument: "shape")
        let count = shape.reduce(1, *)
        guard values.count == count else { throw FusedNormError.countMismatch(expected: count, actual: values.count) }
        try self.init(allocating: shape, dtype: Element.dtype, on: device)
        if count > 0 { try values.withUnsafeBytes { try upload(from: $0.baseAddress!) } }
    }

    /// The elements in row-major order, bit for bit, as the Swift type of the tensor's dtype: one copy of
    /// the bytes, no conversion. Waits for pending work on the tensor's device.
    /// - Parameter type: `Float.self`, `Float16.self` or `BFloat16.self`, matching ``dtype``.
    /// - Throws: ``FusedNormError/dtypeMismatch(argument:expected:actual:)`` when `type` is not the dtype's
    ///   type (use ``toArray()`` for values converted to `Float`).
    public func toArray<Element: TensorElement>(of type: Element.Type) throws -> [Element] {
        guard Element.dtype == dtype else {
            throw FusedNormError.dtypeMismatch(argument: "type", expected: dtype, actual: Element.dtype)
        }
        let count = self.count
        return try [Element](unsafeUninitializedCapacity: count) { storage, initialized in
            if count > 0 { try download(into: UnsafeMutableRawPointer(storage.baseAddress!)) }
            initialized = count
        }
    }

    /// Overwrites every element of this view with `values` bit for bit (row-major, the dtype's own type);
    /// memory between strided rows is left alone.
    public func write<Element: TensorElement>(_ values: [Element]) throws {
        guard Element.dtype == dtype else {
            throw FusedNormError.dtypeMismatch(argument: "values", expected: dtype, actual: Element.dtype)
        }
        guard values.count == count else { throw FusedNormError.countMismatch(expected: count, actual: values.count) }
        try requireWritable("tensor")
        if count > 0 { try values.withUnsafeBytes { try upload(from: $0.baseAddress!) } }
    }
}
