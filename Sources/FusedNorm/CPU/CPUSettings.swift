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

    /// The vector width the CPU kernels compute with, for `fusednorm info`.
    public static var simdDescription: String {
        #if arch(x86_64)
        "SIMD16<Float>: 16 lanes as 4 × 128-bit SSE2 registers (Swift's baseline x86_64 target); float16 and bfloat16 converted in registers with integer lane operations (no F16C needed)"
        #elseif arch(arm64)
        "SIMD16<Float>: 16 lanes as 4 × 128-bit NEON registers; float16 and bfloat16 converted in registers with integer lane operations"
        #else
        "SIMD16<Float>: 16 lanes, lowered to the target's vector registers; float16 and bfloat16 converted in registers with integer lane operations"
        #endif
    }
}
