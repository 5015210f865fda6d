import FusedNorm
import FusedNormReference
import Testing

enum LayerNormForwardCases {
    static let dtypes = DType.allCases
    static let parameters: [DType?] = [.float32, .bfloat16, .float16, nil]

    /// Every N in every layout of x and of the output, cycling dtypes and weight/bias presence.
    static let shapes: [ForwardCase] = sweptColumns.enumerated().flatMap { i, n in
        Layout.allCases.enumerated().map { j, layout in
            let k = 4 * i + j
            return ForwardCase(
                norm: .layer, shape: sweptShape(columns: n, variant: j), x: dtypes[k % 3],
                weight: parameters[(i + j) % 4],
                bias: parameters[(i + 2 * j + 1) % 4], output: dtypes[(k / 3 + j) % 3], xLayout: layout,
                outputLayout: Layout.allCases[(i + j + 1) % 4], epsilon: [1e-5, 1e-6, 0.1][k % 3])
        }
    }

    /// Every combination of x, weight, bias and output dtypes on a small shape.
    static let dtypeCombinations: [ForwardCase] = dtypes.flatMap { x in
        parameters.flatMap { weight in
            parameters.flatMap { bias in
                dtypes.map { output in
                    ForwardCase(norm: .layer, shape: [3, 33], x: x, weight: weight, bias: bias, output: output)
                }
            }
        }
    }

    static let others: [ForwardCase] = [
        ForwardCase(norm: .layer, shape: [2, 4096], x: .bfloat16, weight: .bfloat16, bias: .bfloat16, api: .plain),
        ForwardCase(
            norm: .layer, shape: [3, 33], x: .float16, weight: nil, bias: nil, output: .float32,
            xLayout: .shiftedColumns, api: .plain),
        ForwardCase(norm: .layer, shape: [3, 127], x: .float32, weight: .float32, bias: .float32, scale: 1000),
        ForwardCase(
            norm: .layer, shape: [3, 127], x: .float32, weight: .float32, bias: .float32, epsilon: 1e-6, scale: 1e-3),
        ForwardCase(
            norm: .layer, shape: [3, 127], x: .float16, weight: .float32, bias: .bfloat16, weightLayout: .shiftedColumns
        ),
        ForwardCase(
            norm: .layer, shape: [2, 1025], x: .bfloat16, weight: .bfloat16, bias: .float32, xLayout: .everyThirdRow),
        ForwardCase(
            norm: .layer, shape: [2, 2047], x: .float32, weight: .float32, bias: .float32, residual: .bfloat16,
            outputLayout: .shiftedColumns),
        ForwardCase(
            norm: .layer, shape: [300, 8], x: .bfloat16, weight: .float32, bias: .float32, xLayout: .everyThirdRow,
            outputLayout: .shiftedColumns),
    ]

    /// Means large against the spread: 10^5 ± 2 (the GPU's plain fp32 sum moved the mean by 7e-3 and y by 4e-3 in S31).
    static let largeMeans: [ForwardCase] = [
        ForwardCase(norm: .layer, shape: [3, 4096], x: .float32, weight: .float32, bias: .float32, xOffset: 1e5),
        ForwardCase(
            norm: .layer, shape: [2, 4095], x: .float32, weight: .bfloat16, bias: .float32, output: .bfloat16,
            xOffset: 1e5),
        ForwardCase(
            norm: .layer, shape: [2, 2047], x: .float32, weight: .float32, bias: .float32, residual: .float32,
            xOffset: 1e5),
        ForwardCase(norm: .layer, shape: [2, 65536], x: .float32, weight: .float32, bias: .float32, xOffset: 1e5),
        // 16-bit rows, whose sums are first taken around 0 and must be taken again around the mean: one block
        // of statistics, and two.
        ForwardCase(norm: .layer, shape: [3, 4096], x: .float16, weight: .float16, bias: .float16, xOffset: 1000),
        ForwardCase(norm: .layer, shape: [2, 5120], x: .float16, weight: .float16, bias: .float16, xOffset: 1000),
        ForwardCase(norm: .layer, shape: [3, 256], x: .bfloat16, weight: .bfloat16, bias: .bfloat16, xOffset: 200),
    ]
}

