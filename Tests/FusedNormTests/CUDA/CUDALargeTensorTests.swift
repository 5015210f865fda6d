import FusedNormReference
import Testing

@testable import FusedNorm

/// A bf16 tensor of 32,769 rows × 65,536 columns: 2^31 + 65,536 elements, so that the last row starts
/// exactly at element 2^31 and 32-bit indexing would wrap.
@Suite("CUDA tensors past 2^31 elements", .needsCUDAGPU)
struct CUDALargeTensorTests {
    static let rows = 32_769, columns = 65_536
    /// x, y, dy and dx: 4 GiB each.
    static var enoughMemory: Bool { (CUDA.status.devices.first?.memoryBytes ?? 0) >= 24 << 30 }

    /// A rows × columns bf16 tensor whose rows all hold `pattern` (doubling device-to-device copies),
    /// except `rows`, which hold their own random values.
    static func filled(pattern: [Float], distinct rows: [Int], random: inout CUDATestRandom) throws -> (
        Tensor, [Int: [Float]]
    ) {
        let tensor = try Tensor(allocating: [Self.rows, Self.columns], dtype: .bfloat16, on: .cuda(0))
        try tensor.rows(0..<1).write(pattern)
        var filled = 1
        while filled < Self.rows {
            let count = min(filled, Self.rows - filled)
            try tensor.rows(0..<count).copy(into: tensor.rows(filled..<filled + count))
            filled += count
        }
        var values: [Int: [Float]] = [:]
        for row in rows {
            values[row] = random.values(Self.columns, dtype: .bfloat16)
            try tensor.rows(row..<row + 1).write(values[row]!)
        }
        return (tensor, values)
    }

    @Test(
        "RMSNorm forward and backward on the first, middle and last rows",
        .enabled(if: enoughMemory, "needs 24 GiB of GPU memory"))
    func pastTwoToTheThirtyOne() throws {
        let rows = Self.rows, columns = Self.columns
        #expect(rows * columns > 1 << 31)
        var random = CUDATestRandom("large")
        let distinct = [rows / 2, rows - 2, rows - 1]
        let xPattern = random.values(columns, dtype: .bfloat16), dyPattern = random.values(columns, dtype: .bfloat16)
        let (x, xValues) = try Self.filled(pattern: xPattern, distinct: distinct, random: &random)
        let (dy, dyValues) = try Self.filled(pattern: dyPattern, distinct: distinct, random: &random)
        let weight = random.values(columns, dtype: .bfloat16, 0.5, 1.5)
        let w = try Tensor(weight, dtype: .bfloat16, device: .cuda(0))

        let y = try rmsNorm(x, weight: w)
        let dx = try rmsNormBackward(dy, input: x, weight: nil).input
        for row in [0, 1, rows / 3] + distinct {
            let input = xValues[row] ?? xPattern, gradient = dyValues[row] ?? dyPattern
            let reference = Reference.rmsNorm(x: input, weight: weight, rows: 1, columns: columns, epsilon: 1e-6)
            let error = Reference.relativeError(try y.rows(row..<row + 1).toArray(), reference.output)
            #expect(error <= Reference.tolerance(.bfloat16), "row \(row): y error \(error)")
            let backward = Reference.rmsNormBackward(
                outputGradient: gradient, x: input, weight: nil, rows: 1, columns: columns, epsilon: 1e-6)
            let dxError = Reference.relativeError(try dx.rows(row..<row + 1).toArray(), backward.input)
            #expect(dxError <= Reference.tolerance(.bfloat16), "row \(row): dx error \(dxError)")
        }
    }
}
