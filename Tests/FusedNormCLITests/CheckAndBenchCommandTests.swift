import Foundation
import Testing

@testable import FusedNorm
@testable import FusedNormCLI

/// `check` and `bench` through the command layer, at tiny sizes.
struct CheckAndBenchCommandTests {
    @Test
    func checkPassesOnASubsetOnTheCPU() {
        let outcome = runFusedNorm(["check", "--device", "cpu", "--dtypes", "float32,bfloat16", "--cols", "3,127"])
        let lines = outcome.output.split(separator: "\n")
        #expect(outcome.status == 0, "\(outcome.output)")
        #expect(lines.last?.wholeMatch(of: /\d+ passed, 0 failed/) != nil, "last line: \(lines.last ?? "")")
        // Every operation family took part, with contiguous and strided rows.
        for operation in CheckOperation.allCases {
            #expect(outcome.output.contains(operation.rawValue + " "))
        }
        #expect(CheckCase.all(operations: nil, dtypes: nil, columns: [127]).contains { $0.shape.layout == .strided })
    }

    @Test
    func checkReportsAWrongResultAsAFailure() {
        // A tolerance of zero cannot be met by a float16 output; the case must fail, not crash.
        var result = CheckResult(
            testCase: CheckCase(variant: CheckVariant.all[0], dtype: .float16, shape: CheckShape(columns: 3)))
        result.comparisons = [CheckComparison(output: "y", error: 1e-3, tolerance: 1e-4)]
        #expect(!result.passed)
        #expect(result.failures == ["y error 1.0e-03 > tolerance 1.0e-04"])
    }

