/// How a normalization kernel is laid over the GPU. Pure data, chosen by ``ForwardPlan`` and ``BackwardPlan``
/// (rules as tables; the measurements behind them in docs/notes/launch-plans.md) and turned into `-D`
/// definitions (compile-time shape) and a grid (run-time), apart from the kernels.
///
/// A row of N elements is split into vectors of ``vectorWidth`` elements. A *team* works on one row at a
/// time: ``threadsPerRow`` threads of a CTA (a sub-warp group when several rows share a CTA), times
/// ``clusterSize`` CTAs of a thread-block cluster (sm_90) that split the row's columns in contiguous parts
/// and add their sums through distributed shared memory. Each thread owns the same columns in every row:
/// ``vectorsPerThread`` vectors, consecutive threads on consecutive vectors (16-byte accesses, coalesced).
/// - ``RowStorage/registers``: the thread's vectors stay in registers as stored (bf16 words: half the
///   registers of fp32) between the row's statistics and its output: each tensor is read once.
/// - ``RowStorage/streaming``: rows too long for the team's registers are read again (from L2 when the
///   rows in flight fit there): forward, in ``segments`` passes of ``vectorsPerThread`` vectors per thread
///   and CTA; backward, one CTA per row.
///
/// Grids: forward rows of one CTA get a CTA per row group (the hardware overlaps CTAs ending and starting).
/// Clusters, LayerNorm rows of large CTAs and the backward pass are persistent: as many teams as are resident
/// at once (sized from the SM count and the layout's registers and shared memory, never from the row count),
/// each looping over its rows with the next row's loads issued early (into registers, or *staged*: copied into
/// shared memory by `cp.async` while the current one is reduced); the backward pass gives each team a fixed,
/// contiguous share of one weight row's rows, so that its dweight partial sums come in a fixed order.
struct LaunchConfiguration: Hashable, Sendable, CustomStringConvertible {
    /// Where a row is kept between its reduction and its use (the kernels' `HOLD` macro).
    enum RowStorage: Int, Sendable {
        case streaming = 0
        case registers = 1
    }

    var threadsPerRow: Int
    var rowsPerBlock: Int
    /// CTAs of a thread-block cluster per row (1: no cluster).
    var clusterSize: Int
    /// Elements per vector access (16 bytes of the narrowest dtype when alignment allows; 1 = scalar).
    var vectorWidth: Int
    /// Vectors per thread in registers (and per pass, streaming).
    var vectorsPerThread: Int
    /// Forward, registers: vectors per thread held in shared memory after those in registers (filled by
    /// `cp.async`, no registers in between): rows too long for registers alone.
    var sharedVectorsPerThread = 0
    var rowStorage: RowStorage
    /// Forward: the weight of the thread's columns stays in registers across rows.
    var weightInRegisters: Bool
    /// Backward, registers: the next row's x and dy are loaded while this one is reduced.
    var prefetch: Bool
    /// Backward, streaming: the CTA's dweight/dbias sums live in shared memory (else in the partial buffer).
    /// (Backward, registers: the sums always live in shared memory, one slot per thread.)
    var sharedAccumulators: Bool
    /// The register cap per thread (`__maxnreg__`), which with the block size fixes the CTAs per SM.
    var maxRegisters: Int
    /// Dynamic shared memory per CTA for *staging* (0: none): the team's next row is copied into shared
    /// memory with `cp.async` while this one is reduced and written, so that a CTA always has a row's loads in
    /// flight (sm_80 and later; forward: x and the residual; backward: x and dy).
    var stagedBytes = 0
    /// Forward: dynamic shared memory per CTA for the weight and bias of the thread's columns, copied once and
    /// read per row instead of reloaded from L2 (0: none).
    var parameterBytes = 0
    /// Teams in the grid (blocks = teams × clusterSize). Backward: teams = parts × weight rows.
    var teams: Int
    /// Forward, streaming: passes of ``vectorsPerThread`` vectors per thread over a CTA's part of the row.
    var segments: Int

    var blockSize: Int { threadsPerRow * rowsPerBlock }
    var blocks: Int { teams * clusterSize }

