import CFusedNormCPU
import Testing

@testable import FusedNorm

/// The CPU backend's row conversions (``DType/decode(_:count:into:)`` and ``DType/encode(_:count:into:)``,
/// the C converters of `CFusedNormCPU`, AVX2/F16C where the CPU has them) against Swift's scalar
/// conversions, bit for bit: exhaustively from 16 bits, and on about a million Floats plus every kind of
/// tie, subnormal, infinity and NaN to 16 bits. The portable C fallbacks are checked the same way.
@Suite("Row conversions")
struct ConversionTests {
    typealias Widen = (UnsafePointer<UInt16>, UnsafeMutablePointer<Float>, Int) -> Void
    typealias Narrow = (UnsafePointer<Float>, UnsafeMutablePointer<UInt16>, Int) -> Void

    /// The 16-bit formats: Swift's conversions and the row converters (through the dtype, and the C fallback).
    struct Format: CustomStringConvertible, Sendable {
        var dtype: DType
        var toFloat: @Sendable (UInt16) -> Float
        var fromFloat: @Sendable (Float) -> UInt16
        var widenScalar: @Sendable (UnsafePointer<UInt16>, UnsafeMutablePointer<Float>, Int) -> Void
        var narrowScalar: @Sendable (UnsafePointer<Float>, UnsafeMutablePointer<UInt16>, Int) -> Void
        var description: String { "\(dtype)" }
    }

    static let formats = [
        Format(
            dtype: .bfloat16, toFloat: { BFloat16(bitPattern: $0).floatValue }, fromFloat: { BFloat16($0).bitPattern },
            widenScalar: { cfn_bf16_to_f32_scalar($0, $1, $2) }, narrowScalar: { cfn_f32_to_bf16_scalar($0, $1, $2) }),
        Format(
            dtype: .float16, toFloat: { Float(Float16(bitPattern: $0)) }, fromFloat: { Float16($0).bitPattern },
            widenScalar: { cfn_f16_to_f32_scalar($0, $1, $2) }, narrowScalar: { cfn_f32_to_f16_scalar($0, $1, $2) }),
    ]

    /// The row converters of `format`: the dtype's (dispatched) and the portable C ones.
    static func converters(_ format: Format) -> [(String, Widen, Narrow)] {
        [
            (
                "dispatched (vector code: \(cfn_uses_vector_conversions() != 0))",
                { format.dtype.decode(UnsafeRawPointer($0), count: $2, into: $1) },
                { format.dtype.encode($0, count: $2, into: UnsafeMutableRawPointer($1)) }
            ),
            (
                "dispatched, streaming stores",
                { format.dtype.decode(UnsafeRawPointer($0), count: $2, into: $1) },
                {
                    format.dtype.encode($0, count: $2, into: UnsafeMutableRawPointer($1), streaming: true)
                    DType.fenceStreamingStores()
                }
            ),
            ("portable", format.widenScalar, format.narrowScalar),
        ]
    }

