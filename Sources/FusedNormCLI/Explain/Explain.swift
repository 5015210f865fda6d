import ArgumentParser
@_spi(Explain) import FusedNorm

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// `fusednorm explain [OP]`: the blocked, row-per-program kernel walked through on a small matrix, and the
/// launch plan FusedNorm uses for that row length on each device.
struct ExplainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "Walk through the blocked row kernel step by step and show FusedNorm's launch plan.",
        discussion: """
            With no input it uses the 3 x 8 matrix of the kernel's reference walkthrough (weight 1, epsilon 1e-6). \
            Block sums are the walkthrough's float32 arithmetic; rstd, mean and every output are FusedNorm's \
            (the values `fusednorm run` writes, bit for bit).
            """)

    /// The reference walkthrough's input.
    static let defaultMatrix: [[Float]] = [
        [2.0, -1.0, 3.0, 0.5, -0.5, 1.5, -2.0, 1.0],
        [4.0, -3.0, 2.5, 1.0, -1.5, 0.0, -0.5, 2.0],
        [-1.0, 3.5, -2.5, 1.5, 0.0, -3.0, 2.5, -0.5],
    ]

    /// Step tables are printed up to this many rows and columns (at most the walkthrough's recorded ones).
    static let stepRows = 8, stepColumns = Walkthrough.recordedColumns

    @Argument(
        help: ArgumentHelp(
            "The operation.", valueName: ExplainOperation.allCases.map(\.rawValue).joined(separator: "|")))
    var operation: ExplainOperation = .rmsnorm

    @Option(help: "The input x (.npy, shape (..., N)); default the reference matrix, or random with --rows/--cols.")
    var x: String?

    @Option(help: "Rows of a random input (with --cols).")
    var rows: Int?

    @Option(help: "Columns N of a random input (with --rows).")
    var cols: Int?

    @Option(help: "Seed of the random inputs (x with --rows/--cols; the residual and dy when not given).")
    var seed: UInt64 = 0

    @Option(help: "BLOCK_SIZE: elements of a row the walkthrough reads at a time.")
    var block = 4

    @Option(help: "Added to the mean square or variance; finite and > 0 (default 1e-6; LayerNorm 1e-5).")
    var epsilon: Float?

    @Option(help: "The weight (.npy, shape (N)); default none (weight 1; backward: ones, so that dweight is shown).")
    var weight: String?

    @Option(help: "rmsnorm-residual: the residual (.npy, x's shape); default random multiples of 0.25 from --seed.")
    var residual: String?

    @Option(help: "rmsnorm-backward: dy (.npy, x's shape); default random multiples of 0.25 from --seed.")
    var dy: String?

    @Option(help: "The dtype the operation runs in (float32, float16, bfloat16); inputs are rounded to it.")
    var dtype: DType = .float32

    @Option(help: "Also show the plan for a GPU described offline: h100 or h200.")
    var gpu: LaunchPlanDescription.NamedGPU?

    @Option(help: "Write the interactive page (one self-contained HTML file) here.")
    var html: String?

    @Option(help: "Write the walkthrough and the plans as JSON here.")
    var json: String?

    func validate() throws {
        guard block >= 1 else { throw ValidationError("--block must be at least 1, got \(block)") }
        if let epsilon, !(epsilon.isFinite && epsilon > 0) {
            throw ValidationError("--epsilon must be finite and greater than 0, got \(epsilon)")
        }
        if x != nil, rows != nil || cols != nil {
            throw ValidationError("--x and --rows/--cols both give the input; use one")
        }
        if (rows == nil) != (cols == nil) { throw ValidationError("--rows and --cols go together") }
        if let rows, rows < 1 { throw ValidationError("--rows must be at least 1, got \(rows)") }
        if let cols, cols < 1 { throw ValidationError("--cols must be at least 1, got \(cols)") }
        if let rows, let cols, rows.multipliedReportingOverflow(by: cols).overflow || rows * cols > 1 << 26 {
            throw ValidationError(
                "--rows x --cols is more than 2^26 elements; explain is for small inputs (the plan needs only the shape: try a smaller --rows)"
            )
        }
        if residual != nil, operation != .rmsnormResidual {
            throw ValidationError("--residual is for rmsnorm-residual")
        }
        if dy != nil, operation != .rmsnormBackward { throw ValidationError("--dy is for rmsnorm-backward") }
        for path in [html, json].compactMap({ $0 }) {
            let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
            guard FileManager.default.isWritableFile(atPath: folder) else {
                throw ValidationError("cannot write \(path): the folder \(folder) does not exist or is not writable")
            }
        }
    }

    func run() throws {
        let console = Console.current
        let walkthrough = try Walkthrough.make(
            operation, inputs: try inputs(), block: block, epsilon: epsilon ?? (operation == .layernorm ? 1e-5 : 1e-6))
        let plans = try devicePlans(rows: walkthrough.rows, columns: walkthrough.columns)
        for line in ExplainReport.lines(walkthrough, plans: plans) { console.print(line) }

        var files: [AtomicFiles.Entry] = []
        if let json {
            files.append(AtomicFiles.Entry(path: json, contents: try ExplainReport.json(walkthrough, plans: plans)))
        }
        if let html {
            let page = try ExplainPage.render(
                walkthrough: walkthrough, plans: plans, pageInput: try pageWalkthrough(walkthrough))
            files.append(AtomicFiles.Entry(path: html, contents: Array(page.utf8)))
        }
        try AtomicFiles.writeAll(files)
        for file in files { console.print("wrote \(file.path)") }
    }

    /// The inputs, rounded to the dtype, on the CPU.
    func inputs() throws -> WalkthroughInputs {
        let loader = RunInputs(dtype: dtype, device: .cpu)
        var generator = SeededGenerator(seed: seed)
        var x: Tensor
        if let path = self.x {
            x = try loader.load(path, option: "--x")
            x = try x.reshaped([x.rows, x.columns])
        } else if let rows, let cols {
            x = try Tensor(
                generator.uniform(rows * cols, in: -2...2).map(dtype.round), shape: [rows, cols], dtype: dtype)
        } else {
            x = try Tensor(Self.defaultMatrix.flatMap { $0 }, shape: [3, 8], dtype: dtype)
        }
        /// Multiples of 0.25 in [-2, 2]: exact in every dtype.
        func quarters() throws -> Tensor {
            try Tensor(
                (0..<x.count).map { _ in Float(Int(generator.next() % 17) - 8) / 4 }, shape: x.shape, dtype: dtype)
        }
        var weight = try loader.load(self.weight, option: "--weight")
        if let given = weight {
            guard given.shape == [x.columns] else {
                throw CLIError(
                    "--weight \(self.weight!) has shape \(NPYFile.pythonTuple(given.shape)); x's rows have \(x.columns) columns, so it needs shape (\(x.columns),)"
                )
            }
        } else if operation == .rmsnormBackward {
            weight = try Tensor(repeating: 1, shape: [x.columns], dtype: dtype)
        }
        func sameShape(_ tensor: Tensor?, _ option: String, _ path: String?) throws -> Tensor? {
            guard let tensor else { return nil }
            let reshaped = tensor.count == x.count ? try tensor.reshaped(x.shape) : nil
            guard let reshaped, tensor.columns == x.columns else {
                throw CLIError(
                    "\(option) \(path ?? "") has shape \(NPYFile.pythonTuple(tensor.shape)); it needs x's shape \(NPYFile.pythonTuple(x.shape))"
                )
            }
            return reshaped
        }
        var residual = try sameShape(try loader.load(self.residual, option: "--residual"), "--residual", self.residual)
        if operation == .rmsnormResidual, residual == nil { residual = try quarters() }
        var outputGradient = try sameShape(try loader.load(dy, option: "--dy"), "--dy", dy)
        if operation == .rmsnormBackward, outputGradient == nil { outputGradient = try quarters() }
        return WalkthroughInputs(x: x, weight: weight, residual: residual, outputGradient: outputGradient)
    }

    /// The CPU's plan, each usable GPU's, and the named GPU's (offline).
    func devicePlans(rows: Int, columns: Int) throws -> [DevicePlan] {
        let hasWeight = weight != nil || operation == .rmsnormBackward
        var plans = [DevicePlan.cpu(rows: rows, columns: columns)]
        if CUDA.status.problem == nil {
            for device in CUDA.status.devices {
                plans.append(
                    try DevicePlan.gpu(
                        operation, rows: rows, columns: columns, dtype: dtype, weight: hasWeight, device: device.index))
            }
        }
        if let gpu {
            plans.append(
                DevicePlan.gpu(operation, rows: rows, columns: columns, dtype: dtype, weight: hasWeight, named: gpu))
        }
        return plans
    }

    /// The walkthrough the page starts from: this one when it is an RMSNorm the page can show (2-4 rows, N of
    /// 2, 4 or 8, float32, no weight, a block size the page offers), else the reference matrix.
    func pageWalkthrough(_ walkthrough: Walkthrough) throws -> Walkthrough {
        if ExplainPage.canShow(walkthrough) { return walkthrough }
        Console.current.printError(
            "note: the page shows RMSNorm of 2-4 float32 rows of 2, 4 or 8 columns without a weight; it starts from the reference matrix"
        )
        let x = try Tensor(Self.defaultMatrix.flatMap { $0 }, shape: [3, 8])
        return try Walkthrough.make(.rmsnorm, inputs: WalkthroughInputs(x: x), block: 4, epsilon: 1e-6)
    }
}

extension ExplainOperation: ExpressibleByArgument {}
extension LaunchPlanDescription.NamedGPU: ExpressibleByArgument {}
