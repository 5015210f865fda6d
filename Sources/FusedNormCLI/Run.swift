import ArgumentParser
import FusedNorm

/// `fusednorm run OP`: applies one operation to .npy files.
///
/// Inputs are little-endian float16/float32/float64 .npy arrays in C order, rounded to `--dtype` before
/// the operation runs in it; outputs are float32 .npy files holding exactly the values the operation
/// produced. Outputs are written only when every one of them was computed, and never partially.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Apply one operation to .npy files.",
        subcommands: [RMSNormRun.self, LayerNormRun.self, RMSNormBackwardRun.self, LayerNormBackwardRun.self])
}

/// `fusednorm run rmsnorm`: y = x / sqrt(mean(x²) + ε) · (w + offset), with an optional fused residual add;
/// `--style` picks the weight offset and rounding (default `standard`, as the library's).
///
/// Operations are spelled with hyphens (`rmsnorm-backward`) in every command; the underscore spelling
/// (`rmsnorm_backward`) is accepted as an alias.
struct RMSNormRun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rmsnorm",
        abstract: "RMSNorm forward, with an optional fused residual add (s = x + residual; y = RMSNorm(s)).")

    @OptionGroup var common: NormRunOptions
    @OptionGroup var style: RMSNormStyleOptions
    @OptionGroup var forward: ForwardRunOptions

    func run() throws {
        let inputs = try common.inputs()
        let x = try inputs.load(common.x, option: "--x")
        let result = try rmsNormForward(
            x, residual: try inputs.load(forward.residual, option: "--residual"),
            weight: try inputs.load(common.weight, option: "--weight"), epsilon: common.epsilon ?? 1e-6,
            style: style.style)
        var outputs = RunOutputs()
        try forward.add(result, shape: x.leadingShape, to: &outputs)
        try outputs.write()
    }
}

/// `fusednorm run layernorm`: y = (x − mean) / sqrt(var + ε) · w + b, with an optional fused residual add.
struct LayerNormRun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "layernorm", abstract: "LayerNorm forward, with an optional fused residual add.")

    @OptionGroup var common: NormRunOptions

    @Option(help: "The bias (.npy, the weight's shapes).")
    var bias: String?

    @OptionGroup var forward: ForwardRunOptions

    @Option(help: "Where to write the per-row mean (.npy, float32, x's shape without its last dimension).")
    var mean: String?

    func run() throws {
        let inputs = try common.inputs()
        let x = try inputs.load(common.x, option: "--x")
        let result = try layerNormForward(
            x, residual: try inputs.load(forward.residual, option: "--residual"),
            weight: try inputs.load(common.weight, option: "--weight"), bias: try inputs.load(bias, option: "--bias"),
            epsilon: common.epsilon ?? 1e-5)
        var outputs = RunOutputs()
        try forward.add(result, shape: x.leadingShape, to: &outputs)
        try outputs.add(result.mean, shape: x.leadingShape, to: mean)
        try outputs.write()
    }
}

/// The flags both forward commands share: the residual to add, and where to write y, s and rstd.
struct ForwardRunOptions: ParsableArguments {
    @Option(help: "The residual stream (.npy, x's shape), added to x before normalizing.")
    var residual: String?

    @Option(help: "Where to write y (.npy, float32, x's shape).")
    var out: String

    @Option(help: "Where to write s = x + residual (.npy, float32, x's shape); needs --residual.")
    var residualOut: String?

    @Option(help: "Where to write the per-row rstd (.npy, float32, x's shape without its last dimension).")
    var rstd: String?

    func validate() throws {
        if residualOut != nil, residual == nil {
            throw ValidationError("--residual-out needs --residual: without a residual there is no sum to write")
        }
    }

    /// Queues y, s and rstd for writing to the files these flags name.
    func add(_ result: NormForwardResult, shape statisticsShape: [Int], to outputs: inout RunOutputs) throws {
        try outputs.add(result.output, to: out)
        try outputs.add(result.residual, to: residualOut)
        try outputs.add(result.rstd, shape: statisticsShape, to: rstd)
    }
}

/// `fusednorm run rmsnorm-backward`: dx and dweight of RMSNorm, statistics recomputed from x.
struct RMSNormBackwardRun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rmsnorm-backward",
        abstract: "RMSNorm backward: dx and dweight from dy and x (the tensor that was normalized).",
        aliases: ["rmsnorm_backward"])

    @OptionGroup var common: NormRunOptions
    @OptionGroup var style: RMSNormStyleOptions
    @OptionGroup var gradients: GradientOptions

    func validate() throws {
        if gradients.dweight != nil, common.weight == nil {
            throw ValidationError("--dweight needs --weight: a norm without a weight has no weight gradient")
        }
    }

    func run() throws {
        let inputs = try common.inputs()
        let x = try inputs.load(common.x, option: "--x")
        let result = try rmsNormBackward(
            try inputs.load(gradients.dy, option: "--dy"), input: x,
            weight: try inputs.load(common.weight, option: "--weight"), epsilon: common.epsilon ?? 1e-6,
            style: style.style)
        var outputs = RunOutputs()
        try outputs.add(result.input, to: gradients.dx)
        try outputs.add(result.weight, to: gradients.dweight)
        try outputs.write()
    }
}

/// `fusednorm run layernorm-backward`: dx, dweight and dbias of LayerNorm, statistics recomputed from x.
///
/// The same flags as `rmsnorm-backward`, plus `--dbias`: dbias = Σ_rows dy needs no bias values, so
/// `--bias` is optional (accepted, and then checked against the weight's shape).
struct LayerNormBackwardRun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "layernorm-backward",
        abstract: "LayerNorm backward: dx, dweight and dbias from dy and x (the tensor that was normalized).",
        aliases: ["layernorm_backward"])

    @OptionGroup var common: NormRunOptions
    /// Accepted so that both backward commands take the same flags; LayerNorm has no weight offset, and
    /// the backward pass does not depend on the rounding: a style with an offset is refused.
    @OptionGroup var style: RMSNormStyleOptions
    @OptionGroup var gradients: GradientOptions

    @Option(help: "The bias (.npy, the weight's shape); not needed for --dbias, checked against the weight when given.")
    var bias: String?

    @Option(
        help:
            "Where to write dbias = the sum of dy over rows (.npy, float32, the weight's shape; (N) without --weight).")
    var dbias: String?

    func validate() throws {
        if gradients.dweight != nil, common.weight == nil {
            throw ValidationError("--dweight needs --weight: a norm without a weight has no weight gradient")
        }
        guard style.style.weightOffset == 0 else {
            throw ValidationError(
                "--style \(style.style) adds a weight offset, which is for RMSNorm; LayerNorm has none")
        }
    }

    func run() throws {
        let inputs = try common.inputs()
        let x = try inputs.load(common.x, option: "--x")
        let weight = try inputs.load(common.weight, option: "--weight")
        let bias = try inputs.load(self.bias, option: "--bias")
        // dbias is asked for with a destination, --bias or not: float32, the weight's shape (or (N)).
        let biasGradient = try dbias.map { _ in
            try Tensor.zeros(bias?.shape ?? weight?.shape ?? [x.columns], dtype: .float32, device: inputs.device)
        }
        let result = try layerNormBackward(
            try inputs.load(gradients.dy, option: "--dy"), input: x, weight: weight, bias: bias,
            epsilon: common.epsilon ?? 1e-5, biasGradient: biasGradient)
        var outputs = RunOutputs()
        try outputs.add(result.input, to: gradients.dx)
        try outputs.add(result.weight, to: gradients.dweight)
        try outputs.add(result.bias, to: dbias)
        try outputs.write()
    }
}
