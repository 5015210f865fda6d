import CFusedNormCPU
import Foundation
import Synchronization

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

    /// Which implementation of the row kernels the CPU backend runs.
    public enum Kernels: String, Sendable, CaseIterable {
        /// The C row kernels of `CFusedNormCPU`, compiled for AVX2 + FMA + F16C: 8-lane arithmetic, 16-bit
        /// conversions in registers, non-temporal stores of y, s and dx. Used only where the CPU has them.
        case vector
        /// The Swift kernels (SIMD16<Float>, Swift's baseline target: SSE2 on x86_64), which run everywhere.
        case portable
    }

    /// Whether this CPU can run ``Kernels/vector`` (AVX2, FMA and F16C).
    public static var vectorKernelsAvailable: Bool { cfn_row_kernels_available() != 0 }

    /// The kernels asked for in the current task: ``Kernels/vector`` unless the environment variable
    /// `FUSEDNORM_CPU_KERNELS` is `portable`. Override it for a scope (tests compare both) with
    /// `CPUSettings.$requestedKernels.withValue(.portable) { ... }`: a task-local value, so that other
    /// tasks running at the same time keep theirs.
    @TaskLocal public static var requestedKernels: Kernels =
        ProcessInfo.processInfo.environment["FUSEDNORM_CPU_KERNELS"] == Kernels.portable.rawValue ? .portable : .vector

    /// The kernels an operation started in the current task runs: ``requestedKernels``, unless that is
    /// ``Kernels/vector`` and this CPU lacks AVX2/FMA/F16C (then ``Kernels/portable``). Results of the two
    /// agree within rounding (the order of additions inside each block's sums differs), each of them is
    /// bit-identical whatever ``threadCount`` is.
    public static var kernels: Kernels {
        requestedKernels == .vector && vectorKernelsAvailable ? .vector : .portable
    }

    /// The vector width the CPU kernels compute with, for `fusednorm info`.
    public static var simdDescription: String {
        #if arch(x86_64)
        kernels == .vector
            ? "AVX2 + FMA + F16C row kernels (C, picked at run time): 8 float lanes per 256-bit register, float16 and bfloat16 converted in registers, outputs stored non-temporally"
            : "SIMD16<Float>: 16 lanes as 4 × 128-bit SSE2 registers (Swift's baseline x86_64 target); float16 and bfloat16 converted by the C converters (AVX2/F16C where present)"
        #elseif arch(arm64)
        "SIMD16<Float>: 16 lanes as 4 × 128-bit NEON registers; float16 and bfloat16 converted in registers with integer lane operations"
        #else
        "SIMD16<Float>: 16 lanes, lowered to the target's vector registers; float16 and bfloat16 converted in registers with integer lane operations"
        #endif
    }
}