@Suite("LayerNorm against the float64 reference")
struct LayerNormTests {
    @Test("forward: every N and layout (CPU)", arguments: LayerNormForwardCases.shapes)
    func forwardShapesCPU(_ c: ForwardCase) throws { try checkForward(c, on: .cpu) }

    @Test("forward: every N and layout (CUDA)", .requiresCUDA, arguments: LayerNormForwardCases.shapes)
    func forwardShapesCUDA(_ c: ForwardCase) throws { try checkForward(c, on: .cuda(0)) }

    @Test("forward: every dtype of x, weight, bias, output (CPU)", arguments: LayerNormForwardCases.dtypeCombinations)
    func forwardDTypesCPU(_ c: ForwardCase) throws { try checkForward(c, on: .cpu) }

    @Test(
        "forward: every dtype of x, weight, bias, output (CUDA)", .requiresCUDA,
        arguments: LayerNormForwardCases.dtypeCombinations)
    func forwardDTypesCUDA(_ c: ForwardCase) throws { try checkForward(c, on: .cuda(0)) }

    @Test("forward: strided weights, magnitudes, plain API (CPU)", arguments: LayerNormForwardCases.others)
    func forwardOthersCPU(_ c: ForwardCase) throws { try checkForward(c, on: .cpu) }

    @Test(
        "forward: strided weights, magnitudes, plain API (CUDA)", .requiresCUDA, arguments: LayerNormForwardCases.others
    )
    func forwardOthersCUDA(_ c: ForwardCase) throws { try checkForward(c, on: .cuda(0)) }

    @Test("backward: every N and layout (CPU)", arguments: BackwardCases.layerSweep)
    func backwardSweepCPU(_ c: BackwardCase) throws { try checkBackward(c, on: .cpu) }

    @Test("backward: every N and layout (CUDA)", .requiresCUDA, arguments: BackwardCases.layerSweep)
    func backwardSweepCUDA(_ c: BackwardCase) throws { try checkBackward(c, on: .cuda(0)) }

    @Test("backward: every dtype (CPU)", arguments: BackwardCases.layerDTypes)
    func backwardDTypesCPU(_ c: BackwardCase) throws { try checkBackward(c, on: .cpu) }

    @Test("backward: every dtype (CUDA)", .requiresCUDA, arguments: BackwardCases.layerDTypes)
    func backwardDTypesCUDA(_ c: BackwardCase) throws { try checkBackward(c, on: .cuda(0)) }

    @Test("backward: block edges and many rows (CPU)", arguments: BackwardCases.layerOthers)
    func backwardOthersCPU(_ c: BackwardCase) throws { try checkBackward(c, on: .cpu) }

    @Test("backward: block edges and many rows (CUDA)", .requiresCUDA, arguments: BackwardCases.layerOthers)
    func backwardOthersCUDA(_ c: BackwardCase) throws { try checkBackward(c, on: .cuda(0)) }

    @Test("backward: means large against the spread (CPU)", arguments: BackwardCases.layerLargeMeans)
    func backwardLargeMeansCPU(_ c: BackwardCase) throws { try checkBackward(c, on: .cpu) }

    @Test("forward: means large against the spread (CPU)", arguments: LayerNormForwardCases.largeMeans)
    func forwardLargeMeansCPU(_ c: ForwardCase) throws { try checkForward(c, on: .cpu) }

    @Test(
        "forward: means large against the spread (CUDA)", .requiresCUDA, .disabled(Self.cudaMeanLimitation),
        arguments: LayerNormForwardCases.largeMeans)
    func forwardLargeMeansCUDA(_ c: ForwardCase) throws { try checkForward(c, on: .cuda(0)) }

