/// The storage type of a tensor's elements. Arithmetic and statistics always run in `Float`.
public enum DType: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// IEEE 754 single precision, 4 bytes.
    case float32
    /// IEEE 754 half precision (Swift's `Float16`), 2 bytes.
    case float16
    /// Brain floating point (``BFloat16``): float32's exponent with a 7-bit mantissa, 2 bytes.
    case bfloat16

    /// Bytes per element.
    public var byteCount: Int {
        switch self {
        case .float32: 4
        case .float16, .bfloat16: 2
        }
    }

    public var description: String { rawValue }

    /// Parses a dtype name: `float32`/`fp32`/`f32`, `float16`/`fp16`/`half`/`f16`, `bfloat16`/`bf16`.
    public init?(name: String) {
        switch name.lowercased() {
        case "float32", "fp32", "f32", "float": self = .float32
        case "float16", "fp16", "f16", "half": self = .float16
        case "bfloat16", "bf16": self = .bfloat16
        default: return nil
        }
    }

    /// Rounds `value` to this dtype and back, exactly as storing and loading it would.
    @inlinable
    public func round(_ value: Float) -> Float {
        switch self {
        case .float32: value
        case .float16: Float(Float16(value))
        case .bfloat16: Float(BFloat16(value))
        }
    }
}
