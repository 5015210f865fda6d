import FusedNormReference
import Testing

@testable import FusedNorm

/// One forward pass to run on the GPU and check against the float64 reference and the CPU backend.
struct CUDAForwardCase: Sendable, CustomTestStringConvertible {
    enum Norm: String, Sendable { case rms, layer }

    var norm: Norm
    var columns: Int
    var rows: Int
    var x: DType
    /// The residual input's dtype and s's (residualOutput), or nil for no residual.
    var residual: (input: DType, output: DType)?
    var weight: DType?
    var bias: DType?
    var output: DType
    var rounding: RMSNormStyle.Rounding = .once
    var style: RMSNormStyle { RMSNormStyle(weightOffset: weightOffset, rounding: rounding) }
    var weightOffset: Float = 0
    /// 1, or H for a per-head weight (x shaped [rows/H, H, N]).
    var weightRows = 1
    /// The layout of x, the residual and both outputs.
    var layout: CUDATestLayout = .contiguous

    var epsilon: Float { norm == .rms ? 1e-6 : 1e-5 }
    var shape: [Int] { weightRows > 1 ? [rows / weightRows, weightRows, columns] : [rows, columns] }
    var parameterShape: [Int] { weightRows > 1 ? [weightRows, columns] : [columns] }
    /// The dtype ŝ is rounded to when rounded twice.
    var normalizedDType: DType { residual?.output ?? x }

    var testDescription: String {
        var text = "\(norm) N=\(columns) rows=\(rows) x=\(x)"
        if let residual { text += " residual=\(residual.input)->\(residual.output)" }
        text += " w=\(weight.map(\.description) ?? "none") b=\(bias.map(\.description) ?? "none") y=\(output)"
        if norm == .rms { text += " \(RMSNormStyle(weightOffset: weightOffset, rounding: rounding))" }
        if weightRows > 1 { text += " heads=\(weightRows)" }
        return text + " \(layout.rawValue)"
    }

    /// The tolerance on y: the output dtype's; rounded twice, at least that of the dtype ŝ is rounded to.
    var outputTolerance: Double {
        guard norm == .rms, rounding == .twice else { return Reference.tolerance(output) }
        return Reference.tolerance(cudaTestCoarser(output, normalizedDType), rounding: .twice)
    }
}

/// The sizes every GPU test sweeps (one row of N = 1,048,576 is 4 MB in fp32), with few rows for large N.
let cudaTestSizes: [(columns: Int, rows: Int)] = [
    (1, 37), (3, 29), (33, 17), (4095, 9), (5120, 5), (65537, 3), (262_144, 2), (1_048_576, 2),
]

enum CUDAForwardCases {
    /// Five variants per size and dtype: plain RMSNorm; fused residual rounded twice (llama), Gemma offset and
    /// mixed dtypes, misaligned; LayerNorm with weight and bias, strided rows; LayerNorm with a residual and
    /// a bias only; weightless RMSNorm into bf16, misaligned.
    static let sweep: [CUDAForwardCase] = cudaTestSizes.flatMap { size in
        DType.allCases.flatMap { dtype -> [CUDAForwardCase] in
            let other: DType = dtype == .float32 ? .bfloat16 : .float32
            return [
                CUDAForwardCase(
                    norm: .rms, columns: size.columns, rows: size.rows, x: dtype, weight: dtype, output: dtype),
                CUDAForwardCase(
                    norm: .rms, columns: size.columns, rows: size.rows, x: dtype, residual: (other, dtype),
                    weight: .float32,
                    output: dtype, rounding: .twice, weightOffset: 1, layout: .misaligned),
                CUDAForwardCase(
                    norm: .layer, columns: size.columns, rows: size.rows, x: dtype, weight: dtype, bias: dtype,
                    output: dtype,
                    layout: .everyOtherRow),
                CUDAForwardCase(
                    norm: .layer, columns: size.columns, rows: size.rows, x: dtype, residual: (dtype, other),
                    bias: other,
                    output: .float32),
                CUDAForwardCase(
                    norm: .rms, columns: size.columns, rows: size.rows, x: dtype, weight: nil, output: .bfloat16,
                    layout: .misaligned),
            ]
        }
    }

