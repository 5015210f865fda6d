import Dispatch
@_spi(Benchmarking) import FusedNorm
import Synchronization

/// The operations `fusednorm bench` times.
enum BenchOperation: String, CaseIterable, Sendable {
    case rmsnorm
    case rmsnormResidual = "rmsnorm-residual"
    case rmsnormBackward = "rmsnorm-backward"
    case layernorm
    case layernormBackward = "layernorm-backward"
    /// `rmsnorm` and `rmsnorm-backward` in their allocating form (outputs made by the call, as the default
    /// call and the layers do), beside the preallocated forms above, so that the cost of allocation shows.
    case rmsnormAllocating = "rmsnorm-allocating"
    case rmsnormBackwardAllocating = "rmsnorm-backward-allocating"
    /// A tensor made from a Swift array of the dtype's own type (`[BFloat16]` ...), and one read back into
    /// such an array: each should cost about the copy yardstick (one copy of the bytes, no conversion).
    case tensorFromArray = "tensor-from-array"
    case tensorToArray = "tensor-to-array"

    /// A comma-separated list of operation names (`--ops`), hyphenated as `run` spells them
    /// (`rmsnorm-backward`); the underscore spelling (`rmsnorm_backward`) is accepted too.
    static func list(_ text: String) throws -> [BenchOperation] {
        try ListArgument.parse(text, expected: allCases.map(\.rawValue).joined(separator: ", ")) {
            BenchOperation(rawValue: ListArgument.operationName($0))
        }
    }
}

/// What one measurement runs over: `rows` rows of N elements, as x (rows / heads, heads, N) with a
/// per-head (heads, N) weight when `heads` > 1, and inputs that are every `rowStep`-th row of a larger tensor.
struct BenchShape: Sendable, Equatable {
    var rows: Int
    var columns: Int
    var heads = 1
    var rowStep = 1

    var xShape: [Int] { heads > 1 ? [rows / heads, heads, columns] : [rows, columns] }
    var parameterShape: [Int] { heads > 1 ? [heads, columns] : [columns] }
    /// Elements of the input region one run reads x from (gaps between strided rows included).
    var inputSpan: Int { rows * columns * rowStep }
    var outputSpan: Int { rows * columns }
}

/// One operation ready to be timed, and the bytes each run must move.
struct BenchCall {
    /// Each input read once and each output written once.
    var bytes: Int
    /// Run `i` uses buffer set `i % sets`, so that consecutive runs read memory no recent run touched.
    var run: (Int) throws -> Void
}

/// Large tensors of one dtype on one device, allocated once, that every shape views: two inputs holding
/// random values (never zeros) and two outputs, each viewed as consecutive buffer sets of one shape.
struct BenchArena {
    let dtype: DType
    let device: Device
    /// Elements of each output; each input holds `rowStep` times as many.
    let capacity: Int
    let rowStep: Int
    /// x and the second input (the residual or dy); shape [1, capacity * rowStep].
    let inputs: [Tensor]
    /// y or dx, and s or the forward output of a backward benchmark; shape [1, capacity].
    let outputs: [Tensor]

    init(dtype: DType, device: Device, capacity: Int, rowStep: Int, generator: inout SeededGenerator) throws {
        self.dtype = dtype
        self.device = device
        self.capacity = capacity
        self.rowStep = rowStep
        inputs = try (0..<2).map { _ in
            let tensor = try Tensor.zeros([1, capacity * rowStep], dtype: dtype, device: device)
            let chunk = 1 << 20
            for start in stride(from: 0, to: tensor.columns, by: chunk) {
                let end = min(tensor.columns, start + chunk)
                try tensor.columns(start..<end).write(generator.uniform(end - start, in: -2...2))
            }
            return tensor
        }
        outputs = try (0..<2).map { _ in try Tensor.zeros([1, capacity], dtype: dtype, device: device) }
    }

    /// How many disjoint buffer sets of `shape` the arena holds.
    private func availableSets(_ shape: BenchShape) -> Int {
        max(1, min(inputs[0].columns / shape.inputSpan, capacity / shape.outputSpan))
    }

    /// A copy of the first output's worth of the first input into the first output with
    /// `Tensor.copy(into:method:)`: a bandwidth yardstick (`.library`: `memcpy` or `cuMemcpyDtoD`; `.streaming`:
    /// non-temporal stores on the CPU, the `copy_vectors` kernel on CUDA; the bench uses the faster). On the CPU
    /// the copy is split into one contiguous part per thread of ``FusedNorm/CPUSettings/threadCount``, copied at
    /// once, so that it uses the cores the kernels use (one `copy(into:)` is a single-threaded `memcpy`, which
    /// few machines saturate memory with).
    func copyCall(method: CopyMethod = .library) throws -> BenchCall {
        let source = try inputs[0].columns(0..<capacity), destination = outputs[0], capacity = capacity
        let parts = device == .cpu ? max(1, min(CPUSettings.threadCount, capacity / 4096)) : 1
        let bounds = (0...parts).map { part in
            // Part boundaries on multiples of 32 elements, so that no two threads write one cache line.
            part == parts ? capacity : (capacity / parts * part) / 32 * 32
        }
        let pieces = try (0..<parts).map { part in
            (
                try source.columns(bounds[part]..<bounds[part + 1]),
                try destination.columns(bounds[part]..<bounds[part + 1])
            )
        }
        return BenchCall(bytes: 2 * capacity * dtype.byteCount) { _ in
            if pieces.count == 1 { return try source.copy(into: destination, method: method) }
            let failures = Mutex<[any Error]>([])
            DispatchQueue.concurrentPerform(iterations: pieces.count) { part in
                do { try pieces[part].0.copy(into: pieces[part].1, method: method) } catch {
                    failures.withLock { $0.append(error) }
                }
            }
            if let failure = failures.withLock({ $0.first }) { throw failure }
        }
    }

