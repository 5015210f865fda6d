import Foundation
import FusedNorm
import FusedNormReference
import Testing

/// The CPU backend has three implementations of its row kernels (``CPUSettings/Kernels``): the C kernels
/// built for AVX-512 and for AVX2 + FMA + F16C (the fastest the CPU has is the default, which every other
/// CPU test runs), and the portable Swift kernels. These tests run every forward and backward case of the
/// other suites on each of the others, check that the setting picks what it says, and compare the paths
/// directly: the two C builds bit for bit, C against Swift within rounding.
@Suite("CPU kernels: the portable path, the two C builds and the choice between them")
struct CPUKernelTests {
    static let forwardCases =
        RMSNormForwardCases.shapes + RMSNormForwardCases.dtypeCombinations + RMSNormForwardCases.others
        + LayerNormForwardCases.shapes + LayerNormForwardCases.dtypeCombinations + LayerNormForwardCases.others
        + ResidualCases.dtypeCombinations + ResidualCases.mixed + ResidualCases.others + PerHeadCases.forward
    static let backwardCases =
        BackwardCases.rmsSweep + BackwardCases.rmsDTypes + BackwardCases.rmsOthers
        + BackwardCases.layerSweep + BackwardCases.layerDTypes + BackwardCases.layerOthers + PerHeadCases.backward
    /// The C builds this CPU runs, other than the default (which the other suites run).
    static let otherCBuilds = CPUSettings.availableKernels.filter { $0 != .portable && $0 != CPUSettings.kernels }
    /// Every C build this CPU runs.
    static let cBuilds = CPUSettings.availableKernels.filter { $0 != .portable }

    @Test("forward cases of every suite on the portable kernels", arguments: forwardCases)
    func portableForward(_ c: ForwardCase) throws {
        try CPUSettings.$requestedKernels.withValue(.portable) { try checkForward(c, on: .cpu) }
    }

    @Test("backward cases of every suite on the portable kernels", arguments: backwardCases)
    func portableBackward(_ c: BackwardCase) throws {
        try CPUSettings.$requestedKernels.withValue(.portable) { try checkBackward(c, on: .cpu) }
    }

    @Test(
        "forward cases of every suite on the C builds other than the default, asked for explicitly",
        .enabled(if: !otherCBuilds.isEmpty), arguments: forwardCases, otherCBuilds)
    func otherBuildForward(_ c: ForwardCase, kernels: CPUSettings.Kernels) throws {
        try CPUSettings.$requestedKernels.withValue(kernels) {
            #expect(CPUSettings.kernels == kernels)
            try checkForward(c, on: .cpu)
        }
    }

    @Test(
        "backward cases of every suite on the C builds other than the default, asked for explicitly",
        .enabled(if: !otherCBuilds.isEmpty), arguments: backwardCases, otherCBuilds)
    func otherBuildBackward(_ c: BackwardCase, kernels: CPUSettings.Kernels) throws {
        try CPUSettings.$requestedKernels.withValue(kernels) {
            #expect(CPUSettings.kernels == kernels)
            try checkBackward(c, on: .cpu)
        }
    }

