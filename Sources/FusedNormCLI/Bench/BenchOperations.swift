import Dispatch
import FusedNorm
import Synchronization

/// The operations `fusednorm bench` times.
enum BenchOperation: String, CaseIterable, Sendable {
    case rmsnorm
    case rmsnormResidual = "rmsnorm_residual"
    case rmsnormBackward = "rmsnorm_backward"
    case layernorm
    case layernormBackward = "layernorm_backward"

    /// A comma-separated list of operation names (`--ops`).
    static func list(_ text: String) throws -> [BenchOperation] {
        try ListArgument.parse(text, expected: allCases.map(\.rawValue).joined(separator: ", "), BenchOperation.init(rawValue:))
    }
}

/// One operation call ready to be timed, and the bytes it must move.
struct BenchCall {
    /// Each input read once and each output written once.
    var bytes: Int
    var run: () throws -> Void
}

/// Large tensors of one dtype on one device, allocated once, that every row length views as (rows, N):
/// two inputs holding random values (never zeros) and two outputs.
struct BenchArena {
    let dtype: DType
    let device: Device
    /// Elements of each tensor.
    let capacity: Int
    /// x and the second input (the residual or dy); shape [1, capacity].
    let inputs: [Tensor]
    /// y or dx, and s or the forward output of a backward benchmark; shape [1, capacity].
    let outputs: [Tensor]

    init(dtype: DType, device: Device, capacity: Int, generator: inout SeededGenerator) throws {
        self.dtype = dtype
        self.device = device
        self.capacity = capacity
        inputs = try (0..<2).map { _ in
            let tensor = try Tensor.zeros([1, capacity], dtype: dtype, device: device)
            let chunk = 1 << 20
            for start in stride(from: 0, to: capacity, by: chunk) {
                let end = min(capacity, start + chunk)
                try tensor.columns(start..<end).write(generator.uniform(end - start, in: -2...2))
            }
            return tensor
        }
        outputs = try (0..<2).map { _ in try Tensor.zeros([1, capacity], dtype: dtype, device: device) }
    }

    /// The first `rows * columns` elements of `tensor` as a (rows, columns) tensor.
    func view(_ tensor: Tensor, rows: Int, columns: Int) throws -> Tensor {
        try tensor.columns(0..<rows * columns).reshaped([rows, columns])
    }

    /// A copy of the whole first input into the first output with `Tensor.copy(into:)`: the bandwidth
    /// yardstick. On the CPU the copy is split into one contiguous part per thread of
    /// ``FusedNorm/CPUSettings/threadCount``, copied at once, so that it uses the cores the kernels use
    /// (one `copy(into:)` is a single-threaded `memcpy`, which few machines saturate memory with).
    func copyCall() throws -> BenchCall {
        let source = inputs[0], destination = outputs[0], capacity = capacity
        let parts = device == .cpu ? max(1, min(CPUSettings.threadCount, capacity / 4096)) : 1
        let bounds = (0...parts).map { part in
            // Part boundaries on 64-byte multiples, so that no two threads write one cache line.
            part == parts ? capacity : (capacity / parts * part) / 32 * 32
        }
        let pieces = try (0..<parts).map { part in
            (try source.columns(bounds[part]..<bounds[part + 1]), try destination.columns(bounds[part]..<bounds[part + 1]))
        }
        return BenchCall(bytes: 2 * capacity * dtype.byteCount) {
            if pieces.count == 1 { return try source.copy(into: destination) }
            let failures = Mutex<[any Error]>([])
            DispatchQueue.concurrentPerform(iterations: pieces.count) { part in
                do { try pieces[part].0.copy(into: pieces[part].1) } catch { failures.withLock { $0.append(error) } }
            }
            if let failure = failures.withLock({ $0.first }) { throw failure }
        }
    }

    /// `operation` over `rows` rows of `columns` elements, with preallocated outputs. Statistics a
    /// backward pass reads are computed here, untimed.
    func call(_ operation: BenchOperation, rows: Int, columns: Int, generator: inout SeededGenerator) throws -> BenchCall {
        let x = try view(inputs[0], rows: rows, columns: columns)
        let second = try view(inputs[1], rows: rows, columns: columns)
        let output = try view(outputs[0], rows: rows, columns: columns)
        let secondOutput = try view(outputs[1], rows: rows, columns: columns)
        let weight = try Tensor(generator.uniform(columns, in: 0.5...1.5), shape: [columns], dtype: dtype, device: device)
        let bias = try Tensor(generator.uniform(columns, in: -0.5...0.5), shape: [columns], dtype: dtype, device: device)
        let tensorBytes = rows * columns * dtype.byteCount, parameterBytes = columns * dtype.byteCount
        let statisticBytes = rows * 4

        switch operation {
        case .rmsnorm:
            return BenchCall(bytes: 2 * tensorBytes + parameterBytes + statisticBytes) {
                _ = try rmsNormForward(x, weight: weight, output: output)
            }
        case .rmsnormResidual:
            return BenchCall(bytes: 4 * tensorBytes + parameterBytes + statisticBytes) {
                _ = try rmsNormForward(x, residual: second, weight: weight, output: output, residualOutput: secondOutput)
            }
        case .rmsnormBackward:
            let rstd = try rmsNormForward(x, weight: weight, output: secondOutput).rstd
            return BenchCall(bytes: 3 * tensorBytes + 2 * parameterBytes + statisticBytes) {
                _ = try rmsNormBackward(second, input: x, weight: weight, rstd: rstd, inputGradient: output)
            }
        case .layernorm:
            return BenchCall(bytes: 2 * tensorBytes + 2 * parameterBytes + 2 * statisticBytes) {
                _ = try layerNormForward(x, weight: weight, bias: bias, output: output)
            }
        case .layernormBackward:
            let saved = try layerNormForward(x, weight: weight, bias: bias, output: secondOutput)
            return BenchCall(bytes: 3 * tensorBytes + 3 * parameterBytes + 2 * statisticBytes) {
                _ = try layerNormBackward(
                    second, input: x, weight: weight, bias: bias, mean: saved.mean, rstd: saved.rstd, inputGradient: output)
            }
        }
    }
}
