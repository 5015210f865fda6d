import FusedNormReference
import Testing

@testable import FusedNorm

/// One backward pass to run on the GPU and check against the float64 reference and the CPU backend.
struct CUDABackwardCase: Sendable, CustomTestStringConvertible {
    var norm: CUDAForwardCase.Norm
    var columns: Int
    var rows: Int
    var x: DType
    var dy: DType
    var weight: DType?
    /// LayerNorm: the bias's dtype (sets dbias's), or nil for no dbias.
    var bias: DType?
    var residualGradient: DType?
    var dx: DType
    var weightOffset: Float = 0
    /// Whether the forward pass's mean/rstd are passed (else the kernel recomputes them).
    var savedStatistics = true
    var weightRows = 1
    /// The layout of x, dy, the residual gradient and dx.
    var layout: CUDATestLayout = .contiguous

    var epsilon: Float { norm == .rms ? 1e-6 : 1e-5 }
    var shape: [Int] { weightRows > 1 ? [rows / weightRows, weightRows, columns] : [rows, columns] }
    var parameterShape: [Int] { weightRows > 1 ? [weightRows, columns] : [columns] }

    var testDescription: String {
        var text = "\(norm) backward N=\(columns) rows=\(rows) x=\(x) dy=\(dy) w=\(weight.map(\.description) ?? "none")"
        if norm == .layer { text += " b=\(bias.map(\.description) ?? "none")" }
        if let residualGradient { text += " rg=\(residualGradient)" }
        text += " dx=\(dx) offset=\(weightOffset) \(savedStatistics ? "saved" : "recomputed")"
        if weightRows > 1 { text += " heads=\(weightRows)" }
        return text + " \(layout.rawValue)"
    }
}

enum CUDABackwardCases {
    /// Three variants per size and dtype: RMSNorm with a weight and saved rstd; RMSNorm with the Gemma offset,
    /// a residual gradient, statistics recomputed, misaligned; LayerNorm with weight and bias, strided rows.
    static let sweep: [CUDABackwardCase] = cudaTestSizes.flatMap { size in
        DType.allCases.flatMap { dtype -> [CUDABackwardCase] in
            let other: DType = dtype == .float32 ? .bfloat16 : .float32
            return [
                CUDABackwardCase(
                    norm: .rms, columns: size.columns, rows: size.rows, x: dtype, dy: dtype, weight: dtype, dx: dtype),
                CUDABackwardCase(
                    norm: .rms, columns: size.columns, rows: size.rows, x: dtype, dy: other, weight: .float32,
                    residualGradient: dtype, dx: dtype, weightOffset: 1, savedStatistics: false, layout: .misaligned),
                CUDABackwardCase(
                    norm: .layer, columns: size.columns, rows: size.rows, x: dtype, dy: dtype, weight: dtype,
                    bias: other,
                    dx: .float32, layout: .everyOtherRow),
            ]
        }
    }

