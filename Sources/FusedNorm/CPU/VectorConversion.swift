/// Sixteen `Float` lanes: the vector every CPU kernel computes with (four 128-bit registers on
/// baseline x86_64 and arm64).
typealias FloatVector = SIMD16<Float>

/// Sixteen `Int32` lanes: the bits of a ``FloatVector`` for integer-lane tricks.
typealias BitsVector = SIMD16<Int32>

/// Sixteen raw 16-bit patterns of float16 or bfloat16 elements.
typealias HalfBitsVector = SIMD16<UInt16>

// Conversions between Float and the 16-bit formats on integer lanes.
//
// Swift's `Float16(x)` and `Float(h)` compile to the libcalls `__truncsfhf2` / `__extendhfsf2` on
// baseline x86_64 (no F16C), one call per element, so the kernels convert whole vectors with integer
// and float lane operations instead. Masks are made with subtraction and arithmetic shifts rather than
// vector comparisons, which the compiler does not always keep in vector registers.
// Results are bit-identical to `Float16(x)`, `Float(h)` and `BFloat16(x)` for every input, NaN payloads
// included (checked exhaustively: all 65536 16-bit patterns and all 2^32 Float patterns, the NaN-free
// variants on every non-NaN Float).

extension SIMD16 where Scalar == Float {
    /// The lanes' bit patterns.
    @inline(__always)
    var bits: BitsVector { unsafeBitCast(self, to: BitsVector.self) }

    /// Floats with the given bit patterns.
    @inline(__always)
    init(bits: BitsVector) { self = unsafeBitCast(bits, to: FloatVector.self) }

    /// The exact values of sixteen bfloat16s: each pattern becomes the upper half of a Float.
    @inline(__always)
    init(bfloat16Bits h: HalfBitsVector) {
        self.init(bits: h.widened &<< 16)
    }

    /// The exact values of sixteen float16s.
    ///
    /// The exponent and mantissa are moved into Float position (magnitude << 13) and scaled by 2^112,
    /// which rebiases the exponent and turns subnormal halves (denormal Floats before the scaling) into
    /// normal Floats exactly. Inf and NaN (magnitude > 0x7BFF) get an all-ones exponent before the
    /// scaling, which keeps Inf and quiets a signaling NaN as `Float(Float16)` does, payload kept.
    @inline(__always)
    init(float16Bits h: HalfBitsVector) {
        let bits = h.widened
        let magnitude = bits & 0x7FFF
        let sign = (bits ^ magnitude) &<< 16
        let isInfOrNaN = (0x7BFF &- magnitude) &>> 31
        let scaled = FloatVector(bits: (magnitude &<< 13) | (isInfOrNaN & 0x7F80_0000)) * 0x1p112
        self.init(bits: scaled.bits | sign)
    }

    /// The lanes rounded to bfloat16 (nearest, ties to even), as bit patterns; NaN stays NaN
    /// (quiet, sign and upper payload kept), exactly like ``BFloat16/init(_:)``.
    ///
    /// Rounding adds 0x7FFF plus the lowest kept bit, then keeps the upper 16 bits.
    /// - Parameter nanFree: the caller guarantees that no lane is NaN (±Inf may be), which skips the NaN
    ///   handling; the result is then the same for every such input.
    @inline(__always)
    func bfloat16Bits(nanFree: Bool) -> HalfBitsVector {
        let bits = self.bits
        let bias = 0x7FFF &+ ((bits &>> 16) & 1)
        if nanFree { return ((bits &+ bias) &>> 16).narrowed }
        let isNaN = (0x7F80_0000 &- (bits & 0x7FFF_FFFF)) &>> 31
        return (((bits &+ (bias & ~isNaN)) &>> 16) | (isNaN & 0x40)).narrowed
    }

    /// The lanes rounded to float16 (nearest, ties to even), as bit patterns: overflow gives ±Inf,
    /// tiny values round to subnormals or ±0, NaN stays NaN (quiet, sign and upper payload kept).
    ///
    /// The magnitude is first scaled by 2^112 · 2^-110 (= 4, but anything at or beyond 2^16 overflows to
    /// Inf on the way); adding 2^(e + 15 - 127), e the Float exponent clamped below at half's smallest
    /// normal exponent, makes the float adder round the mantissa to half precision, after which the
    /// exponent and mantissa fields are read off the sum's bits.
    /// - Parameter nanFree: the caller guarantees that no lane is NaN (±Inf may be), which skips the NaN
    ///   handling; the result is then the same for every such input.
    @inline(__always)
    func float16Bits(nanFree: Bool) -> HalfBitsVector {
        let bits = self.bits
        let magnitude = bits & 0x7FFF_FFFF
        let sign = (bits ^ magnitude) &>> 16
        let base = (FloatVector(bits: magnitude) * 0x1p112) * 0x1p-110
        // max(2^exponent, 2^-14) as Floats (a select against a NaN-free constant becomes one maxps).
        let power = FloatVector(bits: magnitude & 0x7F80_0000)
        let smallestNormal = FloatVector(repeating: 0x1p-14)
        let clamped = power.replacing(with: smallestNormal, where: power .< smallestNormal).bits
        let sum = (FloatVector(bits: clamped &+ 0x0780_0000) + base).bits
        let finite = ((sum &>> 13) & 0x7C00) &+ (sum & 0x0FFF)
        if nanFree { return (finite | sign).narrowed }
        let isNaN = (0x7F80_0000 &- magnitude) &>> 31
        let nan = ((magnitude &>> 13) | 0x7E00) & 0x7FFF
        return ((finite ^ ((finite ^ nan) & isNaN)) | sign).narrowed
    }
}

// Lane-width changes written as plain lane loops: always inlined, they compile to unpack and pack
// instructions, where the generic `init(truncatingIfNeeded:)` can be left as an out-of-line call.

extension SIMD16 where Scalar == UInt16 {
    /// The lanes zero-extended to 32 bits.
    @inline(__always)
    var widened: BitsVector {
        var wide = BitsVector()
        for lane in 0..<16 { wide[lane] = Int32(self[lane]) }
        return wide
    }
}

extension SIMD16 where Scalar == Int32 {
    /// The low 16 bits of each lane.
    @inline(__always)
    var narrowed: HalfBitsVector {
        var narrow = HalfBitsVector()
        for lane in 0..<16 { narrow[lane] = UInt16(truncatingIfNeeded: self[lane]) }
        return narrow
    }
}
