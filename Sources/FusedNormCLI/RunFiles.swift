import ArgumentParser
import FusedNorm

/// Options every `fusednorm run` operation takes: the input, the weight, epsilon, the dtype and the device.
struct NormRunOptions: ParsableArguments {
    @Option(help: "The input x (.npy, shape (..., N)); each row of N values is normalized.")
    var x: String

    @Option(help: "The weight (.npy): shape (N), or (H, N) per head for x shaped (..., H, N).")
    var weight: String?

    @Option(
        help: "Added to the mean square or variance; finite and > 0. Default: 1e-6 for RMSNorm, 1e-5 for LayerNorm.")
    var epsilon: Float?

    @Option(
        help:
            "The storage dtype the operation runs in (float32, float16, bfloat16); every input is rounded to it first.")
    var dtype: DType = .float32

    @OptionGroup var device: DeviceOption

    func validate() throws {
        if let epsilon, !(epsilon.isFinite && epsilon > 0) {
            throw ValidationError("--epsilon must be finite and greater than 0, got \(epsilon)")
        }
    }

    /// The loader for this run's inputs, on the resolved device.
    func inputs() throws -> RunInputs {
        RunInputs(dtype: dtype, device: try device.resolve())
    }
}

/// RMSNorm's weight offset and rounding, by preset name.
struct RMSNormStyleOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "RMSNorm's weight offset and rounding: standard (torch.nn.RMSNorm, MLX: offset 0, one rounding at the end), "
                + "llama (offset 0; the normalized value rounded to the dtype, then y again) or gemma (offset 1 for weights stored as w - 1, one rounding)."
        ))
    var style: RMSNormStyle = .standard
}

/// The gradient files of the backward passes.
struct GradientOptions: ParsableArguments {
    @Option(help: "The gradient of the output, dy (.npy, x's shape).")
    var dy: String

    @Option(help: "Where to write dx, the gradient of x (.npy, float32, x's shape).")
    var dx: String

    @Option(help: "Where to write dweight (.npy, float32, the weight's shape); needs --weight.")
    var dweight: String?
}

/// Loads the .npy inputs of one `fusednorm run`: each file is read and checked, its values rounded to the
/// run's dtype and placed on the run's device. The one place the `run` commands load inputs.
struct RunInputs {
    /// The dtype every input is rounded to and stored in.
    var dtype: DType
    var device: Device

    /// The tensor in the file at `path`, which the command line gave as `option`.
    /// - Throws: `CLIError` naming the option and the file when it is missing, not a supported .npy array,
    ///   of rank 0, or has rows of length 0.
    func load(_ path: String, option: String) throws -> Tensor {
        let array: NPYArray
        do {
            array = try NPYFile.read(path: path)
        } catch {
            throw CLIError("\(option) \(path): \(error)")
        }
        guard let columns = array.shape.last else {
            throw CLIError(
                "\(option) \(path) has shape () (a scalar); it needs at least one dimension, the normalized one")
        }
        guard columns > 0 else {
            throw CLIError(
                "\(option) \(path) has shape \(NPYFile.pythonTuple(array.shape)): rows of length 0; the normalized (last) dimension must be at least 1"
            )
        }
        return try Tensor(array.values.map(dtype.roundedOnce), shape: array.shape, dtype: dtype, device: device)
    }

    /// The tensor in the file at `path`, or nil when the option was not given.
    func load(_ path: String?, option: String) throws -> Tensor? {
        try path.map { try load($0, option: option) }
    }
}

/// The outputs of one `fusednorm run`, written together as float32 .npy files (format 1.0, C order)
/// once all of them were computed. The one place the `run` commands write outputs.
struct RunOutputs {
    private var entries: [AtomicFiles.Entry] = []

    /// Adds `tensor`'s values to be written to `path` (nothing when `path` is nil).
    /// - Parameter shape: the shape to write; default the tensor's (statistics use x's leading shape).
    mutating func add(_ tensor: Tensor?, shape: [Int]? = nil, to path: String?) throws {
        guard let path else { return }
        guard let tensor else { throw CLIError("no value was computed for \(path)") }
        let array = NPYArray(shape: shape ?? tensor.shape, floats: try tensor.toArray())
        entries.append(AtomicFiles.Entry(path: path, contents: try NPYFile.encode(array)))
    }

    /// Writes every output, or none.
    func write() throws {
        try AtomicFiles.writeAll(entries)
    }
}

extension Tensor {
    /// The shape of per-row statistics as `fusednorm run` writes them: x's shape without its last
    /// dimension (`[]` for a rank-1 x).
    var leadingShape: [Int] { Array(shape.dropLast()) }
}

extension DType {
    /// `value` rounded to this dtype once, to nearest, ties to even: not through float32 first, which can
    /// round twice and land on the other neighbour.
    func roundedOnce(_ value: Double) -> Float {
        switch self {
        case .float32:
            return Float(value)
        case .float16:
            return Float(Float16(value))
        case .bfloat16:
            let nearest = Float(value)
            guard nearest.isFinite, Double(nearest) != value else { return round(nearest) }
            // Round to odd at float32 precision (truncate, then set the last bit): with 16 spare bits the
            // final rounding to bfloat16 is then exactly the one rounding of `value`.
            var truncated = nearest
            if abs(Double(nearest)) > abs(value) { truncated = nearest > 0 ? nearest.nextDown : nearest.nextUp }
            return round(Float(bitPattern: truncated.bitPattern | 1))
        }
    }
}