    /// Many rows (every layout of the grid loops, partial row groups) and per-head weights.
    static let shapes: [CUDAForwardCase] = [
        CUDAForwardCase(
            norm: .rms, columns: 128, rows: 6 * 8, x: .bfloat16, weight: .bfloat16, output: .bfloat16, weightRows: 8),
        CUDAForwardCase(
            norm: .rms, columns: 64, rows: 1000 * 4, x: .float16, weight: .float32, output: .float16, rounding: .twice,
            weightRows: 4, layout: .everyOtherRow),
        CUDAForwardCase(
            norm: .layer, columns: 96, rows: 3 * 5, x: .float32, weight: .float32, bias: .bfloat16, output: .float32,
            weightRows: 5),
        CUDAForwardCase(
            norm: .rms, columns: 4096, rows: 301, x: .bfloat16, residual: (.bfloat16, .float32), weight: .bfloat16,
            output: .bfloat16),
        CUDAForwardCase(norm: .rms, columns: 16384, rows: 67, x: .bfloat16, weight: .bfloat16, output: .bfloat16),
        CUDAForwardCase(
            norm: .layer, columns: 8192, rows: 40, x: .float32, weight: .float32, bias: .float32, output: .float32),
        CUDAForwardCase(
            norm: .rms, columns: 3584, rows: 9, x: .bfloat16, weight: .bfloat16, output: .bfloat16, layout: .misaligned),
        CUDAForwardCase(norm: .rms, columns: 2, rows: 100_003, x: .float32, weight: .float32, output: .float16),
        CUDAForwardCase(
            norm: .layer, columns: 40000, rows: 3, x: .float16, weight: .float16, bias: .float16, output: .float16),
        // Clusters of CTAs per row with more rows than teams; per-head weights kept in registers; streaming.
        CUDAForwardCase(norm: .rms, columns: 65536, rows: 300, x: .bfloat16, weight: .bfloat16, output: .bfloat16),
        CUDAForwardCase(
            norm: .layer, columns: 131_072, rows: 37, x: .float16, weight: .float16, bias: .float16, output: .float16),
        CUDAForwardCase(
            norm: .rms, columns: 262_144, rows: 9, x: .bfloat16, residual: (.bfloat16, .bfloat16), weight: .bfloat16,
            output: .bfloat16),
        CUDAForwardCase(
            norm: .rms, columns: 1_048_576, rows: 3, x: .bfloat16, weight: .bfloat16, output: .bfloat16,
            rounding: .twice),
        CUDAForwardCase(
            norm: .layer, columns: 2_097_152, rows: 2, x: .bfloat16, weight: .bfloat16, bias: .bfloat16,
            output: .bfloat16),
        CUDAForwardCase(
            norm: .rms, columns: 1_048_576, rows: 2, x: .float32, residual: (.float32, .float32), weight: .float32,
            output: .float32),
        CUDAForwardCase(
            norm: .rms, columns: 128, rows: 32 * 150, x: .bfloat16, weight: .bfloat16, output: .bfloat16, weightRows: 32
        ),
        CUDAForwardCase(norm: .rms, columns: 4096, rows: 1, x: .bfloat16, weight: .bfloat16, output: .bfloat16),
        CUDAForwardCase(
            norm: .rms, columns: 256, rows: 20_000, x: .float16, weight: .float16, output: .float16,
            layout: .everyOtherRow),
        // Many rows: short rows (weight in registers), medium rows, medium rows with a residual of another
        // dtype (one CTA per row group); LayerNorm in 512-thread CTAs, more rows than teams (staged).
        CUDAForwardCase(norm: .rms, columns: 8, rows: 600_000, x: .float16, weight: .float32, output: .float16),
        CUDAForwardCase(norm: .rms, columns: 4096, rows: 6000, x: .bfloat16, weight: .bfloat16, output: .bfloat16),
        CUDAForwardCase(
            norm: .rms, columns: 2048, rows: 9000, x: .bfloat16, residual: (.float32, .bfloat16), weight: .bfloat16,
            output: .bfloat16, layout: .everyOtherRow),
        CUDAForwardCase(
            norm: .layer, columns: 16384, rows: 1200, x: .float16, weight: .float16, bias: .float16, output: .float16),
    ]
}

/// The inputs of a forward case (rounded to their dtypes), drawn from a seed stable per case.
struct CUDAForwardInputs {
    let x: [Float]
    let residual: [Float]?
    let weight: [Float]?
    let bias: [Float]?

    init(_ c: CUDAForwardCase) {
        var random = CUDATestRandom(c.testDescription)
        let count = c.rows * c.columns, parameters = c.weightRows * c.columns
        x = random.values(count, dtype: c.x)
        residual = c.residual.map { random.values(count, dtype: $0.input) }
        // Gemma stores w − 1: small values around 0; otherwise weights around 1.
        weight = c.weight.map {
            c.weightOffset == 1
                ? random.values(parameters, dtype: $0, -0.5, 0.5) : random.values(parameters, dtype: $0, 0.5, 1.5)
        }
        bias = c.bias.map { random.values(parameters, dtype: $0, -1, 1) }
    }

    func reference(_ c: CUDAForwardCase) -> Reference.Forward {
        switch c.norm {
        case .rms:
            Reference.rmsNorm(
                x: x, residual: residual, weight: weight, rows: c.rows, columns: c.columns, weightRows: c.weightRows,
                epsilon: c.epsilon, style: c.style, roundingDType: c.normalizedDType,
                residualDType: c.residual?.output)
        case .layer:
            Reference.layerNorm(
                x: x, residual: residual, weight: weight, bias: bias, rows: c.rows, columns: c.columns,
                weightRows: c.weightRows, epsilon: c.epsilon, residualDType: c.residual?.output)
        }
    }
}

