/// Where a tensor's memory lives and where operations on it run.
public enum Device: Sendable, Hashable, CustomStringConvertible {
    /// The host processor: every core, SIMD across each row.
    case cpu
    /// An NVIDIA GPU, by its CUDA device index.
    case cuda(Int)

    /// The GPU when one is usable, else the CPU.
    public static var best: Device {
        CUDABackend.isUsable ? .cuda(0) : .cpu
    }

    /// Parses `cpu`, `cuda`, `cuda:N`, or `auto` (``best``).
    public init?(name: String) {
        let lowered = name.lowercased()
        switch lowered {
        case "cpu": self = .cpu
        case "cuda", "gpu": self = .cuda(0)
        case "auto": self = .best
        default:
            guard lowered.hasPrefix("cuda:"), let index = Int(lowered.dropFirst(5)), index >= 0 else { return nil }
            self = .cuda(index)
        }
    }

    public var description: String {
        switch self {
        case .cpu: "cpu"
        case .cuda(let index): "cuda:\(index)"
        }
    }
}
