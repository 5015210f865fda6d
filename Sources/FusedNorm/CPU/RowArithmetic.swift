/// Element-wise updates of rows of Floats in memory, one vector at a time.
///
/// `@inline(__always)`, like every loop built on ``forEachVector(_:_:)``, so that the loop body is
/// inlined into the caller's specialized code instead of staying a call per vector.
enum RowArithmetic {
    /// values[i] += addend[i] for `count` Floats.
    @inline(__always)
    static func add(_ addend: UnsafePointer<Float>, to values: UnsafeMutablePointer<Float>, count: Int) {
        forEachVector(count) { index, lanes in
            let sum =
                Float32Codec.load(values, at: index, lanes: lanes) + Float32Codec.load(addend, at: index, lanes: lanes)
            Float32Codec.store(sum, to: values, at: index, lanes: lanes)
        }
    }

    /// sum[i] = a[i] + b[i] for `count` Floats (`sum` may be `a` or `b`).
    @inline(__always)
    static func add(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, into sum: UnsafeMutablePointer<Float>, count: Int
    ) {
        forEachVector(count) { index, lanes in
            let total = Float32Codec.load(a, at: index, lanes: lanes) + Float32Codec.load(b, at: index, lanes: lanes)
            Float32Codec.store(total, to: sum, at: index, lanes: lanes)
        }
    }

    /// values[i] += addend for `count` Floats.
    @inline(__always)
    static func add(_ addend: Float, to values: UnsafeMutablePointer<Float>, count: Int) {
        forEachVector(count) { index, lanes in
            Float32Codec.store(
                Float32Codec.load(values, at: index, lanes: lanes) + addend, to: values, at: index, lanes: lanes)
        }
    }
}
