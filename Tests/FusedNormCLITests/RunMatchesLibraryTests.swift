import Foundation
import FusedNorm
import Testing

@testable import FusedNormCLI

/// `fusednorm run` writes exactly what the library computes in the chosen dtype, in the input's shape.
struct RunMatchesLibraryTests {
    /// Reads a .npy output, which must be float32.
    func readOutput(_ path: String) throws -> NPYArray {
        let array = try NPYFile.read(path: path)
        #expect(array.elementType == .float32)
        return array
    }

    /// A tensor of `values` rounded once to `dtype`, as `run` loads it.
    func tensor(_ values: [Double], _ shape: [Int], _ dtype: DType) throws -> Tensor {
        try Tensor(values.map(dtype.roundedOnce), shape: shape, dtype: dtype)
    }

    @Test(arguments: DType.allCases, ["standard", "llama", "gemma", nil])
    func rmsnormWithResidualMatchesTheLibrary(dtype: DType, styleName: String?) throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let shape = [2, 3, 5]
        let xValues = testValues(30), residualValues = testValues(30, seed: 2), weightValues = testValues(5, seed: 3)
        try folder.write("x.npy", NPYArray(shape: shape, values: xValues))  // float64
        try folder.write(
            "r.npy", NPYArray(shape: shape, values: residualValues.map { Double(Float($0)) }, elementType: .float32))
        try folder.write(
            "w.npy", NPYArray(shape: [5], values: weightValues.map { Double(Float16($0)) }, elementType: .float16),
            version: 2)

        let outcome = runFusedNorm(
            [
                "run", "rmsnorm", "--x", folder.file("x.npy"), "--weight", folder.file("w.npy"), "--residual",
                folder.file("r.npy"),
                "--epsilon", "1e-5", "--dtype", dtype.rawValue, "--device", "cpu",
                "--out", folder.file("y.npy"), "--residual-out", folder.file("s.npy"), "--rstd",
                folder.file("rstd.npy"),
            ] + (styleName.map { ["--style", $0] } ?? []))
        // No --style: the library's default, .standard.
        #expect(outcome.status == 0, "\(outcome.error)")

        let expected = try rmsNormForward(
            try tensor(xValues, shape, dtype), residual: try tensor(residualValues, shape, dtype),
            weight: try tensor(weightValues.map { Double(Float16($0)) }, [5], dtype), epsilon: 1e-5,
            style: try #require(RMSNormStyle(presetName: styleName ?? "standard")))
        let y = try readOutput(folder.file("y.npy")), s = try readOutput(folder.file("s.npy")),
            rstd = try readOutput(folder.file("rstd.npy"))
        #expect(y.shape == shape && s.shape == shape && rstd.shape == [2, 3])
        #expect(y.values == (try expected.output.toArray()).map(Double.init))
        #expect(s.values == (try expected.residual!.toArray()).map(Double.init))
        #expect(rstd.values == (try expected.rstd.toArray()).map(Double.init))
    }

