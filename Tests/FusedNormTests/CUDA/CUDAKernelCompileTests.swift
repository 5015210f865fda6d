import Testing

@testable import FusedNorm

/// Every kind of kernel plan compiles with NVRTC for several architectures. Needs NVRTC only, not a GPU
/// or driver: set FUSEDNORM_NVRTC to run it on a machine without CUDA (e.g. NVRTC from a Python wheel).
@Suite(
    "CUDA kernels compile",
    .enabled(if: CUDAEnvironment.shared.nvrtc != nil, "needs NVRTC (FUSEDNORM_NVRTC or a CUDA toolkit)"))
struct CUDAKernelCompileTests {
    static func view(_ dtype: DType, columns: Int, aligned: Bool) -> RowView {
        RowView(address: aligned ? 0x10_0000 : 0x10_0002, rowStride: aligned ? columns : columns + 1, dtype: dtype)
    }

    /// Forward and backward problems over sizes that reach each row storage, dtypes, variants and alignments,
    /// laid out for `gpu` (clusters only where it has them).
    static func plans(gpu: LaunchConfiguration.GPU) -> [(String, KernelPlan)] {
        var plans: [(String, KernelPlan)] = []
        // Many rows (more than the grid's teams) for staged layouts.
        let sizes = [
            (3, 100), (128, 4096), (4096, 64), (5120, 8), (16384, 4), (65537, 2), (262_144, 2), (1_048_576, 1),
            (4_194_304, 1),
            (256, 1 << 20), (4096, 1 << 16), (65536, 4096), (16384, 1 << 13),
        ]
        for (index, (n, rows)) in sizes.enumerated() {
            for dtype in DType.allCases {
                let aligned = index % 2 == 0 || n == 1_048_576  // 1M aligned: rows held partly in shared memory
                let other: DType = dtype == .float32 ? .bfloat16 : .float32
                for kind in [NormKind.rms, .layer] {
                    let forward = NormForwardProblem(
                        kind: kind, rows: rows, columns: n, x: view(dtype, columns: n, aligned: aligned),
                        residual: view(other, columns: n, aligned: true), weightRows: 1,
                        weight: view(dtype, columns: n, aligned: true),
                        bias: kind == .layer ? view(other, columns: n, aligned: true) : nil,
                        output: view(dtype, columns: n, aligned: true),
                        residualOutput: view(other, columns: n, aligned: true),
                        mean: kind == .layer ? 0x2000 : nil, rstd: 0x3000, epsilon: 1e-6, weightOffset: 1,
                        rounding: .twice)
                    plans.append(("forward \(kind) N=\(n) \(dtype)", CUDABackend.forwardPlan(for: forward, gpu: gpu)))
                    let backward = NormBackwardProblem(
                        kind: kind, rows: rows, columns: n, dy: view(other, columns: n, aligned: true),
                        x: view(dtype, columns: n, aligned: aligned), weightRows: 1,
                        weight: view(dtype, columns: n, aligned: true),
                        mean: nil, rstd: nil, residualGradient: view(dtype, columns: n, aligned: true),
                        dx: view(dtype, columns: n, aligned: true), dweight: view(dtype, columns: n, aligned: true),
                        dbias: kind == .layer ? view(other, columns: n, aligned: true) : nil, epsilon: 1e-5,
                        weightOffset: 0)
                    plans.append(
                        ("backward \(kind) N=\(n) \(dtype)", CUDABackend.backwardPlan(for: backward, gpu: gpu)))
                }
            }
        }
        return plans + variantPlans(gpu: gpu)
    }

