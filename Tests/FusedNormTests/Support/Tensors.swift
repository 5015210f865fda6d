import FusedNorm
import FusedNormReference
import Testing

/// How a test tensor sits in memory: the view given to the library, inside a larger parent tensor.
enum Layout: String, Sendable, CaseIterable, CustomStringConvertible {
    /// The tensor itself, rows packed.
    case contiguous
    /// Every third row of a parent with 3× the rows (row stride 3·N).
    case everyThirdRow
    /// `columns(1..<N+1)` of a parent with N+3 columns: misaligned rows, row stride N+3.
    case shiftedColumns
    /// `columns(1..<N+1)` of a parent with N+1 columns, then every other row: misaligned and strided.
    case shiftedEveryOtherRow

    var description: String { rawValue }

    /// Parent rows and columns for `rows` rows of `columns` elements.
    func parentShape(rows: Int, columns: Int) -> [Int] {
        switch self {
        case .contiguous: [rows, columns]
        case .everyThirdRow: [3 * rows, columns]
        case .shiftedColumns: [rows, columns + 3]
        case .shiftedEveryOtherRow: [2 * rows, columns + 1]
        }
    }

    /// Whether element (row, column) of the parent belongs to the view.
    func contains(parentRow row: Int, column: Int, columns: Int) -> Bool {
        switch self {
        case .contiguous: true
        case .everyThirdRow: row % 3 == 0
        case .shiftedColumns: column >= 1 && column <= columns
        case .shiftedEveryOtherRow: row % 2 == 0 && column >= 1 && column <= columns
        }
    }
}

/// A view in `layout` of a freshly allocated parent tensor, and the parent.
struct Placed {
    let view: Tensor
    let parent: Tensor
    let layout: Layout

    /// Allocates a parent filled with `fill` and returns the view of logical `shape` inside it.
    init(shape: [Int], dtype: DType, layout: Layout, device: Device, fill: Float) throws {
        let columns = shape[shape.count - 1]
        let rows = shape.dropLast().reduce(1, *)
        let parent = try Tensor(
            repeating: fill, shape: layout.parentShape(rows: rows, columns: columns), dtype: dtype, device: device)
        let flat: Tensor =
            switch layout {
            case .contiguous: parent
            case .everyThirdRow: try parent.rows(0..<3 * rows, step: 3)
            case .shiftedColumns: try parent.columns(1..<columns + 1)
            case .shiftedEveryOtherRow: try parent.columns(1..<columns + 1).rows(0..<2 * rows, step: 2)
            }
        self.view = try flat.reshaped(shape)
        self.parent = parent
        self.layout = layout
    }

    /// The parent's elements outside the view, in order.
    func outsideValues() throws -> [Float] {
        let all = try parent.toArray()
        let parentColumns = parent.columns
        var outside: [Float] = []
        for (index, value) in all.enumerated()
        where !layout.contains(parentRow: index / parentColumns, column: index % parentColumns, columns: view.columns) {
            outside.append(value)
        }
        return outside
    }
}

/// An input: its tensor (a view in some layout, whose gaps hold NaN so that a read outside the view
/// poisons the result) and the values the kernels see (rounded to the dtype, read back with `toArray`).
struct Input {
    let tensor: Tensor
    let values: [Float]

    init(_ values: [Float], shape: [Int], dtype: DType, layout: Layout = .contiguous, device: Device) throws {
        let placed = try Placed(shape: shape, dtype: dtype, layout: layout, device: device, fill: .nan)
        try placed.view.write(values)
        tensor = placed.view
        self.values = try placed.view.toArray()
    }
}

/// The value around preallocated outputs: exactly representable in every dtype.
let outsideSentinel: Float = 96

/// A preallocated output: a view in `layout`, poisoned with NaN so that an element the kernel does not
/// write fails the comparison, inside a parent whose other elements hold ``outsideSentinel``.
struct PoisonedOutput {
    let placed: Placed
    var tensor: Tensor { placed.view }

    init(shape: [Int], dtype: DType, layout: Layout = .contiguous, device: Device) throws {
        placed = try Placed(shape: shape, dtype: dtype, layout: layout, device: device, fill: outsideSentinel)
        try placed.view.fill(with: .nan)
    }

    /// Records an issue when the kernel wrote outside the view.
    func expectUntouchedOutside(_ what: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let outside = try placed.outsideValues()
        let written = outside.filter { $0 != outsideSentinel }.count
        #expect(
            written == 0,
            "\(what): \(written) of \(outside.count) elements outside the \(placed.layout) view were overwritten",
            sourceLocation: sourceLocation)
    }
}

/// Bit patterns, to compare results exactly (NaN payloads and signed zeros included).
func bits(_ values: [Float]) -> [UInt32] { values.map(\.bitPattern) }

/// The coarser of two dtypes (the one with the larger tolerance).
func coarser(_ a: DType, _ b: DType) -> DType {
    Reference.tolerance(a) >= Reference.tolerance(b) ? a : b
}

/// Floats as doubles.
func doubles(_ values: [Float]) -> [Double] { values.map(Double.init) }

/// `values[row * columns ..< (row + 1) * columns]` as an array.
func row<T>(_ values: [T], _ row: Int, columns: Int) -> [T] { Array(values[row * columns..<(row + 1) * columns]) }

/// How many elements of two equally long arrays differ in their bit patterns (a count, so that a failure
/// does not print whole tensors); a length mismatch counts every element.
func differingBits(_ a: [Float], _ b: [Float]) -> Int {
    guard a.count == b.count else { return max(a.count, b.count) }
    return zip(a, b).reduce(0) { $0 + ($1.0.bitPattern == $1.1.bitPattern ? 0 : 1) }
}
