import FusedNorm
import FusedNormReference
import Testing

@Suite("RMSNorm and LayerNorm layers")
struct LayerTypeTests {
    static let styles: [(String, RMSNormStyle)] = [("llama", .llama), ("gemma", .gemma), ("standard", .standard)]

    @Test("Styles: standard is offset 0 with one rounding, llama offset 0 with two, gemma offset 1 with one")
    func styles() {
        #expect(RMSNormStyle.standard == RMSNormStyle(weightOffset: 0, rounding: .once))
        #expect(RMSNormStyle.standard == RMSNormStyle())
        #expect(RMSNormStyle.llama == RMSNormStyle(weightOffset: 0, rounding: .twice))
        #expect(RMSNormStyle.gemma == RMSNormStyle(weightOffset: 1, rounding: .once))
        #expect(RMSNormStyle.llama.initialWeight == 1 && RMSNormStyle.gemma.initialWeight == 0)
        for (name, style) in Self.styles {
            #expect(RMSNormStyle(presetName: name) == style && style.description == name)
        }
        #expect(RMSNormStyle(presetName: "mistral") == nil)
        #expect(RMSNormStyle(weightOffset: 1, rounding: .twice).description == "weightOffset=1.0, rounding=twice")
    }

    @Test(
        "One default style: the function, the layer from a weight and a new layer give the same bits",
        arguments: TestDevices.all)
    func oneDefaultStyle(device: Device) throws {
        var rng = SplitMix64(label: "default style")
        let x = try Tensor(rng.values(4 * 96), shape: [4, 96], dtype: .bfloat16, device: device)
        let weight = try Tensor(repeating: 1, shape: [96], dtype: .bfloat16, device: device)
        let function = try rmsNorm(x, weight: weight).toArray()
        let fromWeight = try RMSNorm(weight: weight)
        let new = try RMSNorm(dimensions: 96, dtype: .bfloat16, device: device)
        #expect(fromWeight.style == .standard && new.style == .standard)
        #expect(try differingBits(function, fromWeight(x).toArray()) == 0, "function and RMSNorm(weight:) on \(device)")
        #expect(try differingBits(function, new(x).toArray()) == 0, "function and RMSNorm(dimensions:) on \(device)")
        #expect(try differingBits(function, rmsNorm(x, weight: weight, style: .standard).toArray()) == 0)
        // The default is one rounding: with a weight of 1 y is round(ŝ), and llama's round(round(ŝ)) is the same,
        // so compare on a weight that is not 1, where the two differ.
        let scale = try Tensor(repeating: 1.5, shape: [96], dtype: .float32, device: device)
        let once = try rmsNorm(x, weight: scale, outputDType: .float32).toArray()
        let twice = try rmsNorm(x, weight: scale, style: .llama, outputDType: .float32).toArray()
        #expect(differingBits(once, twice) > 0, "the default rounds once, llama twice, on \(device)")
    }

