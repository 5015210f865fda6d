import ArgumentParser
import FusedNorm

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// `fusednorm check`: every operation × dtype × shape family against the float64 reference.
///
/// Inputs are seeded random values rounded to their dtype; outputs are preallocated, poisoned with NaN
/// and often views into larger poisoned allocations, so that an element left unwritten, or written
/// outside its view, fails. Prints a table, then as its last line `N passed, N failed`; exits with
/// status 1 when any case failed.
struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check every operation, dtype and shape family against the float64 reference.")

    @OptionGroup var device: DeviceOption

    @Option(
        help: ArgumentHelp(
            "Operation families to check, comma-separated (default: all).",
            discussion: CheckOperation.allCases.map(\.rawValue).joined(separator: ", ")),
        transform: CheckOperation.list)
    var ops: [CheckOperation]?

    @Option(
        help: "Dtypes to check, comma-separated (default: float32,float16,bfloat16).", transform: ListArgument.dtypes)
    var dtypes: [DType]?

    @Option(
        help: "Only the shape families with these row lengths N, comma-separated (default: all).",
        transform: ListArgument.columns)
    var cols: [Int]?

    @Option(help: "Seed of the random inputs.")
    var seed: UInt64 = 1

    @Flag(help: "One table row per case, instead of one per operation variant and dtype.")
    var verbose = false

    func run() throws {
        let console = Console.current
        let device = try self.device.resolve()
        let cases = CheckCase.all(operations: ops, dtypes: dtypes, columns: cols)
        guard !cases.isEmpty else { throw CLIError("no check matches the given --ops, --dtypes and --cols") }
        console.print("fusednorm check on \(device): \(cases.count) cases against the float64 reference (seed \(seed))")

        let runner = CheckRunner(device: device, seed: seed)
        let progress = Progress("check", total: cases.count, console: console)
        var results: [CheckResult] = []
        for (index, testCase) in cases.enumerated() {
            progress.update(completed: index, detail: testCase.name)
            results.append(runner.run(testCase))
        }
        progress.finish()

        console.print()
        for line in (verbose ? caseTable(results) : summaryTable(results)).lines { console.print(line) }
        let failed = results.filter { !$0.passed }
        if !failed.isEmpty {
            console.print()
            for result in failed {
                console.print("FAILED \(result.testCase.name): \(result.failures.joined(separator: "; "))")
            }
        }
        console.print("\(results.count - failed.count) passed, \(failed.count) failed")
        if !failed.isEmpty { throw ExitCode.failure }
    }

    /// One row per variant and dtype: how many cases, the worst error relative to its tolerance, and where.
    func summaryTable(_ results: [CheckResult]) -> TextTable {
        var table = TextTable(
            headers: ["operation", "variant", "dtype", "cases", "worst err/tol", "worst at", "result"],
            alignments: [.left, .left, .left, .right, .right, .left, .left])
        var groups: [(key: String, results: [CheckResult])] = []
        for result in results {
            let key =
                "\(result.testCase.variant.operation.rawValue) \(result.testCase.variant.name) \(result.testCase.dtype)"
            if groups.last?.key == key {
                groups[groups.count - 1].results.append(result)
            } else {
                groups.append((key, [result]))
            }
        }
        for group in groups {
            let first = group.results[0].testCase
            let worst = group.results.compactMap { result in result.worst.map { (result, $0) } }
                .max { $0.1.ratio < $1.1.ratio }
            let failures = group.results.filter { !$0.passed }.count
            table.append([
                first.variant.operation.rawValue, first.variant.name, first.dtype.rawValue, "\(group.results.count)",
                worst.map { formatRatio($0.1.ratio) } ?? "-",
                worst.map { "\($0.1.output), \($0.0.testCase.shape.name)" } ?? "-",
                failures == 0 ? "ok" : "\(failures) FAILED",
            ])
        }
        return table
    }

    /// One row per case.
    func caseTable(_ results: [CheckResult]) -> TextTable {
        var table = TextTable(
            headers: ["operation", "variant", "dtype", "shape", "outputs (err/tol)", "result"],
            alignments: [.left, .left, .left, .left, .left, .left])
        for result in results {
            let testCase = result.testCase
            table.append([
                testCase.variant.operation.rawValue, testCase.variant.name, testCase.dtype.rawValue,
                testCase.shape.name,
                result.comparisons.map { "\($0.output) \(formatRatio($0.ratio))" }.joined(separator: ", "),
                result.passed ? "ok" : "FAILED",
            ])
        }
        return table
    }

    /// An error/tolerance ratio with two decimals (`0.03`, `1.25`, `inf`).
    func formatRatio(_ ratio: Double) -> String {
        ratio.isFinite ? String(printf: "%.2f", ratio) : "inf"
    }
}