    /// Many rows (several row groups per block and block combining), per-head weights, streaming layouts.
    static let shapes: [CUDABackwardCase] = [
        CUDABackwardCase(
            norm: .rms, columns: 128, rows: 64 * 8, x: .bfloat16, dy: .bfloat16, weight: .bfloat16, dx: .bfloat16,
            weightRows: 8),
        CUDABackwardCase(
            norm: .layer, columns: 64, rows: 4001, x: .float16, dy: .float16, weight: .float32, bias: .float32,
            dx: .float16,
            savedStatistics: false),
        CUDABackwardCase(
            norm: .rms, columns: 4096, rows: 257, x: .bfloat16, dy: .bfloat16, weight: .bfloat16, dx: .bfloat16),
        CUDABackwardCase(
            norm: .rms, columns: 8192, rows: 33, x: .float32, dy: .float32, weight: .float32, dx: .float32,
            layout: .misaligned),
        CUDABackwardCase(
            norm: .layer, columns: 20000, rows: 7, x: .bfloat16, dy: .bfloat16, weight: .bfloat16, bias: .bfloat16,
            dx: .bfloat16),
        CUDABackwardCase(
            norm: .rms, columns: 3584, rows: 9, x: .bfloat16, dy: .bfloat16, weight: .bfloat16, dx: .bfloat16,
            layout: .misaligned),
        CUDABackwardCase(norm: .rms, columns: 2, rows: 50_001, x: .float32, dy: .float32, weight: nil, dx: .float32),
        CUDABackwardCase(
            norm: .layer, columns: 256, rows: 6 * 4, x: .float32, dy: .bfloat16, weight: nil, bias: .bfloat16,
            dx: .float32, weightRows: 4),
        // Clusters with the next row loaded early and more rows than teams; without the early loads;
        // per-head weights over many rows; one row.
        CUDABackwardCase(
            norm: .rms, columns: 65536, rows: 100, x: .bfloat16, dy: .bfloat16, weight: .bfloat16, dx: .bfloat16),
        CUDABackwardCase(
            norm: .layer, columns: 262_144, rows: 6, x: .bfloat16, dy: .bfloat16, weight: .bfloat16, bias: .bfloat16,
            dx: .bfloat16),
        CUDABackwardCase(
            norm: .rms, columns: 16384, rows: 700, x: .float16, dy: .float16, weight: .float16,
            residualGradient: .float16,
            dx: .float16, weightOffset: 1, savedStatistics: false),
        CUDABackwardCase(
            norm: .rms, columns: 128, rows: 32 * 300, x: .bfloat16, dy: .bfloat16, weight: .bfloat16, dx: .bfloat16,
            weightRows: 32),
        CUDABackwardCase(
            norm: .layer, columns: 1000, rows: 3000, x: .bfloat16, dy: .bfloat16, weight: .bfloat16, bias: .bfloat16,
            dx: .bfloat16, savedStatistics: false),
        CUDABackwardCase(
            norm: .rms, columns: 4096, rows: 1, x: .bfloat16, dy: .bfloat16, weight: .bfloat16, dx: .bfloat16),
        // A warp per row at 128 bytes of x and dy per thread (rows one warp cannot hold at 64), more rows than
        // teams: 3 and 4 vectors per thread, saved statistics, fp32 at N = 512.
        CUDABackwardCase(
            norm: .layer, columns: 768, rows: 2001, x: .float16, dy: .float16, weight: .float16, bias: .float16,
            dx: .float16),
        CUDABackwardCase(
            norm: .rms, columns: 1024, rows: 1500, x: .bfloat16, dy: .bfloat16, weight: .bfloat16, dx: .bfloat16,
            layout: .everyOtherRow),
        CUDABackwardCase(
            norm: .layer, columns: 512, rows: 999, x: .float32, dy: .float32, weight: .float32, bias: .float32,
            dx: .float32),
        // 128 bytes per thread where that leaves fewer slots idle: 64 threads × 3 vectors (bf16 N = 1536), 128 × 3
        // with an unused tail of slots (bf16 N = 2560, fp32 N = 1536).
        CUDABackwardCase(
            norm: .layer, columns: 1536, rows: 700, x: .bfloat16, dy: .bfloat16, weight: .bfloat16, bias: .bfloat16,
            dx: .bfloat16),
        CUDABackwardCase(
            norm: .rms, columns: 2560, rows: 600, x: .float16, dy: .float16, weight: .float16, dx: .float16,
            savedStatistics: false),
        CUDABackwardCase(
            norm: .layer, columns: 1536, rows: 500, x: .float32, dy: .float32, weight: .float32, bias: .float32,
            dx: .float32),
        // 128 bytes of x and dy per thread, staged, in one CTA (more rows than teams).
        CUDABackwardCase(
            norm: .layer, columns: 8192, rows: 1000, x: .bfloat16, dy: .bfloat16, weight: .bfloat16, bias: .bfloat16,
            dx: .bfloat16),
        CUDABackwardCase(
            norm: .rms, columns: 4096, rows: 800, x: .float32, dy: .float32, weight: .float32, dx: .float32),
    ]
}

/// The inputs of a backward case, drawn from a seed stable per case.
struct CUDABackwardInputs {
    let x: [Float]
    let dy: [Float]
    let weight: [Float]?
    let bias: [Float]?
    let residualGradient: [Float]?

    init(_ c: CUDABackwardCase) {
        var random = CUDATestRandom(c.testDescription)
        let count = c.rows * c.columns, parameters = c.weightRows * c.columns
        x = random.values(count, dtype: c.x)
        dy = random.values(count, dtype: c.dy, -1, 1)
        weight = c.weight.map {
            c.weightOffset == 1
                ? random.values(parameters, dtype: $0, -0.5, 0.5) : random.values(parameters, dtype: $0, 0.5, 1.5)
        }
        bias = c.bias.map { random.values(parameters, dtype: $0, -1, 1) }
        residualGradient = c.residualGradient.map { random.values(count, dtype: $0, -1, 1) }
    }

    func reference(_ c: CUDABackwardCase) -> Reference.Backward {
        switch c.norm {
        case .rms:
            Reference.rmsNormBackward(
                outputGradient: dy, x: x, weight: weight, rows: c.rows, columns: c.columns, weightRows: c.weightRows,
                epsilon: c.epsilon, style: RMSNormStyle(weightOffset: c.weightOffset),
                residualGradient: residualGradient)
        case .layer:
            Reference.layerNormBackward(
                outputGradient: dy, x: x, weight: weight, hasBias: c.bias != nil, rows: c.rows, columns: c.columns,
                weightRows: c.weightRows, epsilon: c.epsilon, residualGradient: residualGradient)
        }
    }
}

/// What a backward case produced on one device.
struct CUDABackwardOutputs {
    let dx: CUDATestPlaced
    let dweight: [Float]?
    let dbias: [Float]?

