/// A seeded SplitMix64 generator, so that every failing case reproduces from the seed in its message.
struct SplitMix64: RandomNumberGenerator, Sendable {
    private(set) var state: UInt64

    init(seed: UInt64) { state = seed }

    /// A generator whose seed is a stable hash (FNV-1a) of `label`, such as a test case's description.
    init(label: String) { self.init(seed: stableSeed(label)) }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [lower, upper), 24 random bits.
    mutating func uniform(_ lower: Float, _ upper: Float) -> Float {
        let unit = Float(next() >> 40) * 0x1p-24
        return lower + (upper - lower) * unit
    }

    /// `count` values uniform in [lower, upper); never all zeros (a zero input hides almost every bug).
    mutating func values(_ count: Int, _ lower: Float = -2, _ upper: Float = 2) -> [Float] {
        var result = (0..<count).map { _ in uniform(lower, upper) }
        if !result.isEmpty, result.allSatisfy({ $0 == 0 }) { result[0] = upper == 0 ? lower : upper / 2 }
        return result
    }

    mutating func index(below bound: Int) -> Int { Int(next() % UInt64(bound)) }
}

/// FNV-1a over the UTF-8 bytes: the same on every run and machine (unlike `Hasher`).
func stableSeed(_ label: String) -> UInt64 {
    var hash: UInt64 = 0xCBF2_9CE4_8422_2325
    for byte in label.utf8 {
        hash ^= UInt64(byte)
        hash &*= 0x0000_0100_0000_01B3
    }
    return hash
}
