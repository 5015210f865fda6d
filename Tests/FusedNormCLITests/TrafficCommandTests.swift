import Foundation
import FusedNorm
import Testing

@testable import FusedNormCLI

/// `fusednorm traffic`: byte counts against hand-computed values, predicted times, JSON and bad input.
@Suite
struct TrafficCommandTests {
    /// A shape, and the bytes worked out by hand from the kernel lists (b: the dtype's bytes; eager RMSNorm
    /// computes in float32).
    struct Case: Sendable, CustomTestStringConvertible {
        var arguments: [String]
        var rows: Int
        var columns: Int
        /// pass → implementation name → bytes.
        var expected: (eagerForward: Int, fusedForward: Int, floorForward: Int, eagerBackward: Int, floorBackward: Int)
        var testDescription: String { arguments.joined(separator: " ") }
    }

    static let cases: [Case] = {
        func rmsBF16(_ m: Int, _ n: Int) -> Case {
            // Forward: to(float32) 2+4, pow 4+4, mean 4 (+4M), +eps 8M, rsqrt 8M, x·r 8 (+4M), to(bf16) 4+2, w·hb 2+2 (+2N)
            // = 36MN + 24M + 2N. Backward: 8 tensors of bf16 and 19 of float32, 40M, 4N = 92MN + 40M + 4N.
            Case(
                arguments: ["--rows", "\(m)", "--cols", "\(n)", "--dtype", "bfloat16"], rows: m, columns: n,
                expected: (
                    36 * m * n + 24 * m + 2 * n, 4 * m * n + 2 * n + 4 * m, 4 * m * n + 2 * n,
                    92 * m * n + 40 * m + 4 * n, 6 * m * n + 4 * n + 4 * m
                ))
        }
        return [
            rmsBF16(8192, 4096), rmsBF16(1, 7), rmsBF16(3, 5120),
            // float32, residual: the add (3 tensors of 4 bytes) + 7 float32 tensors, 24M, 4N; floor 4T + P.
            Case(
                arguments: ["--rows", "3", "--cols", "5", "--dtype", "float32", "--residual"], rows: 3, columns: 5,
                expected: (40 * 15 + 24 * 3 + 4 * 5, (3 + 2) * 4 * 15 + 4 * 5 + 4 * 3, 16 * 15 + 4 * 5, -1, -1)),
            // LayerNorm bf16: mean, -, pow, mean, +eps, rsqrt, *, *, +: 12 tensors, 8M, 2N, all of 2 bytes.
            Case(
                arguments: ["--rows", "1000", "--cols", "5120", "--dtype", "bfloat16", "--op", "layernorm"], rows: 1000,
                columns: 5120,
                expected: (
                    24 * 1000 * 5120 + 16 * 1000 + 4 * 5120, 4 * 1000 * 5120 + 4 * 5120 + 8 * 1000,
                    4 * 1000 * 5120 + 4 * 5120,
                    -1, 6 * 1000 * 5120 + 8 * 5120 + 8 * 1000
                )),
        ]
    }()

    static func report(_ arguments: [String]) throws -> [String: Any] {
        let outcome = runFusedNorm(["traffic"] + arguments + ["--json", "-"])
        #expect(outcome.status == 0, "\(outcome.error)")
        return try #require(try JSONSerialization.jsonObject(with: Data(outcome.output.utf8)) as? [String: Any])
    }

