import FusedNorm
import FusedNormReference
import Testing

enum ResidualCases {
    static let dtypes = DType.allCases
    static let residualDTypes: [DType?] = [nil, .float32, .bfloat16, .float16]

    /// Every x dtype × residual dtype × residualDType (default or each) × output dtype, RMSNorm, small shape.
    static let dtypeCombinations: [ForwardCase] = dtypes.flatMap { x in
        dtypes.flatMap { residual in
            residualDTypes.flatMap { residualDType in
                dtypes.map { output in
                    ForwardCase(
                        norm: .rms, shape: [3, 33], x: x, weight: .bfloat16, residual: residual,
                        residualDType: residualDType, output: output)
                }
            }
        }
    }

    /// The mixed-precision pre-norm block (x bf16, residual stream fp32), each rounding and offset, each N,
    /// with strided inputs and outputs; LayerNorm too.
    static let mixed: [ForwardCase] = sweptColumns.enumerated().flatMap { i, n in
        Layout.allCases.enumerated().compactMap { j, layout -> ForwardCase? in
            // At the largest sizes two layouts are enough (debug builds).
            if n >= 4095, j % 2 == 1 { return nil }
            let k = 4 * i + j
            return ForwardCase(
                norm: k % 5 == 4 ? .layer : .rms, shape: sweptShape(columns: n, variant: j), x: .bfloat16,
                weight: [.float32, .bfloat16, nil][k % 3], bias: k % 5 == 4 ? .float32 : nil,
                weightOffset: k % 5 == 4 ? 0 : Float(k % 2), rounding: (i + j) % 2 == 0 ? .twice : .once,
                residual: .float32, residualDType: [.float32, .bfloat16][(i + j / 2) % 2], output: .float32,
                xLayout: layout, residualLayout: Layout.allCases[(i + j + 1) % 4],
                outputLayout: Layout.allCases[(i + j + 2) % 4], residualOutputLayout: Layout.allCases[(i + j + 3) % 4])
        }
    }

    static let others: [ForwardCase] = [
        ForwardCase(
            norm: .rms, shape: [2, 4096], x: .bfloat16, weight: .bfloat16, rounding: .twice, residual: .bfloat16,
            api: .plain),
        ForwardCase(
            norm: .rms, shape: [3, 100], x: .bfloat16, weight: .bfloat16, residual: .float32, output: .float32,
            api: .plain),
        ForwardCase(
            norm: .rms, shape: [3, 100], x: .float16, weight: .float32, weightOffset: 1, residual: .float32,
            residualDType: .bfloat16, api: .plain),
        ForwardCase(
            norm: .layer, shape: [3, 100], x: .bfloat16, weight: .bfloat16, bias: .bfloat16, residual: .bfloat16,
            api: .plain),
        ForwardCase(
            norm: .layer, shape: [3, 100], x: .float32, weight: .float32, bias: .float32, residual: .float16,
            residualDType: .float32, output: .bfloat16, api: .plain),
        ForwardCase(
            norm: .rms, shape: [2, 4, 16], x: .bfloat16, weight: .float32, perHead: true, rounding: .twice,
            residual: .float32, residualDType: .bfloat16, output: .bfloat16),
    ]
}

@Suite("Fused residual add: s = x + residual stored in its dtype, y = norm(s)")
struct ResidualTests {
    @Test("every dtype combination (CPU)", arguments: ResidualCases.dtypeCombinations)
    func dtypesCPU(_ c: ForwardCase) throws { try checkForward(c, on: .cpu) }

    @Test("every dtype combination (CUDA)", .requiresCUDA, arguments: ResidualCases.dtypeCombinations)
    func dtypesCUDA(_ c: ForwardCase) throws { try checkForward(c, on: .cuda(0)) }

    @Test("bf16 block with fp32 residual stream, every N and layout (CPU)", arguments: ResidualCases.mixed)
    func mixedCPU(_ c: ForwardCase) throws { try checkForward(c, on: .cpu) }

    @Test(
        "bf16 block with fp32 residual stream, every N and layout (CUDA)", .requiresCUDA, arguments: ResidualCases.mixed
    )
    func mixedCUDA(_ c: ForwardCase) throws { try checkForward(c, on: .cuda(0)) }

    @Test("plain API and per-head (CPU)", arguments: ResidualCases.others)
    func othersCPU(_ c: ForwardCase) throws { try checkForward(c, on: .cpu) }

