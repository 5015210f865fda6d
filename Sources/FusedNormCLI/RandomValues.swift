/// A small, fast, seeded pseudo-random generator (SplitMix64), so that `check` and `bench` inputs are
/// the same on every run and every machine.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// `count` values uniform in `range`.
    mutating func uniform(_ count: Int, in range: ClosedRange<Float>) -> [Float] {
        let low = range.lowerBound, width = range.upperBound - range.lowerBound
        return (0..<count).map { _ in low + width * Float(next() >> 40) * 0x1p-24 }
    }
}
