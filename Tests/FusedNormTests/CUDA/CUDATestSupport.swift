import FusedNormReference
import Testing

@testable import FusedNorm

/// Whether the GPU tests of this folder can run: `CUDA.status.problem == nil`.
enum CUDATestGPU {
    /// Why no GPU can be used here, or nil.
    static let problem: String? = CUDA.status.problem
    static var available: Bool { problem == nil }
    static var deviceCount: Int { available ? CUDA.status.devices.count : 0 }
}

extension Trait where Self == ConditionTrait {
    /// Runs only with a usable GPU; elsewhere the test shows as skipped with the reason.
    static var needsCUDAGPU: Self {
        .enabled(if: CUDATestGPU.available, Comment(rawValue: "needs a usable CUDA GPU: \(CUDATestGPU.problem ?? "")"))
    }
}

/// A seeded generator (SplitMix64) for test inputs that never are all zeros.
struct CUDATestRandom {
    private var state: UInt64

    init(_ label: String) {
        state = fnv1a64(Array(label.utf8))
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// `count` values uniform in [lower, upper), rounded to `dtype` (what the kernels will see).
    mutating func values(_ count: Int, dtype: DType, _ lower: Float = -2, _ upper: Float = 2) -> [Float] {
        (0..<count).map { _ in dtype.round(lower + (upper - lower) * Float(next() >> 40) * 0x1p-24) }
    }
}

/// How a test tensor sits in its parent: packed; every other row; or shifted by one element in a
/// parent one column wider (rows misaligned for 16-byte vectors whatever N is).
enum CUDATestLayout: String, Sendable, CaseIterable {
    case contiguous
    case everyOtherRow
    case misaligned

    func parentShape(rows: Int, columns: Int) -> [Int] {
        switch self {
        case .contiguous: [rows, columns]
        case .everyOtherRow: [2 * rows, columns]
        case .misaligned: [rows, columns + 1]
        }
    }

    func view(of parent: Tensor, rows: Int, columns: Int) throws -> Tensor {
        switch self {
        case .contiguous: parent
        case .everyOtherRow: try parent.rows(0..<2 * rows, step: 2)
        case .misaligned: try parent.columns(1..<columns + 1)
        }
    }

    /// Whether element (row, column) of the parent lies outside the view.
    func isGap(parentRow row: Int, column: Int) -> Bool {
        switch self {
        case .contiguous: false
        case .everyOtherRow: row % 2 == 1
        case .misaligned: column == 0
        }
    }
}

/// The value gaps of a parent are filled with, to check that nothing writes outside a view.
let cudaTestSentinel: Float = 77

/// A tensor placed in a layout on a device: the view and its parent.
struct CUDATestPlaced {
    let view: Tensor
    let parent: Tensor
    let layout: CUDATestLayout
    let columns: Int

    /// An input: `values` (rows × columns) written into the view; gaps hold the sentinel.
    init(_ values: [Float], rows: Int, columns: Int, dtype: DType, layout: CUDATestLayout, device: Device) throws {
        parent = try Tensor(
            repeating: cudaTestSentinel, shape: layout.parentShape(rows: rows, columns: columns), dtype: dtype,
            device: device)
        view = try layout.view(of: parent, rows: rows, columns: columns)
        self.layout = layout
        self.columns = columns
        try view.write(values)
    }

    /// An output: the view poisoned with NaN; gaps hold the sentinel.
    init(poisonedRows rows: Int, columns: Int, dtype: DType, layout: CUDATestLayout, device: Device) throws {
        parent = try Tensor(
            repeating: cudaTestSentinel, shape: layout.parentShape(rows: rows, columns: columns), dtype: dtype,
            device: device)
        view = try layout.view(of: parent, rows: rows, columns: columns)
        self.layout = layout
        self.columns = columns
        try view.fill(with: .nan)
    }

    /// Whether every gap element still holds the sentinel.
    func gapsUntouched() throws -> Bool {
        guard layout != .contiguous else { return true }
        let values = try parent.toArray()
        let parentColumns = parent.columns
        for (index, value) in values.enumerated()
        where layout.isGap(parentRow: index / parentColumns, column: index % parentColumns) {
            if value != cudaTestSentinel { return false }
        }
        return true
    }
}

/// The coarser of two dtypes (fewer mantissa bits).
func cudaTestCoarser(_ a: DType, _ b: DType) -> DType {
    let order: [DType] = [.float32, .float16, .bfloat16]
    return order.firstIndex(of: a)! >= order.firstIndex(of: b)! ? a : b
}

/// Checks `values` against the float64 reference (within `tolerance`) and against the CPU backend's
/// result (within twice that: each may be off the reference by `tolerance`, in opposite directions).
func expectClose(
    _ values: [Float], reference: [Double], cpu: [Float]?, tolerance: Double, _ label: String,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    let error = Reference.relativeError(values, reference)
    #expect(
        error <= tolerance, "\(label): relative error \(error) vs the float64 reference (tolerance \(tolerance))",
        sourceLocation: sourceLocation)
    if let cpu {
        let cpuError = Reference.relativeError(values, cpu.map(Double.init))
        #expect(
            cpuError <= 2 * tolerance,
            "\(label): relative error \(cpuError) vs the CPU backend (tolerance \(2 * tolerance))",
            sourceLocation: sourceLocation)
    }
}
