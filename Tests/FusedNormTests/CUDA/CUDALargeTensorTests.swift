@testable import FusedNorm
import FusedNormReference
import Testing

/// A bf16 tensor of 32,769 rows × 65,536 columns: 2^31 + 65,536 elements, so that the last row starts
/// exactly at element 2^31 and 32-bit indexing would wrap.
@Suite("CUDA tensors past 2^31 elements", .needsCUDAGPU)
struct CUDALargeTensorTests {
    static let rows = 32_769, columns = 65_536
    /// x, y, dy and dx: 4 GiB each.
    static var enoughMemory: Bool { (CUDA.status.devices.first?.memoryBytes ?? 0) >= 24 << 30 }

    @Test("RMSNorm forward and backward on the first, middle and last rows", .enabled(if: enoughMemory, "needs 24 GiB of GPU memory"))
    func pastTwoToTheThirtyOne() throws {
        let rows = Self.rows, columns = Self.columns
        #expect(rows * columns > 1 << 31)
        let x = try Tensor(allocating: [rows, columns], dtype: .bfloat16, on: .cuda(0))
        var random = CUDATestRandom("large")
        let pattern = random.values(columns, dtype: .bfloat16)
        try x.rows(0..<1).write(pattern)
        // Fill every row with the pattern by doubling device-to-device copies.
        var filled = 1
        while filled < rows {
            let count = min(filled, rows - filled)
            try x.rows(0..<count).copy(into: x.rows(filled..<filled + count))
            filled += count
        }
        let checked = [0, rows / 2, rows - 2, rows - 1]
        var values: [Int: [Float]] = [:]
        for row in checked where row != 0 {
            values[row] = random.values(columns, dtype: .bfloat16)
            try x.rows(row..<row + 1).write(values[row]!)
        }
        values[0] = pattern
        let weight = random.values(columns, dtype: .bfloat16, 0.5, 1.5)
        let w = try Tensor(weight, dtype: .bfloat16, device: .cuda(0))

        let y = try rmsNorm(x, weight: w)
        let dx = try rmsNormBackward(x, input: x, weight: nil).input
        for row in checked + [1, rows / 3] {
            let input = values[row] ?? pattern
            let reference = Reference.rmsNorm(x: input, weight: weight, rows: 1, columns: columns, epsilon: 1e-6)
            let error = Reference.relativeError(try y.rows(row..<row + 1).toArray(), reference.output)
            #expect(error <= Reference.tolerance(.bfloat16), "row \(row): y error \(error)")
            let backward = Reference.rmsNormBackward(outputGradient: input, x: input, weight: nil, rows: 1, columns: columns, epsilon: 1e-6)
            let dxError = Reference.relativeError(try dx.rows(row..<row + 1).toArray(), backward.input)
            #expect(dxError <= Reference.tolerance(.bfloat16), "row \(row): dx error \(dxError)")
        }
    }
}
