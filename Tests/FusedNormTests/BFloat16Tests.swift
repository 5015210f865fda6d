import FusedNorm
import Testing

@Suite("BFloat16 conversions")
struct BFloat16Tests {
    /// An independent statement of round-to-nearest-even to the upper 16 bits of a finite Float's pattern.
    static func expectedRounding(_ bits: UInt32) -> UInt16 {
        let upper = bits >> 16, lower = bits & 0xFFFF
        let roundUp = lower > 0x8000 || (lower == 0x8000 && upper & 1 == 1)
        return UInt16(truncatingIfNeeded: roundUp ? upper + 1 : upper)
    }

    @Test(
        "Exact ties round to the even neighbour",
        arguments: [
            // (Float bits, expected bf16 bits)
            (UInt32(0x3F80_8000), UInt16(0x3F80)),  // 1 + 2^-8: between 0x3F80 (even) and 0x3F81
            (0x3F81_8000, 0x3F82),  // between 0x3F81 and 0x3F82 (even): up
            (0xBF80_8000, 0xBF80),  // negative ties likewise
            (0xBF81_8000, 0xBF82),
            (0x4049_8000, 0x404A),  // ~3.14: odd 0x4049 rounds up
            (0x0000_8000, 0x0000),  // subnormal tie to zero
            (0x0001_8000, 0x0002),  // subnormal tie up to even
            (0x7F7F_8000, 0x7F80),  // tie above the largest finite bf16: to even, which is Inf
            (0x3FFF_8000, 0x4000),  // tie that carries into the exponent
        ])
    func ties(floatBits: UInt32, expected: UInt16) {
        let value = Float(bitPattern: floatBits)
        #expect(BFloat16(value).bitPattern == expected, "BFloat16(\(value)) [0x\(String(floatBits, radix: 16))]")
    }

    @Test("Just off a tie rounds to the nearer neighbour")
    func nearTies() {
        #expect(BFloat16(Float(bitPattern: 0x3F80_8001)).bitPattern == 0x3F81)
        #expect(BFloat16(Float(bitPattern: 0x3F80_7FFF)).bitPattern == 0x3F80)
        #expect(BFloat16(Float(bitPattern: 0x3F81_7FFF)).bitPattern == 0x3F81)
        #expect(BFloat16(Float(bitPattern: 0xBF80_8001)).bitPattern == 0xBF81)
    }

    @Test(
        "NaN stays NaN with its sign, quiet, whatever its payload",
        arguments: [
            UInt32(0x7FC0_0000), 0xFFC0_0000, 0x7F80_0001, 0xFF80_0001, 0x7FFF_FFFF, 0xFFFF_FFFF, 0x7F80_FFFF,
            0x7FBF_FFFF,
        ])
    func nan(bits: UInt32) {
        let converted = BFloat16(Float(bitPattern: bits))
        let label = "NaN 0x\(String(bits, radix: 16)) -> 0x\(String(converted.bitPattern, radix: 16))"
        #expect(converted.floatValue.isNaN, "\(label): not NaN (a signalling NaN truncated to Inf?)")
        #expect(converted.bitPattern & 0x8000 == UInt16(bits >> 16) & 0x8000, "\(label): sign lost")
        #expect(converted.bitPattern & 0x0040 != 0, "\(label): not a quiet NaN")
        #expect(DType.bfloat16.round(Float(bitPattern: bits)).isNaN, "\(label): DType.round")
    }

