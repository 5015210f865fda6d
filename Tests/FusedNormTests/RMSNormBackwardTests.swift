import FusedNorm
import FusedNormReference
import Testing

enum BackwardCases {
    static let dtypes = DType.allCases
    static let weights: [DType?] = [.float32, .bfloat16, .float16, nil]

    /// ε for a sweep over N. Where the normalized vector has one degree of freedom (RMSNorm at N = 1,
    /// LayerNorm at N = 2) dx is proportional to ε: for RMSNorm at N = 1, dx = r·g·(1 − ŝ²) with
    /// 1 − ŝ² = ε/(x² + ε), and LayerNorm at N = 2 is the same after centering. With a tiny ε that is a
    /// cancellation fp32 cannot resolve (the float64 reference can), so these sizes use a large ε.
    static func epsilon(_ norm: Norm, columns: Int, variant: Int) -> Float {
        columns <= (norm == .rms ? 1 : 2) ? 0.5 : [1e-5, 1e-6, 1e-3][variant % 3]
    }

    /// Every N in every layout of x, dy and a preallocated dx, cycling dtypes, weights, statistics and
    /// residual gradients.
    static func sweep(_ norm: Norm) -> [BackwardCase] {
        sweptColumns.enumerated().flatMap { i, n in
            Layout.allCases.enumerated().map { j, layout in
                let k = 4 * i + j
                let weight = weights[(i + j) % 4]
                return BackwardCase(
                    norm: norm, shape: sweptShape(columns: n, variant: j), x: dtypes[k % 3],
                    dy: dtypes[(k / 3 + j) % 3],
                    weight: weight, bias: norm == .layer && j % 2 == 0 ? dtypes[(k + 1) % 3] : nil,
                    weightOffset: norm == .rms ? Float((i / 2 + j) % 2) : 0, savedStatistics: (i + j) % 2 == 1,
                    residualGradient: k % 3 == 0 ? dtypes[(k / 3) % 3] : nil,
                    inputGradient: j == 0 ? nil : dtypes[(i + j) % 3],
                    xLayout: layout, dyLayout: Layout.allCases[(i + j + 1) % 4],
                    residualGradientLayout: Layout.allCases[(i + j + 2) % 4],
                    inputGradientLayout: Layout.allCases[(i + j + 3) % 4],
                    epsilon: epsilon(norm, columns: n, variant: k))
            }
        }
    }

    /// Every combination of x dtype, dy dtype, weight dtype (or none), saved statistics, on a small shape.
    static func dtypeCombinations(_ norm: Norm) -> [BackwardCase] {
        dtypes.flatMap { x in
            dtypes.flatMap { dy in
                weights.flatMap { weight in
                    [false, true].map { saved in
                        BackwardCase(
                            norm: norm, shape: [3, 33], x: x, dy: dy, weight: weight,
                            bias: norm == .layer && saved ? (weight ?? .bfloat16) : nil,
                            weightOffset: norm == .rms && saved && weight != nil ? 1 : 0, savedStatistics: saved,
                            residualGradient: saved ? nil : x, inputGradient: saved ? .float32 : nil)
                    }
                }
            }
        }
    }

    /// LayerNorm rows whose mean is large against their spread (recomputed statistics: a saved fp32 mean would
    /// itself be off by half its ulp, more than the tolerances).
    static let layerLargeMeans = [
        BackwardCase(
            norm: .layer, shape: [2, 4095], x: .float32, dy: .bfloat16, bias: .float32, inputGradient: .float16,
            xOffset: 1e5),
        BackwardCase(norm: .layer, shape: [2, 1025], x: .float32, inputGradient: .bfloat16, xOffset: 1e6),
        BackwardCase(norm: .layer, shape: [2, 4096], x: .float32, bias: .float32, xOffset: 1e5),
        BackwardCase(norm: .layer, shape: [2, 4095], x: .float16, weight: .bfloat16, bias: .float32, xOffset: 200),
    ]

    /// Either side of a 1024-element block, and many rows (work split over threads, several gradient groups).
    static func others(_ norm: Norm) -> [BackwardCase] {
        [
            BackwardCase(
                norm: norm, shape: [2, 1023], x: .bfloat16, weight: .float32, bias: norm == .layer ? .float32 : nil,
                savedStatistics: true),
            BackwardCase(
                norm: norm, shape: [2, 1025], x: .float32, dy: .bfloat16, weight: .bfloat16,
                weightOffset: norm == .rms ? 1 : 0,
                residualGradient: .float32, inputGradient: .float32, inputGradientLayout: .shiftedColumns),
            BackwardCase(
                norm: norm, shape: [300, 24], x: .float16, weight: .float32, bias: norm == .layer ? .bfloat16 : nil,
                savedStatistics: true, xLayout: .everyThirdRow),
            BackwardCase(
                norm: norm, shape: [100, 4, 16], x: .bfloat16, weight: .float32, bias: norm == .layer ? .float32 : nil,
                perHead: true,
                inputGradient: .bfloat16, inputGradientLayout: .everyThirdRow),
        ]
    }

