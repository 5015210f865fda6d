import FusedNorm
import FusedNormReference
import Testing

/// Destinations given by the caller (`output:`, `residualOutput:`, `rstdOutput:`, `meanOutput:`,
/// `weightGradient:`, `biasGradient:`) are written exactly as new tensors would be, so a call can allocate nothing.
@Suite("Preallocated destinations")
struct PreallocatedDestinationTests {
    static let columns = 97
    static let rows = 5

    @Test("The plain forms write y into a given output, bit for bit as a new tensor", arguments: TestDevices.all)
    func plainOutput(device: Device) throws {
        var random = SplitMix64(label: "plain output \(device)")
        let x = try Tensor(
            random.values(Self.rows * Self.columns), shape: [Self.rows, Self.columns], dtype: .bfloat16, device: device)
        let weight = try Tensor(random.values(Self.columns), dtype: .bfloat16, device: device)
        let output = try PoisonedOutput(shape: x.shape, dtype: .bfloat16, layout: .everyThirdRow, device: device)
        let returned = try rmsNorm(x, weight: weight, output: output.tensor)
        #expect(
            differingBits(try returned.toArray(), try rmsNorm(x, weight: weight).toArray()) == 0,
            "rmsNorm output: on \(device)")
        #expect(
            differingBits(try output.tensor.toArray(), try returned.toArray()) == 0,
            "the returned tensor is the given one on \(device)")
        try output.expectUntouchedOutside("rmsNorm output: on \(device)")

        let layerOutput = try PoisonedOutput(shape: x.shape, dtype: .float32, device: device)
        _ = try layerNorm(x, weight: weight, output: layerOutput.tensor)
        #expect(
            differingBits(
                try layerOutput.tensor.toArray(), try layerNorm(x, weight: weight, outputDType: .float32).toArray())
                == 0,
            "layerNorm output: (float32) on \(device)")
    }

    @Test("residualOutput may be the residual itself: the stream is updated in place", arguments: TestDevices.all)
    func inPlaceResidual(device: Device) throws {
        for columns in [1, 33, 4096, 5120] {
            var random = SplitMix64(label: "in place \(columns) \(device)")
            let x = try Tensor(
                random.values(Self.rows * columns), shape: [Self.rows, columns], dtype: .bfloat16, device: device)
            let values = random.values(Self.rows * columns)
            let stream = try Tensor(values, shape: x.shape, dtype: .float32, device: device)
            let separate = try rmsNorm(x, residual: try Tensor(values, shape: x.shape, device: device))
            let inPlace = try rmsNorm(x, residual: stream, residualOutput: stream)
            #expect(
                differingBits(try inPlace.output.toArray(), try separate.output.toArray()) == 0,
                "y, N = \(columns) on \(device)")
            #expect(
                differingBits(try stream.toArray(), try separate.residual.toArray()) == 0,
                "s, N = \(columns) on \(device)")
        }
    }

    @Test(
        "rstdOutput, meanOutput, weightGradient and biasGradient receive what new tensors would",
        arguments: TestDevices.all)
    func statisticsAndGradients(device: Device) throws {
        var random = SplitMix64(label: "statistics \(device)")
        let shape = [Self.rows, Self.columns]
        let x = try Tensor(random.values(Self.rows * Self.columns), shape: shape, dtype: .bfloat16, device: device)
        let dy = try Tensor(random.values(Self.rows * Self.columns), shape: shape, dtype: .bfloat16, device: device)
        let weight = try Tensor(random.values(Self.columns), dtype: .bfloat16, device: device)
        let bias = try Tensor(random.values(Self.columns), dtype: .bfloat16, device: device)

        let rstd = try Tensor(repeating: .nan, shape: [Self.rows], device: device)
        let mean = try Tensor(repeating: .nan, shape: [Self.rows], device: device)
        let layer = try layerNormForward(x, weight: weight, bias: bias, meanOutput: mean, rstdOutput: rstd)
        let fresh = try layerNormForward(x, weight: weight, bias: bias)
        #expect(differingBits(try rstd.toArray(), try fresh.rstd.toArray()) == 0, "LayerNorm rstdOutput on \(device)")
        #expect(differingBits(try mean.toArray(), try fresh.mean!.toArray()) == 0, "LayerNorm meanOutput on \(device)")
        #expect(
            differingBits(try layer.rstd.toArray(), try rstd.toArray()) == 0,
            "the result's rstd is the given tensor on \(device)")

        // An fp32 gradient of a bf16 weight: the fp32 accumulation, not rounded to bf16.
        let dweight = try Tensor(repeating: .nan, shape: [Self.columns], device: device)
        let dbias = try Tensor(repeating: .nan, shape: [Self.columns], device: device)
        _ = try layerNormBackward(
            dy, input: x, weight: weight, bias: bias, weightGradient: dweight, biasGradient: dbias)
        let reference = Reference.layerNormBackward(
            outputGradient: try dy.toArray(), x: try x.toArray(), weight: try weight.toArray(), hasBias: true,
            rows: Self.rows, columns: Self.columns, epsilon: 1e-5)
        let weightError = Reference.relativeError(try dweight.toArray(), reference.weight!)
        let biasError = Reference.relativeError(try dbias.toArray(), reference.bias!)
        #expect(
            weightError <= Reference.tolerance(.float32),
            "fp32 dweight of a bf16 weight: error \(weightError) on \(device)")
        #expect(
            biasError <= Reference.tolerance(.float32), "fp32 dbias of a bf16 bias: error \(biasError) on \(device)")

        let rmsRstd = try Tensor(repeating: .nan, shape: [Self.rows], device: device)
        _ = try rmsNormForward(x, weight: weight, rstdOutput: rmsRstd)
        #expect(
            differingBits(try rmsRstd.toArray(), try rmsNormForward(x, weight: weight).rstd.toArray()) == 0,
            "RMSNorm rstdOutput on \(device)")
    }

    @Test("Destinations that do not fit are rejected before anything is written")
    func badDestinations() throws {
        let x = try Tensor.ones([4, 8])
        let weight = try Tensor.ones([8])
        expectError(.shapeMismatch, argument: "meanOutput", "meanOutput of the wrong shape") {
            try layerNormForward(x, meanOutput: try Tensor.zeros([3]), rstdOutput: try Tensor.zeros([4]))
        }
        expectError(.shapeMismatch, argument: "rstdOutput", "rstdOutput of the wrong shape") {
            try rmsNormForward(x, weight: weight, rstdOutput: try Tensor.zeros([5]))
        }
        expectError(.dtypeMismatch, argument: "rstdOutput", "bf16 rstdOutput") {
            try rmsNormForward(x, weight: weight, rstdOutput: try Tensor.zeros([4], dtype: .bfloat16))
        }
        expectError(.invalidArgument, argument: "weightGradient", "weightGradient without a weight") {
            try rmsNormBackward(x, input: x, weightGradient: try Tensor.zeros([8]))
        }
        expectError(.shapeMismatch, argument: "weightGradient", "weightGradient of the wrong shape") {
            try rmsNormBackward(x, input: x, weight: weight, weightGradient: try Tensor.zeros([9]))
        }
        // dbias needs no bias (see LayerNormTests), but its destination must have the weight's shape.
        expectError(.shapeMismatch, argument: "biasGradient", "biasGradient without a bias, of the wrong shape") {
            try layerNormBackward(x, input: x, weight: weight, biasGradient: try Tensor.zeros([9]))
        }
    }

}
