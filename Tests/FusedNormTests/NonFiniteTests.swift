import FusedNorm
import FusedNormReference
import Testing

/// NaN and ±Inf in the data are not errors: they stay in their row, where the result is what the float64
/// reference computes (RMSNorm: an Inf makes rstd 0, so that row is 0 except NaN at the Inf; LayerNorm: the
/// whole row is NaN), and every other row is unaffected.
struct NonFiniteCase: Sendable, CustomTestStringConvertible {
    var norm: Norm
    var columns: Int
    var dtype: DType
    /// Put the non-finite values in the residual instead of x.
    var inResidual = false
    var testDescription: String { "\(norm) N=\(columns) \(dtype)\(inResidual ? " (in the residual)" : "")" }

    static let all: [NonFiniteCase] = [Norm.rms, .layer].flatMap { norm in
        [(33, DType.float32), (4096, .bfloat16), (127, .float16)].flatMap { n, dtype in
            [false, true].map { NonFiniteCase(norm: norm, columns: n, dtype: dtype, inResidual: $0) }
        }
    }
}

@Suite("NaN and Inf in the data")
struct NonFiniteTests {
    /// Rows: 0 clean, 1 one NaN, 2 one +Inf, 3 clean, 4 one −Inf, 5 +Inf and −Inf, 6 clean.
    static let poisonedRows: [(row: Int, values: [Float])] = [
        (1, [.nan]), (2, [.infinity]), (4, [-.infinity]), (5, [.infinity, -.infinity]),
    ]
    static let rowCount = 7

    func check(_ c: NonFiniteCase, on device: Device) throws {
        var rng = SplitMix64(label: c.testDescription)
        let n = c.columns, shape = [Self.rowCount, n]
        var x = rng.values(Self.rowCount * n), residual = rng.values(Self.rowCount * n)
        for (r, values) in Self.poisonedRows {
            for (i, value) in values.enumerated() {
                let column = (rng.index(below: n) + i) % n
                if c.inResidual { residual[r * n + column] = value } else { x[r * n + column] = value }
            }
        }
        let xInput = try Input(x, shape: shape, dtype: c.dtype, layout: .everyThirdRow, device: device)
        let residualInput = try Input(residual, shape: shape, dtype: .float32, device: device)
        let weight = try Input(rng.values(n, 0.5, 1.5), shape: [n], dtype: .float32, device: device)
        let output = try PoisonedOutput(shape: shape, dtype: .float32, layout: .shiftedColumns, device: device)
        let s = try PoisonedOutput(shape: shape, dtype: .float32, device: device)
        let result: NormForwardResult
        let reference: Reference.Forward
        switch c.norm {
        case .rms:
            result = try rmsNormForward(
                xInput.tensor, residual: residualInput.tensor, weight: weight.tensor, output: output.tensor,
                residualOutput: s.tensor)
            reference = Reference.rmsNorm(
                x: xInput.values, residual: residualInput.values, weight: weight.values, rows: Self.rowCount,
                columns: n, epsilon: 1e-6, residualDType: .float32)
        case .layer:
            result = try layerNormForward(
                xInput.tensor, residual: residualInput.tensor, weight: weight.tensor, output: output.tensor,
                residualOutput: s.tensor)
            reference = Reference.layerNorm(
                x: xInput.values, residual: residualInput.values, weight: weight.values, bias: nil,
                rows: Self.rowCount, columns: n, epsilon: 1e-5, residualDType: .float32)
        }
        let y = try result.output.toArray(), sValues = try result.residual!.toArray(), rstd = try result.rstd.toArray()
        let label = "\(c.testDescription) on \(device)"
        for r in 0..<Self.rowCount {
            let poisoned = Self.poisonedRows.contains { $0.row == r }
            let refRow = row(reference.output, r, columns: n)
            // The reference's own shape of a poisoned row, so that a wrong reference cannot pass silently.
            if poisoned {
                let nonFinite = refRow.filter { !$0.isFinite }.count
                #expect(nonFinite >= 1, "\(label): the reference row \(r) should not be finite")
                if c.norm == .layer {
                    #expect(nonFinite == n, "\(label): a LayerNorm row with an Inf or NaN is all NaN")
                }
            } else {
                #expect(refRow.allSatisfy { $0.isFinite }, "\(label): clean reference row \(r) is not finite")
            }
            let error = Reference.relativeError(row(y, r, columns: n), refRow)
            #expect(
                error <= Reference.tolerance(.float32),
                "\(label): row \(r) (\(poisoned ? "non-finite" : "clean")) relative error \(error)")
            let sError = Reference.relativeError(row(sValues, r, columns: n), row(reference.residual!, r, columns: n))
            #expect(sError == 0, "\(label): s row \(r) relative error \(sError)")
            let rstdError = Reference.relativeError([rstd[r]], [reference.rstd[r]])
            #expect(
                rstdError <= statisticsTolerance,
                "\(label): rstd of row \(r) is \(rstd[r]), reference \(reference.rstd[r])")
        }
        try output.expectUntouchedOutside("\(label): y")
    }

    @Test("A non-finite value stays in its row (CPU)", arguments: NonFiniteCase.all)
    func forwardCPU(_ c: NonFiniteCase) throws { try check(c, on: .cpu) }

    @Test("A non-finite value stays in its row (CUDA)", .requiresCUDA, arguments: NonFiniteCase.all)
    func forwardCUDA(_ c: NonFiniteCase) throws { try check(c, on: .cuda(0)) }

    @Test(
        "Backward: a NaN row leaves the other rows' dx equal to the reference", arguments: TestDevices.all,
        [Norm.rms, .layer])
    func backwardNaNRow(device: Device, norm: Norm) throws {
        var rng = SplitMix64(label: "backward nan \(norm)")
        let (rows, n) = (4, 64)
        var x = rng.values(rows * n)
        x[2 * n + 5] = .nan
        let dy = rng.values(rows * n, -1, 1), w = rng.values(n, 0.5, 1.5)
        let xTensor = try Tensor(x, shape: [rows, n], device: device),
            dyTensor = try Tensor(dy, shape: [rows, n], device: device)
        let weight = try Tensor(w, device: device)
        let gradients =
            norm == .rms
            ? try rmsNormBackward(dyTensor, input: xTensor, weight: weight)
            : try layerNormBackward(dyTensor, input: xTensor, weight: weight)
        let reference =
            norm == .rms
            ? Reference.rmsNormBackward(outputGradient: dy, x: x, weight: w, rows: rows, columns: n, epsilon: 1e-6)
            : Reference.layerNormBackward(
                outputGradient: dy, x: x, weight: w, hasBias: false, rows: rows, columns: n, epsilon: 1e-5)
        let dx = try gradients.input.toArray()
        for r in 0..<rows {
            let refRow = row(reference.input, r, columns: n)
            #expect(refRow.allSatisfy { $0.isFinite } == (r != 2), "\(norm) on \(device): reference dx row \(r)")
            let error = Reference.relativeError(row(dx, r, columns: n), refRow)
            #expect(error <= Reference.tolerance(.float32), "\(norm) on \(device): dx row \(r) relative error \(error)")
        }
        // dweight sums over rows, so it is NaN in every column (the NaN row's ŝ is NaN throughout).
        let dweight = try gradients.weight!.toArray()
        #expect(
            dweight.allSatisfy { $0.isNaN },
            "\(norm) on \(device): dweight should be NaN everywhere, got \(dweight.filter { !$0.isNaN }.count) finite")
    }
}