    @Test
    func benchWritesJSONWithEveryKeyAndAnSVG() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        // The FUSEDNORM_* variables in effect (a test's stand-in for the process's) and the CPU kernels
        // that ran go into every record.
        let outcome = EnvironmentVariable.$override.withValue([
            "FUSEDNORM_CPU_KERNELS": "portable", "FUSEDNORM_CUDA_WAVES": "2",
        ]) {
            CPUSettings.$requestedKernels.withValue(.portable) {
                runFusedNorm([
                    "bench", "--device", "cpu", "--ops", BenchOperation.allCases.map(\.rawValue).joined(separator: ","),
                    "--dtypes", "float32,bf16", "--cols", "16,33", "--elements", "256", "--repeats", "2",
                    "--json", folder.file("bench.json"), "--svg", folder.file("bench.svg"),
                ])
            }
        }
        #expect(outcome.status == 0, "\(outcome.error)")
        let data = try Data(contentsOf: URL(fileURLWithPath: folder.file("bench.json")))
        let records = try #require(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        #expect(records.count == BenchOperation.allCases.count * 2 * 2)
        let keys = [
            "op", "dtype", "device", "rows", "cols", "median_seconds", "microseconds", "bytes", "gbps", "copy_gbps",
            "fraction_of_copy",
            "cpu_kernels", "environment",
        ]
        for record in records {
            for key in keys { #expect(record[key] != nil, "missing \(key)") }
            #expect((record["gbps"] as? Double ?? 0) > 0)
            #expect(record["cpu_kernels"] as? String == "portable")
            #expect(
                record["environment"] as? [String: String] == [
                    "FUSEDNORM_CPU_KERNELS": "portable", "FUSEDNORM_CUDA_WAVES": "2",
                ])
        }
        #expect(records.first?["rows"] as? Int == 16)  // 256 elements / 16 columns
        #expect(Set(records.compactMap { $0["op"] as? String }) == Set(BenchOperation.allCases.map(\.rawValue)))
        let svg = try String(contentsOfFile: folder.file("bench.svg"), encoding: .utf8)
        #expect(svg.hasPrefix("<svg") && svg.contains("copy ") && svg.contains("layernorm-backward bfloat16"))
        #expect(try folder.contents() == ["bench.json", "bench.svg"])
    }

    @Test
    func benchRecordsAnEmptyEnvironmentAndTheKernelsThatRan() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let outcome = EnvironmentVariable.$override.withValue([:]) {
            runFusedNorm([
                "bench", "--device", "cpu", "--ops", "rmsnorm", "--dtypes", "float32", "--cols", "16", "--elements",
                "64",
                "--repeats", "1", "--json", folder.file("bench.json"),
            ])
        }
        #expect(outcome.status == 0, "\(outcome.error)")
        let data = try Data(contentsOf: URL(fileURLWithPath: folder.file("bench.json")))
        let records = try #require(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        #expect(records.first?["environment"] as? [String: String] == [:])
        #expect(records.first?["cpu_kernels"] as? String == CPUSettings.kernels.rawValue)
    }

    @Test(
        "Operations are spelled with hyphens; the underscore spelling is accepted",
        arguments: [
            "rmsnorm-backward,layernorm-backward,rmsnorm-residual",
            "rmsnorm_backward,layernorm_backward,rmsnorm_residual",
        ])
    func operationSpellings(text: String) throws {
        #expect(try BenchOperation.list(text) == [.rmsnormBackward, .layernormBackward, .rmsnormResidual])
        #expect(
            try CheckOperation.list(text + ",qk-norm,qk_norm") == [
                .rmsnormBackward, .layernormBackward, .rmsnormResidual, .qkNorm, .qkNorm,
            ])
        #expect(CheckOperation.allCases.allSatisfy { !$0.rawValue.contains("_") })
        #expect(BenchOperation.allCases.allSatisfy { !$0.rawValue.contains("_") })
    }

    @Test
    func aBadEnvironmentVariableFailsTheCommandsWithAMessage() throws {
        for arguments in [
            ["bench", "--device", "cpu", "--ops", "rmsnorm", "--cols", "16", "--elements", "64", "--repeats", "1"],
            ["check", "--device", "cpu", "--ops", "rmsnorm", "--cols", "3"],
            ["run", "rmsnorm", "--x", "/nonexistent/x.npy", "--out", "/nonexistent/y.npy", "--device", "cpu"],
        ] {
            let outcome = EnvironmentVariable.$override.withValue(["FUSEDNORM_CUDA_BACKWARD_WAVES": "0"]) {
                runFusedNorm(arguments)
            }
            #expect(outcome.status == 1, "\(arguments[0]): \(outcome.error)")
            #expect(
                outcome.error.hasPrefix(
                    "error: environment variable FUSEDNORM_CUDA_BACKWARD_WAVES=0 is not valid: out of range"),
                "\(arguments[0]): \(outcome.error)")
        }
    }

    @Test
    func infoShowsTheVariablesSet() {
        let good = EnvironmentVariable.$override.withValue([
            "FUSEDNORM_CPU_KERNELS": "avx2", "FUSEDNORM_CPU_KERNEL": "x",
        ]) {
            runFusedNorm(["info"])
        }
        #expect(good.status == 0, "\(good.error)")
        #expect(
            good.output.contains("Environment\n  FUSEDNORM_CPU_KERNELS=avx2: The CPU row kernels"), "\(good.output)")
        #expect(good.output.contains("FUSEDNORM_CPU_KERNEL=x: not read by FusedNorm"))
        let none = EnvironmentVariable.$override.withValue([:]) { runFusedNorm(["info"]) }
        #expect(none.output.contains("no FUSEDNORM_* variable set"))
        let bad = EnvironmentVariable.$override.withValue(["FUSEDNORM_CUDA_STAGE": "7"]) { runFusedNorm(["info"]) }
        #expect(bad.status == 1 && bad.output.contains("FUSEDNORM_CUDA_STAGE=7: NOT VALID: out of range"))
        #expect(bad.output.contains("GPU (CUDA)"), "everything is shown before the error")
        #expect(bad.error.hasPrefix("error: environment variable FUSEDNORM_CUDA_STAGE=7"))
    }

    @Test
    func benchRunsPerHeadStridedShapesWithGivenRowCounts() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let outcome = runFusedNorm([
            "bench", "--device", "cpu", "--ops", "rmsnorm_backward,layernorm", "--dtypes", "float16", "--cols", "8",
            "--rows", "3,6", "--heads", "3", "--row-step", "2", "--elements", "512", "--repeats", "3", "--json",
            folder.file("bench.json"),
        ])
        #expect(outcome.status == 0, "\(outcome.error)")
        let data = try Data(contentsOf: URL(fileURLWithPath: folder.file("bench.json")))
        let records = try #require(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        #expect(records.map { $0["rows"] as? Int } == [3, 6, 3, 6])
        #expect(records.first?["op"] as? String == "rmsnorm-backward")  // written in the one spelling
        #expect(records.allSatisfy { $0["heads"] as? Int == 3 && $0["row_step"] as? Int == 2 })
        // rmsnorm-backward, 3 rows of 8 float16: x, dy, dx (48 bytes each), weight and dweight (3 x 8 each), rstd.
        #expect(records.first?["bytes"] as? Int == 3 * 48 + 2 * 48 + 12)
    }

    @Test
    func benchRejectsRowCountsThatAreNotWholeHeads() {
        let outcome = runFusedNorm(["bench", "--device", "cpu", "--cols", "8", "--rows", "4", "--heads", "3"])
        #expect(outcome.status != 0)
        #expect(outcome.error.hasPrefix("error: --rows 4 is not a multiple of --heads 3"))
    }

    @Test
    func benchRejectsUnknownOperations() {
        let outcome = runFusedNorm(["bench", "--ops", "rmsnorm,softmax"])
        #expect(outcome.status != 0)
        #expect(outcome.error.hasPrefix("error: ") && outcome.error.contains("softmax"))
    }

    @Test
    func infoDescribesTheCPUAndTheGPUs() {
        let outcome = runFusedNorm(["info"])
        #expect(outcome.status == 0)
        #expect(outcome.output.contains("threads:"))
        #expect(outcome.output.contains("GPU (CUDA)"))
    }

    @Test
    func helpGoesToStandardOutput() {
        let outcome = runFusedNorm(["run", "rmsnorm", "--help"])
        #expect(outcome.status == 0)
        #expect(outcome.output.contains("--residual-out"))
        #expect(outcome.error.isEmpty)
    }
}
