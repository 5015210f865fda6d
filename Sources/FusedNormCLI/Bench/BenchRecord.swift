#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// One measurement of `fusednorm bench`, as a table row and as an object in the `--json` file.
struct BenchRecord: Codable, Equatable {
    var op: String
    var dtype: String
    var device: String
    /// Rows of N normalized (all heads together).
    var rows: Int
    var cols: Int
    /// x is (rows / heads, heads, N) with a (heads, N) weight when above 1.
    var heads: Int
    /// x, the residual and dy are every `rowStep`-th row of a larger tensor when above 1.
    var rowStep: Int
    /// The median over the timed runs.
    var medianSeconds: Double
    /// ``medianSeconds`` in microseconds.
    var microseconds: Double
    /// Bytes the operation must move: each input read once, each output written once.
    var bytes: Int
    /// ``bytes`` / ``medianSeconds``, in 10⁹ bytes per second.
    var gbps: Double
    /// The copy bandwidth (bytes read + written) of the faster of two copies (``copyKind``): on the CPU the median
    /// of its runs in alternation with this measurement's runs, on a GPU its measurement just before this
    /// operation and dtype.
    var copyGbps: Double
    /// Which copy ``copyGbps`` is, the faster of the two measured: `memcpy` or `streaming` (non-temporal stores)
    /// on the CPU, `cuMemcpyDtoD` or `copy_kernel` (FusedNorm's 16-byte-vector kernel) on CUDA.
    var copyKind: String
    /// The copy bandwidth of the device's library copy (`memcpy` on the CPU, `cuMemcpyDtoD` on CUDA), as ``copyGbps``.
    var memcpyGbps: Double
    /// The copy bandwidth of FusedNorm's own copy (non-temporal stores on the CPU, `copy_kernel` on CUDA), as ``copyGbps``.
    var streamingCopyGbps: Double
    /// On a GPU ``gbps`` / ``copyGbps``; on the CPU the median over the runs of each run's GB/s over the
    /// GB/s of the copies just before and after it (close to ``gbps`` / ``copyGbps``).
    var fractionOfCopy: Double
    /// How many timed runs the median is over.
    var repeats: Int
    /// Host time to queue one run, when the timer measures it apart from device time (CUDA events).
    var hostMicroseconds: Double?
    /// The CPU row kernels the CPU backend ran (``FusedNorm/CPUSettings/kernels``), whatever the device.
    var cpuKernels: String
    /// The `FUSEDNORM_*` environment variables set during the measurement (empty when none).
    var environment: [String: String]

    enum CodingKeys: String, CodingKey {
        case op, dtype, device, rows, cols, heads
        case rowStep = "row_step"
        case medianSeconds = "median_seconds"
        case microseconds, bytes, gbps
        case copyKind = "copy_kind", memcpyGbps = "memcpy_gbps", streamingCopyGbps = "streaming_copy_gbps"
        case copyGbps = "copy_gbps"
        case fractionOfCopy = "fraction_of_copy"
        case repeats
        case hostMicroseconds = "host_microseconds"
        case cpuKernels = "cpu_kernels"
        case environment
    }

    /// The records as a JSON array (keys sorted, one object per line group).
    static func json(_ records: [BenchRecord]) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return Array(try encoder.encode(records)) + [UInt8(ascii: "\n")]
    }
}
