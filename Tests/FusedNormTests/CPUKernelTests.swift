import FusedNorm
import FusedNormReference
import Foundation
import Testing

/// The CPU backend has two implementations of its row kernels (``CPUSettings/Kernels``): the C kernels
/// (AVX2 + FMA + F16C), the default where the CPU has them, which every other CPU test runs, and the
/// portable Swift kernels. These tests run every forward and backward case of the other suites on the
/// portable kernels, check that the setting picks what it says, and compare the two paths directly.
@Suite("CPU kernels: the portable path and the choice between the two")
struct CPUKernelTests {
    static let forwardCases = RMSNormForwardCases.shapes + RMSNormForwardCases.dtypeCombinations + RMSNormForwardCases.others
        + LayerNormForwardCases.shapes + LayerNormForwardCases.dtypeCombinations + LayerNormForwardCases.others
        + ResidualCases.dtypeCombinations + ResidualCases.mixed + ResidualCases.others + PerHeadCases.forward
    static let backwardCases = BackwardCases.rmsSweep + BackwardCases.rmsDTypes + BackwardCases.rmsOthers
        + BackwardCases.layerSweep + BackwardCases.layerDTypes + BackwardCases.layerOthers + PerHeadCases.backward

    @Test("forward cases of every suite on the portable kernels", arguments: forwardCases)
    func portableForward(_ c: ForwardCase) throws {
        try CPUSettings.$requestedKernels.withValue(.portable) { try checkForward(c, on: .cpu) }
    }

    @Test("backward cases of every suite on the portable kernels", arguments: backwardCases)
    func portableBackward(_ c: BackwardCase) throws {
        try CPUSettings.$requestedKernels.withValue(.portable) { try checkBackward(c, on: .cpu) }
    }

    @Test("forward cases of every suite on the vector kernels, asked for explicitly", .enabled(if: CPUSettings.vectorKernelsAvailable),
          arguments: forwardCases)
    func vectorForward(_ c: ForwardCase) throws {
        try CPUSettings.$requestedKernels.withValue(.vector) {
            #expect(CPUSettings.kernels == .vector)
            try checkForward(c, on: .cpu)
        }
    }

    @Test("backward cases of every suite on the vector kernels, asked for explicitly", .enabled(if: CPUSettings.vectorKernelsAvailable),
          arguments: backwardCases)
    func vectorBackward(_ c: BackwardCase) throws {
        try CPUSettings.$requestedKernels.withValue(.vector) {
            #expect(CPUSettings.kernels == .vector)
            try checkBackward(c, on: .cpu)
        }
    }

    @Test("The setting picks the kernels it names; vector needs AVX2, FMA and F16C, as /proc/cpuinfo lists them")
    func choice() throws {
        #expect(CPUSettings.$requestedKernels.withValue(.portable) { CPUSettings.kernels } == .portable)
        let vector = CPUSettings.$requestedKernels.withValue(.vector) { CPUSettings.kernels }
        #expect(vector == (CPUSettings.vectorKernelsAvailable ? .vector : .portable))
        #if arch(x86_64) && os(Linux)
        let info = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
        let flags = Set(info.split(separator: "\n").first { $0.hasPrefix("flags") }?.split(separator: " ").map(String.init) ?? [])
        let expected = ["avx2", "fma", "f16c"].allSatisfy(flags.contains)
        #expect(CPUSettings.vectorKernelsAvailable == expected, "flags say \(expected), the C library says \(CPUSettings.vectorKernelsAvailable)")
        #endif
    }

    /// Outputs of both paths for one problem; they differ only by the order of additions in the sums.
    struct PathCase: Sendable, CustomTestStringConvertible {
        var norm: Norm
        var columns: Int
        var dtype: DType
        var testDescription: String { "\(norm) N=\(columns) \(dtype)" }
    }

    static let pathCases = [Norm.rms, .layer].flatMap { norm in
        sweptColumns.flatMap { n in DType.allCases.map { PathCase(norm: norm, columns: n, dtype: $0) } }
    }

