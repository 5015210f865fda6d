import FusedNorm
import FusedNormReference
import Testing

/// The library example of README.md, with small concrete tensors: it must compile and compute what it says.
@Suite("README example")
struct ReadmeExampleTests {
    @Test("The README's calls run and agree with the reference")
    func readmeExample() throws {
        let tokens = 3, hidden = 64, heads = 4
        var random = SplitMix64(label: "README")
        let values = random.values(tokens * hidden), weights = random.values(hidden)
        let x = try Tensor(values, shape: [tokens, hidden], dtype: .bfloat16)
        let weight = try Tensor(weights, shape: [hidden], dtype: .bfloat16)
        let residualStream = try Tensor(random.values(tokens * hidden), shape: [tokens, hidden], dtype: .float32)
        let dy = try Tensor(random.values(tokens * hidden), shape: [tokens, hidden], dtype: .bfloat16)

        let y = try rmsNorm(x, weight: weight, epsilon: 1e-6)
        let reference = Reference.rmsNorm(
            x: try x.toArray(), weight: try weight.toArray(), rows: tokens, columns: hidden, epsilon: 1e-6)
        #expect(Reference.relativeError(try y.toArray(), reference.output) <= Reference.tolerance(.bfloat16))

        let l = try rmsNorm(x, weight: weight, style: .llama)
        let llamaReference = Reference.rmsNorm(
            x: try x.toArray(), weight: try weight.toArray(), rows: tokens, columns: hidden, epsilon: 1e-6,
            style: .llama, roundingDType: .bfloat16)
        #expect(
            Reference.relativeError(try l.toArray(), llamaReference.output)
                <= Reference.tolerance(.bfloat16, rounding: .twice))

        let g = try rmsNorm(x, weight: weight, style: .gemma)
        #expect(g.shape == x.shape)

        let (h, stream) = try rmsNorm(x, residual: residualStream, weight: weight)
        #expect(h.dtype == .bfloat16 && stream.dtype == .float32)

        let norm = try RMSNorm(dimensions: hidden, style: .llama, dtype: .bfloat16)
        let out = try norm(x)
        // A new LLaMA layer scales by 1: y = round(round(ŝ) · 1) = round(ŝ).
        #expect(differingBits(try out.toArray(), try rmsNorm(x).toArray()) == 0)
        let lnWeight = try Tensor(random.values(hidden), shape: [hidden]), lnBias = try Tensor.zeros([hidden])
        let layerNorm = try LayerNorm(weight: lnWeight, bias: lnBias)
        #expect(layerNorm.dimensions == hidden)

        let forward = try norm.forward(x)
        let gradients = try norm.backward(dy, input: x, rstd: forward.rstd)
        #expect(gradients.input.shape == x.shape && gradients.weight?.shape == [hidden])

        let qHeads = try x.reshaped([tokens, heads, hidden / heads])
        let perHeadWeight = try Tensor(random.values(hidden), shape: [heads, hidden / heads])
        let q = try rmsNorm(qHeads, weight: try perHeadWeight.converted(to: .bfloat16))
        #expect(q.shape == [tokens, heads, hidden / heads])

        let qkv = try Tensor(random.values(tokens * 3 * hidden), shape: [tokens, 3 * hidden], dtype: .bfloat16)
        let qView = try qkv.columns(0..<hidden)
        #expect(qView.rowStride == 3 * hidden && qView.shape == [tokens, hidden])
        #expect(try rmsNorm(qView, weight: weight).shape == [tokens, hidden])
    }
}