    @Test(
        "backward: means large against the spread (CUDA)", .requiresCUDA, .disabled(Self.cudaMeanLimitation),
        arguments: BackwardCases.layerLargeMeans)
    func backwardLargeMeansCUDA(_ c: BackwardCase) throws { try checkBackward(c, on: .cuda(0)) }

    /// Why the CUDA kernels fail the large-mean cases (docs/notes/gpu-layernorm-mean.md).
    static let cudaMeanLimitation: Comment = """
        The CUDA kernels take a recomputed mean as an fp32 sum over the row and subtract it rounded to fp32 (as \
        the peer kernels do): with float32 x at 10^5 ± 2, y is off by 4e-3 and dweight by 5e-3. The CPU centers \
        on a shift and carries the mean's rounding error. Centering the GPU's sums on the row's first value, or \
        the corrected two-pass mean, passes these cases but cost LayerNorm's bf16 forward 2-5% \
        (docs/notes/gpu-layernorm-mean.md): not kept.
        """

    @Test("The output has zero mean and unit variance per row without weight and bias", arguments: TestDevices.all)
    func normalizes(device: Device) throws {
        var rng = SplitMix64(label: "layernorm moments")
        let x = try Tensor(rng.values(4 * 512, 5, 9), shape: [4, 512], device: device)
        let y = try layerNorm(x, epsilon: 1e-12).toArray()
        for r in 0..<4 {
            let values = row(y, r, columns: 512).map(Double.init)
            let mean = values.reduce(0, +) / 512
            let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / 512
            #expect(abs(mean) < 1e-5, "row \(r) on \(device): mean \(mean)")
            #expect(abs(variance - 1) < 1e-4, "row \(r) on \(device): variance \(variance)")
        }
    }

