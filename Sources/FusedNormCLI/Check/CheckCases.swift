import ArgumentParser
import FusedNorm

/// The operation families `fusednorm check` covers.
enum CheckOperation: String, CaseIterable, Sendable {
    case rmsnorm
    case rmsnormResidual = "rmsnorm-residual"
    /// Per-head RMSNorm of queries and keys: x (rows, H, D) with a weight (D) or (H, D).
    case qkNorm = "qk-norm"
    case rmsnormBackward = "rmsnorm-backward"
    case layernorm
    case layernormBackward = "layernorm-backward"

    /// Whether the family is RMSNorm (else LayerNorm).
    var isRMSNorm: Bool { self != .layernorm && self != .layernormBackward }

    var isBackward: Bool { self == .rmsnormBackward || self == .layernormBackward }

    /// A comma-separated list of family names (`--ops`), hyphenated (`rmsnorm-backward`); the underscore
    /// spelling (`rmsnorm_backward`) is accepted too.
    static func list(_ text: String) throws -> [CheckOperation] {
        try ListArgument.parse(text, expected: allCases.map(\.rawValue).joined(separator: ", ")) {
            CheckOperation(rawValue: ListArgument.operationName($0))
        }
    }
}

/// One configuration of an operation that `check` runs for every dtype and shape.
struct CheckVariant: Sendable {
    /// Which weight (or bias) a case passes.
    enum Parameter: Sendable {
        case none
        /// Shape (N).
        case shared
        /// Shape (H, N), for x shaped (rows, H, N).
        case perHead
    }

    /// Whether a residual is fused, and in which dtypes.
    enum Residual: Sendable {
        case none
        /// Residual, s and y in the case's dtype.
        case sameDType
        /// x in the case's dtype, the residual and s in float32, y in another dtype than x's.
        case mixed
    }

    var operation: CheckOperation
    var name: String
    var weight: Parameter = .shared
    var bias = false
    /// RMSNorm's weight offset and rounding.
    var style: RMSNormStyle = .standard
    var residual: Residual = .none
    /// Backward: pass the statistics a forward pass saved (else they are recomputed).
    var savedStatistics = false
    /// Backward: add a gradient reaching s from downstream.
    var residualGradient = false
    /// LayerNorm backward: ask for dbias with a float32 destination and no bias.
    var biasGradientOnly = false

    /// Heads in x's shape (rows, H, N); 1 for x shaped (rows, N).
    var heads: Int { operation == .qkNorm || weight == .perHead ? 3 : 1 }