    @Test
    func rankOneInputGivesScalarStatistics() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        try folder.write("x.npy", NPYArray(shape: [6], values: testValues(6)))
        let outcome = runFusedNorm([
            "run", "layernorm", "--x", folder.file("x.npy"), "--out", folder.file("y.npy"), "--device", "cpu",
            "--mean", folder.file("mean.npy"), "--rstd", folder.file("rstd.npy"),
        ])
        #expect(outcome.status == 0, "\(outcome.error)")
        let expected = try layerNormForward(try tensor(testValues(6), [6], .float32))
        #expect(try readOutput(folder.file("y.npy")).values == (try expected.output.toArray()).map(Double.init))
        let mean = try readOutput(folder.file("mean.npy")), rstd = try readOutput(folder.file("rstd.npy"))
        #expect(mean.shape == [] && rstd.shape == [])
        #expect(mean.values == (try expected.mean!.toArray()).map(Double.init))
        #expect(try folder.contents() == ["mean.npy", "rstd.npy", "x.npy", "y.npy"])
    }

    @Test(arguments: DType.allCases)
    func layernormBackwardMatchesTheLibrary(dtype: DType) throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let shape = [4, 7]
        try folder.write("x.npy", NPYArray(shape: shape, values: testValues(28)))
        try folder.write("dy.npy", NPYArray(shape: shape, values: testValues(28, seed: 5)))
        try folder.write("w.npy", NPYArray(shape: [7], values: testValues(7, seed: 6)))
        try folder.write("b.npy", NPYArray(shape: [7], values: testValues(7, seed: 7)))
        let outcome = runFusedNorm([
            "run", "layernorm-backward", "--dy", folder.file("dy.npy"), "--x", folder.file("x.npy"), "--weight",
            folder.file("w.npy"),
            "--bias", folder.file("b.npy"), "--dtype", dtype.rawValue, "--device", "cpu", "--dx", folder.file("dx.npy"),
            "--dweight", folder.file("dw.npy"), "--dbias", folder.file("db.npy"),
        ])
        #expect(outcome.status == 0, "\(outcome.error)")
        // dbias is float32 whatever --dtype is (a destination of the weight's shape).
        let expected = try layerNormBackward(
            try tensor(testValues(28, seed: 5), shape, dtype), input: try tensor(testValues(28), shape, dtype),
            weight: try tensor(testValues(7, seed: 6), [7], dtype),
            bias: try tensor(testValues(7, seed: 7), [7], dtype),
            biasGradient: try Tensor.zeros([7]))
        #expect(try readOutput(folder.file("dx.npy")).values == (try expected.input.toArray()).map(Double.init))
        #expect(try readOutput(folder.file("dw.npy")).values == (try expected.weight!.toArray()).map(Double.init))
        let dbias = try readOutput(folder.file("db.npy"))
        #expect(dbias.values == (try expected.bias!.toArray()).map(Double.init))

        // The same without --bias: dbias = Σ dy needs no bias values; the underscore spelling works too.
        let withoutBias = try TemporaryFolder()
        defer { withoutBias.remove() }
        let again = runFusedNorm([
            "run", "layernorm_backward", "--dy", folder.file("dy.npy"), "--x", folder.file("x.npy"), "--weight",
            folder.file("w.npy"),
            "--dtype", dtype.rawValue, "--device", "cpu", "--dx", withoutBias.file("dx.npy"), "--dbias",
            withoutBias.file("db.npy"),
        ])
        #expect(again.status == 0, "\(again.error)")
        let dbiasWithoutBias = try readOutput(withoutBias.file("db.npy"))
        #expect(dbiasWithoutBias.shape == [7] && dbiasWithoutBias.values == dbias.values)
        #expect(try readOutput(withoutBias.file("dx.npy")).values == (try expected.input.toArray()).map(Double.init))
        #expect(try withoutBias.contents() == ["db.npy", "dx.npy"])
    }

    @Test("layernorm-backward --dbias without --weight or --bias: shape (N)")
    func layernormBackwardBiasGradientWithoutParameters() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        try folder.write("x.npy", NPYArray(shape: [3, 2, 6], values: testValues(36)))
        try folder.write("dy.npy", NPYArray(shape: [3, 2, 6], values: testValues(36, seed: 4)))
        let outcome = runFusedNorm([
            "run", "layernorm-backward", "--dy", folder.file("dy.npy"), "--x", folder.file("x.npy"), "--device", "cpu",
            "--dx", folder.file("dx.npy"), "--dbias", folder.file("db.npy"),
        ])
        #expect(outcome.status == 0, "\(outcome.error)")
        let dbias = try readOutput(folder.file("db.npy"))
        #expect(dbias.shape == [6])
        let dy = testValues(36, seed: 4).map { Double(Float($0)) }
        for column in 0..<6 {
            let sum = stride(from: column, to: 36, by: 6).reduce(0.0) { $0 + dy[$1] }
            #expect(
                abs(dbias.values[column] - sum) <= 1e-5 * max(1, abs(sum)),
                "column \(column): \(dbias.values[column]) vs \(sum)")
        }
    }

    @Test
    func rmsnormBackwardMatchesTheLibrary() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let shape = [3, 2, 8]
        try folder.write("x.npy", NPYArray(shape: shape, values: testValues(48)))
        try folder.write("dy.npy", NPYArray(shape: shape, values: testValues(48, seed: 1)))
        try folder.write("w.npy", NPYArray(shape: [2, 8], values: testValues(16, seed: 2)))  // per head
        let outcome = runFusedNorm([
            "run", "rmsnorm-backward", "--dy", folder.file("dy.npy"), "--x", folder.file("x.npy"), "--weight",
            folder.file("w.npy"),
            "--style", "gemma", "--dtype", "bf16", "--device", "cpu", "--dx", folder.file("dx.npy"), "--dweight",
            folder.file("dw.npy"),
        ])
        #expect(outcome.status == 0, "\(outcome.error)")
        let expected = try rmsNormBackward(
            try tensor(testValues(48, seed: 1), shape, .bfloat16), input: try tensor(testValues(48), shape, .bfloat16),
            weight: try tensor(testValues(16, seed: 2), [2, 8], .bfloat16), style: .gemma)
        let dweight = try readOutput(folder.file("dw.npy"))
        #expect(dweight.shape == [2, 8])
        #expect(try readOutput(folder.file("dx.npy")).values == (try expected.input.toArray()).map(Double.init))
        #expect(dweight.values == (try expected.weight!.toArray()).map(Double.init))
    }

    @Test
    func float64InputsAreRoundedOnce() {
        // Just above the midpoint between two bfloat16 neighbours, but only by less than float32 can hold:
        // rounding through float32 lands on the midpoint and then on the even neighbour, 1.
        let justAboveMidpoint = 1 + 0x1p-8 + 0x1p-30
        #expect(DType.bfloat16.roundedOnce(justAboveMidpoint) == 1 + 0x1p-7)
        #expect(DType.bfloat16.roundedOnce(-justAboveMidpoint) == -(1 + 0x1p-7))
        #expect(DType.bfloat16.roundedOnce(1 + 0x1p-8) == 1)  // an exact tie goes to even
        #expect(DType.float16.roundedOnce(1 + 0x1p-11 + 0x1p-40) == 1 + 0x1p-10)
        #expect(DType.bfloat16.roundedOnce(.nan).isNaN)
        #expect(DType.bfloat16.roundedOnce(1e300) == .infinity)
    }
}
