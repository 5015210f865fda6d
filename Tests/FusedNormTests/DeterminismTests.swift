import FusedNorm
import FusedNormReference
import Testing

/// Results, dweight and dbias included, are bit-identical whatever `CPUSettings.threadCount` is, and from
/// run to run. Serialized: the thread count is process-wide.
@Suite("Determinism across thread counts and runs", .serialized)
struct DeterminismTests {
    static let threadCounts = [1, 2, 3, 7]

    /// Everything a forward and a backward pass produce, as bit patterns.
    struct Outputs: Equatable {
        var y: [UInt32], rstd: [UInt32], mean: [UInt32]?, dx: [UInt32], dweight: [UInt32], dbias: [UInt32]?
    }

    struct Problem: Sendable, CustomTestStringConvertible {
        var norm: Norm
        var shape: [Int]
        var dtype: DType
        var perHead: Bool
        var testDescription: String { "\(norm) \(shape) \(dtype)\(perHead ? " per-head" : "")" }
    }

    static let problems = [
        Problem(norm: .rms, shape: [257, 384], dtype: .float32, perHead: false),
        Problem(norm: .rms, shape: [257, 384], dtype: .bfloat16, perHead: false),
        Problem(norm: .layer, shape: [257, 384], dtype: .float32, perHead: false),
        Problem(norm: .rms, shape: [129, 4, 32], dtype: .float32, perHead: true),
        Problem(norm: .layer, shape: [65, 2, 96], dtype: .float16, perHead: true),
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
            gradients = try layerNormBackward(dy, input: x, weight: weight, bias: bias, mean: forward.mean, rstd: forward.rstd)
        }
        let outputs = Outputs(
            y: bits(try forward.output.toArray()), rstd: bits(try forward.rstd.toArray()),
            mean: try forward.mean.map { bits(try $0.toArray()) }, dx: bits(try gradients.input.toArray()),
            dweight: bits(try gradients.weight!.toArray()), dbias: try gradients.bias.map { bits(try $0.toArray()) })
        return (outputs, gradients, try x.toArray(), try dy.toArray(), try weight.toArray())
    }

    @Test("dweight, dbias, dx and y are bit-identical for 1, 2, 3 and 7 threads and from run to run", arguments: problems)
    func threadCountsAgree(_ p: Problem) throws {
        let (baseline, gradients, x, dy, weight) = try run(p, threads: 1)
        // Not vacuous: the baseline must be right.
        let rows = x.count / p.shape.last!, weightRows = p.perHead ? p.shape[p.shape.count - 2] : 1
        let reference = switch p.norm {
        case .rms:
            Reference.rmsNormBackward(outputGradient: dy, x: x, weight: weight, rows: rows, columns: p.shape.last!, weightRows: weightRows, epsilon: 1e-6)
        case .layer:
            Reference.layerNormBackward(outputGradient: dy, x: x, weight: weight, hasBias: true, rows: rows, columns: p.shape.last!,
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
            #expect(outputs.dweight == baseline.dweight, "\(p): dweight with \(threads) threads differs from 1 thread")
            #expect(outputs.dbias == baseline.dbias, "\(p): dbias with \(threads) threads differs from 1 thread")
            #expect(outputs.dx == baseline.dx, "\(p): dx with \(threads) threads differs from 1 thread")
            #expect(outputs.y == baseline.y && outputs.rstd == baseline.rstd && outputs.mean == baseline.mean,
                    "\(p): forward outputs with \(threads) threads differ from 1 thread")
        }
        let (again, _, _, _, _) = try run(p, threads: 3)
        let (yetAgain, _, _, _, _) = try run(p, threads: 3)
        #expect(again == yetAgain, "\(p): two runs with 3 threads differ")
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