    /// Every variant, in table order.
    static let all: [CheckVariant] = [
        CheckVariant(operation: .rmsnorm, name: "weight, standard"),
        CheckVariant(operation: .rmsnorm, name: "weight, llama", style: .llama),
        CheckVariant(operation: .rmsnorm, name: "no weight, standard", weight: .none),
        CheckVariant(operation: .rmsnorm, name: "no weight, llama", weight: .none, style: .llama),
        CheckVariant(operation: .rmsnorm, name: "weight, gemma", style: .gemma),
        CheckVariant(
            operation: .rmsnorm, name: "weight offset 1, two roundings",
            style: RMSNormStyle(weightOffset: 1, rounding: .twice)),
        CheckVariant(operation: .rmsnormResidual, name: "same dtypes, standard", residual: .sameDType),
        CheckVariant(operation: .rmsnormResidual, name: "same dtypes, llama", style: .llama, residual: .sameDType),
        CheckVariant(operation: .rmsnormResidual, name: "residual fp32, other y dtype, standard", residual: .mixed),
        CheckVariant(
            operation: .rmsnormResidual, name: "residual fp32, other y dtype, llama", style: .llama, residual: .mixed),
        CheckVariant(operation: .rmsnormResidual, name: "no weight, same dtypes", weight: .none, residual: .sameDType),
        CheckVariant(operation: .qkNorm, name: "weight (H, D), standard", weight: .perHead),
        CheckVariant(operation: .qkNorm, name: "weight (D), llama", style: .llama),
        CheckVariant(operation: .rmsnormBackward, name: "weight, rstd recomputed"),
        CheckVariant(operation: .rmsnormBackward, name: "weight, rstd saved", savedStatistics: true),
        CheckVariant(operation: .rmsnormBackward, name: "no weight, rstd saved", weight: .none, savedStatistics: true),
        CheckVariant(
            operation: .rmsnormBackward, name: "gemma, rstd saved, residual grad", style: .gemma, savedStatistics: true,
            residualGradient: true),
        CheckVariant(
            operation: .rmsnormBackward, name: "no weight, residual gradient", weight: .none, residualGradient: true),
        CheckVariant(
            operation: .rmsnormBackward, name: "weight (H, D), rstd saved", weight: .perHead, savedStatistics: true),
        CheckVariant(operation: .layernorm, name: "weight and bias", bias: true),
        CheckVariant(operation: .layernorm, name: "weight, no bias"),
        CheckVariant(operation: .layernorm, name: "no weight, no bias", weight: .none),
        CheckVariant(operation: .layernorm, name: "weight and bias, residual", bias: true, residual: .sameDType),
        CheckVariant(operation: .layernorm, name: "residual fp32, other y dtype", bias: true, residual: .mixed),
        CheckVariant(operation: .layernormBackward, name: "weight and bias, saved", bias: true, savedStatistics: true),
        CheckVariant(operation: .layernormBackward, name: "weight and bias, recomputed", bias: true),
        CheckVariant(operation: .layernormBackward, name: "weight, no bias, saved", savedStatistics: true),
        CheckVariant(operation: .layernormBackward, name: "no weight, saved", weight: .none, savedStatistics: true),
        CheckVariant(operation: .layernormBackward, name: "weight, dbias without bias", biasGradientOnly: true),
        CheckVariant(
            operation: .layernormBackward, name: "weight and bias, residual grad", bias: true, savedStatistics: true,
            residualGradient: true),
    ]
}

/// How x-shaped tensors (inputs and outputs alike) lie in memory.
enum CheckLayout: Sendable {
    case contiguous
    /// A view of every third row of a taller tensor (``FusedNorm/Tensor/rows(_:step:)``).
    case strided
    /// Columns 1..<N+1 of a tensor with N+2 columns: rows that start off alignment, with a gap after them.
    case offsetColumns

    /// How a shape's name describes the layout.
    var label: String {
        switch self {
        case .contiguous: ""
        case .strided: " every 3rd row"
        case .offsetColumns: " columns 1..<N+1"
        }
    }
}

/// A row length, a row count and a layout.
struct CheckShape: Sendable {
    var columns: Int
    var layout: CheckLayout = .contiguous

    /// Rows of x: enough to exercise threading and odd counts, few for long rows (about 64 Ki elements).
    var rows: Int { min(67, max(2, 65_536 / columns)) }

    var name: String { "N=\(columns)\(layout.label)" }

    /// Every shape family, in table order.
    static let all: [CheckShape] =
        [1, 3, 33, 127, 4095, 5120, 65537, 262_144, 1_048_576].map { CheckShape(columns: $0) }
        + [127, 5120].map { CheckShape(columns: $0, layout: .strided) }
        + [33, 4095].map { CheckShape(columns: $0, layout: .offsetColumns) }
}

/// One variant in one dtype at one shape.
struct CheckCase: Sendable {
    var variant: CheckVariant
    var dtype: DType
    var shape: CheckShape

    var name: String { "\(variant.operation.rawValue) [\(variant.name)] \(dtype) \(shape.name)" }

    /// Every case, optionally limited to some operations, dtypes and row lengths.
    static func all(operations: [CheckOperation]?, dtypes: [DType]?, columns: [Int]?) -> [CheckCase] {
        var cases: [CheckCase] = []
        for variant in CheckVariant.all where operations?.contains(variant.operation) ?? true {
            for dtype in DType.allCases where dtypes?.contains(dtype) ?? true {
                for shape in CheckShape.all where columns?.contains(shape.columns) ?? true {
                    cases.append(CheckCase(variant: variant, dtype: dtype, shape: shape))
                }
            }
        }
        return cases
    }

    /// A seed that depends only on the case and the run's seed, so that filters do not change the inputs.
    func seed(_ base: UInt64) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325 ^ base
        for byte in name.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01B3 }
        return hash
    }
}