    @Test(
        "The setting picks the kernels it names where the CPU has them (as /proc/cpuinfo lists its flags), else the next fastest"
    )
    func choice() throws {
        #expect(CPUSettings.$requestedKernels.withValue(.portable) { CPUSettings.kernels } == .portable)
        #expect(CPUSettings.availableKernels.last == .portable)
        #expect(CPUSettings.availableKernels == CPUSettings.availableKernels.sorted())
        let avx2 = CPUSettings.availableKernels.contains(.avx2), avx512 = CPUSettings.availableKernels.contains(.avx512)
        #expect(!avx512 || avx2, "AVX-512 kernels need the AVX2 ones' instructions too")
        #expect(CPUSettings.$requestedKernels.withValue(.avx2) { CPUSettings.kernels } == (avx2 ? .avx2 : .portable))
        #expect(
            CPUSettings.$requestedKernels.withValue(.avx512) { CPUSettings.kernels }
                == (avx512 ? .avx512 : avx2 ? .avx2 : .portable))
        #if arch(x86_64) && os(Linux)
            let info = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
            let flags = Set(
                info.split(separator: "\n").first { $0.hasPrefix("flags") }?.split(separator: " ").map(String.init)
                    ?? [])
            let expectAVX2 = ["avx2", "fma", "f16c"].allSatisfy(flags.contains)
            let expectAVX512 =
                expectAVX2 && ["avx512f", "avx512vl", "avx512bw", "avx512dq", "avx512_bf16"].allSatisfy(flags.contains)
            #expect(avx2 == expectAVX2, "flags say \(expectAVX2), the C library says \(avx2)")
            #expect(avx512 == expectAVX512, "flags say \(expectAVX512), the C library says \(avx512)")
        #endif
    }

    @Test(
        "bfloat16 rounding in the kernels (s and y): subnormals, ties, NaN, Inf and overflow give BFloat16's bits, on every build",
        arguments: CPUSettings.availableKernels)
    func bfloat16Rounding(kernels: CPUSettings.Kernels) throws {
        // Values whose rounding a shortcut would get wrong: fp32 subnormals (which vcvtneps2bf16 flushes
        // to zero), ties to even either way, the largest values below and at the overflow to Inf, Inf,
        // NaN with low payload bits, signed zeros; at positions inside the vector loops and in a row's
        // head and tail, with ordinary values between them.
        let specials: [Float] = [
            Float(bitPattern: 0x0000_0001), Float(bitPattern: 0x8000_8000), Float(bitPattern: 0x0000_8001),
            Float(bitPattern: 0x007F_FFFF), Float(bitPattern: 0x8001_8000), .leastNormalMagnitude,
            Float(bitPattern: 0x3F80_8000), Float(bitPattern: 0x3F81_8000), Float(bitPattern: 0x3F80_8001),
            Float(bitPattern: 0x7F7F_7FFF), Float(bitPattern: 0x7F7F_8000), .greatestFiniteMagnitude, -.infinity,
            Float(bitPattern: 0x7FC0_0001), Float(bitPattern: 0xFF80_0001), -0.0, 0.0, -1.5,
        ]
        var rng = SplitMix64(label: "bfloat16 rounding")
        let n = 300
        var x = rng.values(n)
        let positions = specials.indices.map { $0 * (n - 1) / (specials.count - 1) }
        for (p, v) in zip(positions, specials) { x[p] = v }
        let zeros = try Tensor([Float](repeating: 0, count: n), shape: [1, n])
        let s = try CPUSettings.$requestedKernels.withValue(kernels) {
            try rmsNorm(try Tensor(x, shape: [1, n]), residual: zeros, residualDType: .bfloat16).residual.toArray()
        }
        let expected = x.map { BFloat16($0 + 0).floatValue }
        let wrong = x.indices.filter { s[$0].bitPattern != expected[$0].bitPattern }
        #expect(
            wrong.isEmpty,
            "\(kernels): s at \(wrong.prefix(5).map { "x[\($0)] = \(x[$0]) (0x\(String(x[$0].bitPattern, radix: 16))) -> 0x\(String(s[$0].bitPattern, radix: 16)), expected 0x\(String(expected[$0].bitPattern, radix: 16))" })"
        )

        // y = x·rstd with rstd exactly 1: 248 values of ±1 and 8 tiny ones, epsilon = 8/256 (mean(x²) +
        // epsilon = 1 up to 1e-11, so rstd rounds to 1). y's rounding goes through the kernels' other
        // bfloat16 paths (pairs rounded together).
        let tiny: [Float] = [
            Float(bitPattern: 0x0000_0001), Float(bitPattern: 0x8000_8000), Float(bitPattern: 0x0040_8000),
            Float(bitPattern: 0x8001_8001), .leastNormalMagnitude, Float(bitPattern: 0x3580_8000),
            Float(bitPattern: 0xB581_8000), Float(bitPattern: 0x3581_7FFF),
        ]
        var row = (0..<256).map { $0 % 3 == 0 ? Float(-1) : 1 }
        for (k, v) in tiny.enumerated() { row[[0, 1, 17, 18, 100, 127, 254, 255][k]] = v }
        let y = try CPUSettings.$requestedKernels.withValue(kernels) {
            try rmsNorm(try Tensor(row, shape: [1, 256]), epsilon: 8.0 / 256, outputDType: .bfloat16).toArray()
        }
        let expectedY = row.map { BFloat16($0).floatValue }
        let wrongY = row.indices.filter { y[$0].bitPattern != expectedY[$0].bitPattern }
        #expect(
            wrongY.isEmpty,
            "\(kernels): y at \(wrongY.prefix(5).map { "\($0): 0x\(String(y[$0].bitPattern, radix: 16)), expected 0x\(String(expectedY[$0].bitPattern, radix: 16))" })"
        )
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

    @Test(
        "The C builds give the same bits; C and Swift agree within the dtype's tolerance (y, s, rstd, dx, dweight)",
        arguments: pathCases)
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
                let forward = try rmsNormForward(x, residual: residual, weight: weight, style: .llama)
                let gradients = try rmsNormBackward(dy, input: forward.residual!, weight: weight, rstd: forward.rstd)
                return [
                    "y": try forward.output.toArray(), "s": try forward.residual!.toArray(),
                    "rstd": try forward.rstd.toArray(),
                    "dx": try gradients.input.toArray(), "dweight": try gradients.weight!.toArray(),
                ]
            case .layer:
                let forward = try layerNormForward(x, residual: residual, weight: weight, bias: bias)
                let gradients = try layerNormBackward(dy, input: forward.residual!, weight: weight, bias: bias)
                return [
                    "y": try forward.output.toArray(), "s": try forward.residual!.toArray(),
                    "rstd": try forward.rstd.toArray(),
                    "mean": try forward.mean!.toArray(), "dx": try gradients.input.toArray(),
                    "dweight": try gradients.weight!.toArray(), "dbias": try gradients.bias!.toArray(),
                ]
            }
        }
        let portable = try CPUSettings.$requestedKernels.withValue(.portable) { try outputs() }
        let builds = try Self.cBuilds.map { kernels in
            try CPUSettings.$requestedKernels.withValue(kernels) { try outputs() }
        }
        // The C builds compute the same operations: the same bits.
        for (kernels, outputs) in zip(Self.cBuilds, builds).dropFirst() {
            for (name, values) in builds[0] {
                #expect(
                    differingBits(values, outputs[name] ?? []) == 0,
                    "\(c): \(name) differs between \(Self.cBuilds[0]) and \(kernels)")
            }
        }
        guard let vector = builds.first else { return }
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
            let tolerance =
                2
                * (name == "rstd" || name == "mean"
                    ? Reference.tolerance(.float32) : Reference.tolerance(c.dtype, rounding: .twice))
            let error = Reference.relativeError(other, values.map(Double.init))
            #expect(
                error <= tolerance,
                "\(c): \(name) of the vector path differs from the portable path by \(error) > \(tolerance)")
        }
    }

    @Test(
        "The C builds give the same bits for the statistics of x itself (no residual): y, mean, rstd",
        arguments: pathCases)
    func buildsAgreeOnStatistics(_ c: PathCase) throws {
        func outputs() throws -> [String: [Float]] {
            var rng = SplitMix64(label: "statistics \(c.testDescription)")
            let rows = c.columns > 10_000 ? 2 : 5, n = c.columns
            // Centered away from 0 for LayerNorm, so that the statistics' shifted sums are taken too.
            let x = try Tensor(rng.values(rows * n, -1.5, 2.5), shape: [rows, n], dtype: c.dtype)
            let weight = try Tensor(rng.values(n, 0.5, 1.5), shape: [n], dtype: c.dtype)
            let bias = try Tensor(rng.values(n, -0.5, 0.5), shape: [n], dtype: c.dtype)
            switch c.norm {
            case .rms:
                let forward = try rmsNormForward(x, weight: weight)
                return ["y": try forward.output.toArray(), "rstd": try forward.rstd.toArray()]
            case .layer:
                let forward = try layerNormForward(x, weight: weight, bias: bias)
                return [
                    "y": try forward.output.toArray(), "mean": try forward.mean!.toArray(),
                    "rstd": try forward.rstd.toArray(),
                ]
            }
        }
        let builds = try Self.cBuilds.map { kernels in
            try CPUSettings.$requestedKernels.withValue(kernels) { try outputs() }
        }
        for (kernels, outputs) in zip(Self.cBuilds, builds).dropFirst() {
            for (name, values) in builds[0] {
                #expect(
                    differingBits(values, outputs[name] ?? []) == 0,
                    "\(c): \(name) differs between \(Self.cBuilds[0]) and \(kernels)")
            }
        }
    }

    @Test(
        "NaN and Inf in 16-bit outputs: the same bits on each C build as on the portable path where no NaN payload is chosen, NaN exactly where the reference has it",
        arguments: [DType.bfloat16, .float16], [5, 4096, 5120])
    func nonFiniteOutputs(dtype: DType, columns n: Int) throws {
        for kernels in Self.cBuilds { try nonFiniteOutputs(dtype: dtype, columns: n, kernels: kernels) }
    }

    func nonFiniteOutputs(dtype: DType, columns n: Int, kernels: CPUSettings.Kernels) throws {
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
        let vector = try CPUSettings.$requestedKernels.withValue(kernels) { try y() }
        // Row 1's bits depend on no sum (rstd is exactly 0), so both paths must agree on every one.
        let infRow = Array(vector[n..<(2 * n)])
        #expect(
            differingBits(Array(portable[n..<(2 * n)]), infRow) == 0,
            "\(kernels) \(dtype) N=\(n): the paths differ in row 1")
        #expect(
            infRow.indices.filter { infRow[$0].isNaN } == positions,
            "\(kernels) \(dtype) N=\(n): NaN where there was no Inf")
        #expect(infRow.enumerated().allSatisfy { positions.contains($0.offset) || $0.element == 0 })
        // A NaN row is NaN throughout, on both paths (a 16-bit rounding that forgot NaN would carry the payload into
        // the exponent or sign and leave a number). Which payload a NaN keeps is not specified: at the NaN inputs
        // x·r multiplies two NaNs (r is NaN too), and which operand's payload an FMA returns differs between CPU
        // vendors (AMD kept x's, an Intel Xeon r's, with the same binary).
        let nanRow = Array(vector[(3 * n)..<(4 * n)])
        #expect(nanRow.allSatisfy { $0.isNaN }, "\(kernels) \(dtype) N=\(n): a row with NaN should be NaN throughout")
        #expect(
            portable[(3 * n)..<(4 * n)].allSatisfy { $0.isNaN },
            "\(kernels) \(dtype) N=\(n): a row with NaN should be NaN throughout")
        let reference = Reference.rmsNorm(
            x: x, residual: nil, weight: try weight.toArray(), rows: rows, columns: n, epsilon: 1e-6)
        for r in [0, 2] {
            let error = Reference.relativeError(
                Array(vector[(r * n)..<((r + 1) * n)]), Array(reference.output[(r * n)..<((r + 1) * n)]))
            #expect(
                error <= Reference.tolerance(dtype),
                "\(kernels) \(dtype) N=\(n): clean row \(r) relative error \(error)")
        }
    }
}
