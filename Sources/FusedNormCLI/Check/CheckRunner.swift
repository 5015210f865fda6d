import FusedNorm
import FusedNormReference

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// One output of a case against the float64 reference.
struct CheckComparison: Sendable {
    /// y, s, mean, rstd, dx, dweight or dbias.
    var output: String
    /// ``FusedNormReference/Reference/relativeError(_:_:)``.
    var error: Double
    /// ``FusedNormReference/Reference/tolerance(_:rounding:)`` of the stored dtype.
    var tolerance: Double

    var passed: Bool { error <= tolerance }
    /// Error as a fraction of the tolerance: at most 1 passes.
    var ratio: Double { error / tolerance }
}

/// The outcome of one case.
struct CheckResult: Sendable {
    var testCase: CheckCase
    var comparisons: [CheckComparison] = []
    /// Failures other than an error over tolerance: a thrown error, or a write outside an output's view.
    var problems: [String] = []

    var passed: Bool { problems.isEmpty && comparisons.allSatisfy(\.passed) }
    /// The comparison closest to (or furthest over) its tolerance.
    var worst: CheckComparison? { comparisons.max { $0.ratio < $1.ratio } }

    /// What failed, one phrase per failure.
    var failures: [String] {
        problems
            + comparisons.filter { !$0.passed }.map {
                "\($0.output) error \(formatScientific($0.error)) > tolerance \(formatScientific($0.tolerance))"
            }
    }

    /// Compares `tensor` with `reference` at the tolerance of `dtype` (and `rounding`).
    mutating func compare(
        _ output: String, _ tensor: Tensor, _ reference: [Double], dtype: DType, rounding: RMSNormStyle.Rounding = .once
    ) throws {
        comparisons.append(
            CheckComparison(
                output: output, error: Reference.relativeError(try tensor.toArray(), reference),
                tolerance: Reference.tolerance(dtype, rounding: rounding)))
    }

    /// Records a failure when something wrote into `tensor`'s allocation outside its view.
    mutating func checkSurroundings(_ output: String, _ tensor: LaidOutTensor) throws {
        if try !tensor.surroundingsArePoisoned() {
            problems.append("\(output) was written outside its view")
        }
    }
}

/// A tensor in a case's layout, and the allocation it is a view of.
struct LaidOutTensor {
    var view: Tensor
    var allocation: Tensor
    var layout: CheckLayout

    /// Allocates a tensor of `shape` laid out per `layout`, every element of the allocation NaN.
    init(shape: [Int], dtype: DType, layout: CheckLayout, device: Device) throws {
        let columns = shape[shape.count - 1], rows = shape.dropLast().reduce(1, *)
        self.layout = layout
        switch layout {
        case .contiguous:
            allocation = try Tensor(repeating: .nan, shape: shape, dtype: dtype, device: device)
            view = allocation
        case .strided:
            allocation = try Tensor(repeating: .nan, shape: [3 * rows, columns], dtype: dtype, device: device)
            view = try allocation.rows(0..<3 * rows, step: 3).reshaped(shape)
        case .offsetColumns:
            allocation = try Tensor(
                repeating: .nan, shape: shape.dropLast() + [columns + 2], dtype: dtype, device: device)
            view = try allocation.columns(1..<columns + 1)
        }
    }

    /// Whether every element of the allocation outside the view is still NaN.
    func surroundingsArePoisoned() throws -> Bool {
        guard layout != .contiguous else { return true }
        let values = try allocation.toArray(), columns = allocation.columns
        for row in 0..<allocation.rows {
            let outside: [Int] =
                switch layout {
                case .contiguous: []
                case .strided: row % 3 == 0 ? [] : Array(0..<columns)
                case .offsetColumns: [0, columns - 1]
                }
            if outside.contains(where: { !values[row * columns + $0].isNaN }) { return false }
        }
        return true
    }
}

/// Makes one case's tensors: random inputs (rounded to their dtype, NaN around strided views) and
/// NaN-poisoned outputs, all in the case's layout on the case's device.
struct CheckTensors {
    let device: Device
    let layout: CheckLayout
    var generator: SeededGenerator

    /// An x-shaped input with values uniform in `range`, and the values it holds (rounded to `dtype`).
    mutating func input(_ shape: [Int], _ dtype: DType, _ range: ClosedRange<Float>) throws -> (
        tensor: Tensor, values: [Float]
    ) {
        let tensor = try LaidOutTensor(shape: shape, dtype: dtype, layout: layout, device: device).view
        try tensor.write(generator.uniform(shape.reduce(1, *), in: range))
        return (tensor, try tensor.toArray())
    }

    /// A contiguous weight or bias with values uniform in `range`, and the values it holds.
    mutating func parameter(_ shape: [Int], _ dtype: DType, _ range: ClosedRange<Float>) throws -> (
        tensor: Tensor, values: [Float]
    ) {
        let tensor = try Tensor(
            generator.uniform(shape.reduce(1, *), in: range), shape: shape, dtype: dtype, device: device)
        return (tensor, try tensor.toArray())
    }

