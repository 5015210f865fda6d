import ArgumentParser
import FusedNorm
import Foundation

/// `fusednorm bench`: the memory bandwidth each operation reaches, against this machine's copy bandwidth.
///
/// Every operation, dtype and row length N runs over a fixed number of elements per tensor (rows =
/// elements / N), large enough to leave the caches behind, into preallocated outputs. A row reports the
/// median time after a warm-up, the bytes the operation must move (each input read once, each output
/// written once), GB/s, and that as a fraction of the bandwidth of a large `Tensor.copy(into:)` measured
/// just before the same operation and dtype.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure each operation's bandwidth against this machine's copy bandwidth.")

    /// Powers of two from 256 to 262144, plus 4095 (odd) and 5120 (a common hidden size).
    static let defaultColumns = ((8...18).map { 1 << $0 } + [4095, 5120]).sorted()

    @OptionGroup var device: DeviceOption

    @Option(help: ArgumentHelp(
        "Operations, comma-separated (default: all).", discussion: BenchOperation.allCases.map(\.rawValue).joined(separator: ", ")),
        transform: BenchOperation.list)
    var ops: [BenchOperation]?

    @Option(help: "Dtypes, comma-separated (default: float32,float16,bfloat16).", transform: ListArgument.dtypes)
    var dtypes: [DType]?

    @Option(help: "Row lengths N, comma-separated, e.g. 4096,2^16 (default: 2^8 ... 2^18, 4095, 5120).", transform: ListArgument.columns)
    var cols: [Int]?

    @Option(help: "Elements per tensor; rows = elements / N (default 2^26: 256 MB per float32 tensor).", transform: ListArgument.positiveInteger)
    var elements: Int = 1 << 26

    @Option(help: "The most timed runs per measurement, after one warm-up run.")
    var repeats = 5

    @Option(help: "Stop repeating a measurement once its timed runs took this many seconds (after at least one).")
    var timeLimit = 2.0

    @Option(help: "Write the results to this file as a JSON array.")
    var json: String?

    @Option(help: "Write a plot of GB/s against N to this file (SVG).")
    var svg: String?

    @Option(help: "Seed of the random inputs.")
    var seed: UInt64 = 1

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1, got \(repeats)") }
        guard timeLimit > 0, timeLimit.isFinite else { throw ValidationError("--time-limit must be a positive number of seconds") }
        for path in [json, svg].compactMap({ $0 }) {
            let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
            guard FileManager.default.isWritableFile(atPath: folder) else {
                throw ValidationError("cannot write \(path): the folder \(folder) does not exist or is not writable")
            }
        }
    }

    func run() throws {
        let console = Console.current
        let device = try self.device.resolve()
        let operations = ops ?? BenchOperation.allCases
        let dtypes = self.dtypes ?? DType.allCases
        let columns = cols ?? BenchCommand.defaultColumns
        console.print(
            "fusednorm bench on \(device): \(operations.count) operations x \(dtypes.count) dtypes x \(columns.count) row lengths, "
                + "\(elements) elements per tensor, median of up to \(repeats) runs after a warm-up")

        let records = try measure(device: device, operations: operations, dtypes: dtypes, columns: columns, console: console)
        console.print()
        for line in table(records).lines { console.print(line) }

        var files: [AtomicFiles.Entry] = []
        if let json { files.append(AtomicFiles.Entry(path: json, contents: try BenchRecord.json(records))) }
        if let svg { files.append(AtomicFiles.Entry(path: svg, contents: Array(plot(records, device: device).render().utf8))) }
        try AtomicFiles.writeAll(files)
    }

    /// The timer for `device`: the host clock for now; a CUDA-event timer can be returned for GPUs.
    func timer(for device: Device) -> any BenchTimer {
        HostClockTimer(device: device)
    }

    /// Runs every measurement, the copy bandwidth again before each operation and dtype. Sorted by
    /// operation, dtype and N.
    func measure(
        device: Device, operations: [BenchOperation], dtypes: [DType], columns: [Int], console: Console
    ) throws -> [BenchRecord] {
        let sampler = BenchSampler(timer: timer(for: device), repeats: repeats, timeLimit: timeLimit)
        var generator = SeededGenerator(seed: seed)
        let progress = Progress("bench", total: dtypes.count * operations.count * columns.count, console: console)
        var records: [BenchRecord] = []
        for dtype in dtypes {
            progress.update(completed: records.count, detail: "filling \(dtype) inputs")
            let arena = try BenchArena(dtype: dtype, device: device, capacity: max(elements, columns.max() ?? 1), generator: &generator)
            for operation in operations {
                progress.update(completed: records.count, detail: "copy \(dtype)")
                let copy = try arena.copyCall()
                let copyGbps = Double(copy.bytes) / (try sampler.measure(copy.run).medianSeconds) / 1e9
                for n in columns {
                    progress.update(completed: records.count, detail: "\(operation.rawValue) \(dtype) N=\(n)")
                    let rows = max(1, elements / n)
                    let call = try arena.call(operation, rows: rows, columns: n, generator: &generator)
                    let sample = try sampler.measure(call.run)
                    let gbps = Double(call.bytes) / sample.medianSeconds / 1e9
                    records.append(BenchRecord(
                        op: operation.rawValue, dtype: dtype.rawValue, device: device.description, rows: rows, cols: n,
                        medianSeconds: sample.medianSeconds, microseconds: sample.medianSeconds * 1e6, bytes: call.bytes,
                        gbps: gbps, copyGbps: copyGbps, fractionOfCopy: gbps / copyGbps, repeats: sample.repeats))
                }
            }
        }
        progress.finish()
        let operationOrder = operations.map(\.rawValue), dtypeOrder = dtypes.map(\.rawValue)
        return records.sorted {
            ($0.op == $1.op ? ($0.dtype == $1.dtype ? 0 : 1) : 2) == 2
                ? operationOrder.firstIndex(of: $0.op)! < operationOrder.firstIndex(of: $1.op)!
                : $0.dtype != $1.dtype ? dtypeOrder.firstIndex(of: $0.dtype)! < dtypeOrder.firstIndex(of: $1.dtype)! : $0.cols < $1.cols
        }
    }

    /// The results, one row per measurement.
    func table(_ records: [BenchRecord]) -> TextTable {
        var table = TextTable(
            headers: ["op", "dtype", "rows", "N", "us", "GB/s", "copy GB/s", "of copy", "runs"],
            alignments: [.left, .left, .right, .right, .right, .right, .right, .right, .right])
        for record in records {
            table.append([
                record.op, record.dtype, "\(record.rows)", "\(record.cols)", String(format: "%.1f", record.microseconds),
                String(format: "%.2f", record.gbps), String(format: "%.2f", record.copyGbps),
                String(format: "%.0f%%", record.fractionOfCopy * 100), "\(record.repeats)",
            ])
        }
        return table
    }

    /// GB/s against N, one series per operation and dtype, with the median copy bandwidth as a line.
    func plot(_ records: [BenchRecord], device: Device) -> SVGPlot {
        let colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]
        let dashes: [String: String] = ["float16": "6 3", "bfloat16": "2 3"]
        var series: [SVGPlot.Series] = []
        for record in records {
            let name = "\(record.op) \(record.dtype)"
            if series.last?.name != name {
                let operationIndex = BenchOperation.allCases.firstIndex { $0.rawValue == record.op } ?? 0
                series.append(SVGPlot.Series(name: name, points: [], color: colors[operationIndex % colors.count], dash: dashes[record.dtype]))
            }
            series[series.count - 1].points.append((Double(record.cols), record.gbps))
        }
        let copies = Set(records.map(\.copyGbps)).sorted()
        let copyMedian = copies.isEmpty ? 0 : copies[copies.count / 2]
        return SVGPlot(
            title: "fusednorm bench on \(device): \(elements) elements per tensor",
            xLabel: "row length N (log2 scale)", yLabel: "GB/s (bytes read + written / median time)", series: series,
            referenceLines: [SVGPlot.ReferenceLine(
                label: String(format: "copy %.1f GB/s (median of %d)", copyMedian, copies.count), y: copyMedian, color: "#000000")])
    }
}
