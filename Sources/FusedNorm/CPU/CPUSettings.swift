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
}