    static let rmsSweep = sweep(.rms)
    static let rmsOthers = others(.rms)
    static let layerOthers = others(.layer)
    static let rmsDTypes = dtypeCombinations(.rms)
    static let layerSweep = sweep(.layer)
    static let layerDTypes = dtypeCombinations(.layer)
}

@Suite("RMSNorm backward against the float64 reference")
struct RMSNormBackwardTests {
    @Test("every N and layout (CPU)", arguments: BackwardCases.rmsSweep)
    func sweepCPU(_ c: BackwardCase) throws { try checkBackward(c, on: .cpu) }

    @Test("every N and layout (CUDA)", .requiresCUDA, arguments: BackwardCases.rmsSweep)
    func sweepCUDA(_ c: BackwardCase) throws { try checkBackward(c, on: .cuda(0)) }

    @Test("every dtype (CPU)", arguments: BackwardCases.rmsDTypes)
    func dtypesCPU(_ c: BackwardCase) throws { try checkBackward(c, on: .cpu) }

    @Test("every dtype (CUDA)", .requiresCUDA, arguments: BackwardCases.rmsDTypes)
    func dtypesCUDA(_ c: BackwardCase) throws { try checkBackward(c, on: .cuda(0)) }

    @Test("block edges and many rows (CPU)", arguments: BackwardCases.rmsOthers)
    func othersCPU(_ c: BackwardCase) throws { try checkBackward(c, on: .cpu) }

    @Test("block edges and many rows (CUDA)", .requiresCUDA, arguments: BackwardCases.rmsOthers)
    func othersCUDA(_ c: BackwardCase) throws { try checkBackward(c, on: .cuda(0)) }

    @Test("Saved rstd and recomputed rstd give the same gradients", arguments: TestDevices.all)
    func savedStatisticsAgree(device: Device) throws {
        var rng = SplitMix64(label: "saved rstd")
        let x = try Tensor(rng.values(4 * 96), shape: [4, 96], dtype: .bfloat16, device: device)
        let dy = try Tensor(rng.values(4 * 96, -1, 1), shape: [4, 96], dtype: .bfloat16, device: device)
        let weight = try Tensor(rng.values(96, 0.5, 1.5), device: device)
        let forward = try rmsNormForward(x, weight: weight)
        let saved = try rmsNormBackward(dy, input: x, weight: weight, rstd: forward.rstd)
        let recomputed = try rmsNormBackward(dy, input: x, weight: weight)
        let dxError = Reference.relativeError(try saved.input.toArray(), doubles(try recomputed.input.toArray()))
        let dwError = Reference.relativeError(try saved.weight!.toArray(), doubles(try recomputed.weight!.toArray()))
        #expect(dxError <= Reference.tolerance(.bfloat16), "dx with saved vs recomputed rstd on \(device): \(dxError)")
        #expect(
            dwError <= Reference.tolerance(.float32), "dweight with saved vs recomputed rstd on \(device): \(dwError)")
    }

    @Test("A residual gradient is added to dx, and a zero one changes nothing", arguments: TestDevices.all)
    func residualGradientAdds(device: Device) throws {
        var rng = SplitMix64(label: "residual gradient")
        let x = try Tensor(rng.values(3 * 50), shape: [3, 50], device: device)
        let dy = try Tensor(rng.values(3 * 50, -1, 1), shape: [3, 50], device: device)
        let ds = rng.values(3 * 50, -1, 1)
        let weight = try Tensor(rng.values(50, 0.5, 1.5), device: device)
        let plain = try rmsNormBackward(dy, input: x, weight: weight).input.toArray()
        let withZero = try rmsNormBackward(
            dy, input: x, weight: weight, residualGradient: Tensor.zeros([3, 50], device: device))
        let withGradient = try rmsNormBackward(
            dy, input: x, weight: weight, residualGradient: Tensor(ds, shape: [3, 50], device: device))
        #expect(try withZero.input.toArray() == plain, "a zero residual gradient changed dx on \(device)")
        let expected = zip(plain, ds).map { Double($0) + Double($1) }
        let error = Reference.relativeError(try withGradient.input.toArray(), expected)
        #expect(error <= 1e-6, "dx + ds on \(device): relative error \(error)")
    }
}
