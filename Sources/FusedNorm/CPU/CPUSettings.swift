import CFusedNormCPU
import Synchronization

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Settings of the CPU backend.
public enum CPUSettings {
    private static let threads = Mutex(ProcessInfo.processInfo.activeProcessorCount)

    /// Cores the operating system lets this process use.
    public static var coreCount: Int { ProcessInfo.processInfo.activeProcessorCount }

    /// Threads the CPU backend splits rows over; default: ``coreCount``. Results, dweight included,
    /// are bit-identical whatever the value.
    /// - Parameter newValue: >= 1.
    public static var threadCount: Int {
        get { threads.withLock { $0 } }
        set { threads.withLock { $0 = max(1, newValue) } }
    }

    /// Bytes of working memory the CPU backend keeps from one call to the next: the backward pass's
    /// dweight and dbias partial sums, as large as the largest call has needed (at most 2 × 64 MiB), so
    /// that the next call finds its pages mapped (see ``clearCache()``).
    public static var cachedBytes: Int { ReusableMemory.backwardPartials.byteCount }

    /// Frees the working memory the CPU backend keeps between calls (``cachedBytes``); the next backward
    /// pass allocates it again.
    public static func clearCache() { ReusableMemory.backwardPartials.clear() }

    /// Which implementation of the row kernels the CPU backend runs.
    public enum Kernels: String, Sendable, CaseIterable, Comparable {
        /// The C row kernels of `CFusedNormCPU` compiled with AVX-512 (F, VL, BW, DQ, BF16), mostly on 256-bit
        /// vectors: the ``avx2`` kernels' source with 32 vector registers and one-instruction bfloat16
        /// rounding, and 512-bit loops where streamed rows gain from them (LayerNorm forward's second pass of
        /// float32 and bfloat16 rows, the bfloat16 backward's second pass), for the same results bit for bit.
        /// Zen 4 and later, Intel Cooper Lake, Sapphire Rapids and later.
        case avx512
        /// The C row kernels of `CFusedNormCPU`, compiled for AVX2 + FMA + F16C: 8-lane arithmetic, 16-bit
        /// conversions in registers, non-temporal stores of y, s and dx.
        case avx2
        /// The Swift kernels (SIMD16<Float>, Swift's baseline target: SSE2 on x86_64), which run everywhere.
        case portable

        /// Faster kernels order first: `.avx512 < .avx2 < .portable`.
        public static func < (lhs: Kernels, rhs: Kernels) -> Bool {
            allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
        }

        /// The instruction set code of the C kernels (`CFN_KERNELS_*`); nil for the Swift kernels.
        var rowKernelCode: Int32? {
            switch self {
            case .avx512: Int32(CFN_KERNELS_AVX512)
            case .avx2: Int32(CFN_KERNELS_AVX2)
            case .portable: nil
            }
        }
    }

    /// The kernels this CPU can run, fastest first; ``Kernels/portable`` always.
    public static let availableKernels: [Kernels] = {
        let best = Int(cfn_row_kernels())
        return Kernels.allCases.filter { $0.rowKernelCode.map { Int($0) <= best } ?? true }
    }()

    /// The kernels asked for in the current task: the fastest (``Kernels/avx512``) unless the environment
    /// variable `FUSEDNORM_CPU_KERNELS` (``EnvironmentVariable/cpuKernels``) names others (`avx512`, `avx2`,
    /// `portable`; any other value makes every CPU operation throw
    /// ``FusedNormError/invalidEnvironmentVariable(name:value:reason:)``).
    /// Override it for a scope (tests compare them) with `CPUSettings.$requestedKernels.withValue(.portable)
    /// { ... }`: a task-local value, so that other tasks running at the same time keep theirs.
    @TaskLocal public static var requestedKernels: Kernels =
        (try? EnvironmentVariable.cpuKernels.value(in: EnvironmentVariable.process)).flatMap(Kernels.init(rawValue:))
        ?? .avx512

    /// The kernels an operation started in the current task runs: the fastest of ``availableKernels`` that
    /// is not faster than ``requestedKernels``. The C kernels' two builds give the same bits; they and the
    /// Swift kernels agree within rounding (the order of additions differs, and the statistics' blocks). Each
    /// is bit-identical whatever ``threadCount`` is.
    public static var kernels: Kernels {
        let requested = requestedKernels
        return availableKernels.first { $0 >= requested } ?? .portable
    }

    /// Floats per hardware vector register that ``kernels`` compute with: 8 for the C builds (256-bit
    /// registers; the AVX-512 build too, but for its few 512-bit loops), 4 for the Swift kernels on SSE2 or
    /// NEON (SIMD16<Float> lowered to four 128-bit registers).
    public static var vectorLanes: Int {
        kernels == .portable ? 4 : 8
    }

    /// The vector width the CPU kernels compute with, for `fusednorm info`.
    public static var simdDescription: String {
        #if arch(x86_64)
            switch kernels {
            case .avx512:
                "AVX-512 (VL, BW, DQ, BF16) row kernels (C, picked at run time): 8 float lanes per 256-bit register (16 per 512-bit register in the loops that write LayerNorm forward's float32 and bfloat16 y and the bfloat16 backward's dx), 32 registers, float16 and bfloat16 converted in registers, outputs stored non-temporally"
            case .avx2:
                "AVX2 + FMA + F16C row kernels (C, picked at run time): 8 float lanes per 256-bit register, float16 and bfloat16 converted in registers, outputs stored non-temporally"
            case .portable:
                "SIMD16<Float>: 16 lanes as 4 × 128-bit SSE2 registers (Swift's baseline x86_64 target); float16 and bfloat16 converted by the C converters (AVX2/F16C where present)"
            }
        #elseif arch(arm64)
            "SIMD16<Float>: 16 lanes as 4 × 128-bit NEON registers; float16 and bfloat16 converted in registers with integer lane operations"
        #else
            "SIMD16<Float>: 16 lanes, lowered to the target's vector registers; float16 and bfloat16 converted in registers with integer lane operations"
        #endif
    }
}
