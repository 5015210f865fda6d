import Foundation
import Testing

@testable import FusedNormCLI

/// `fusednorm bench` reports every kernel against the faster of its two copies, and both copies in the JSON.
struct BenchYardstickTests {
    @Test
    func benchJSONNamesTheFasterCopyAndGivesBoth() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let outcome = runFusedNorm([
            "bench", "--device", "cpu", "--ops", "rmsnorm,layernorm_backward", "--dtypes", "float32,bfloat16", "--cols",
            "64",
            "--elements", "65536", "--repeats", "3", "--json", folder.file("bench.json"),
        ])
        #expect(outcome.status == 0, "\(outcome.error)")
        let data = try Data(contentsOf: URL(fileURLWithPath: folder.file("bench.json")))
        let records = try #require(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        #expect(records.count == 4)
        for record in records {
            let memcpy = try #require(record["memcpy_gbps"] as? Double)
            let streaming = try #require(record["streaming_copy_gbps"] as? Double)
            let copy = try #require(record["copy_gbps"] as? Double)
            let kind = try #require(record["copy_kind"] as? String)
            #expect(memcpy > 0 && streaming > 0)
            #expect(copy == max(memcpy, streaming))
            #expect(
                kind == (memcpy >= streaming ? "memcpy" : "streaming") || kind.hasPrefix("memcpy (no AVX2"), "\(record)"
            )
        }
        #expect(outcome.output.contains("copy GB/s"))
    }
}
