import Foundation
import FusedNorm
import Testing

@testable import FusedNormCLI

/// Every kind of bad input through the command layer: a non-zero exit, one `error:` line on standard
/// error, and no output file (or temporary file) left behind.
@Suite
struct BadInputLeavesNoOutputTests {
    /// A bad invocation: the files it needs in the input folder, and its arguments, where `IN/` and
    /// `OUT/` stand for the input and output folders.
    struct BadInvocation: CustomTestStringConvertible, Sendable {
        var name: String
        var arguments: [String]
        var files: [String: [UInt8]] = [:]

        var testDescription: String { name }
    }

    static let x = try! NPYFile.encode(NPYArray(shape: [3, 4], values: testValues(12)))
    static let weight = try! NPYFile.encode(NPYArray(shape: [4], values: testValues(4, seed: 1), elementType: .float32))
    static let goodFiles = ["x.npy": x, "w.npy": weight, "dy.npy": x, "b.npy": weight]

    static func rmsnorm(_ extra: [String], files: [String: [UInt8]] = [:], name: String) -> BadInvocation {
        BadInvocation(
            name: name,
            arguments: [
                "run", "rmsnorm", "--x", "IN/x.npy", "--weight", "IN/w.npy", "--out", "OUT/y.npy", "--rstd",
                "OUT/rstd.npy",
            ] + extra,
            files: goodFiles.merging(files) { _, new in new })
    }

    static func rmsnormOf(_ file: [UInt8], name: String) -> BadInvocation {
        rmsnorm([], files: ["x.npy": file], name: name)
    }