    @Test(
        "A new RMSNorm scales by 1: weight ones (llama, standard) or zeros plus offset 1 (gemma)",
        arguments: TestDevices.all, DType.allCases)
    func newRMSNormIsIdentityScale(device: Device, dtype: DType) throws {
        for (name, style) in Self.styles {
            let norm = try RMSNorm(dimensions: 48, style: style, dtype: dtype, device: device)
            let label = "\(name) \(dtype) on \(device)"
            let weight = try #require(norm.weight, "\(label): no weight")
            #expect(
                weight.shape == [48] && weight.dtype == dtype && weight.device == device, "\(label): weight \(weight)")
            #expect(
                try weight.toArray() == [Float](repeating: style.initialWeight, count: 48), "\(label): initial weight")
            #expect(norm.dimensions == 48 && norm.style == style && norm.epsilon == 1e-6, "\(label): properties")
            var rng = SplitMix64(label: label)
            let x = try Input(rng.values(3 * 48), shape: [3, 48], dtype: dtype, device: device)
            let y = try norm(x.tensor)
            #expect(y.dtype == dtype && y.shape == [3, 48], "\(label): y is \(y)")
            // Scale 1: the weightless reference.
            let reference = Reference.rmsNorm(
                x: x.values, weight: nil, rows: 3, columns: 48, epsilon: 1e-6,
                style: RMSNormStyle(rounding: style.rounding), roundingDType: dtype)
            let error = Reference.relativeError(try y.toArray(), reference.output)
            #expect(error <= Reference.tolerance(dtype, rounding: style.rounding), "\(label): relative error \(error)")
        }
    }

    @Test("Per-head and weightless RMSNorm layers", arguments: TestDevices.all)
    func perHeadAndWeightless(device: Device) throws {
        let perHead = try RMSNorm(dimensions: 16, style: .gemma, heads: 4, device: device)
        #expect(
            perHead.weight?.shape == [4, 16] && perHead.dimensions == 16,
            "per-head weight \(String(describing: perHead.weight))")
        #expect(try perHead.weight!.toArray().allSatisfy { $0 == 0 }, "gemma per-head weight starts at zeros")
        let weightless = try RMSNorm(dimensions: 16, affine: false, device: device)
        #expect(weightless.weight == nil)
        var rng = SplitMix64(label: "per-head layer")
        let x = try Tensor(rng.values(2 * 4 * 16), shape: [2, 4, 16], device: device)
        let a = try perHead(x).toArray(), b = try weightless(x).toArray()
        let error = Reference.relativeError(a, doubles(b))
        #expect(error <= 1e-6, "a new per-head gemma layer and a weightless one differ on \(device): \(error)")
        let backward = try perHead.backward(Tensor(rng.values(128), shape: [2, 4, 16], device: device), input: x)
        #expect(backward.weight?.shape == [4, 16], "per-head dweight shape \(String(describing: backward.weight))")
    }

    @Test("RMSNorm's entry points equal the functional API bit for bit", arguments: TestDevices.all)
    func rmsNormMatchesFunctions(device: Device) throws {
        var rng = SplitMix64(label: "rms layer")
        let stored = try Tensor(rng.values(64, -0.5, 0.5), dtype: .bfloat16, device: device)
        for (name, style) in Self.styles {
            let norm = try RMSNorm(weight: stored, epsilon: 1e-5, style: style)
            #expect(norm.dimensions == 64)
            let label = "\(name) on \(device)"
            let x = try Tensor(rng.values(3 * 64), shape: [3, 64], dtype: .bfloat16, device: device)
            let residual = try Tensor(rng.values(3 * 64), shape: [3, 64], dtype: .float32, device: device)
            let dy = try Tensor(rng.values(3 * 64, -1, 1), shape: [3, 64], dtype: .bfloat16, device: device)
            let functional = try rmsNorm(x, weight: stored, epsilon: 1e-5, style: style)
            #expect(try differingBits(norm(x).toArray(), functional.toArray()) == 0, "\(label): callAsFunction")

            let layerResidual = try norm(x, residual: residual)
            let functionalResidual = try rmsNorm(x, residual: residual, weight: stored, epsilon: 1e-5, style: style)
            #expect(
                try differingBits(layerResidual.output.toArray(), functionalResidual.output.toArray()) == 0,
                "\(label): residual call, y")
            #expect(
                try differingBits(layerResidual.residual.toArray(), functionalResidual.residual.toArray()) == 0,
                "\(label): residual call, s")

            let forward = try norm.forward(x, residual: residual)
            let functionalForward = try rmsNormForward(
                x, residual: residual, weight: stored, epsilon: 1e-5, style: style)
            #expect(
                try differingBits(forward.output.toArray(), functionalForward.output.toArray()) == 0,
                "\(label): forward y")
            #expect(
                try differingBits(forward.rstd.toArray(), functionalForward.rstd.toArray()) == 0,
                "\(label): forward rstd")
            #expect(
                try differingBits(forward.output.toArray(), layerResidual.output.toArray()) == 0,
                "\(label): forward and call agree")

            let s = try #require(forward.residual)
            let backward = try norm.backward(dy, input: s, rstd: forward.rstd, residualGradient: residual)
            let functionalBackward = try rmsNormBackward(
                dy, input: s, weight: stored, rstd: forward.rstd, residualGradient: residual,
                epsilon: 1e-5, style: style)
            #expect(
                try differingBits(backward.input.toArray(), functionalBackward.input.toArray()) == 0,
                "\(label): backward dx")
            #expect(
                try differingBits(backward.weight!.toArray(), functionalBackward.weight!.toArray()) == 0,
                "\(label): backward dweight")
            // And the layer's backward is right, not merely consistent.
            let reference = Reference.rmsNormBackward(
                outputGradient: try dy.toArray(), x: try s.toArray(), weight: try stored.toArray(),
                rows: 3, columns: 64, epsilon: 1e-5, style: style,
                residualGradient: try residual.toArray())
            let error = Reference.relativeError(try backward.input.toArray(), reference.input)
            #expect(error <= Reference.tolerance(.bfloat16), "\(label): backward dx relative error \(error)")
        }
    }

    @Test("A new LayerNorm has weight ones and bias zeros, or neither", arguments: TestDevices.all, DType.allCases)
    func newLayerNorm(device: Device, dtype: DType) throws {
        let norm = try LayerNorm(dimensions: 40, dtype: dtype, device: device)
        let label = "\(dtype) on \(device)"
        #expect(norm.dimensions == 40 && norm.epsilon == 1e-5)
        #expect(try norm.weight?.toArray() == [Float](repeating: 1, count: 40), "\(label): weight")
        #expect(try norm.bias?.toArray() == [Float](repeating: 0, count: 40), "\(label): bias")
        #expect(
            norm.weight?.dtype == dtype && norm.bias?.dtype == dtype && norm.weight?.device == device,
            "\(label): parameter dtype/device")
        let noBias = try LayerNorm(dimensions: 40, bias: false, device: device)
        #expect(noBias.weight != nil && noBias.bias == nil, "\(label): bias: false")
        let plain = try LayerNorm(dimensions: 40, affine: false, device: device)
        #expect(plain.weight == nil && plain.bias == nil, "\(label): affine: false")

        var rng = SplitMix64(label: "new layernorm \(dtype)")
        let x = try Input(rng.values(2 * 40, -1, 3), shape: [2, 40], dtype: dtype, device: device)
        let reference = Reference.layerNorm(x: x.values, weight: nil, bias: nil, rows: 2, columns: 40, epsilon: 1e-5)
        for (name, layer) in [("affine", norm), ("no bias", noBias), ("no affine", plain)] {
            let y = try layer(x.tensor)
            #expect(y.dtype == dtype, "\(label) \(name): y dtype \(y.dtype)")
            let error = Reference.relativeError(try y.toArray(), reference.output)
            #expect(
                error <= Reference.tolerance(dtype),
                "\(label) \(name): a new layer is not the plain normalization: \(error)")
        }
    }

    @Test("LayerNorm's entry points equal the functional API bit for bit", arguments: TestDevices.all)
    func layerNormMatchesFunctions(device: Device) throws {
        var rng = SplitMix64(label: "layer layer")
        let weight = try Tensor(rng.values(72, 0.5, 1.5), device: device)
        let bias = try Tensor(rng.values(72, -0.5, 0.5), dtype: .bfloat16, device: device)
        let norm = try LayerNorm(weight: weight, bias: bias, epsilon: 1e-4)
        #expect(norm.dimensions == 72)
        let x = try Tensor(rng.values(4 * 72), shape: [4, 72], dtype: .float16, device: device)
        let residual = try Tensor(rng.values(4 * 72), shape: [4, 72], device: device)
        let dy = try Tensor(rng.values(4 * 72, -1, 1), shape: [4, 72], device: device)
        let label = "on \(device)"
        #expect(
            try differingBits(norm(x).toArray(), layerNorm(x, weight: weight, bias: bias, epsilon: 1e-4).toArray())
                == 0, "\(label): call")
        let call = try norm(x, residual: residual)
        let functional = try layerNorm(x, residual: residual, weight: weight, bias: bias, epsilon: 1e-4)
        #expect(try differingBits(call.output.toArray(), functional.output.toArray()) == 0, "\(label): residual call y")
        #expect(
            try differingBits(call.residual.toArray(), functional.residual.toArray()) == 0, "\(label): residual call s")
        let forward = try norm.forward(x)
        let functionalForward = try layerNormForward(x, weight: weight, bias: bias, epsilon: 1e-4)
        #expect(
            try differingBits(forward.output.toArray(), functionalForward.output.toArray()) == 0, "\(label): forward y")
        #expect(
            try differingBits(forward.mean!.toArray(), functionalForward.mean!.toArray()) == 0, "\(label): forward mean"
        )
        let backward = try norm.backward(dy, input: x, mean: forward.mean, rstd: forward.rstd)
        let functionalBackward = try layerNormBackward(
            dy, input: x, weight: weight, bias: bias, mean: forward.mean, rstd: forward.rstd, epsilon: 1e-4)
        #expect(
            try differingBits(backward.input.toArray(), functionalBackward.input.toArray()) == 0,
            "\(label): backward dx")
        #expect(
            try differingBits(backward.weight!.toArray(), functionalBackward.weight!.toArray()) == 0,
            "\(label): backward dweight")
        #expect(
            try differingBits(backward.bias!.toArray(), functionalBackward.bias!.toArray()) == 0,
            "\(label): backward dbias")
        #expect(backward.bias?.dtype == .bfloat16, "\(label): dbias takes the bias's dtype")
        let reference = Reference.layerNormBackward(
            outputGradient: try dy.toArray(), x: try x.toArray(), weight: try weight.toArray(),
            hasBias: true, rows: 4, columns: 72, epsilon: 1e-4)
        let error = Reference.relativeError(try backward.bias!.toArray(), reference.bias!)
        #expect(error <= Reference.tolerance(.bfloat16), "\(label): dbias relative error \(error)")
    }

    @Test(
        "LayerNorm(weight:bias:) takes its dimensions from the weight and checks the bias against it",
        arguments: TestDevices.all)
    func layerNormFromParameters(device: Device) throws {
        let weight = try Tensor.ones([3, 24], device: device)  // per head
        let norm = try LayerNorm(weight: weight, bias: Tensor.zeros([3, 24], device: device))
        #expect(norm.dimensions == 24 && norm.bias?.shape == [3, 24])
        #expect(try LayerNorm(weight: weight).bias == nil)
        expectError(.shapeMismatch, argument: "bias", "bias of another shape") {
            try LayerNorm(weight: weight, bias: Tensor.zeros([24], device: device))
        }
        if device != .cpu {
            expectError(.deviceMismatch, argument: "bias", "bias on another device") {
                try LayerNorm(weight: weight, bias: Tensor.zeros([3, 24]))
            }
        }
    }
}