    /// An x-shaped output, poisoned with NaN so that an element the operation does not write fails.
    func output(_ shape: [Int], _ dtype: DType) throws -> LaidOutTensor {
        try LaidOutTensor(shape: shape, dtype: dtype, layout: layout, device: device)
    }
}

/// Runs `check` cases on one device against ``FusedNormReference/Reference``.
struct CheckRunner {
    var device: Device
    /// Combined with each case's name into the case's seed.
    var seed: UInt64

    /// Runs one case; a thrown error becomes a failure of the case.
    func run(_ testCase: CheckCase) -> CheckResult {
        var result = CheckResult(testCase: testCase)
        var tensors = CheckTensors(
            device: device, layout: testCase.shape.layout, generator: SeededGenerator(seed: testCase.seed(seed)))
        do {
            if testCase.variant.operation.isBackward {
                try runBackward(testCase, &tensors, &result)
            } else {
                try runForward(testCase, &tensors, &result)
            }
        } catch {
            result.problems.append("threw: \(error)")
        }
        return result
    }

    /// The problem's dimensions: x's shape, the weight's shape and the weight's row count.
    private func dimensions(_ testCase: CheckCase) -> (x: [Int], weight: [Int], weightRows: Int) {
        let columns = testCase.shape.columns, heads = testCase.variant.heads
        let x = heads > 1 ? [max(1, testCase.shape.rows / heads), heads, columns] : [testCase.shape.rows, columns]
        return testCase.variant.weight == .perHead ? (x, [heads, columns], heads) : (x, [columns], 1)
    }

    /// Epsilon: the usual default, but 1 for rows of one element, where RMSNorm's dx = r·g·ε/(x²+ε) is
    /// otherwise nothing but cancellation (and no float32 kernel can meet a float32 tolerance).
    private func epsilon(_ testCase: CheckCase) -> Float {
        testCase.shape.columns == 1 ? 1 : testCase.variant.operation.isRMSNorm ? 1e-6 : 1e-5
    }

    private func runForward(_ testCase: CheckCase, _ tensors: inout CheckTensors, _ result: inout CheckResult) throws {
        let variant = testCase.variant, dtype = testCase.dtype, epsilon = epsilon(testCase)
        let (xShape, weightShape, weightRows) = dimensions(testCase)
        let rows = xShape.dropLast().reduce(1, *), columns = testCase.shape.columns
        let residualDType: DType = variant.residual == .mixed ? .float32 : dtype
        let outputDType: DType = variant.residual == .mixed ? (dtype == .float32 ? .bfloat16 : .float32) : dtype

        let x = try tensors.input(xShape, dtype, variant.operation.isRMSNorm ? -2...2 : -1.75...2.25)
        let residual = variant.residual == .none ? nil : try tensors.input(xShape, residualDType, -2...2)
        let weightRange: ClosedRange<Float> = variant.style.weightOffset == 1 ? -0.5...0.5 : 0.5...1.5
        let weight = variant.weight == .none ? nil : try tensors.parameter(weightShape, dtype, weightRange)
        let bias = variant.bias ? try tensors.parameter(weightShape, dtype, -0.5...0.5) : nil
        let y = try tensors.output(xShape, outputDType)
        let s = residual == nil ? nil : try tensors.output(xShape, residualDType)

        let forward: NormForwardResult, reference: Reference.Forward
        if variant.operation.isRMSNorm {
            forward = try rmsNormForward(
                x.tensor, residual: residual?.tensor, weight: weight?.tensor, epsilon: epsilon,
                style: variant.style, outputDType: outputDType,
                residualDType: residual == nil ? nil : residualDType, output: y.view, residualOutput: s?.view)
            reference = Reference.rmsNorm(
                x: x.values, residual: residual?.values, weight: weight?.values, rows: rows, columns: columns,
                weightRows: weightRows, epsilon: epsilon, style: variant.style,
                roundingDType: residual == nil ? dtype : residualDType,
                residualDType: residual == nil ? nil : residualDType)
        } else {
            forward = try layerNormForward(
                x.tensor, residual: residual?.tensor, weight: weight?.tensor, bias: bias?.tensor, epsilon: epsilon,
                outputDType: outputDType, residualDType: residual == nil ? nil : residualDType,
                output: y.view, residualOutput: s?.view)
            reference = Reference.layerNorm(
                x: x.values, residual: residual?.values, weight: weight?.values, bias: bias?.values, rows: rows,
                columns: columns, weightRows: weightRows, epsilon: epsilon,
                residualDType: residual == nil ? nil : residualDType)
        }

        // Rounded twice, ŝ is rounded to the normalized input's dtype as well: y can be no more accurate
        // than the coarser of that dtype and its own.
        let rounding: RMSNormStyle.Rounding = variant.operation.isRMSNorm ? variant.style.rounding : .once
        let roundedHatDType = rounding == .twice ? (residual == nil ? dtype : residualDType) : outputDType
        let yToleranceDType = [outputDType, roundedHatDType].max { Reference.tolerance($0) < Reference.tolerance($1) }!
        try result.compare("y", y.view, reference.output, dtype: yToleranceDType, rounding: rounding)
        try result.checkSurroundings("y", y)
        if let s, let referenceResidual = reference.residual {
            try result.compare("s", s.view, referenceResidual, dtype: residualDType)
            try result.checkSurroundings("s", s)
        }
        if let mean = forward.mean { try result.compare("mean", mean, reference.mean, dtype: .float32) }
        try result.compare("rstd", forward.rstd, reference.rstd, dtype: .float32)
    }

