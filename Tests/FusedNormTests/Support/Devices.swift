import FusedNorm
import Testing

/// The devices the property tests run on: the CPU always, and the first GPU when the CUDA backend is usable.
///
/// Every property test has a CPU variant and a CUDA variant carrying ``Trait/requiresCUDA``: on a machine
/// without a usable GPU the CUDA variant is reported as skipped (with the reason), never as passed.
enum TestDevices {
    /// Why the CUDA backend cannot be used here, or nil when it can (probed once).
    static let cudaProblem: String? = CUDA.status.problem

    static var cudaAvailable: Bool { cudaProblem == nil }

    /// `.cpu`, plus `.cuda(0)` when a GPU is usable.
    static var all: [Device] { [.cpu] + (cudaAvailable ? [.cuda(0)] : []) }
}

extension Trait where Self == ConditionTrait {
    /// Runs the test only where `CUDA.status.problem == nil`; elsewhere it shows as skipped, with the reason.
    static var requiresCUDA: Self {
        .enabled(
            if: TestDevices.cudaAvailable,
            Comment(
                rawValue:
                    "GPU variant: needs a usable CUDA device (CUDA.status.problem: \(TestDevices.cudaProblem ?? "none"))"
            ))
    }

    /// Runs the test only where no GPU is usable (for the behaviour of a missing device).
    static var requiresNoCUDA: Self {
        .enabled(if: !TestDevices.cudaAvailable, "checks the behaviour without a usable GPU; this machine has one")
    }
}