    @Test("Infinities, overflow, zeros and the largest finite value")
    func specials() {
        #expect(BFloat16(Float.infinity).bitPattern == 0x7F80)
        #expect(BFloat16(-Float.infinity).bitPattern == 0xFF80)
        #expect(BFloat16(Float.greatestFiniteMagnitude).bitPattern == 0x7F80, "Float.max overflows to Inf")
        #expect(BFloat16(-Float.greatestFiniteMagnitude).bitPattern == 0xFF80, "-Float.max overflows to -Inf")
        #expect(
            BFloat16(Float(bitPattern: 0x7F7F_7FFF)).bitPattern == 0x7F7F, "just below the tie stays the largest finite"
        )
        #expect(BFloat16(Float(bitPattern: 0x7F7F_0000)).floatValue == Float(bitPattern: 0x7F7F_0000))
        #expect(BFloat16(Float(0)).bitPattern == 0x0000)
        #expect(BFloat16(-Float(0)).bitPattern == 0x8000, "negative zero keeps its sign")
        #expect(BFloat16(Float(1)).bitPattern == 0x3F80 && BFloat16(Float(-2)).bitPattern == 0xC000)
        #expect(BFloat16(Float(bitPattern: 0x3F80_0000)).description == "1.0")
    }

    @Test("Subnormals convert exactly or round correctly")
    func subnormals() {
        #expect(BFloat16(Float(bitPattern: 0x0001_0000)).bitPattern == 0x0001, "smallest bf16 subnormal is exact")
        #expect(BFloat16(Float(bitPattern: 0x007F_0000)).bitPattern == 0x007F, "largest bf16 subnormal is exact")
        #expect(BFloat16(Float.leastNonzeroMagnitude).bitPattern == 0x0000, "the smallest Float subnormal rounds to 0")
        #expect(BFloat16(-Float.leastNonzeroMagnitude).bitPattern == 0x8000, "… keeping the sign")
        #expect(BFloat16(Float(bitPattern: 0x0000_8001)).bitPattern == 0x0001)
        #expect(BFloat16(Float(bitPattern: 0x007F_C000)).bitPattern == 0x0080, "rounding up into the smallest normal")
        #expect(BFloat16(bitPattern: 0x0001).floatValue == Float(bitPattern: 0x0001_0000))
        #expect(BFloat16(bitPattern: 0x8001).floatValue == -Float(bitPattern: 0x0001_0000))
    }

    @Test("All 65536 patterns: bf16 → Float is exact and Float → bf16 gives the pattern back (NaN to NaN)")
    func exhaustiveRoundTrip() {
        var failures: [String] = []
        for pattern in 0...UInt16.max {
            let value = BFloat16(bitPattern: pattern).floatValue
            if value.bitPattern != UInt32(pattern) << 16 {
                failures.append("0x\(String(pattern, radix: 16)) widened to 0x\(String(value.bitPattern, radix: 16))")
            }
            let back = BFloat16(value)
            if value.isNaN {
                if !back.floatValue.isNaN || back.bitPattern & 0x8000 != pattern & 0x8000 {
                    failures.append(
                        "NaN 0x\(String(pattern, radix: 16)) came back as 0x\(String(back.bitPattern, radix: 16))")
                }
            } else if back.bitPattern != pattern {
                failures.append("0x\(String(pattern, radix: 16)) came back as 0x\(String(back.bitPattern, radix: 16))")
            }
            if Float(BFloat16(bitPattern: pattern)).bitPattern != value.bitPattern {
                failures.append("Float(_:) of 0x\(String(pattern, radix: 16))")
            }
        }
        #expect(failures.isEmpty, "\(failures.count) failures, first: \(failures.prefix(5))")
    }

    @Test("Random Float patterns round to nearest even (against an independent statement of the rule)")
    func randomPatterns() {
        var rng = SplitMix64(seed: 0xBF16)
        var failures: [String] = []
        for _ in 0..<200_000 {
            let bits = UInt32(truncatingIfNeeded: rng.next())
            let value = Float(bitPattern: bits)
            guard !value.isNaN else { continue }
            let converted = BFloat16(value).bitPattern
            if converted != Self.expectedRounding(bits) {
                failures.append("0x\(String(bits, radix: 16)) -> 0x\(String(converted, radix: 16))")
            }
            // Nearest: no other bf16 value is closer (compared in Double, exactly).
            let rounded = Double(BFloat16(value).floatValue), exact = Double(value)
            if rounded.isFinite {
                for neighbour in [converted &- 1, converted &+ 1] {
                    let other = Double(BFloat16(bitPattern: neighbour).floatValue)
                    if other.isFinite, (other - exact).magnitude < (rounded - exact).magnitude {
                        failures.append("0x\(String(bits, radix: 16)): 0x\(String(neighbour, radix: 16)) is nearer")
                    }
                }
            }
        }
        #expect(failures.isEmpty, "\(failures.count) failures, first: \(failures.prefix(5))")
    }

    @Test("DType.round and tensor storage agree with BFloat16 and Float16")
    func dtypeRoundAgrees() throws {
        var rng = SplitMix64(seed: 7)
        let values =
            // finite magnitudes < 2
            (0..<4096).map { _ in Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()) & 0xBFFF_FFFF) }
            + [0, -0.0, 1, 65504, 65520, 1e-8, 3e38, .infinity, -.infinity]
        for dtype in DType.allCases {
            let expected: [Float] = values.map {
                switch dtype {
                case .float32: $0
                case .float16: Float(Float16($0))
                case .bfloat16: BFloat16($0).floatValue
                }
            }
            #expect(differingBits(values.map(dtype.round), expected) == 0, "DType.round for \(dtype)")
            let stored = try Tensor(values, dtype: dtype).toArray()
            #expect(differingBits(stored, expected) == 0, "a \(dtype) tensor stores rounded values")
        }
    }
}