    /// The compile-time part, as `-D` definitions.
    var definitions: [String] {
        [
            "TPR=\(threadsPerRow)", "RPB=\(rowsPerBlock)", "CLUSTER=\(clusterSize)", "VEC=\(vectorWidth)",
            "VPT=\(vectorsPerThread)", "SPT=\(sharedVectorsPerThread)", "HOLD=\(rowStorage.rawValue)",
            "WREG=\(weightInRegisters ? 1 : 0)",
            "PREFETCH=\(prefetch ? 1 : 0)", "ACC_SHARED=\(sharedAccumulators ? 1 : 0)", "MAXREG=\(maxRegisters)",
            "STAGE=\(stagedBytes > 0 ? 1 : 0)", "WSHARED=\(parameterBytes > 0 ? 1 : 0)",
        ]
    }

    var description: String {
        "\(threadsPerRow) threads/row × \(rowsPerBlock) rows/CTA"
            + (clusterSize > 1 ? " × \(clusterSize) CTAs/cluster" : "")
            + ", vector \(vectorWidth) × \(vectorsPerThread)/thread"
            + (sharedVectorsPerThread > 0 ? " (+\(sharedVectorsPerThread) in shared memory)" : "") + ", \(rowStorage)"
            + (rowStorage == .streaming && segments > 1 ? " (\(segments) passes)" : "")
            + (weightInRegisters ? ", weight in registers" : "") + (prefetch ? ", prefetch" : "")
            + (stagedBytes > 0 ? ", next row staged (\(stagedBytes) B)" : "")
            + (parameterBytes > 0 ? ", parameters in shared memory (\(parameterBytes) B)" : "")
            + ", ≤\(maxRegisters) registers, \(teams) teams"
    }

    /// What the heuristic needs to know about the GPU.
    struct GPU: Hashable, Sendable {
        var multiprocessors: Int
        /// The most shared memory one CTA may use (after raising the kernel's limit).
        var sharedMemoryPerBlock: Int
        var sharedMemoryPerMultiprocessor: Int
        var registersPerMultiprocessor = 65536
        var threadsPerMultiprocessor = 2048
        var blocksPerMultiprocessor = 32
        /// The largest thread-block cluster to use: 1 before sm_90, 16 (non-portable) on sm_90 and later.
        var maxClusterSize: Int
        /// `cp.async` (sm_80 and later), for staging.
        var asyncCopies = true
        /// Overrides for measuring alternatives (environment variables, see ``Tuning``).
        var tuning = Tuning()

        /// An H200 (132 SMs, sm_90), for tests and plans made without a GPU.
        static let h200 = GPU(
            multiprocessors: 132, sharedMemoryPerBlock: 232_448, sharedMemoryPerMultiprocessor: 233_472,
            maxClusterSize: 16)
        /// An H100 SXM (132 SMs, sm_90; the same SM as the H200, slower memory), for plans made without a GPU.
        static let h100 = h200
    }

    /// Switches for measuring one layout against another in the same run (environment variables
    /// `FUSEDNORM_CUDA_` + `STAGE`, `WAVES`, `DECODE_THREADS`, `BACKWARD_VECTORS`, `BACKWARD_WAVES`,
    /// `BACKWARD_REGISTERS`, `PARAMETERS`, `FORWARD_VECTORS`); nil and the defaults are the tuned heuristic.
    struct Tuning: Hashable, Sendable {
        /// Staging: 0 never, 1 where the heuristic uses it, 2 (backward) for every layout that holds rows.
        var staging = 1
        /// Single-CTA forward grids: teams = resident CTAs × waves (0: one team per row group).
        var forwardWaves: Int? = nil
        /// Few-row (decode) forward: threads per row instead of the heuristic's.
        var decodeThreads: Int? = nil
        /// Backward: x and dy vectors per thread in registers instead of 64 bytes' worth.
        var backwardVectors: Int? = nil
        /// Backward: teams = resident teams × this.
        var backwardWaves = 1
        /// Backward register cap with staging.
        var backwardRegisters: Int? = nil
        /// Forward: parameters in shared memory where the heuristic puts them (false: reloaded per row).
        var parameters = true
        /// Forward, short and medium rows: vectors per thread instead of 64 bytes' worth.
        var forwardVectors: Int? = nil
    }

