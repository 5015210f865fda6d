/// Sixteen `Float` lanes: the vector every CPU kernel computes with (four 128-bit registers on
/// baseline x86_64 and arm64).
typealias FloatVector = SIMD16<Float>

/// Sixteen `Int32` lanes: the bits of a ``FloatVector`` for integer-lane tricks.
typealias BitsVector = SIMD16<Int32>

extension SIMD16 where Scalar == Float {
    /// The lanes' bit patterns.
    @inline(__always)
    var bits: BitsVector { unsafeBitCast(self, to: BitsVector.self) }

    /// Floats with the given bit patterns.
    @inline(__always)
    init(bits: BitsVector) { self = unsafeBitCast(bits, to: FloatVector.self) }
}
