import FusedNorm
import Testing

/// A row's results (forward y, s, mean and rstd; backward dx) do not depend on how many other rows are in
/// the call or where the row sits in it: the same N, dtype and device give the same bits whether the row is
/// normalized alone, among 3, or inside a large call, at any row offset and row stride.
@Suite("Batch invariance")
struct BatchInvarianceTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var norm: Norm
        var columns: Int
        var dtype: DType
        var residual: Bool
        var testDescription: String { "\(norm) N=\(columns) \(dtype)\(residual ? " + residual" : "")" }
    }

    /// Sizes across the CPU kernels' and the GPU heuristic's layout switches (sub-warp rows, one warp,
    /// one CTA, unaligned rows, clusters, streaming).
    static let columnCounts = [1, 3, 33, 256, 1000, 4095, 4096, 5120, 16384, 65537]

    static func cases(columns: [Int]) -> [Case] {
        var cases: [Case] = []
        for n in columns {
            for dtype in DType.allCases {
                cases.append(Case(norm: .rms, columns: n, dtype: dtype, residual: n % 2 == 1))
                cases.append(Case(norm: .layer, columns: n, dtype: dtype, residual: n % 2 == 0))
            }
        }
        return cases
    }

    /// What a call produces for its rows, as values per row.
    struct RowResults {
        var y: [[Float]], s: [[Float]], mean: [Float], rstd: [Float], dx: [[Float]]

        /// The results of rows `indices` of this call.
        func rows(_ indices: [Int]) -> RowResults {
            RowResults(
                y: indices.map { y[$0] }, s: s.isEmpty ? [] : indices.map { s[$0] },
                mean: mean.isEmpty ? [] : indices.map { mean[$0] }, rstd: indices.map { rstd[$0] },
                dx: indices.map { dx[$0] })
        }

        /// The names of the results whose bits differ from `other`'s.
        func differences(from other: RowResults) -> [String] {
            var names: [String] = []
            if differingBits(y.flatMap { $0 }, other.y.flatMap { $0 }) > 0 { names.append("y") }
            if differingBits(s.flatMap { $0 }, other.s.flatMap { $0 }) > 0 { names.append("s") }
            if differingBits(mean, other.mean) > 0 { names.append("mean") }
            if differingBits(rstd, other.rstd) > 0 { names.append("rstd") }
            if differingBits(dx.flatMap { $0 }, other.dx.flatMap { $0 }) > 0 { names.append("dx") }
            return names
        }
    }

    /// Inputs for `rows` rows laid out with a row stride of N + 5 (odd) after an offset of 3 elements.
    struct Inputs {
        var x: [[Float]], residual: [[Float]], dy: [[Float]], weight: [Float], bias: [Float]

        init(_ c: Case, rows: Int) {
            var rng = SplitMix64(label: c.testDescription)
            x = (0..<rows).map { _ in rng.values(c.columns, -3, 3) }
            residual = (0..<rows).map { _ in rng.values(c.columns, -1, 1) }
            dy = (0..<rows).map { _ in rng.values(c.columns, -1, 1) }
            weight = rng.values(c.columns, 0.5, 1.5)
            bias = rng.values(c.columns, -0.5, 0.5)
        }
    }

    /// `values` rows in a strided view: row stride N + 5 (odd), 3 elements after the buffer's start, so that
    /// no row is aligned; the elements between rows are NaN.
    static func stridedTensor(_ values: [[Float]], columns: Int, dtype: DType, device: Device) throws -> Tensor {
        let stride = columns + 5, offset = 3
        var flat = [Float](repeating: .nan, count: offset + values.count * stride)
        for (row, rowValues) in values.enumerated() {
            flat.replaceSubrange(offset + row * stride..<offset + row * stride + columns, with: rowValues)
        }
        let storage = try Tensor(flat, shape: [flat.count], dtype: dtype, device: device)
        return try storage.columns(offset..<flat.count).reshaped([values.count, stride]).columns(0..<columns)
    }

    /// Runs forward and backward over `indices` rows of `inputs` in one call, strided, on `device`.
    static func run(_ c: Case, _ inputs: Inputs, rows indices: [Int], device: Device) throws -> RowResults {
        let n = c.columns
        func tensor(_ rows: [[Float]]) throws -> Tensor {
            try stridedTensor(indices.map { rows[$0] }, columns: n, dtype: c.dtype, device: device)
        }
        let x = try tensor(inputs.x), dy = try tensor(inputs.dy)
        let residual = c.residual ? try tensor(inputs.residual) : nil
        let weight = try Tensor(inputs.weight, shape: [n], dtype: c.dtype, device: device)
        let bias = try Tensor(inputs.bias, shape: [n], dtype: c.dtype, device: device)
        let forward: NormForwardResult, gradients: NormGradients
        switch c.norm {
        case .rms:
            forward = try rmsNormForward(x, residual: residual, weight: weight)
            gradients = try rmsNormBackward(dy, input: forward.residual ?? x, weight: weight, rstd: forward.rstd)
        case .layer:
            forward = try layerNormForward(x, residual: residual, weight: weight, bias: bias)
            gradients = try layerNormBackward(
                dy, input: forward.residual ?? x, weight: weight, bias: bias, mean: forward.mean, rstd: forward.rstd)
        }
        func rows(_ tensor: Tensor) throws -> [[Float]] {
            let values = try tensor.toArray()
            return (0..<indices.count).map { Array(values[$0 * n..<($0 + 1) * n]) }
        }
        return RowResults(
            y: try rows(forward.output), s: try forward.residual.map(rows) ?? [],
            mean: try forward.mean?.toArray() ?? [],
            rstd: try forward.rstd.toArray(), dx: try rows(gradients.input))
    }

    /// The rows of a call of `total` rows, each compared with the same rows in calls of 1 and 3 rows at the
    /// start, the middle and the end, and with every other row of the call in one call.
    static func check(_ c: Case, total: Int, device: Device) throws {
        let inputs = Inputs(c, rows: total)
        let all = try run(c, inputs, rows: Array(0..<total), device: device)
        // Not vacuous: the rows differ from one another.
        #expect(c.columns == 1 || Set(all.rstd.map(\.bitPattern)).count > 1)
        var subsets: [[Int]] = [[0], [total / 2], [total - 1]]
        if total >= 3 { subsets += [[0, 1, 2], [total - 3, total - 2, total - 1], [total - 1, 0, total / 2]] }
        if total >= 4 { subsets.append(Array(stride(from: 1, to: total, by: 2))) }
        for subset in subsets {
            let part = try run(c, inputs, rows: subset, device: device)
            let differences = part.differences(from: all.rows(subset))
            #expect(
                differences.isEmpty,
                "rows \(subset.prefix(4)) of \(total) on \(device): \(differences) differ from the whole call")
        }
    }

    @Test(
        "CPU: each row's y, s, mean, rstd and dx are the same bits alone, among 3, or among 64",
        arguments: cases(columns: columnCounts))
    func cpu(_ c: Case) throws {
        try Self.check(c, total: c.columns >= 16384 ? 16 : 64, device: .cpu)
    }

    @Test(
        "CPU, every kernel family: the same bits alone, among 3, or among 64",
        arguments: cases(columns: [33, 4095, 5120]), CPUSettings.Kernels.allCases)
    func cpuKernels(_ c: Case, kernels: CPUSettings.Kernels) throws {
        try CPUSettings.$requestedKernels.withValue(kernels) { try Self.check(c, total: 64, device: .cpu) }
    }

    @Test(
        "CUDA: each row's results are the same bits alone, among 3, or among 4096", .requiresCUDA,
        arguments: cases(columns: columnCounts))
    func cuda(_ c: Case) throws {
        try Self.check(c, total: c.columns >= 16384 ? 256 : 4096, device: .cuda(0))
    }
}