    /// CTAs of `threads` threads with `registers` registers each and `sharedBytes` of shared memory that
    /// fit on one SM at once (registers are allocated per warp in units of 256).
    static func residentBlocks(threads: Int, registers: Int, sharedBytes: Int, gpu: GPU) -> Int {
        let warps = (threads + threadsPerWarp - 1) / threadsPerWarp
        let registersPerWarp = (registers * threadsPerWarp + 255) / 256 * 256
        var count = min(gpu.threadsPerMultiprocessor / threads, gpu.blocksPerMultiprocessor)
        count = min(count, gpu.registersPerMultiprocessor / max(1, registersPerWarp * warps))
        if sharedBytes > 0 { count = min(count, gpu.sharedMemoryPerMultiprocessor / (sharedBytes + 1024)) }
        return max(1, count)
    }

    /// Dynamic shared memory of a forward CTA: the vectors held in shared memory, or the staged next row.
    static func forwardSharedBytes(_ c: LaunchConfiguration, rowElementBytes: Int) -> Int {
        c.sharedVectorsPerThread * c.blockSize * c.vectorWidth * rowElementBytes + c.stagedBytes + c.parameterBytes
    }

    /// Dynamic shared memory of a backward CTA: registers layout, the dweight/dbias sums of every thread
    /// (VEC floats per vector and accumulator) and the staged next row; streaming, the CTA's [N] sums when in
    /// shared memory.
    static func backwardSharedBytes(_ c: LaunchConfiguration, columns: Int, accumulators: Int) -> Int {
        switch c.rowStorage {
        case .registers: accumulators * c.vectorsPerThread * c.blockSize * c.vectorWidth * 4 + c.stagedBytes
        case .streaming: c.sharedAccumulators ? accumulators * columns * 4 : 0
        }
    }

    /// The first (threads per CTA, CTAs per cluster) that holds `vectors` vectors at `perThread` per thread
    /// with a power-of-two cluster no larger than `maxCluster`.
    static func clusterLayout(vectors: Int, perThread: Int, blocks: [Int], maxCluster: Int) -> (Int, Int)? {
        for threads in blocks {
            let cluster = nextPowerOfTwo((vectors + threads * perThread - 1) / (threads * perThread))
            if cluster <= maxCluster { return (threads, cluster) }
        }
        return nil
    }
}

/// The widest vector (8, 4, 2 or 1 elements) such that every access is aligned: N is a multiple of it, and
/// each tensor's start and row stride in bytes are multiples of its vector's size (capped at 16); starts at
/// 16 bytes of the narrowest dtype. One tensor at a time, without allocating: the conditions hold for a width
/// if they hold for twice it, so halving per tensor finds the widest.
struct VectorWidthFinder {
    private(set) var width: Int

    init(columns: Int, narrowestBytes: Int) {
        var width = 16 / max(1, narrowestBytes)
        while width > 1, columns % width != 0 { width /= 2 }
        self.width = max(1, width)
    }

    mutating func include(address: UInt, rowStride: Int, elementBytes: Int, rows: Int) {
        while width > 1 {
            let alignment = min(16, width * elementBytes)
            if address % UInt(alignment) == 0, rows <= 1 || (rowStride * elementBytes) % alignment == 0 { return }
            width /= 2
        }
    }

    mutating func include(_ view: RowView?, rows: Int) {
        guard let view else { return }
        include(address: view.address, rowStride: view.rowStride, elementBytes: view.dtype.byteCount, rows: rows)
    }
}

/// Threads per warp.
let threadsPerWarp = 32

/// The smallest power of two >= `value` (1 for values <= 1).
func nextPowerOfTwo(_ value: Int) -> Int {
    var power = 1
    while power < value { power <<= 1 }
    return power
}

/// The greatest common divisor of two positive integers.
func greatestCommonDivisor(_ a: Int, _ b: Int) -> Int {
    var (a, b) = (a, b)
    while b != 0 { (a, b) = (b, a % b) }
    return max(1, a)
}
