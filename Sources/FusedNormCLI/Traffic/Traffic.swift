import ArgumentParser
import FusedNorm

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// `fusednorm traffic`: the bytes eager PyTorch, PyTorch's fused norm and FusedNorm move for one shape, and the
/// time each would take at a bandwidth (given, a GPU's datasheet figure, or a copy measured on a device, where
/// FusedNorm is then also run and timed).
struct TrafficCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "traffic",
        abstract: "Bytes moved by eager PyTorch, PyTorch's fused norm and FusedNorm, and predicted times.")

    /// Datasheet memory bandwidths, GB/s (not measured here).
    static let datasheetBandwidth: [String: (name: String, gbps: Double)] = [
        "h100": ("H100 SXM datasheet, 3.35 TB/s", 3350), "h200": ("H200 datasheet, 4.8 TB/s", 4800),
    ]

    @Option(help: "Rows M.", transform: ListArgument.positiveInteger)
    var rows: Int

    @Option(help: "Columns N (the normalized dimension).", transform: ListArgument.positiveInteger)
    var cols: Int

    @Option(help: "The dtype of x, the weight and the outputs.")
    var dtype: DType = .bfloat16

    @Option(help: "rmsnorm or layernorm.")
    var op: TrafficModel.Norm = .rmsnorm

    @Flag(help: "With the pre-norm residual add (s = x + residual).")
    var residual = false

    @Option(help: "Predict times at this bandwidth, GB/s.")
    var bandwidth: Double?

    @Option(
        help: "Predict times at a GPU's datasheet bandwidth: h100 (SXM, 3.35 TB/s) or h200 (4.8 TB/s). Default h100.")
    var gpu: String?

    @Option(
        help:
            "Measure the copy bandwidth on this device (cpu, cuda, cuda:N) and run FusedNorm there: measured against predicted."
    )
    var device: String?

    @Option(help: "Write the result as JSON to this file ('-': standard output, instead of the tables).")
    var json: String?

    func validate() throws {
        let sources = [bandwidth != nil, gpu != nil, device != nil].filter { $0 }.count
        guard sources <= 1 else { throw ValidationError("give one of --bandwidth, --gpu and --device") }
        if let bandwidth, !(bandwidth.isFinite && bandwidth > 0) {
            throw ValidationError("--bandwidth must be a positive number of GB/s, got \(bandwidth)")
        }
        if let gpu, Self.datasheetBandwidth[gpu.lowercased()] == nil {
            throw ValidationError("unknown GPU '\(gpu)'; expected h100 or h200")
        }
        if let device, Device(name: device) == nil {
            throw ValidationError("unknown device '\(device)'; expected cpu, cuda, cuda:N or auto")
        }
        guard !rows.multipliedReportingOverflow(by: cols).overflow, rows * cols <= 1 << 40 else {
            throw ValidationError("--rows x --cols is too large (more than 2^40 elements)")
        }
        if device != nil, rows * cols > 1 << 28 {
            throw ValidationError("--device runs FusedNorm on the shape: at most 2^28 elements, got \(rows) x \(cols)")
        }
        if let json, json != "-" {
            let folder = URL(fileURLWithPath: json).deletingLastPathComponent().path
            guard FileManager.default.isWritableFile(atPath: folder) else {
                throw ValidationError("cannot write \(json): the folder \(folder) does not exist or is not writable")
            }
        }
    }

    func run() throws {
        let console = Console.current
        let model = TrafficModel(norm: op, dtype: dtype, residual: residual)
        var report = TrafficReport(model: model, rows: rows, columns: cols)
        if let bandwidth {
            report.bandwidth = TrafficReport.Bandwidth(source: "given", gbps: bandwidth)
        } else if let device {
            let resolved = try DeviceOption.parse(["--device", device]).resolve()
            try TrafficMeasurement.measure(into: &report, device: resolved, console: console)
        } else {
            let named = Self.datasheetBandwidth[(gpu ?? "h100").lowercased()]!
            report.bandwidth = TrafficReport.Bandwidth(source: named.name, gbps: named.gbps)
        }
        if let json {
            let bytes = try report.json()
            if json == "-" {
                console.writeOutput(String(decoding: bytes, as: UTF8.self))
            } else {
                try AtomicFiles.writeAll([AtomicFiles.Entry(path: json, contents: bytes)])
            }
            if json == "-" { return }
        }
        for line in report.lines { console.print(line) }
        if let json { console.print("wrote \(json)") }
    }
}

extension TrafficModel.Norm: ExpressibleByArgument {}