    /// `operation` over `shape` with preallocated outputs, rotating over as many buffer sets as the arena
    /// holds, up to `runs` (the runs it will make, warm-up included). Statistics a backward pass reads are
    /// computed here for every set, untimed.
    func call(_ operation: BenchOperation, shape: BenchShape, runs: Int, generator: inout SeededGenerator) throws
        -> BenchCall
    {
        let sets = min(availableSets(shape), runs)
        let weight = try Tensor(
            generator.uniform(shape.heads * shape.columns, in: 0.5...1.5), shape: shape.parameterShape, dtype: dtype,
            device: device)
        let bias = try Tensor(
            generator.uniform(shape.heads * shape.columns, in: -0.5...0.5), shape: shape.parameterShape, dtype: dtype,
            device: device)
        let bytes = operation.bytes(rows: shape.rows, columns: shape.columns, heads: shape.heads, dtype: dtype)
        let views = try (0..<sets).map { set in
            (
                x: try inputView(inputs[0], set: set, shape: shape),
                second: try inputView(inputs[1], set: set, shape: shape),
                output: try outputView(outputs[0], set: set, shape: shape),
                secondOutput: try outputView(outputs[1], set: set, shape: shape)
            )
        }

        // Every destination is preallocated, so that nothing is allocated while a run is timed.
        let weightGradient = try Tensor.zeros(shape.parameterShape, dtype: dtype, device: device)
        let biasGradient = try Tensor.zeros(shape.parameterShape, dtype: dtype, device: device)

        switch operation {
        case .rmsnorm:
            return BenchCall(bytes: bytes) { run in
                let set = views[run % sets]
                _ = try rmsNorm(set.x, weight: weight, output: set.output)
            }
        case .rmsnormResidual:
            return BenchCall(bytes: bytes) { run in
                let set = views[run % sets]
                _ = try rmsNorm(
                    set.x, residual: set.second, weight: weight, output: set.output, residualOutput: set.secondOutput)
            }
        case .rmsnormBackward, .rmsnormBackwardAllocating:
            let rstds = try views.map { try rmsNormForward($0.x, weight: weight, output: $0.secondOutput).rstd }
            if operation == .rmsnormBackwardAllocating {
                return BenchCall(bytes: bytes) { run in
                    let set = views[run % sets]
                    _ = try rmsNormBackward(set.second, input: set.x, weight: weight, rstd: rstds[run % sets])
                }
            }
            return BenchCall(bytes: bytes) { run in
                let set = views[run % sets]
                _ = try rmsNormBackward(
                    set.second, input: set.x, weight: weight, rstd: rstds[run % sets], inputGradient: set.output,
                    weightGradient: weightGradient)
            }
        case .tensorFromArray, .tensorToArray:
            return try arrayCall(operation, shape: shape, views: views.map(\.output), bytes: bytes)
        case .rmsnormAllocating:
            return BenchCall(bytes: bytes) { run in
                _ = try rmsNorm(views[run % sets].x, weight: weight)
            }
        case .layernorm:
            return BenchCall(bytes: bytes) { run in
                let set = views[run % sets]
                _ = try layerNorm(set.x, weight: weight, bias: bias, output: set.output)
            }
        case .layernormBackward:
            let saved = try views.map {
                try layerNormForward($0.x, weight: weight, bias: bias, output: $0.secondOutput)
            }
            return BenchCall(bytes: bytes) { run in
                let set = views[run % sets], statistics = saved[run % sets]
                _ = try layerNormBackward(
                    set.second, input: set.x, weight: weight, bias: bias, mean: statistics.mean, rstd: statistics.rstd,
                    inputGradient: set.output, weightGradient: weightGradient, biasGradient: biasGradient)
            }
        }
    }

    /// ``BenchOperation/tensorFromArray`` or ``BenchOperation/tensorToArray`` in the dtype's Swift type.
    private func arrayCall(_ operation: BenchOperation, shape: BenchShape, views: [Tensor], bytes: Int) throws
        -> BenchCall
    {
        func call<Element: TensorElement>(_ type: Element.Type) throws -> BenchCall {
            let device = self.device
            if operation == .tensorToArray {
                return BenchCall(bytes: bytes) { run in _ = try views[run % views.count].toArray(of: Element.self) }
            }
            let array = try views[0].toArray(of: Element.self)
            return BenchCall(bytes: bytes) { _ in _ = try Tensor(array, shape: shape.xShape, device: device) }
        }
        switch dtype {
        case .float32: return try call(Float.self)
        case .float16: return try call(Float16.self)
        case .bfloat16: return try call(BFloat16.self)
        }
    }

    /// Buffer set `set` of an input: every `rowStep`-th row of its region, shaped like x.
    private func inputView(_ tensor: Tensor, set: Int, shape: BenchShape) throws -> Tensor {
        let region = try tensor.columns(set * shape.inputSpan..<(set + 1) * shape.inputSpan)
            .reshaped([shape.rows * shape.rowStep, shape.columns])
        return try region.rows(0..<shape.rows * shape.rowStep, step: shape.rowStep).reshaped(shape.xShape)
    }

    /// Buffer set `set` of an output, contiguous, shaped like x.
    private func outputView(_ tensor: Tensor, set: Int, shape: BenchShape) throws -> Tensor {
        try tensor.columns(set * shape.outputSpan..<(set + 1) * shape.outputSpan).reshaped(shape.xShape)
    }
}
