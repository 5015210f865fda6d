import ArgumentParser
@_spi(Benchmarking) import FusedNorm

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `fusednorm bench`: the memory bandwidth each operation reaches, against this machine's copy bandwidth.
///
/// Every operation, dtype and row length N runs over a fixed number of elements per tensor (rows =
/// elements / N), large enough to leave the caches behind, into preallocated outputs. A row reports the
/// median time after warm-up runs, the bytes the operation must move (each input read once, each output
/// written once), GB/s, and that as a fraction of the bandwidth of a large `Tensor.copy(into:)` (the copy
/// yardstick: bytes read + written; the faster of two copies, see below). Consecutive runs of a small shape use different buffers, so that no
/// run finds its inputs in a cache.
///
/// How the fraction is taken depends on the device:
/// - CPU: the host is shared, and the copy's bandwidth moves by a third from one second to the next. So
///   copy runs and kernel runs alternate, and all the measurements are interleaved (round after round,
///   each dtype, N and operation runs once, between two copies of its dtype's arena; see
///   ``BenchSampler/measure(_:copies:round:)``), so that each one's runs spread over the whole
///   measurement, and the operations of one dtype and N run next to each other in each round:
///   `fraction_of_copy` is the median over the kernel runs of
///   (the run's GB/s) / (the GB/s of the two copies around it), `copy_gbps` the median of those copies,
///   `gbps` from the kernel's median time. The fraction is therefore close to, not exactly,
///   `gbps / copy_gbps`. The copy: all of the 2^26-element input, split into one part per thread, copied at
///   once, in two ways run one after the other wherever the yardstick runs: `memcpy` (which reads each
///   destination line before writing it) and a copy with non-temporal stores (`streaming`, as the kernels'
///   stores); each kernel is reported against the one with the higher median GB/s (`copy_kind`), both in
///   the JSON (`memcpy_gbps`, `streaming_copy_gbps`).
/// - GPU: two copies, `cuMemcpyDtoD` and FusedNorm's 16-byte-vector kernel (`copy_kernel`), are measured once
///   before each operation and dtype (CUDA events are steady), and `fraction_of_copy` = `gbps / copy_gbps`
///   with the faster of the two.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure each operation's bandwidth against this machine's copy bandwidth.")

    /// Powers of two from 256 to 262144, plus 4095 (odd) and 5120 (a common hidden size).
    static let defaultColumns = ((8...18).map { 1 << $0 } + [4095, 5120]).sorted()

    @OptionGroup var device: DeviceOption

    @Option(
        help: ArgumentHelp(
            "Operations, comma-separated (default: all).",
            discussion: BenchOperation.allCases.map(\.rawValue).joined(separator: ", ")),
        transform: BenchOperation.list)
    var ops: [BenchOperation]?

    @Option(help: "Dtypes, comma-separated (default: float32,float16,bfloat16).", transform: ListArgument.dtypes)
    var dtypes: [DType]?

    @Option(
        help: "Row lengths N, comma-separated, e.g. 4096,2^16 (default: 2^8 ... 2^18, 4095, 5120).",
        transform: ListArgument.columns)
    var cols: [Int]?

    @Option(
        help: "Elements per tensor; rows = elements / N (default 2^26: 256 MB per float32 tensor).",
        transform: ListArgument.positiveInteger)
    var elements: Int = 1 << 26

    @Option(
        help: "Row counts to run every N with, comma-separated, instead of elements / N (e.g. decode shapes 1,8,32).",
        transform: ListArgument.columns)
    var rows: [Int]?

    @Option(help: "Per-head norm: x is (rows / heads, heads, N) with a (heads, N) weight.")
    var heads = 1

    @Option(help: "x, the residual and dy are every k-th row of a larger tensor.")
    var rowStep = 1

    @Option(help: "The most timed runs per measurement (default: 25 on the CPU, each between two copies; 50 on a GPU).")
    var repeats: Int?

    @Option(help: "Stop adding timed runs to a measurement once they took this many seconds (after at least one).")
    var timeLimit = 2.0

    @Option(help: "Write the results to this file as a JSON array.")
    var json: String?

    @Option(help: "Write a plot of GB/s against N to this file (SVG).")
    var svg: String?

    @Option(help: "Seed of the random inputs.")
    var seed: UInt64 = 1

    func validate() throws {
        if let repeats, repeats < 1 { throw ValidationError("--repeats must be at least 1, got \(repeats)") }
        guard heads >= 1 else { throw ValidationError("--heads must be at least 1, got \(heads)") }
        guard rowStep >= 1 else { throw ValidationError("--row-step must be at least 1, got \(rowStep)") }
        if let rows, let bad = rows.first(where: { $0 % heads != 0 }) {
            throw ValidationError("--rows \(bad) is not a multiple of --heads \(heads)")
        }
        guard timeLimit > 0, timeLimit.isFinite else {
            throw ValidationError("--time-limit must be a positive number of seconds")
        }
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
        let operations = ops ?? BenchOperation.allCases, dtypes = self.dtypes ?? DType.allCases
        let shapes = self.shapes()
        let sampler = BenchSampler(
            timer: HostClockTimer(device: device), warmups: device == .cpu ? 1 : 5,
            repeats: repeats ?? (device == .cpu ? 25 : 50), timeLimit: timeLimit)
        console.print(
            "fusednorm bench on \(device): \(operations.count) operations x \(dtypes.count) dtypes x \(shapes.count) shapes, "
                + (rows == nil ? "\(elements) elements per tensor, " : "")
                + "median of up to \(sampler.repeats) runs after \(sampler.warmups) warm-up run\(sampler.warmups == 1 ? "" : "s")"
        )

        let records = try measure(
            device: device, operations: operations, dtypes: dtypes, shapes: shapes, sampler: sampler, console: console)
        console.print()
        for line in table(records).lines { console.print(line) }

        var files: [AtomicFiles.Entry] = []
        if let json { files.append(AtomicFiles.Entry(path: json, contents: try BenchRecord.json(records))) }
        if let svg {
            files.append(AtomicFiles.Entry(path: svg, contents: Array(plot(records, device: device).render().utf8)))
        }
        try AtomicFiles.writeAll(files)
    }

    /// Every shape to measure: each N with elements / N rows (a multiple of the heads), or with each of `--rows`.
    func shapes() -> [BenchShape] {
        (cols ?? BenchCommand.defaultColumns).flatMap { n in
            (rows ?? [max(1, elements / (n * heads)) * heads]).map {
                BenchShape(rows: $0, columns: n, heads: heads, rowStep: rowStep)
            }
        }
    }

    /// The timer for `device`: CUDA events on a GPU (with large copies queued first to keep it busy while
    /// the timed runs are queued), the host clock on the CPU.
    func timer(for device: Device, arena: BenchArena) throws -> any BenchTimer {
        guard case .cuda = device else { return HostClockTimer(device: device) }
        let copy = try arena.copyCall()
        return CUDAEventTimer(device: device) { for run in 0..<8 { try copy.run(run) } }
    }

    /// Runs every measurement, with the copy bandwidth measured beside each (see the type's comment). Sorted by
    /// operation, dtype, N and rows.
    func measure(
        device: Device, operations: [BenchOperation], dtypes: [DType], shapes: [BenchShape], sampler: BenchSampler,
        console: Console
    ) throws -> [BenchRecord] {
        var generator = SeededGenerator(seed: seed)
        let capacity = max(elements, shapes.map(\.outputSpan).max() ?? 1)
        let records =
            device == .cpu
            ? try measureInterleaved(
                operations: operations, dtypes: dtypes, shapes: shapes, sampler: sampler, capacity: capacity,
                generator: &generator, console: console)
            : try measureOneByOne(
                device: device, operations: operations, dtypes: dtypes, shapes: shapes, sampler: sampler,
                capacity: capacity, generator: &generator, console: console)
        let operationOrder = operations.map(\.rawValue), dtypeOrder = dtypes.map(\.rawValue)
        func key(_ record: BenchRecord) -> [Int] {
            [
                operationOrder.firstIndex(of: record.op) ?? 0, dtypeOrder.firstIndex(of: record.dtype) ?? 0,
                record.cols, record.rows,
            ]
        }
        return records.sorted { key($0).lexicographicallyPrecedes(key($1)) }
    }

    /// The CPU's measurement: every dtype, shape and operation at once, round after round (in a round: dtype
    /// by dtype, shape by shape, the operations of a shape one after another), each run between two copies
    /// of its dtype's arena.
    func measureInterleaved(
        operations: [BenchOperation], dtypes: [DType], shapes: [BenchShape], sampler: BenchSampler, capacity: Int,
        generator: inout SeededGenerator, console: Console
    ) throws -> [BenchRecord] {
        let progress = Progress("bench", total: sampler.repeats, console: console)
        var yardsticks: [[BenchCall]] = [], calls: [(call: BenchCall, copy: Int)] = []
        var measurements: [(operation: BenchOperation, dtype: DType, shape: BenchShape)] = []
        for dtype in dtypes {
            progress.update(completed: 0, detail: "filling \(dtype) inputs")
            let arena = try BenchArena(
                dtype: dtype, device: .cpu, capacity: capacity, rowStep: rowStep, generator: &generator)
            yardsticks.append(try BenchCommand.copyMethods.map { try arena.copyCall(method: $0) })
            for shape in shapes {
                for operation in operations {
                    let call = try arena.call(
                        operation, shape: shape, runs: sampler.warmups + sampler.repeats, generator: &generator)
                    calls.append((call, yardsticks.count - 1))
                    measurements.append((operation, dtype, shape))
                }
            }
        }
        let samples = try sampler.measure(calls, yardsticks: yardsticks) { round in
            progress.update(completed: round, detail: "round \(round + 1) over \(calls.count) measurements")
        }
        progress.finish()
        return zip(measurements, zip(calls, samples)).map { m, pair in
            let (call, sample) = pair
            let copies = CopyBandwidths(
                gbps: zip(yardsticks[call.copy], sample.copies).map { Double($0.bytes) / $1.medianSeconds / 1e9 })
            return record(
                m.operation, m.dtype, m.shape, call.call, device: .cpu, seconds: sample.medianSeconds,
                copies: copies, fraction: sample.fractionOfCopy, repeats: sample.repeats, hostSeconds: nil)
        }
    }

    /// A GPU's measurement: dtype by dtype, one copy measurement per operation, then each shape on its own.
    func measureOneByOne(
        device: Device, operations: [BenchOperation], dtypes: [DType], shapes: [BenchShape], sampler: BenchSampler,
        capacity: Int, generator: inout SeededGenerator, console: Console
    ) throws -> [BenchRecord] {
        let progress = Progress("bench", total: dtypes.count * operations.count * shapes.count, console: console)
        var records: [BenchRecord] = []
        for dtype in dtypes {
            progress.update(completed: records.count, detail: "filling \(dtype) inputs")
            let arena = try BenchArena(
                dtype: dtype, device: device, capacity: capacity, rowStep: rowStep, generator: &generator)
            var sampler = sampler
            sampler.timer = try timer(for: device, arena: arena)
            let copyCalls = try BenchCommand.copyMethods.map { try arena.copyCall(method: $0) }
            for operation in operations {
                progress.update(completed: records.count, detail: "copy \(dtype)")
                let copies = CopyBandwidths(
                    gbps: try copyCalls.map { Double($0.bytes) / (try sampler.measure($0).medianSeconds) / 1e9 })
                for shape in shapes {
                    progress.update(
                        completed: records.count,
                        detail: "\(operation.rawValue) \(dtype) \(shape.rows)x\(shape.columns)")
                    let call = try arena.call(
                        operation, shape: shape, runs: sampler.warmups + sampler.repeats, generator: &generator)
                    let sample = try sampler.measure(call)
                    records.append(
                        record(
                            operation, dtype, shape, call, device: device, seconds: sample.medianSeconds,
                            copies: copies,
                            fraction: Double(call.bytes) / sample.medianSeconds / 1e9 / copies.faster,
                            repeats: sample.repeats,
                            hostSeconds: sample.hostSecondsPerRun))
                }
            }
        }
        progress.finish()
        return records
    }

    /// The yardstick's copies, in the order of ``CopyBandwidths/gbps``.
    static let copyMethods: [CopyMethod] = [.library, .streaming]

    /// The bandwidths of the yardstick's copies (``copyMethods``' order), in GB/s.
    struct CopyBandwidths {
        var gbps: [Double]
        /// The highest.
        var faster: Double { gbps.max() ?? 0 }
        /// The method of the highest.
        var fasterMethod: CopyMethod { BenchCommand.copyMethods[gbps.indices.max { gbps[$0] < gbps[$1] } ?? 0] }
    }

    /// One measurement's result.
    func record(
        _ operation: BenchOperation, _ dtype: DType, _ shape: BenchShape, _ call: BenchCall, device: Device,
        seconds: Double,
        copies: CopyBandwidths, fraction: Double, repeats: Int, hostSeconds: Double?
    ) -> BenchRecord {
        BenchRecord(
            op: operation.rawValue, dtype: dtype.rawValue, device: device.description, rows: shape.rows,
            cols: shape.columns, heads: shape.heads, rowStep: shape.rowStep, medianSeconds: seconds,
            microseconds: seconds * 1e6, bytes: call.bytes, gbps: Double(call.bytes) / seconds / 1e9,
            copyGbps: copies.faster, copyKind: copies.fasterMethod.name(on: device), memcpyGbps: copies.gbps[0],
            streamingCopyGbps: copies.gbps[1], fractionOfCopy: fraction, repeats: repeats,
            hostMicroseconds: hostSeconds.map { $0 * 1e6 }, cpuKernels: CPUSettings.kernels.rawValue,
            environment: Dictionary(uniqueKeysWithValues: EnvironmentVariable.active().map { ($0.name, $0.value) }))
    }

    /// The results, one row per measurement; host time, heads and row step only when they say something.
    func table(_ records: [BenchRecord]) -> TextTable {
        var columns: [(header: String, alignment: TextTable.Alignment, cell: (BenchRecord) -> String)] = [
            ("op", .left, { $0.op }), ("dtype", .left, { $0.dtype }), ("rows", .right, { "\($0.rows)" }),
            ("N", .right, { "\($0.cols)" }),
        ]
        if records.contains(where: { $0.heads != 1 }) { columns.append(("heads", .right, { "\($0.heads)" })) }
        if records.contains(where: { $0.rowStep != 1 }) { columns.append(("row step", .right, { "\($0.rowStep)" })) }
        columns.append(("us", .right, { String(printf: "%.1f", $0.microseconds) }))
        if records.contains(where: { $0.hostMicroseconds != nil }) {
            columns.append(("host us", .right, { $0.hostMicroseconds.map { String(printf: "%.1f", $0) } ?? "-" }))
        }
        columns += [
            ("GB/s", .right, { String(printf: "%.2f", $0.gbps) }),
            ("copy GB/s", .right, { String(printf: "%.2f", $0.copyGbps) }),
            ("copy", .left, { $0.copyKind }),
            ("of copy", .right, { String(printf: "%.0f%%", $0.fractionOfCopy * 100) }),
            ("runs", .right, { "\($0.repeats)" }),
        ]
        var table = TextTable(headers: columns.map(\.header), alignments: columns.map(\.alignment))
        for record in records { table.append(columns.map { $0.cell(record) }) }
        return table
    }

    /// GB/s against N, one series per operation and dtype (and row count, with `--rows`), with the median
    /// copy bandwidth as a line.
    func plot(_ records: [BenchRecord], device: Device) -> SVGPlot {
        let colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
        let dashes: [String: String] = ["float16": "6 3", "bfloat16": "2 3"]
        var series: [SVGPlot.Series] = []
        for record in records.sorted(by: { ($0.op, $0.dtype, $0.rows, $0.cols) < ($1.op, $1.dtype, $1.rows, $1.cols) })
        {
            let name = "\(record.op) \(record.dtype)" + (rows == nil ? "" : " rows=\(record.rows)")
            if !series.contains(where: { $0.name == name }) {
                // Color by operation, and by row count within an operation with --rows; dashes by dtype.
                let operationIndex = BenchOperation.allCases.firstIndex { $0.rawValue == record.op } ?? 0
                let colorIndex = operationIndex * (rows?.count ?? 1) + (rows?.firstIndex(of: record.rows) ?? 0)
                series.append(
                    SVGPlot.Series(
                        name: name, points: [], color: colors[colorIndex % colors.count], dash: dashes[record.dtype]))
            }
            series[series.firstIndex { $0.name == name }!].points.append((Double(record.cols), record.gbps))
        }
        let copies = Set(records.map(\.copyGbps)).sorted()
        let copyMedian = copies.isEmpty ? 0 : copies[copies.count / 2]
        var subtitle =
            rows == nil ? "\(elements) elements per tensor" : "rows \(rows!.map(String.init).joined(separator: ", "))"
        if heads > 1 { subtitle += ", \(heads) heads" }
        if rowStep > 1 { subtitle += ", every \(rowStep) rows" }
        return SVGPlot(
            title: "fusednorm bench on \(device): \(subtitle)",
            xLabel: "row length N (log2 scale)", yLabel: "GB/s (bytes read + written / median time)", series: series,
            referenceLines: [
                SVGPlot.ReferenceLine(
                    label: String(printf: "copy %.1f GB/s (median of %d)", copyMedian, copies.count), y: copyMedian,
                    color: "#000000")
            ])
    }
}