    @Test("plain API and per-head (CUDA)", .requiresCUDA, arguments: ResidualCases.others)
    func othersCUDA(_ c: ForwardCase) throws { try checkForward(c, on: .cuda(0)) }

    @Test(
        "The fused pass equals the unfused `s = x + residual; y = norm(s)`", arguments: TestDevices.all,
        [DType.bfloat16, .float32])
    func fusedEqualsUnfused(device: Device, residualDType: DType) throws {
        var rng = SplitMix64(label: "fused vs unfused \(residualDType)")
        let shape = [4, 320]
        let x = try Tensor(rng.values(1280), shape: shape, dtype: .bfloat16, device: device)
        let residual = try Tensor(rng.values(1280), shape: shape, dtype: .float32, device: device)
        let weight = try Tensor(rng.values(320, 0.5, 1.5), dtype: .bfloat16, device: device)
        let fused = try rmsNorm(x, residual: residual, weight: weight, style: .llama, residualDType: residualDType)
        let unfusedS = try Tensor(
            zip(try x.toArray(), try residual.toArray()).map { $0 + $1 }, shape: shape, dtype: residualDType,
            device: device)
        let unfusedY = try rmsNorm(unfusedS, weight: weight, style: .llama, outputDType: .bfloat16)
        let label = "x bf16, residual fp32 -> \(residualDType) on \(device)"
        #expect(
            try differingBits(fused.residual.toArray(), unfusedS.toArray()) == 0,
            "\(label): s differs from the unfused add")
        let y = try fused.output.toArray()
        #expect(fused.output.dtype == .bfloat16, "\(label): y should default to x's dtype, got \(fused.output.dtype)")
        // Documented as "exactly as the unfused ... would": bit for bit.
        let mismatches = zip(bits(y), bits(try unfusedY.toArray())).filter { $0 != $1 }.count
        #expect(mismatches == 0, "\(label): \(mismatches) of \(y.count) elements of y differ from the unfused result")
        #expect(fused.residual.dtype == residualDType, "\(label): s has dtype \(fused.residual.dtype)")
    }

    @Test("By default s is stored in the residual's dtype and y in x's", arguments: TestDevices.all)
    func defaultDTypes(device: Device) throws {
        let x = try Tensor([1, 2, 3, 4], shape: [2, 2], dtype: .float16, device: device)
        let residual = try Tensor([0.5, 0.25, -1, 2], shape: [2, 2], dtype: .bfloat16, device: device)
        let (y, s) = try rmsNorm(x, residual: residual)
        #expect(y.dtype == .float16 && s.dtype == .bfloat16, "on \(device): y \(y.dtype), s \(s.dtype)")
        let sValues = try s.toArray()
        #expect(sValues == [1.5, 2.25, 2, 6], "on \(device): s = \(sValues)")
        let (ly, ls) = try layerNorm(x, residual: residual)
        #expect(ly.dtype == .float16 && ls.dtype == .bfloat16, "LayerNorm on \(device): y \(ly.dtype), s \(ls.dtype)")
    }

    @Test(
        "The backward pass of a fused block: dx and dresidual are dL/ds = backward(s) + ds", arguments: TestDevices.all)
    func fusedBackward(device: Device) throws {
        var rng = SplitMix64(label: "fused backward")
        let shape = [3, 64]
        let x = try Tensor(rng.values(192), shape: shape, dtype: .bfloat16, device: device)
        let residual = try Tensor(rng.values(192), shape: shape, dtype: .float32, device: device)
        let weight = try Tensor(rng.values(64, 0.5, 1.5), device: device)
        let forward = try rmsNormForward(x, residual: residual, weight: weight, residualDType: .float32)
        let s = try #require(forward.residual)
        let dy = rng.values(192, -1, 1), ds = rng.values(192, -1, 1)
        let gradients = try rmsNormBackward(
            Tensor(dy, shape: shape, device: device), input: s, weight: weight, rstd: forward.rstd,
            residualGradient: Tensor(ds, shape: shape, device: device))
        let reference = Reference.rmsNormBackward(
            outputGradient: dy, x: try s.toArray(), weight: try weight.toArray(), rows: 3, columns: 64, epsilon: 1e-6,
            residualGradient: ds)
        let error = Reference.relativeError(try gradients.input.toArray(), reference.input)
        #expect(error <= Reference.tolerance(.float32), "dx on \(device): relative error \(error)")
        let dwError = Reference.relativeError(try gradients.weight!.toArray(), reference.weight!)
        #expect(dwError <= Reference.tolerance(.float32), "dweight on \(device): relative error \(dwError)")
    }
}