    @Test("Both paths agree with each other within the dtype's tolerance (y, s, rstd, dx, dweight)", arguments: pathCases)
    func pathsAgree(_ c: PathCase) throws {
        func outputs() throws -> [String: [Float]] {
            var rng = SplitMix64(label: c.testDescription)
            let rows = c.columns > 10_000 ? 2 : 5, n = c.columns, count = rows * n
            let x = try Tensor(rng.values(count, -1.5, 2.5), shape: [rows, n], dtype: c.dtype)
            let residual = try Tensor(rng.values(count), shape: [rows, n], dtype: c.dtype)
            let dy = try Tensor(rng.values(count, -1, 1), shape: [rows, n], dtype: c.dtype)
            let weight = try Tensor(rng.values(n, 0.5, 1.5), shape: [n], dtype: c.dtype)
            let bias = try Tensor(rng.values(n, -0.5, 0.5), shape: [n], dtype: c.dtype)
            switch c.norm {
            case .rms:
                let forward = try rmsNormForward(x, residual: residual, weight: weight, casting: .llama)
                let gradients = try rmsNormBackward(dy, input: forward.residual!, weight: weight, rstd: forward.rstd)
                return ["y": try forward.output.toArray(), "s": try forward.residual!.toArray(), "rstd": try forward.rstd.toArray(),
                        "dx": try gradients.input.toArray(), "dweight": try gradients.weight!.toArray()]
            case .layer:
                let forward = try layerNormForward(x, residual: residual, weight: weight, bias: bias)
                let gradients = try layerNormBackward(dy, input: forward.residual!, weight: weight, bias: bias)
                return ["y": try forward.output.toArray(), "s": try forward.residual!.toArray(), "rstd": try forward.rstd.toArray(),
                        "mean": try forward.mean!.toArray(), "dx": try gradients.input.toArray(),
                        "dweight": try gradients.weight!.toArray(), "dbias": try gradients.bias!.toArray()]
            }
        }
        let portable = try CPUSettings.$requestedKernels.withValue(.portable) { try outputs() }
        let vector = try CPUSettings.$requestedKernels.withValue(.vector) { try outputs() }
        #expect(portable.keys.sorted() == vector.keys.sorted())
        for (name, values) in portable {
            let other = try #require(vector[name])
            // s = round(x + residual) involves no sum: the two paths must give the same bits.
            if name == "s" {
                #expect(differingBits(values, other) == 0, "\(c): s differs between the paths")
                continue
            }
            // Twice the dtype's tolerance (each path is within it of the float64 reference; the llama
            // rounding of ŝ to the dtype may flip one ulp of it).
            let tolerance = 2 * (name == "rstd" || name == "mean" ? Reference.tolerance(.float32) : Reference.tolerance(c.dtype, casting: .llama))
            let error = Reference.relativeError(other, values.map(Double.init))
            #expect(error <= tolerance, "\(c): \(name) of the vector path differs from the portable path by \(error) > \(tolerance)")
        }
    }

    @Test("NaN and Inf in 16-bit outputs: the same bits on both paths where no NaN payload is chosen, NaN exactly where the reference has it",
          arguments: [DType.bfloat16, .float16], [5, 4096, 5120])
    func nonFiniteOutputs(dtype: DType, columns n: Int) throws {
        // RMSNorm of float32 rows into a 16-bit y. Row 1 holds ±Inf: rstd = 0, so y is 0 except NaN (Inf·0)
        // there. Row 3 holds NaNs whose payloads have low bits set (a bfloat16 rounding that forgot NaN would
        // carry them into the exponent and sign, leaving a number). The vector path rounds sixteen
        // bfloat16 values at a time, with a separate path for NaN, which these reach in some pairs only.
        var rng = SplitMix64(label: "non-finite \(dtype) \(n)")
        let rows = 4
        var x = rng.values(rows * n)
        let positions = Array(Set([0, n / 2, n - 1])).sorted()
        for p in positions {
            x[n + p] = p % 2 == 0 ? .infinity : -.infinity
            x[3 * n + p] = Float(bitPattern: (p % 2 == 0 ? 0x7FC0_FFFF : 0xFFA0_8001) as UInt32)
        }
        let input = try Tensor(x, shape: [rows, n])
        let weight = try Tensor(rng.values(n, 0.5, 1.5), shape: [n])
        func y() throws -> [Float] { try rmsNorm(input, weight: weight, outputDType: dtype).toArray() }
        let portable = try CPUSettings.$requestedKernels.withValue(.portable) { try y() }
        let vector = try CPUSettings.$requestedKernels.withValue(.vector) { try y() }
        // Row 1's bits depend on no sum (rstd is exactly 0), so both paths must agree on every one.
        let infRow = Array(vector[n..<(2 * n)])
        #expect(differingBits(Array(portable[n..<(2 * n)]), infRow) == 0, "\(dtype) N=\(n): the paths differ in row 1")
        #expect(infRow.indices.filter { infRow[$0].isNaN } == positions, "\(dtype) N=\(n): NaN where there was no Inf")
        #expect(infRow.enumerated().allSatisfy { positions.contains($0.offset) || $0.element == 0 })
        // A NaN row is NaN throughout, on both paths (a 16-bit rounding that forgot NaN would carry the payload into
        // the exponent or sign and leave a number). Which payload a NaN keeps is not specified: at the NaN inputs
        // x·r multiplies two NaNs (r is NaN too), and which operand's payload an FMA returns differs between CPU
        // vendors (AMD kept x's, an Intel Xeon r's, with the same binary).
        let nanRow = Array(vector[(3 * n)..<(4 * n)])
        #expect(nanRow.allSatisfy { $0.isNaN }, "\(dtype) N=\(n): a row with NaN should be NaN throughout")
        #expect(portable[(3 * n)..<(4 * n)].allSatisfy { $0.isNaN }, "\(dtype) N=\(n): a row with NaN should be NaN throughout")
        let reference = Reference.rmsNorm(x: x, residual: nil, weight: try weight.toArray(), rows: rows, columns: n, epsilon: 1e-6)
        for r in [0, 2] {
            let error = Reference.relativeError(Array(vector[(r * n)..<((r + 1) * n)]), Array(reference.output[(r * n)..<((r + 1) * n)]))
            #expect(error <= Reference.tolerance(dtype), "\(dtype) N=\(n): clean row \(r) relative error \(error)")
        }
    }
}