    private func runBackward(_ testCase: CheckCase, _ tensors: inout CheckTensors, _ result: inout CheckResult) throws {
        let variant = testCase.variant, dtype = testCase.dtype, epsilon = epsilon(testCase)
        let (xShape, weightShape, weightRows) = dimensions(testCase)
        let rows = xShape.dropLast().reduce(1, *), columns = testCase.shape.columns
        let isRMSNorm = variant.operation.isRMSNorm

        let x = try tensors.input(xShape, dtype, isRMSNorm ? -2...2 : -1.75...2.25)
        let dy = try tensors.input(xShape, dtype, -1...1)
        let weightRange: ClosedRange<Float> = variant.style.weightOffset == 1 ? -0.5...0.5 : 0.5...1.5
        let weight = variant.weight == .none ? nil : try tensors.parameter(weightShape, dtype, weightRange)
        let bias = variant.bias ? try tensors.parameter(weightShape, dtype, -0.5...0.5) : nil
        // dbias asked for without a bias: a float32 destination of the weight's shape.
        let biasGradient = variant.biasGradientOnly ? try tensors.output(weightShape, .float32) : nil
        let residualGradient = variant.residualGradient ? try tensors.input(xShape, dtype, -1...1) : nil
        let dx = try tensors.output(xShape, dtype)

        let gradients: NormGradients, reference: Reference.Backward
        if isRMSNorm {
            let rstd =
                variant.savedStatistics
                ? try rmsNormForward(x.tensor, weight: weight?.tensor, epsilon: epsilon, style: variant.style).rstd
                : nil
            gradients = try rmsNormBackward(
                dy.tensor, input: x.tensor, weight: weight?.tensor, rstd: rstd,
                residualGradient: residualGradient?.tensor,
                epsilon: epsilon, style: variant.style, inputGradient: dx.view)
            reference = Reference.rmsNormBackward(
                outputGradient: dy.values, x: x.values, weight: weight?.values, rows: rows, columns: columns,
                weightRows: weightRows, epsilon: epsilon, style: variant.style,
                residualGradient: residualGradient?.values)
        } else {
            let saved =
                variant.savedStatistics
                ? try layerNormForward(x.tensor, weight: weight?.tensor, bias: bias?.tensor, epsilon: epsilon)
                : nil
            gradients = try layerNormBackward(
                dy.tensor, input: x.tensor, weight: weight?.tensor, bias: bias?.tensor, mean: saved?.mean,
                rstd: saved?.rstd, residualGradient: residualGradient?.tensor, epsilon: epsilon, inputGradient: dx.view,
                biasGradient: biasGradient?.view)
            reference = Reference.layerNormBackward(
                outputGradient: dy.values, x: x.values, weight: weight?.values,
                hasBias: bias != nil || biasGradient != nil, rows: rows,
                columns: columns, weightRows: weightRows, epsilon: epsilon, residualGradient: residualGradient?.values)
        }

        try result.compare("dx", dx.view, reference.input, dtype: dtype)
        try result.checkSurroundings("dx", dx)
        if let referenceWeight = reference.weight {
            guard let dweight = gradients.weight else { throw CheckRunnerError.missing("dweight") }
            try result.compare("dweight", dweight, referenceWeight, dtype: dtype)
        }
        if let referenceBias = reference.bias {
            guard let dbias = gradients.bias else { throw CheckRunnerError.missing("dbias") }
            try result.compare("dbias", dbias, referenceBias, dtype: biasGradient == nil ? dtype : .float32)
        }
    }
}

/// A result the library should have returned and did not.
enum CheckRunnerError: Error, CustomStringConvertible {
    case missing(String)

    var description: String {
        switch self {
        case .missing(let output): "no \(output) was returned"
        }
    }
}

/// `1.2e-05`: a value in scientific notation with two significant digits.
func formatScientific(_ value: Double) -> String {
    String(printf: "%.1e", value)
}