    static func bytes(_ report: [String: Any], _ pass: String, _ prefix: String) throws -> Int {
        let implementations = try #require(report["implementations"] as? [[String: Any]])
        let found = try #require(
            implementations.first {
                ($0["pass"] as? String) == pass && ($0["name"] as? String)?.hasPrefix(prefix) == true
            })
        return try #require(found["bytes"] as? Int)
    }

    @Test("byte counts equal the hand-computed ones", arguments: cases)
    func handComputed(_ c: Case) throws {
        let report = try Self.report(c.arguments)
        #expect(try Self.bytes(report, "forward", "eager") == c.expected.eagerForward)
        #expect(try Self.bytes(report, "forward", "PyTorch") == c.expected.fusedForward)
        #expect(try Self.bytes(report, "forward", "FusedNorm") == c.expected.floorForward)
        if c.expected.eagerBackward >= 0 {
            #expect(try Self.bytes(report, "backward", "eager") == c.expected.eagerBackward)
        }
        if c.expected.floorBackward >= 0 {
            #expect(try Self.bytes(report, "backward", "FusedNorm") == c.expected.floorBackward)
        }
    }

    @Test("the floor is bench's byte count")
    func floorIsBench() throws {
        let report = try Self.report(["--rows", "8192", "--cols", "4096", "--dtype", "bfloat16"])
        #expect(
            try Self.bytes(report, "forward", "FusedNorm")
                == BenchOperation.rmsnorm.bytes(rows: 8192, columns: 4096, dtype: .bfloat16))
        #expect(
            try Self.bytes(report, "backward", "FusedNorm")
                == BenchOperation.rmsnormBackward.bytes(rows: 8192, columns: 4096, dtype: .bfloat16))
    }

    @Test("predicted time = bytes / bandwidth; datasheet figures named")
    func predictedTimes() throws {
        let report = try Self.report(["--rows", "4096", "--cols", "4096", "--bandwidth", "1000"])
        let implementations = try #require(report["implementations"] as? [[String: Any]])
        for implementation in implementations {
            let bytes = try #require(implementation["bytes"] as? Int),
                predicted = try #require(implementation["predictedMicroseconds"] as? Double)
            #expect(abs(predicted - Double(bytes) / 1000e9 * 1e6) < 1e-6 * predicted)  // 1000 GB/s
        }
        let h200 = runFusedNorm(["traffic", "--rows", "8192", "--cols", "4096", "--dtype", "bfloat16", "--gpu", "h200"])
        #expect(h200.status == 0)
        #expect(h200.output.contains("H200 datasheet, 4.8 TB/s"))
        #expect(
            h200.output.contains("to(float32)") && h200.output.contains("rsqrt")
                && h200.output.contains("pow(1) (PowBackward)"))
        let table = runFusedNorm(["traffic", "--rows", "8192", "--cols", "4096", "--dtype", "bfloat16"])
        #expect(table.output.contains("H100 SXM datasheet, 3.35 TB/s"))
    }

    @Test("--device cpu measures the copy and FusedNorm: measured and predicted")
    func measuredOnCPU() throws {
        let report = try Self.report(["--rows", "64", "--cols", "1024", "--dtype", "float32", "--device", "cpu"])
        let bandwidth = try #require(report["bandwidth"] as? [String: Any])
        #expect((bandwidth["source"] as? String)?.hasPrefix("copy measured on cpu") == true)
        #expect((bandwidth["gbps"] as? Double).map { $0 > 0 } == true)
        let implementations = try #require(report["implementations"] as? [[String: Any]])
        let measured = implementations.filter { $0["measuredMicroseconds"] != nil }
        #expect(measured.count == 2)
        #expect(
            measured.allSatisfy {
                ($0["name"] as? String) == "FusedNorm (floor)" && ($0["measuredMicroseconds"] as? Double ?? 0) > 0
            })
    }

    @Test(
        "bad input: a clear error and a non-zero exit, no file",
        arguments: [
            ["--rows", "0", "--cols", "4"], ["--rows", "4"], ["--rows", "4", "--cols", "4", "--bandwidth", "0"],
            ["--rows", "4", "--cols", "4", "--bandwidth", "100", "--gpu", "h100"],
            ["--rows", "4", "--cols", "4", "--gpu", "v100"],
            ["--rows", "4", "--cols", "4", "--op", "softmax"], ["--rows", "4", "--cols", "4", "--device", "tpu"],
            ["--rows", "4", "--cols", "4", "--json", "/nonexistent-folder/t.json"],
            ["--rows", "2^40", "--cols", "2^20"], ["--rows", "2^20", "--cols", "2^10", "--device", "cpu"],
        ])
    func badInput(_ arguments: [String]) throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let outcome = runFusedNorm(["traffic"] + arguments)
        #expect(outcome.status != 0)
        #expect(outcome.error.hasPrefix("error: "), "\(outcome.error)")
        #expect(try folder.contents() == [])
    }
}