    @Test("Every 16-bit pattern widens to Swift's Float, at every offset and tail length", arguments: formats)
    func widenAll(format: Format) {
        let patterns = (0...0xFFFF).map { UInt16($0) }
        let expected = patterns.map { format.toFloat($0).bitPattern }
        for (name, widen, _) in Self.converters(format) {
            // Start 0..3 elements in (unaligned starts, every tail length mod 16 over the offsets and lengths).
            for start in 0..<4 {
                let count = patterns.count - start - (start * 5) % 16
                var floats = [Float](repeating: .nan, count: count)
                patterns.withUnsafeBufferPointer { source in
                    floats.withUnsafeMutableBufferPointer { widen(source.baseAddress! + start, $0.baseAddress!, count) }
                }
                let mismatches = (0..<count).filter { floats[$0].bitPattern != expected[start + $0] }
                #expect(
                    mismatches.isEmpty,
                    "\(format) \(name), start \(start): \(mismatches.count) mismatches, first 0x\(String(patterns[start + (mismatches.first ?? 0)], radix: 16))"
                )
            }
        }
    }

    /// Floats that exercise the rounding to `dtype`: around every tie of every 16-bit value, the
    /// subnormal ties of float16, specials, and about a million random bit patterns (NaNs included).
    static func testFloats(for dtype: DType) -> [Float] {
        var bits: [UInt32] = []
        // Ties and their neighbours: for bfloat16 the low 16 bits, for float16 the low 13 bits of the Float.
        let shift: UInt32 = dtype == .bfloat16 ? 16 : 13
        let half: UInt32 = 1 << (shift - 1)
        let lows: [UInt32] = [0, 1, half - 1, half, half + 1, (1 << shift) - 1]
        let step = dtype == .bfloat16 ? 1 : 3  // float16: every third upper pattern keeps the list ~1.4M long
        for upper in stride(from: 0, to: 1 << (32 - Int(shift)), by: step) {
            for low in lows { bits.append(UInt32(upper) << shift | low) }
        }
        // float16 subnormal range: multiples of 2^-25 (ties at odd ones) and their neighbours, both signs.
        for k in 0..<(1 << 12) {
            let value = Float(k) * 0x1p-25
            for v in [value, value.nextUp, value.nextDown, -value] { bits.append(v.bitPattern) }
        }
        // Specials.
        let specials: [Float] = [
            0, -0, .infinity, -.infinity, .greatestFiniteMagnitude, -.greatestFiniteMagnitude,
            .leastNonzeroMagnitude, .leastNormalMagnitude, 65504, 65519.996, 65520, 65536, 0x1p-14, 0x1p-24, 0x1p-25,
            0x1.8p-25,
        ]
        bits += specials.map(\.bitPattern)
        bits += [
            0x7FC0_0000, 0xFFC0_0000, 0x7F80_0001, 0xFF80_0001, 0x7FFF_FFFF, 0xFFFF_FFFF, 0x7FA0_0000, 0x7F80_2000,
            0x7F80_1FFF,
        ]
        // Random patterns (SplitMix64).
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        for _ in 0..<1_000_000 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            bits.append(UInt32(truncatingIfNeeded: z ^ (z >> 31)))
        }
        return bits.map { Float(bitPattern: $0) }
    }

    @Test("Floats narrow to Swift's 16-bit values: ties, subnormals, Inf, NaN, random", arguments: formats)
    func narrow(format: Format) {
        let floats = Self.testFloats(for: format.dtype)
        let expected = floats.map(format.fromFloat)
        for (name, _, narrow) in Self.converters(format) {
            for start in [0, 1, 3] {
                let count = floats.count - start - start * 5
                var halves = [UInt16](repeating: 0xAAAA, count: count)
                floats.withUnsafeBufferPointer { source in
                    halves.withUnsafeMutableBufferPointer {
                        narrow(source.baseAddress! + start, $0.baseAddress!, count)
                    }
                }
                let mismatches = (0..<count).filter { halves[$0] != expected[start + $0] }
                let first =
                    mismatches.first.map {
                        "0x\(String(floats[start + $0].bitPattern, radix: 16)) -> 0x\(String(halves[$0], radix: 16)), expected 0x\(String(expected[start + $0], radix: 16))"
                    } ?? ""
                #expect(
                    mismatches.isEmpty,
                    "\(format) \(name), start \(start): \(mismatches.count) of \(count) differ; first \(first)")
            }
        }
    }

    @Test("Short rows and tails write exactly their elements", arguments: formats)
    func shortRows(format: Format) {
        for count in 0...80 {
            let floats = (0..<count).map { Float($0) * 1.37 - 20 }
            var halves = [UInt16](repeating: 0xAAAA, count: count + 1)
            floats.withUnsafeBufferPointer { source in
                halves.withUnsafeMutableBufferPointer {
                    format.dtype.encode(source.baseAddress!, count: count, into: $0.baseAddress!)
                }
            }
            #expect(Array(halves.prefix(count)) == floats.map(format.fromFloat), "\(format) encode, count \(count)")
            #expect(halves[count] == 0xAAAA, "\(format) encode, count \(count): wrote past the end")
            for offset in 0..<17 {
                var streamed = [UInt16](repeating: 0xAAAA, count: count + offset + 1)
                floats.withUnsafeBufferPointer { source in
                    streamed.withUnsafeMutableBufferPointer {
                        format.dtype.encode(
                            source.baseAddress!, count: count, into: $0.baseAddress! + offset, streaming: true)
                    }
                }
                DType.fenceStreamingStores()
                #expect(
                    Array(streamed[offset..<offset + count]) == Array(halves.prefix(count)),
                    "\(format) streaming, count \(count), offset \(offset)")
                #expect(
                    streamed[..<offset].allSatisfy { $0 == 0xAAAA } && streamed[offset + count] == 0xAAAA,
                    "\(format) streaming, count \(count), offset \(offset): wrote outside")
            }
            var back = [Float](repeating: -1, count: count + 1)
            halves.withUnsafeBufferPointer { source in
                back.withUnsafeMutableBufferPointer {
                    format.dtype.decode(source.baseAddress!, count: count, into: $0.baseAddress!)
                }
            }
            #expect(
                Array(back.prefix(count)).map(\.bitPattern)
                    == halves.prefix(count).map { format.toFloat($0).bitPattern }, "\(format) decode, count \(count)")
            #expect(back[count] == -1, "\(format) decode, count \(count): wrote past the end")
        }
    }
}
