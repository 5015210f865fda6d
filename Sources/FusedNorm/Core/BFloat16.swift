/// A 16-bit brain floating-point value: the upper half of a `Float`.
///
/// Conversion from `Float` rounds to nearest, ties to even; NaN stays NaN (quiet, sign kept).
@frozen
public struct BFloat16: Sendable, Hashable, CustomStringConvertible {
    /// The raw 16 bits.
    public var bitPattern: UInt16

    @inlinable
    public init(bitPattern: UInt16) { self.bitPattern = bitPattern }

    /// Rounds `value` to the nearest bfloat16 (ties to even); NaN becomes a quiet NaN of the same sign.
    @inlinable
    public init(_ value: Float) {
        let bits = value.bitPattern
        if value.isNaN {
            bitPattern = UInt16(truncatingIfNeeded: bits >> 16) | 0x0040
        } else {
            let roundingBias: UInt32 = 0x7FFF + ((bits >> 16) & 1)
            bitPattern = UInt16(truncatingIfNeeded: (bits &+ roundingBias) >> 16)
        }
    }

    /// The exact `Float` value.
    @inlinable
    public var floatValue: Float { Float(bitPattern: UInt32(bitPattern) << 16) }

    public var description: String { floatValue.description }
}

extension Float {
    /// The exact value of a bfloat16.
    @inlinable
    public init(_ value: BFloat16) { self = value.floatValue }
}
