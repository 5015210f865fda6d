import FusedNorm
import FusedNormReference
import Testing

/// QK-norm: x of shape (tokens, H, D), normalized over D, with a weight of shape (D) shared by the heads or
/// (H, D) per head (row i uses weight row i mod H).
enum PerHeadCases {
    static let dtypes = DType.allCases
    /// (tokens, heads, head dimension)
    static let shapes: [[Int]] = [
        [1, 2, 64], [3, 4, 128], [5, 8, 8], [2, 3, 3], [4, 2, 1], [64, 8, 16], [1, 32, 256],
    ]

    static let forward: [ForwardCase] = shapes.enumerated().flatMap { i, shape in
        [true, false].enumerated().flatMap { j, perHead in
            [Norm.rms, .layer].map { norm in
                let k = 4 * i + 2 * j + (norm == .rms ? 0 : 1)
                return ForwardCase(
                    norm: norm, shape: shape, x: dtypes[k % 3], weight: [.float32, .bfloat16, .float16][(k / 3) % 3],
                    bias: norm == .layer ? dtypes[(k + 1) % 3] : nil, perHead: perHead,
                    weightOffset: norm == .rms ? Float(k % 2) : 0, rounding: (i + j) % 2 == 0 ? .twice : .once,
                    output: dtypes[(k / 2) % 3], xLayout: Layout.allCases[k % 4],
                    outputLayout: Layout.allCases[(k + 1) % 4])
            }
        }
    }

    static let backward: [BackwardCase] = shapes.enumerated().flatMap { i, shape in
        [true, false].enumerated().flatMap { j, perHead in
            [Norm.rms, .layer].map { norm in
                let k = 4 * i + 2 * j + (norm == .rms ? 0 : 1)
                return BackwardCase(
                    norm: norm, shape: shape, x: dtypes[k % 3], dy: dtypes[(k + 1) % 3],
                    weight: [.float32, .bfloat16, .float16][(k / 3) % 3], bias: norm == .layer ? .float32 : nil,
                    perHead: perHead, weightOffset: norm == .rms ? Float(k % 2) : 0, savedStatistics: k % 2 == 0,
                    residualGradient: k % 3 == 0 ? .float32 : nil, inputGradient: k % 2 == 0 ? dtypes[k % 3] : nil,
                    xLayout: Layout.allCases[k % 4], dyLayout: Layout.allCases[(k + 2) % 4],
                    inputGradientLayout: Layout.allCases[(k + 3) % 4],
                    epsilon: BackwardCases.epsilon(norm, columns: shape.last!, variant: 0))
            }
        }
    }
}

@Suite("Per-head (QK) normalization")
struct PerHeadNormTests {
    @Test("forward, weights (H, D) and (D) (CPU)", arguments: PerHeadCases.forward)
    func forwardCPU(_ c: ForwardCase) throws { try checkForward(c, on: .cpu) }

    @Test("forward, weights (H, D) and (D) (CUDA)", .requiresCUDA, arguments: PerHeadCases.forward)
    func forwardCUDA(_ c: ForwardCase) throws { try checkForward(c, on: .cuda(0)) }

    @Test("backward: dweight (H, D) sums each head's rows (CPU)", arguments: PerHeadCases.backward)
    func backwardCPU(_ c: BackwardCase) throws { try checkBackward(c, on: .cpu) }

    @Test("backward: dweight (H, D) sums each head's rows (CUDA)", .requiresCUDA, arguments: PerHeadCases.backward)
    func backwardCUDA(_ c: BackwardCase) throws { try checkBackward(c, on: .cuda(0)) }

    @Test(
        "Head h uses weight row h: a per-head weight equals normalizing each head with its own row",
        arguments: TestDevices.all)
    func headsUseTheirRow(device: Device) throws {
        var rng = SplitMix64(label: "heads")
        let (tokens, heads, d) = (3, 4, 32)
        let xValues = rng.values(tokens * heads * d)
        let weightValues = rng.values(heads * d, 0.5, 1.5)
        let x = try Tensor(xValues, shape: [tokens, heads, d], device: device)
        let y = try rmsNorm(x, weight: Tensor(weightValues, shape: [heads, d], device: device)).toArray()
        for h in 0..<heads {
            // Rows (t, h) for every token, normalized with the weight row h alone.
            var rows: [Float] = []
            for t in 0..<tokens { rows += row(xValues, t * heads + h, columns: d) }
            let single = try rmsNorm(
                Tensor(rows, shape: [tokens, d], device: device),
                weight: Tensor(row(weightValues, h, columns: d), device: device)
            ).toArray()
            for t in 0..<tokens {
                let error = Reference.relativeError(
                    row(y, t * heads + h, columns: d), doubles(row(single, t, columns: d)))
                #expect(error <= 1e-6, "token \(t) head \(h) on \(device): relative error \(error)")
            }
        }
    }

    @Test("A weight (H, D) needs x of shape (..., H, D): rank 1 x is rejected", arguments: TestDevices.all)
    func perHeadNeedsHeads(device: Device) throws {
        let x = try Tensor(repeating: 1, shape: [8], device: device)
        let weight = try Tensor(repeating: 1, shape: [2, 8], device: device)
        let error = #expect(throws: FusedNormError.self, "rank-1 x with an (H, D) weight on \(device)") {
            try rmsNorm(x, weight: weight)
        }
        #expect(error?.kind == .shapeMismatch && error?.argument == "weight", "got \(String(describing: error))")
    }
}