    /// Runs the case on `device` (the forward pass first when statistics are saved); dx poisoned with NaN.
    init(_ c: CUDABackwardCase, _ inputs: CUDABackwardInputs, device: Device, layout: CUDATestLayout) throws {
        let x = try CUDATestPlaced(
            inputs.x, rows: c.rows, columns: c.columns, dtype: c.x, layout: layout, device: device)
        let dy = try CUDATestPlaced(
            inputs.dy, rows: c.rows, columns: c.columns, dtype: c.dy, layout: layout, device: device)
        let residualGradient = try c.residualGradient.map {
            try CUDATestPlaced(
                inputs.residualGradient!, rows: c.rows, columns: c.columns, dtype: $0, layout: layout, device: device)
        }
        dx = try CUDATestPlaced(poisonedRows: c.rows, columns: c.columns, dtype: c.dx, layout: layout, device: device)
        let weight = try c.weight.map { try Tensor(inputs.weight!, shape: c.parameterShape, dtype: $0, device: device) }
        let bias = try c.bias.map { try Tensor(inputs.bias!, shape: c.parameterShape, dtype: $0, device: device) }
        let xView = try x.view.reshaped(c.shape), dyView = try dy.view.reshaped(c.shape)
        let gradients: NormGradients
        switch c.norm {
        case .rms:
            let rstd =
                c.savedStatistics
                ? try rmsNormForward(
                    xView, weight: weight, epsilon: c.epsilon, style: RMSNormStyle(weightOffset: c.weightOffset)
                ).rstd : nil
            gradients = try rmsNormBackward(
                dyView, input: xView, weight: weight, rstd: rstd,
                residualGradient: residualGradient?.view.reshaped(c.shape),
                epsilon: c.epsilon, style: RMSNormStyle(weightOffset: c.weightOffset),
                inputGradient: dx.view.reshaped(c.shape))
        case .layer:
            let statistics =
                c.savedStatistics ? try layerNormForward(xView, weight: weight, bias: bias, epsilon: c.epsilon) : nil
            gradients = try layerNormBackward(
                dyView, input: xView, weight: weight, bias: bias, mean: statistics?.mean, rstd: statistics?.rstd,
                residualGradient: residualGradient?.view.reshaped(c.shape), epsilon: c.epsilon,
                inputGradient: dx.view.reshaped(c.shape))
        }
        dweight = try gradients.weight?.toArray()
        dbias = try gradients.bias?.toArray()
    }
}

/// Runs a backward case on `.cuda(0)` twice and checks dx, dweight and dbias against the float64
/// reference and the CPU backend, that dweight and dbias are bit-identical between the runs, and that
/// nothing outside dx's view was written.
func checkCUDABackward(_ c: CUDABackwardCase, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let inputs = CUDABackwardInputs(c)
    let reference = inputs.reference(c)
    let gpu = try CUDABackwardOutputs(c, inputs, device: .cuda(0), layout: c.layout)
    let again = try CUDABackwardOutputs(c, inputs, device: .cuda(0), layout: c.layout)
    let cpu = try CUDABackwardOutputs(c, inputs, device: .cpu, layout: .contiguous)
    let label = c.testDescription

    expectClose(
        try gpu.dx.view.toArray(), reference: reference.input, cpu: try cpu.dx.view.toArray(),
        tolerance: Reference.tolerance(c.dx), "\(label): dx", sourceLocation: sourceLocation)
    #expect(try gpu.dx.gapsUntouched(), "\(label): dx written outside its view", sourceLocation: sourceLocation)
    if let weightDType = c.weight {
        let dweight = try #require(gpu.dweight, "\(label): no dweight", sourceLocation: sourceLocation)
        expectClose(
            dweight, reference: reference.weight!, cpu: cpu.dweight, tolerance: Reference.tolerance(weightDType),
            "\(label): dweight", sourceLocation: sourceLocation)
        #expect(
            dweight.map(\.bitPattern) == again.dweight?.map(\.bitPattern), "\(label): dweight differs between two runs",
            sourceLocation: sourceLocation)
    }
    if let biasDType = c.bias {
        let dbias = try #require(gpu.dbias, "\(label): no dbias", sourceLocation: sourceLocation)
        expectClose(
            dbias, reference: reference.bias!, cpu: cpu.dbias, tolerance: Reference.tolerance(biasDType),
            "\(label): dbias", sourceLocation: sourceLocation)
        #expect(
            dbias.map(\.bitPattern) == again.dbias?.map(\.bitPattern), "\(label): dbias differs between two runs",
            sourceLocation: sourceLocation)
    }
}

@Suite("CUDA backward vs the float64 reference and the CPU backend", .needsCUDAGPU)
struct CUDABackwardTests {
    @Test("sizes 1 to 1,048,576, every dtype, strided and misaligned rows", arguments: CUDABackwardCases.sweep)
    func sweep(_ c: CUDABackwardCase) throws {
        try checkCUDABackward(c)
    }

    @Test("many rows, per-head weights, streaming layouts", arguments: CUDABackwardCases.shapes)
    func shapes(_ c: CUDABackwardCase) throws {
        try checkCUDABackward(c)
    }
}