    static let invocations: [BadInvocation] = {
        let validHeader = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }"
        let data = float32Bytes((0..<12).map { Float($0) + 0.5 })
        let complete = handmadeNPY(header: validHeader, data: data)
        return [
            rmsnorm(
                [], files: ["w.npy": try! NPYFile.encode(NPYArray(shape: [5], values: testValues(5)))],
                name: "weight of the wrong length"),
            rmsnorm(
                [], files: ["w.npy": try! NPYFile.encode(NPYArray(shape: [2, 4], values: testValues(8)))],
                name: "weight of the wrong rank"),
            rmsnorm(
                ["--residual", "IN/r.npy", "--residual-out", "OUT/s.npy"],
                files: ["r.npy": try! NPYFile.encode(NPYArray(shape: [4, 3], values: testValues(12)))],
                name: "residual of the wrong shape"),
            rmsnormOf(try! NPYFile.encode(NPYArray(shape: [], values: [1])), name: "rank-0 x"),
            rmsnormOf(try! NPYFile.encode(NPYArray(shape: [3, 0], values: [])), name: "rows of length 0"),
            rmsnorm(["--epsilon", "0"], name: "epsilon 0"),
            rmsnorm(["--epsilon=-1e-6"], name: "negative epsilon"),
            rmsnorm(["--epsilon", "nan"], name: "epsilon nan"),
            rmsnorm(["--epsilon", "inf"], name: "epsilon inf"),
            BadInvocation(
                name: "missing file", arguments: ["run", "rmsnorm", "--x", "IN/absent.npy", "--out", "OUT/y.npy"]),
            rmsnormOf(Array(complete.prefix(9)), name: "truncated preamble"),
            rmsnormOf(Array(complete.prefix(40)), name: "truncated header"),
            rmsnormOf(Array(complete.dropLast(5)), name: "truncated data"),
            rmsnormOf(Array("x,y\n1,2\n".utf8), name: "not .npy (bad magic)"),
            rmsnormOf([], name: "empty file"),
            rmsnormOf(handmadeNPY(header: validHeader, data: data, major: 4), name: "unknown format version"),
            rmsnormOf(
                handmadeNPY(header: validHeader.replacingOccurrences(of: "<f4", with: ">f4"), data: data),
                name: "big-endian"),
            rmsnormOf(
                handmadeNPY(header: validHeader.replacingOccurrences(of: "False", with: "True"), data: data),
                name: "Fortran order"),
            rmsnormOf(
                handmadeNPY(header: validHeader.replacingOccurrences(of: "<f4", with: "<i4"), data: data),
                name: "integer dtype"),
            rmsnormOf(
                handmadeNPY(header: validHeader.replacingOccurrences(of: "'<f4'", with: "'|O'"), data: data),
                name: "object dtype"),
            rmsnormOf(handmadeNPY(header: "{'descr': '<f4', 'shape': (3, 4)", data: data), name: "malformed header"),
            rmsnorm(["--dtype", "float8"], name: "unknown dtype"),
            rmsnorm(["--style", "mistral"], name: "unknown style"),
            rmsnorm(["--casting", "llama"], name: "the old --casting flag"),
            rmsnorm(["--no-such-flag"], name: "unknown flag"),
            rmsnorm(["--device", "tpu"], name: "unknown device"),
            rmsnorm(["--residual-out", "OUT/s.npy"], name: "--residual-out without --residual"),
            rmsnorm(["--rstd", "OUT/y.npy"], name: "one file for two outputs"),
            rmsnorm(
                ["--residual", "IN/x.npy", "--residual-out", "IN/missing-folder/s.npy"],
                name: "second output unwritable"),
            BadInvocation(
                name: "--dweight without --weight",
                arguments: [
                    "run", "rmsnorm-backward", "--x", "IN/x.npy", "--dy", "IN/dy.npy", "--dx", "OUT/dx.npy",
                    "--dweight", "OUT/dw.npy",
                ],
                files: goodFiles),
            BadInvocation(
                name: "layernorm-backward with a style that has a weight offset",
                arguments: [
                    "run", "layernorm-backward", "--x", "IN/x.npy", "--dy", "IN/dy.npy", "--weight", "IN/w.npy",
                    "--style", "gemma", "--dx", "OUT/dx.npy", "--dweight", "OUT/dw.npy", "--dbias", "OUT/db.npy",
                ],
                files: goodFiles),
            BadInvocation(
                name: "layernorm-backward with a dy of the wrong shape",
                arguments: ["run", "layernorm-backward", "--x", "IN/x.npy", "--dy", "IN/w.npy", "--dx", "OUT/dx.npy"],
                files: goodFiles),
            BadInvocation(
                name: "layernorm with a bias of the wrong shape",
                arguments: [
                    "run", "layernorm", "--x", "IN/x.npy", "--bias", "IN/b.npy", "--out", "OUT/y.npy", "--mean",
                    "OUT/m.npy",
                ],
                files: goodFiles.merging(["b.npy": try! NPYFile.encode(NPYArray(shape: [3], values: [1, 2, 3]))]) {
                    _, new in new
                }),
        ]
    }()

    @Test(arguments: invocations)
    func failsCleanly(_ invocation: BadInvocation) throws {
        let inputs = try TemporaryFolder(), outputs = try TemporaryFolder()
        defer { inputs.remove(); outputs.remove() }
        for (name, bytes) in invocation.files { try inputs.write(name, bytes: bytes) }
        let inputNames = try inputs.contents()
        let arguments = invocation.arguments.map {
            $0.replacingOccurrences(of: "IN/", with: inputs.path + "/").replacingOccurrences(
                of: "OUT/", with: outputs.path + "/")
        }

        let outcome = runFusedNorm(arguments)

        #expect(outcome.status != 0)
        #expect(outcome.error.hasPrefix("error: "), "stderr: \(outcome.error)")
        #expect(outcome.error.filter { $0 == "\n" }.count == 1, "stderr must be one line: \(outcome.error)")
        #expect(try outputs.contents() == [], "left behind in the output folder")
        #expect(try inputs.contents() == inputNames, "left behind in the input folder")
    }

    @Test(.enabled(if: CUDA.status.problem != nil, "a GPU is usable here"))
    func aMissingGPUIsExplained() throws {
        let inputs = try TemporaryFolder()
        defer { inputs.remove() }
        let x = try inputs.write("x.npy", NPYArray(shape: [2, 4], values: testValues(8)))
        let outcome = runFusedNorm(["run", "rmsnorm", "--x", x, "--device", "cuda", "--out", inputs.file("y.npy")])
        #expect(outcome.status != 0)
        #expect(outcome.error.hasPrefix("error: device cuda:0 is not usable: "))
        #expect(outcome.error.contains(CUDA.status.problem ?? "?"))
        #expect(try inputs.contents() == ["x.npy"])
    }

    @Test
    func checkOnAMissingGPUFails() {
        guard CUDA.status.problem != nil else { return }
        let outcome = runFusedNorm(["check", "--device", "cuda", "--ops", "rmsnorm", "--cols", "3"])
        #expect(outcome.status != 0)
        #expect(outcome.error.hasPrefix("error: device cuda:0 is not usable"))
    }
}
