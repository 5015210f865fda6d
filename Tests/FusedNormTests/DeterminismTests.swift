import FusedNorm
import FusedNormReference
import Testing

/// Results, dweight and dbias included, are bit-identical whatever `CPUSettings.threadCount` is, and from
/// run to run. Serialized: the thread count is process-wide.
@Suite("Determinism across thread counts and runs", .serialized)
struct DeterminismTests {
    static let threadCounts = [1, 2, 3, 7]

    /// Everything a forward and a backward pass produce.
    struct Outputs {
        var y: [Float], rstd: [Float], mean: [Float]?, dx: [Float], dweight: [Float], dbias: [Float]?

        /// Elements whose bit patterns differ from `other`'s, per output (empty when identical).
        func differences(from other: Outputs) -> [String: Int] {
            let pairs: [(String, [Float], [Float])] = [
                ("y", y, other.y), ("rstd", rstd, other.rstd), ("mean", mean ?? [], other.mean ?? []),
                ("dx", dx, other.dx),
                ("dweight", dweight, other.dweight), ("dbias", dbias ?? [], other.dbias ?? []),
            ]
            return Dictionary(uniqueKeysWithValues: pairs.map { ($0.0, differingBits($0.1, $0.2)) }.filter { $0.1 > 0 })
        }
    }

    struct Problem: Sendable, CustomTestStringConvertible {
        var norm: Norm
        var shape: [Int]
        var dtype: DType
        var perHead: Bool
        var testDescription: String { "\(norm) \(shape) \(dtype)\(perHead ? " per-head" : "")" }
    }

    /// Each large enough (> 7 × 32768 elements) that a CPU backend splitting work by size still gives
    /// every thread count here its own partition.
    static let problems = [
        Problem(norm: .rms, shape: [257, 1024], dtype: .float32, perHead: false),
        Problem(norm: .rms, shape: [257, 1024], dtype: .bfloat16, perHead: false),
        Problem(norm: .layer, shape: [257, 1024], dtype: .float32, perHead: false),
        Problem(norm: .rms, shape: [257, 8, 128], dtype: .float32, perHead: true),
        Problem(norm: .layer, shape: [520, 4, 128], dtype: .float16, perHead: true),
    ]

    /// Runs forward and backward with the given thread count (restoring the previous one).
    func run(_ p: Problem, threads: Int) throws -> (Outputs, NormGradients, [Float], [Float], [Float]) {
        let previous = CPUSettings.threadCount
        CPUSettings.threadCount = threads
        defer { CPUSettings.threadCount = previous }
        #expect(CPUSettings.threadCount == threads)
        var rng = SplitMix64(label: p.testDescription)
        let count = p.shape.reduce(1, *), n = p.shape.last!
        let parameterShape = p.perHead ? Array(p.shape.suffix(2)) : [n]
        let parameterCount = parameterShape.reduce(1, *)
        let x = try Tensor(rng.values(count), shape: p.shape, dtype: p.dtype)
        let dy = try Tensor(rng.values(count, -1, 1), shape: p.shape, dtype: p.dtype)
        let weight = try Tensor(rng.values(parameterCount, 0.5, 1.5), shape: parameterShape)
        let bias = try Tensor(rng.values(parameterCount, -0.5, 0.5), shape: parameterShape)
        let forward: NormForwardResult, gradients: NormGradients
        switch p.norm {
        case .rms:
            forward = try rmsNormForward(x, weight: weight)
            gradients = try rmsNormBackward(dy, input: x, weight: weight, rstd: forward.rstd)
        case .layer:
            forward = try layerNormForward(x, weight: weight, bias: bias)
            gradients = try layerNormBackward(
                dy, input: x, weight: weight, bias: bias, mean: forward.mean, rstd: forward.rstd)
        }
        let outputs = Outputs(
            y: try forward.output.toArray(), rstd: try forward.rstd.toArray(), mean: try forward.mean?.toArray(),
            dx: try gradients.input.toArray(), dweight: try gradients.weight!.toArray(),
            dbias: try gradients.bias?.toArray())
        return (outputs, gradients, try x.toArray(), try dy.toArray(), try weight.toArray())
    }

    @Test(
        "dweight, dbias, dx and y are bit-identical for 1, 2, 3 and 7 threads and from run to run, with either CPU kernels",
        arguments: problems, CPUSettings.Kernels.allCases)
    func threadCountsAgree(_ p: Problem, kernels: CPUSettings.Kernels) throws {
        try CPUSettings.$requestedKernels.withValue(kernels) { try threadCountsAgree(p) }
    }

    func threadCountsAgree(_ p: Problem) throws {
        let (baseline, gradients, x, dy, weight) = try run(p, threads: 1)
        // Not vacuous: the baseline must be right.
        let rows = x.count / p.shape.last!, weightRows = p.perHead ? p.shape[p.shape.count - 2] : 1
        let reference =
            switch p.norm {
            case .rms:
                Reference.rmsNormBackward(
                    outputGradient: dy, x: x, weight: weight, rows: rows, columns: p.shape.last!,
                    weightRows: weightRows, epsilon: 1e-6)
            case .layer:
                Reference.layerNormBackward(
                    outputGradient: dy, x: x, weight: weight, hasBias: true, rows: rows, columns: p.shape.last!,
                    weightRows: weightRows, epsilon: 1e-5)
            }
        let dwError = Reference.relativeError(try gradients.weight!.toArray(), reference.weight!)
        #expect(dwError <= Reference.tolerance(.float32), "\(p): dweight relative error \(dwError)")
        if let dbias = gradients.bias {
            let error = Reference.relativeError(try dbias.toArray(), reference.bias!)
            #expect(error <= Reference.tolerance(.float32), "\(p): dbias relative error \(error)")
        }
        for threads in Self.threadCounts + [CPUSettings.coreCount] {
            let (outputs, _, _, _, _) = try run(p, threads: threads)
            let differences = outputs.differences(from: baseline)
            #expect(
                differences.isEmpty, "\(p): elements differing with \(threads) threads from 1 thread: \(differences)")
        }
        let (again, _, _, _, _) = try run(p, threads: 3)
        let (yetAgain, _, _, _, _) = try run(p, threads: 3)
        let differences = again.differences(from: yetAgain)
        #expect(differences.isEmpty, "\(p): elements differing between two runs with 3 threads: \(differences)")
    }

    @Test("threadCount defaults to the core count, clamps to at least 1, and is restored")
    func threadCountSetting() {
        let previous = CPUSettings.threadCount
        defer { CPUSettings.threadCount = previous }
        #expect(CPUSettings.coreCount >= 1)
        // Every test that changes it restores it, and they run one at a time: this is still the default.
        #expect(previous == CPUSettings.coreCount, "threadCount \(previous), core count \(CPUSettings.coreCount)")
        CPUSettings.threadCount = 0
        #expect(CPUSettings.threadCount == 1, "threadCount = 0 should clamp to 1, got \(CPUSettings.threadCount)")
        CPUSettings.threadCount = -5
        #expect(CPUSettings.threadCount == 1, "threadCount = -5 should clamp to 1")
        CPUSettings.threadCount = 64
        #expect(CPUSettings.threadCount == 64)
    }
}
