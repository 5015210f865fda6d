import Foundation
import FusedNorm
import Testing

@testable import FusedNormCLI

/// `fusednorm explain`: the walkthrough's numbers for the reference matrix, its outputs against `fusednorm run`,
/// the GPU plan offline, the page, and bad input.
@Suite
struct ExplainCommandTests {
    /// The walkthrough of the reference matrix, from `explain --json`.
    static func walkthrough(_ arguments: [String] = [], in folder: TemporaryFolder) throws -> (
        Walkthrough, [DevicePlan], CommandOutcome
    ) {
        let path = folder.file("explain.json")
        let outcome = runFusedNorm(["explain"] + arguments + ["--json", path])
        #expect(outcome.status == 0, "\(outcome.error)")
        struct Document: Decodable {
            var walkthrough: Walkthrough
            var plans: [DevicePlan]
        }
        let document = try JSONDecoder().decode(Document.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        return (document.walkthrough, document.plans, outcome)
    }

    @Test("the reference matrix: every row's sum of squares, mean square, RMS, rstd and output")
    func referenceMatrix() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let (w, _, outcome) = try Self.walkthrough(in: folder)
        #expect(w.rows == 3 && w.columns == 8 && w.block == 4)
        // Row sums of squares: the data give 38.75 and 37.25 for rows 1 and 2 (not the original table's 44.25, 50.00).
        #expect(w.steps.map(\.sumOfSquares) == [21.75, 38.75, 37.25])
        #expect(w.steps.map(\.meanSquare) == [2.71875, 4.84375, 4.65625])
        #expect(w.steps[0].blocks.map(\.partial) == [14.25, 7.5])
        #expect(w.steps[1].blocks.map(\.partial) == [32.25, 6.5])
        #expect(w.steps[2].blocks.map(\.partial) == [21.75, 15.5])
        // Against float64: RMS = sqrt(ms + ε), rstd = 1 / RMS, y = x · rstd, each rounded once to float32.
        for (row, step) in w.steps.enumerated() {
            let meanSquare = Double(step.sumOfSquares) / 8
            #expect(step.rms == Float((meanSquare + Double(Float(1e-6))).squareRoot()))
            #expect(step.rstd == Float(1 / (meanSquare + Double(Float(1e-6))).squareRoot()))
            #expect(step.walkthroughRstd == step.rstd)
            #expect(step.rstdBits == Walkthrough.bits(step.rstd))
            let expected = ExplainCommand.defaultMatrix[row].map { $0 * step.rstd }
            #expect(step.output == expected, "row \(row)")
        }
        // The reference walkthrough's rounded figures: rstd 0.606 and row 0 of the output.
        #expect(abs(w.steps[0].rstd - 0.6065) < 5e-4)
        let reference: [Float] = [1.21, -0.61, 1.82, 0.30, -0.30, 0.91, -1.21, 0.61]
        for (value, rounded) in zip(w.steps[0].output, reference) { #expect(abs(value - rounded) <= 0.005) }
        #expect(outcome.output.contains("Σ x² = 38.75"))
        #expect(outcome.output.contains("Σ x² = 37.25"))
        #expect(outcome.output.contains("cpu: "))
        #expect(outcome.output.contains("kernel family"))
    }

    static let runCases: [(String, [String])] = [
        ("rmsnorm", []), ("rmsnorm", ["--dtype", "bfloat16"]),
        ("rmsnorm", ["--rows", "5", "--cols", "37", "--seed", "3"]),
        ("rmsnorm", ["--rows", "3", "--cols", "64", "--dtype", "float16"]),
        ("layernorm", ["--rows", "4", "--cols", "24"]), ("rmsnorm-residual", ["--rows", "2", "--cols", "16"]),
        ("rmsnorm-backward", ["--rows", "3", "--cols", "12"]),
    ]

    @Test("outputs and rstd equal fusednorm run's bit for bit", arguments: runCases)
    func equalsRun(_ operation: String, _ arguments: [String]) throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let (w, _, _) = try Self.walkthrough([operation] + arguments, in: folder)
        let x = try folder.write("x.npy", NPYArray(shape: [w.rows, w.columns], floats: w.x.flatMap { $0 }))
        let dtype = ["--dtype", w.dtype, "--epsilon", "\(w.epsilon)", "--device", "cpu"]
        let outputs = w.steps.flatMap(\.output), rstd = w.steps.map(\.rstd)
        switch operation {
        case "rmsnorm", "layernorm", "rmsnorm-residual":
            var run =
                [
                    "run", operation == "layernorm" ? "layernorm" : "rmsnorm", "--x", x, "--out", folder.file("y.npy"),
                    "--rstd", folder.file("r.npy"),
                ] + dtype
            if let residual = w.residual {
                run += [
                    "--residual",
                    try folder.write("res.npy", NPYArray(shape: [w.rows, w.columns], floats: residual.flatMap { $0 })),
                ]
            }
            let outcome = runFusedNorm(run)
            #expect(outcome.status == 0, "\(outcome.error)")
            #expect(
                try NPYFile.read(path: folder.file("y.npy")).values.map { Float($0) }.map(\.bitPattern)
                    == outputs.map(\.bitPattern))
            #expect(
                try NPYFile.read(path: folder.file("r.npy")).values.map { Float($0) }.map(\.bitPattern)
                    == rstd.map(\.bitPattern))
        default:
            let dy = try folder.write(
                "dy.npy", NPYArray(shape: [w.rows, w.columns], floats: w.outputGradient!.flatMap { $0 }))
            let weight = try folder.write("w.npy", NPYArray(shape: [w.columns], floats: w.weight!))
            let outcome = runFusedNorm(
                [
                    "run", "rmsnorm-backward", "--x", x, "--dy", dy, "--weight", weight, "--dx", folder.file("dx.npy"),
                    "--dweight", folder.file("dw.npy"),
                ] + dtype)
            #expect(outcome.status == 0, "\(outcome.error)")
            #expect(
                try NPYFile.read(path: folder.file("dx.npy")).values.map { Float($0) }.map(\.bitPattern)
                    == outputs.map(\.bitPattern))
            #expect(
                try NPYFile.read(path: folder.file("dw.npy")).values.map { Float($0) }.map(\.bitPattern)
                    == w.weightGradient!.map(\.bitPattern))
        }
    }

    @Test(
        "--gpu h100 prints the GPU plan offline, the heuristic's own", arguments: [(8, 3), (4096, 1024), (262_144, 16)])
    func gpuPlanOffline(_ columns: Int, _ rows: Int) throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let (_, plans, outcome) = try Self.walkthrough(
            ["--rows", "\(rows)", "--cols", "\(columns)", "--gpu", "h100", "--dtype", "bfloat16"], in: folder)
        let plan = try #require(plans.first { $0.device == "h100 (offline)" })
        #expect(outcome.output.contains("h100 (offline): H100 SXM"))
        let settings = Dictionary(uniqueKeysWithValues: plan.settings.map { ($0[0], $0[1]) })
        for key in [
            "threads per row", "rows per block", "vector width", "vectors per thread", "cluster size", "row storage",
            "staging",
        ] {
            #expect(settings[key] != nil, "\(key) missing")
            #expect(outcome.output.contains(key))
        }
        #expect(settings["vector width"] == "8 elements")  // 16 bytes of bfloat16, N a multiple of 8
        if columns == 262_144 {
            #expect(settings["cluster size"]?.hasPrefix("1 ") == false, "N = 262144 uses a cluster on sm_90")
        }
        if columns == 8 {
            #expect(outcome.output.contains("Row 0:"))
        } else {
            #expect(outcome.output.contains("too large for step tables"))
        }
        if columns > 64 {
            #expect(try Self.walkthrough(["--rows", "\(rows)", "--cols", "\(columns)"], in: folder).0.truncated)
        }
        #expect(plans.first?.device == "cpu")
    }

    @Test("--html writes one self-contained page with the data and no outside references")
    func htmlPage() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let outcome = runFusedNorm(["explain", "--html", folder.file("page.html"), "--gpu", "h200"])
        #expect(outcome.status == 0, "\(outcome.error)")
        #expect(try folder.contents() == ["page.html"])
        let page = try String(contentsOfFile: folder.file("page.html"), encoding: .utf8)
        #expect(!page.contains(ExplainPage.placeholder))
        #expect(page.contains("\"rstdBits\":\"0x3f1b422a\""))
        for outside in ["http://", "https://", "<link", "src=", "@import", "url("] {
            #expect(!page.contains(outside), "\(outside)")
        }
        for control in [
            "id=\"random\"", "id=\"run\"", "id=\"step\"", "id=\"reset\"", "id=\"block\"", "id=\"epsilon\"",
            "id=\"traffic-table\"",
        ] {
            #expect(page.contains(control))
        }
    }

    @Test(
        "bad input: a clear error, a non-zero exit, no file written",
        arguments: [
            ["--block", "0"], ["--epsilon", "0"], ["--epsilon", "nan"], ["--rows", "3"],
            ["--rows", "0", "--cols", "4"],
            ["--x", "IN/absent.npy"], ["--x", "IN/x.npy", "--rows", "2", "--cols", "2"],
            ["--weight", "IN/w5.npy", "--x", "IN/x.npy"],
            ["--gpu", "a100"], ["layernorm", "--dy", "IN/x.npy"], ["softmax"], ["--json", "OUT/page.html"],
            ["--html", "OUT/missing-folder/page.html"],
        ])
    func badInput(_ arguments: [String]) throws {
        let input = try TemporaryFolder(), output = try TemporaryFolder()
        defer {
            input.remove()
            output.remove()
        }
        try input.write("x.npy", NPYArray(shape: [2, 4], values: testValues(8)))
        try input.write("w5.npy", NPYArray(shape: [5], values: testValues(5)))
        let resolved = arguments.map {
            $0.replacingOccurrences(of: "IN/", with: input.path + "/").replacingOccurrences(
                of: "OUT/", with: output.path + "/")
        }
        // The page's --html first: an --html among `arguments` replaces it.
        let outcome = runFusedNorm(["explain", "--html", output.file("page.html")] + resolved)
        #expect(outcome.status != 0)
        #expect(outcome.error.hasPrefix("error: "), "\(outcome.error)")
        #expect(outcome.error.split(separator: "\n").count == 1)
        #expect(try output.contents() == [])
    }
}
