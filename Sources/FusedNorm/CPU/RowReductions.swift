/// Sums over Floats in memory, one vector accumulator of sixteen lanes (four independent SSE/NEON
/// chains). The kernels call them on blocks of at most ``blockLength`` elements and add the block
/// results in Double, which keeps the rounding error of a row's sum small for any length.
enum RowReductions {
    /// Σ (vᵢ − center) and Σ (vᵢ − center)² over `count` Floats.
    static func deviationSums(_ values: UnsafePointer<Float>, count: Int, from center: Float) -> BlockSums {
        var total = FloatVector(), squares = FloatVector()
        forEachVector(count) { index, lanes in
            let deviation = masked(Float32Codec.load(values, at: index, lanes: lanes) - center, lanes: lanes)
            total += deviation
            squares += deviation * deviation
        }
        return BlockSums(sum: total.sum(), squares: squares.sum())
    }

    /// `v` with the lanes from `lanes` on set to 0 (those of a row's last, partial vector, which load as
    /// 0 and would count as −center after a shift).
    @inline(__always)
    static func masked(_ v: FloatVector, lanes: Int) -> FloatVector {
        if lanes == FloatVector.scalarCount { return v }
        var mask = BitsVector()
        for lane in 0..<lanes { mask[lane] = -1 }
        return FloatVector(bits: v.bits & mask)
    }
}

/// Sums over one block of a row, taken around a shift c: Σ (v − c) and Σ (v − c)² (or Σ v² alone).
struct BlockSums {
    var sum: Float
    var squares: Float
}

/// Pass 1 over a block of Floats: Σ v² only, or (`centered`) Σ (v − shift) and Σ (v − shift)².
struct BlockSumsKernel {
    var values: UnsafePointer<Float>
    var count: Int
    var centered: Bool
    var shift: Float

    func run() -> BlockSums {
        centered ? loop(centered: true) : loop(centered: false)
    }

    @inline(__always)
    private func loop(centered: Bool) -> BlockSums {
        var sum = FloatVector(), squares = FloatVector()
        @inline(__always)
        func step(_ index: Int, _ lanes: Int) {
            let v = Float32Codec.load(values, at: index, lanes: lanes)
            if centered {
                let d = RowReductions.masked(v - shift, lanes: lanes)
                sum += d
                squares += d * d
            } else {
                squares += v * v
            }
        }
        forEachVector(count, step)
        return BlockSums(sum: sum.sum(), squares: squares.sum())
    }
}

/// Elements per block: rows are processed in blocks of this many elements, so that staged data and
/// partial sums stay in the L1 cache.
let blockLength = 1024

/// Calls `body(start, count)` for consecutive blocks of at most `length` elements covering `0..<count`.
@inline(__always)
func forEachBlock(_ count: Int, length: Int = blockLength, _ body: (_ start: Int, _ count: Int) -> Void) {
    var start = 0
    while start < count {
        let blockCount = min(length, count &- start)
        body(start, blockCount)
        start &+= blockCount
    }
}