    @Test(
        "dbias is computed from a destination alone, without the bias values", arguments: TestDevices.all,
        [false, true])
    func biasGradientWithoutBias(device: Device, perHead: Bool) throws {
        var rng = SplitMix64(label: "dbias without bias \(perHead)")
        let shape = perHead ? [5, 3, 40] : [7, 40], parameterShape = perHead ? [3, 40] : [40]
        let count = shape.reduce(1, *), parameters = parameterShape.reduce(1, *)
        let x = try Tensor(rng.values(count), shape: shape, dtype: .bfloat16, device: device)
        let dy = try Tensor(rng.values(count, -1, 1), shape: shape, dtype: .bfloat16, device: device)
        let weight = try Tensor(
            rng.values(parameters, 0.5, 1.5), shape: parameterShape, dtype: .bfloat16, device: device)
        let bias = try Tensor(rng.values(parameters), shape: parameterShape, dtype: .float32, device: device)
        let destination = try Tensor.zeros(parameterShape, dtype: .float32, device: device)
        let gradients = try layerNormBackward(dy, input: x, weight: weight, biasGradient: destination)
        let dbias = try #require(gradients.bias, "no dbias returned on \(device)")
        #expect(dbias.shape == parameterShape && dbias.dtype == .float32)
        #expect(
            try differingBits(dbias.toArray(), destination.toArray()) == 0, "dbias was not written into the destination"
        )
        // The same bits as with a bias of its dtype, and the same dx and dweight as without dbias.
        let withBias = try layerNormBackward(dy, input: x, weight: weight, bias: bias)
        #expect(
            try differingBits(dbias.toArray(), withBias.bias!.toArray()) == 0,
            "dbias with and without the bias on \(device)")
        #expect(try differingBits(gradients.input.toArray(), withBias.input.toArray()) == 0)
        #expect(try differingBits(gradients.weight!.toArray(), withBias.weight!.toArray()) == 0)
        let reference = Reference.layerNormBackward(
            outputGradient: try dy.toArray(), x: try x.toArray(), weight: try weight.toArray(), hasBias: true,
            rows: count / 40, columns: 40, weightRows: perHead ? 3 : 1, epsilon: 1e-5)
        let error = Reference.relativeError(try dbias.toArray(), reference.bias!)
        #expect(error <= Reference.tolerance(.float32), "dbias relative error \(error) on \(device)")
        // Without a weight too; a destination of another shape than the weight's is refused.
        let noWeight = try layerNormBackward(
            dy, input: x, biasGradient: try Tensor.zeros(parameterShape, device: device))
        let noWeightError = Reference.relativeError(try noWeight.bias!.toArray(), reference.bias!)
        #expect(
            noWeightError <= Reference.tolerance(.float32), "dbias without a weight: relative error \(noWeightError)")
        expectError(.shapeMismatch, argument: "biasGradient", "dbias of another shape on \(device)") {
            try layerNormBackward(dy, input: x, weight: weight, biasGradient: try Tensor.zeros([41], device: device))
        }
    }

    @Test(
        "Gradients of rows whose mean is exact but large against the spread keep x − mean exact (CPU; CUDA: see cudaMeanLimitation)",
        arguments: DType.allCases)
    func exactMeanFarFromZero(dxDType: DType) throws {
        let device = Device.cpu  // the CUDA kernels fail this (cudaMeanLimitation)
        // x = 10^5 ± k/128 in pairs: the mean is exactly 10^5 (no rounding error for the kernels to carry), while
        // mean·rstd ≈ 10^5, whose rounding alone would move ŝ by ~0.003.
        var rng = SplitMix64(label: "layernorm exact mean")
        let rows = 2, n = 2048
        let x = (0..<rows).flatMap { _ in
            let steps = rng.values(n / 2, 1, 256).map { Float(Int($0)) / 128 }
            return zip(steps, steps.reversed()).flatMap { [100_000 + $0, 100_000 - $1] }
        }
        let dy = rng.values(rows * n, -1, 1), weight = rng.values(n, 0.5, 1.5)
        let gradients = try layerNormBackward(
            Tensor(dy, shape: [rows, n], device: device), input: Tensor(x, shape: [rows, n], device: device),
            weight: Tensor(weight, device: device),
            inputGradient: Tensor.zeros([rows, n], dtype: dxDType, device: device))
        let reference = Reference.layerNormBackward(
            outputGradient: dy, x: x, weight: weight, hasBias: false, rows: rows, columns: n, epsilon: 1e-5)
        let dxError = Reference.relativeError(try gradients.input.toArray(), reference.input)
        let dweightError = Reference.relativeError(try gradients.weight!.toArray(), reference.weight!)
        #expect(dxError <= Reference.tolerance(dxDType), "dx (\(dxDType)) on \(device): \(dxError)")
        #expect(dweightError <= Reference.tolerance(.float32), "dweight on \(device): \(dweightError)")
    }

    @Test("LayerNorm's saved mean and rstd give the same gradients as recomputing them", arguments: TestDevices.all)
    func savedStatisticsAgree(device: Device) throws {
        var rng = SplitMix64(label: "layernorm saved")
        let x = try Tensor(rng.values(4 * 96, -1, 3), shape: [4, 96], device: device)
        let dy = try Tensor(rng.values(4 * 96, -1, 1), shape: [4, 96], device: device)
        let weight = try Tensor(rng.values(96, 0.5, 1.5), device: device)
        let bias = try Tensor(rng.values(96, -0.5, 0.5), device: device)
        let forward = try layerNormForward(x, weight: weight, bias: bias)
        let saved = try layerNormBackward(
            dy, input: x, weight: weight, bias: bias, mean: forward.mean, rstd: forward.rstd)
        let recomputed = try layerNormBackward(dy, input: x, weight: weight, bias: bias)
        for (name, a, b) in [
            ("dx", saved.input, recomputed.input), ("dweight", saved.weight!, recomputed.weight!),
            ("dbias", saved.bias!, recomputed.bias!),
        ] {
            let error = Reference.relativeError(try a.toArray(), doubles(try b.toArray()))
            #expect(error <= 1e-5, "\(name) with saved vs recomputed statistics on \(device): \(error)")
        }
    }
}