    /// The variants the sweep above does not reach (it always has a residual, a weight, dweight and two
    /// roundings): no residual, no weight, no bias, one rounding, a weight offset, no residual gradient, dbias
    /// without dweight; over sizes that reach registers, shared memory, clusters and streaming.
    static func variantPlans(gpu: LaunchConfiguration.GPU) -> [(String, KernelPlan)] {
        var plans: [(String, KernelPlan)] = []
        for (index, (n, rows)) in [(3, 100), (4096, 64), (65537, 2), (1_048_576, 1), (16384, 1 << 13)].enumerated() {
            for dtype in DType.allCases {
                let aligned = index % 2 == 0 || n == 1_048_576
                let other: DType = dtype == .float32 ? .bfloat16 : .float32
                for kind in [NormKind.rms, .layer] {
                    for variant in 0..<2 {
                        let weight = variant == 0 || kind == .layer ? view(dtype, columns: n, aligned: true) : nil
                        let forward = NormForwardProblem(
                            kind: kind, rows: rows, columns: n, x: view(dtype, columns: n, aligned: aligned),
                            residual: nil,
                            weightRows: 1, weight: weight,
                            bias: kind == .layer && variant == 1 ? view(other, columns: n, aligned: true) : nil,
                            output: view(other, columns: n, aligned: true), residualOutput: nil, mean: nil, rstd: nil,
                            epsilon: 1e-6,
                            weightOffset: 0, rounding: .once)
                        plans.append(
                            (
                                "forward variant \(variant) \(kind) N=\(n) \(dtype)",
                                CUDABackend.forwardPlan(for: forward, gpu: gpu)
                            ))
                        let backward = NormBackwardProblem(
                            kind: kind, rows: rows, columns: n, dy: view(dtype, columns: n, aligned: true),
                            x: view(dtype, columns: n, aligned: aligned), weightRows: 1, weight: weight, mean: nil,
                            rstd: nil,
                            residualGradient: nil, dx: view(other, columns: n, aligned: true),
                            dweight: variant == 0 ? nil : weight,
                            dbias: kind == .layer ? view(other, columns: n, aligned: true) : nil,
                            epsilon: 1e-5, weightOffset: variant == 0 ? 1 : 0)
                        plans.append(
                            (
                                "backward variant \(variant) \(kind) N=\(n) \(dtype)",
                                CUDABackend.backwardPlan(for: backward, gpu: gpu)
                            ))
                    }
                }
            }
        }
        return plans
    }

    @Test("for sm_90 every plan; for sm_75 and sm_80 a sample", arguments: [90, 80, 75])
    func compile(_ architecture: Int) throws {
        let nvrtc = try #require(CUDAEnvironment.shared.nvrtc)
        var gpu = LaunchConfiguration.GPU.h200
        if architecture < 90 { gpu.maxClusterSize = 1 }
        if architecture < 80 { gpu.asyncCopies = false }
        let all = Self.plans(gpu: gpu)
        let plans = architecture == 90 ? all : all.enumerated().filter { $0.offset % 9 == 0 }.map(\.element)
        if architecture == 90 {
            #expect(Set(plans.map(\.1.configuration.rowStorage)) == [.registers, .streaming])
            #expect(Set(plans.map(\.1.configuration.clusterSize)).isSuperset(of: [1, 2, 16]))
            #expect(plans.contains { $0.0.hasPrefix("forward") && $0.1.configuration.stagedBytes > 0 })
            #expect(plans.contains { $0.0.hasPrefix("backward") && $0.1.configuration.stagedBytes > 0 })
            #expect(plans.contains { $0.1.configuration.parameterBytes > 0 })
        }
        let start = ContinuousClock.now
        defer {
            let seconds = (ContinuousClock.now - start) / .seconds(1)
            print(
                "NVRTC \(nvrtc.versionString): \(plans.count) kernels for sm_\(architecture) in \(seconds) s (\(Int(1000 * seconds / Double(plans.count))) ms each)"
            )
        }
        for (label, plan) in plans {
            let options =
                ["--gpu-architecture=sm_\(architecture)", "--std=c++17"] + plan.request.definitions.map { "-D" + $0 }
            do {
                let image = try nvrtc.compile(plan.request.source.program, options: options, cubin: true)
                #expect(!image.isEmpty, "\(label)")
            } catch {
                Issue.record("\(label) (\(plan.configuration)): \(error)")
            }
        }
    }
}