/// What a forward case produced on one device.
struct CUDAForwardOutputs {
    let y: CUDATestPlaced
    let s: CUDATestPlaced?
    let mean: [Float]?
    let rstd: [Float]

    /// Runs the case on `device` with its inputs and outputs in `layout`, outputs poisoned with NaN first.
    init(_ c: CUDAForwardCase, _ inputs: CUDAForwardInputs, device: Device, layout: CUDATestLayout) throws {
        let x = try CUDATestPlaced(
            inputs.x, rows: c.rows, columns: c.columns, dtype: c.x, layout: layout, device: device)
        let residual = try c.residual.map {
            try CUDATestPlaced(
                inputs.residual!, rows: c.rows, columns: c.columns, dtype: $0.input, layout: layout, device: device)
        }
        y = try CUDATestPlaced(
            poisonedRows: c.rows, columns: c.columns, dtype: c.output, layout: layout, device: device)
        s = try c.residual.map {
            try CUDATestPlaced(
                poisonedRows: c.rows, columns: c.columns, dtype: $0.output, layout: layout, device: device)
        }
        let weight = try c.weight.map { try Tensor(inputs.weight!, shape: c.parameterShape, dtype: $0, device: device) }
        let bias = try c.bias.map { try Tensor(inputs.bias!, shape: c.parameterShape, dtype: $0, device: device) }
        let result: NormForwardResult
        switch c.norm {
        case .rms:
            result = try rmsNormForward(
                x.view.reshaped(c.shape), residual: residual?.view.reshaped(c.shape), weight: weight,
                epsilon: c.epsilon,
                style: c.style, output: y.view.reshaped(c.shape),
                residualOutput: s?.view.reshaped(c.shape))
        case .layer:
            result = try layerNormForward(
                x.view.reshaped(c.shape), residual: residual?.view.reshaped(c.shape), weight: weight, bias: bias,
                epsilon: c.epsilon, output: y.view.reshaped(c.shape), residualOutput: s?.view.reshaped(c.shape))
        }
        mean = try result.mean?.toArray()
        rstd = try result.rstd.toArray()
    }
}

/// Runs a forward case on `.cuda(0)` and checks y, s, mean and rstd against the float64 reference and
/// the CPU backend, and that nothing outside the output views was written.
func checkCUDAForward(_ c: CUDAForwardCase, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let inputs = CUDAForwardInputs(c)
    let reference = inputs.reference(c)
    let gpu = try CUDAForwardOutputs(c, inputs, device: .cuda(0), layout: c.layout)
    let cpu = try CUDAForwardOutputs(c, inputs, device: .cpu, layout: .contiguous)
    let label = c.testDescription

    expectClose(
        try gpu.y.view.toArray(), reference: reference.output, cpu: try cpu.y.view.toArray(),
        tolerance: c.outputTolerance, "\(label): y", sourceLocation: sourceLocation)
    #expect(try gpu.y.gapsUntouched(), "\(label): y written outside its view", sourceLocation: sourceLocation)
    if let s = gpu.s, let residual = c.residual {
        expectClose(
            try s.view.toArray(), reference: reference.residual!, cpu: try cpu.s!.view.toArray(),
            tolerance: Reference.tolerance(residual.output), "\(label): s", sourceLocation: sourceLocation)
        #expect(try s.gapsUntouched(), "\(label): s written outside its view", sourceLocation: sourceLocation)
    }
    expectClose(
        gpu.rstd, reference: reference.rstd, cpu: cpu.rstd, tolerance: 1e-5, "\(label): rstd",
        sourceLocation: sourceLocation)
    if c.norm == .layer {
        let mean = try #require(gpu.mean, "\(label): no mean", sourceLocation: sourceLocation)
        // The mean of a row is near 0: compare with a tolerance scaled to the inputs, not the mean itself.
        let scale = max(1, reference.mean.map(abs).max() ?? 1)
        let worst = zip(mean, reference.mean).map { abs(Double($0) - $1) }.max() ?? 0
        #expect(worst <= 1e-5 * scale, "\(label): mean off by \(worst)", sourceLocation: sourceLocation)
    }
}

@Suite("CUDA forward vs the float64 reference and the CPU backend", .needsCUDAGPU)
struct CUDAForwardTests {
    @Test("sizes 1 to 1,048,576, every dtype, strided and misaligned rows", arguments: CUDAForwardCases.sweep)
    func sweep(_ c: CUDAForwardCase) throws {
        try checkCUDAForward(c)
    }

    @Test("many rows, per-head weights, layouts of every row storage", arguments: CUDAForwardCases.shapes)
    func shapes(_ c: CUDAForwardCase) throws {
        try checkCUDAForward(c)
    }
}
