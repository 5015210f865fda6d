/// How a normalization kernel is laid over the GPU. Pure data, chosen by
/// ``choose(for:columns:rows:weightRows:vectorWidth:rowElementBytes:inputElementBytes:parameterElementBytes:residual:bias:layer:accumulators:gpu:)``
/// and turned into `-D` definitions (compile-time shape) and a grid (run-time), apart from the kernels.
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
    /// Which kernel the configuration is for.
    enum Pass: Sendable { case forward, backward }

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
            "VPT=\(vectorsPerThread)", "SPT=\(sharedVectorsPerThread)", "HOLD=\(rowStorage.rawValue)", "WREG=\(weightInRegisters ? 1 : 0)",
            "PREFETCH=\(prefetch ? 1 : 0)", "ACC_SHARED=\(sharedAccumulators ? 1 : 0)", "MAXREG=\(maxRegisters)",
            "STAGE=\(stagedBytes > 0 ? 1 : 0)", "WSHARED=\(parameterBytes > 0 ? 1 : 0)",
        ]
    }

    var description: String {
        "\(threadsPerRow) threads/row × \(rowsPerBlock) rows/CTA" + (clusterSize > 1 ? " × \(clusterSize) CTAs/cluster" : "")
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
            multiprocessors: 132, sharedMemoryPerBlock: 232_448, sharedMemoryPerMultiprocessor: 233_472, maxClusterSize: 16)
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
        let warps = (threads + 31) / 32
        let registersPerWarp = (registers * 32 + 255) / 256 * 256
        var count = min(gpu.threadsPerMultiprocessor / threads, gpu.blocksPerMultiprocessor)
        count = min(count, gpu.registersPerMultiprocessor / max(1, registersPerWarp * warps))
        if sharedBytes > 0 { count = min(count, gpu.sharedMemoryPerMultiprocessor / (sharedBytes + 1024)) }
        return max(1, count)
    }

    /// Row data a thread may hold in registers, in bytes of its storage dtype(s): sub-warp rows keep less
    /// (their weight stays in registers too); a fused residual loads x and the residual both before it adds
    /// them; LayerNorm's bias needs registers of its own, and so does staging (addresses of the next row).
    static func forwardRowBudget(small: Bool, residual: Bool, bias: Bool, staged: Bool = false) -> Int {
        if small || residual { return 64 }
        return bias || staged ? 96 : 128
    }

    /// Register caps (`__maxnreg__`) of the forward layouts, with the CTAs per SM they leave (64K registers):
    ///
    /// | layout                                      | cap | CTAs per SM                            |
    /// | ------------------------------------------- | --- | -------------------------------------- |
    /// | short rows (sub-warp groups, 256 threads)   | 64  | 4                                      |
    /// | medium rows (one CTA per row), no residual  | 56 (64 staged with a bias) | 9 of 128 threads, 18 of 64 (64: 8, 16) |
    /// | short and medium rows with a residual       | 80  | 6 of 128 threads                       |
    /// | clusters; 1024-thread CTAs; streaming       | 64 (80 with a residual); 64; 64 | 2 of 512   |
    /// | few rows (decode)                           | 128 | —                                      |
    ///
    /// Medium rows fit in 52-56 registers, so 56 adds CTAs of 64 and 128 threads without spilling (measured,
    /// fraction of a copy: rmsnorm fp32 N = 2048 0.916 → 0.930, LayerNorm bf16 2048 0.932 → 0.944). Lower
    /// caps spill and were slower: 48 for short rows (24 B local; rmsnorm bf16 N = 1024 0.951 → 0.923), 64
    /// with a residual (40-48 B local; residual bf16 4096 0.932 → 0.863). NOTES.md, "Forward register caps".
    /// Staging costs a few registers (the next row's addresses): LayerNorm with a bias then needs 64 for medium
    /// rows, and clusters hold at most 6 vectors per thread (8 spilled 24 B at 64; `cuobjdump -res-usage`).
    static let forwardShortRegisters = 64
    static let forwardMediumRegisters = 56
    static let forwardResidualRegisters = 80
    /// The backward register cap with staging, for up to 64 bytes of x and dy per thread (no spill; 64 spilled
    /// 16 B): 3 CTAs of 256 threads per SM, against 2 at 128 with the next row in registers.
    static let backwardStagedRegisters = 72

    /// The one heuristic: chooses the layout from the problem's size and the GPU.
    /// - Parameters:
    ///   - pass: forward or backward.
    ///   - columns: N.
    ///   - rows: rows of the problem.
    ///   - weightRows: 1, or H for per-head weights (backward: teams come per weight row).
    ///   - vectorWidth: from ``vectorWidth(columns:accesses:)``.
    ///   - rowElementBytes: forward, bytes of the dtype the row is held in (s, or x); backward, of x plus dy.
    ///   - inputElementBytes: bytes of each dtype a row is read in, for staging: forward, x's then the
    ///     residual's (empty: `rowElementBytes`); backward, x's and dy's (empty: half of `rowElementBytes`).
    ///   - parameterElementBytes: forward, bytes of the weight's and the bias's dtypes (those present).
    ///   - residual: forward: a residual is added (x and the residual are both loaded first).
    ///   - bias: forward: LayerNorm with a bias.
    ///   - layer: forward: LayerNorm (its registers do not leave room for rows held in shared memory).
    ///   - accumulators: backward: 0, 1 or 2 fp32 sums per column (dweight, dbias).
    ///   - gpu: the GPU's SM count and limits.
    static func choose(
        for pass: Pass, columns: Int, rows: Int, weightRows: Int = 1, vectorWidth: Int, rowElementBytes: Int,
        inputElementBytes: [Int] = [], parameterElementBytes: [Int] = [], residual: Bool = false, bias: Bool = false,
        layer: Bool = false, accumulators: Int = 0, gpu: GPU
    ) -> LaunchConfiguration {
        switch pass {
        case .forward:
            return chooseForward(
                columns: columns, rows: rows, weightRows: weightRows, vectorWidth: vectorWidth,
                rowElementBytes: rowElementBytes, inputElementBytes: inputElementBytes.isEmpty ? [rowElementBytes] : inputElementBytes,
                parameterElementBytes: parameterElementBytes, residual: residual, bias: bias, layer: layer, gpu: gpu)
        case .backward:
            return chooseBackward(
                columns: columns, rows: rows, weightRows: weightRows, vectorWidth: vectorWidth,
                pairBytes: rowElementBytes, inputElementBytes: inputElementBytes.isEmpty ? [rowElementBytes / 2] : inputElementBytes,
                accumulators: accumulators, gpu: gpu)
        }
    }

    /// Forward: sub-warp groups for short rows (several rows per CTA), one CTA per row up to 512 threads,
    /// then clusters of CTAs per row with the row in registers, and past what a cluster holds, streaming.
    private static func chooseForward(
        columns: Int, rows: Int, weightRows: Int, vectorWidth: Int, rowElementBytes: Int, inputElementBytes: [Int],
        parameterElementBytes: [Int], residual: Bool, bias: Bool, layer: Bool, gpu: GPU
    ) -> LaunchConfiguration {
        let vectors = (columns + vectorWidth - 1) / vectorWidth
        let vectorBytes = vectorWidth * rowElementBytes
        func vectorsFor(_ budget: Int) -> Int { max(1, min(16, budget / vectorBytes)) }
        // A fused residual needs more registers (x and the residual in flight at once).
        let registers = residual ? 80 : 64
        var c = LaunchConfiguration(
            threadsPerRow: 1, rowsPerBlock: 1, clusterSize: 1, vectorWidth: vectorWidth, vectorsPerThread: 1,
            rowStorage: .registers, weightInRegisters: false, prefetch: false, sharedAccumulators: false,
            maxRegisters: registers, teams: 1, segments: 1)

        // Staging needs cp.async and words of at least 4 bytes (decided for good once the grid is known).
        // Measured (NOTES.md, "Staging"): staging gains for one CTA per row and for LayerNorm's clusters, loses
        // for sub-warp rows and RMSNorm's clusters.
        let stageable = gpu.asyncCopies && gpu.tuning.staging > 0 && inputElementBytes.allSatisfy { vectorWidth * $0 >= 4 }
        let small = gpu.tuning.forwardVectors ?? vectorsFor(forwardRowBudget(small: true, residual: residual, bias: bias))
        let large = vectorsFor(forwardRowBudget(small: false, residual: residual, bias: bias, staged: stageable && layer))
        // Largest CTA (threads) of one row: residual rows keep 3 CTAs per SM at 80 registers.
        let maxBlock = residual ? 256 : 512
        // Rows between powers of two: half the threads where each then holds at most 6 vectors (no spill at the
        // caps below; 7-8 where that leaves fewer vector slots idle) rather than many threads idle in their
        // last vector: more rows in flight per SM. Short rows (sub-warp groups) only from 8 threads per row and
        // where slots were idle, or for LayerNorm. Measured (NOTES.md, "Forward layouts between powers of two",
        // fraction of the copy at 2^27 elements, bf16): N = 5120 128 threads × 5 vectors instead of 256 × 3;
        // 7168 128 × 7 instead of 256 × 4 (LayerNorm 0.88 -> 0.95); 160-640 (idle slots) RMSNorm 0.89 -> 0.97,
        // LayerNorm 0.81 -> 0.97; LayerNorm 192-768 (none idle) 0.89 -> 0.97, where RMSNorm lost (0.96 -> 0.93-0.95,
        // fp32 1.00 -> 0.95-0.97); 2-4 threads per row lost everywhere (N = 48: 0.96 -> 0.47), 8 vectors at
        // powers of two too (LayerNorm 4096 0.96 -> 0.91).
        func halved(_ threads: Int, short: Bool) -> Int {
            guard gpu.tuning.forwardVectors == nil, !residual, vectorBytes == 16, threads >= (short ? 8 : 64) else { return threads }
            let perThread = (vectors + threads - 1) / threads, perHalf = (vectors + threads / 2 - 1) / (threads / 2)
            let fewerIdle = perHalf * (threads / 2) < perThread * threads
            if short { return perHalf <= 6 && (fewerIdle || layer) ? threads / 2 : threads }
            return perHalf <= 6 || (perHalf <= 8 && fewerIdle) ? threads / 2 : threads
        }
        if vectors <= 32 * small {
            // Short rows: a power-of-two group of at most 32 threads per row, 256 threads per CTA; the weight
            // stays in registers (RMSNorm without a residual: LayerNorm's bias would need too many).
            c.threadsPerRow = halved(min(32, nextPowerOfTwo((vectors + small - 1) / small)), short: true)
            c.rowsPerBlock = smallRowBlock / c.threadsPerRow
            while c.blockSize > 32, (rows + c.rowsPerBlock - 1) / c.rowsPerBlock < 2 * gpu.multiprocessors {
                c.rowsPerBlock /= 2
            }
            c.vectorsPerThread = (vectors + c.threadsPerRow - 1) / c.threadsPerRow
            c.weightInRegisters = !residual && !bias
            c.maxRegisters = residual ? forwardResidualRegisters : forwardShortRegisters
        } else if vectors <= maxBlock * small {
            // Medium rows: one CTA per row, the row in registers.
            c.threadsPerRow = halved(min(maxBlock, max(32, nextPowerOfTwo((vectors + small - 1) / small))), short: false)
            c.vectorsPerThread = (vectors + c.threadsPerRow - 1) / c.threadsPerRow
            c.maxRegisters = residual ? forwardResidualRegisters : stageable && bias ? forwardShortRegisters : forwardMediumRegisters
        } else if let (threads, cluster) = clusterLayout(
            vectors: vectors, perThread: large, blocks: residual ? [256, 512] : [512], maxCluster: gpu.maxClusterSize)
        {
            // Long rows: a cluster of CTAs per row, each holding its part of the row in registers.
            c.threadsPerRow = threads
            c.clusterSize = cluster
            c.vectorsPerThread = (vectors + cluster * threads - 1) / (cluster * threads)
        } else if !residual, !bias, !layer, vectorBytes == 16, gpu.maxClusterSize > 1,
            let (threads, cluster) = clusterLayout(
                vectors: vectors, perThread: forwardHeldVectors, blocks: [512], maxCluster: gpu.maxClusterSize)
        {
            // Longer rows (RMSNorm): 6 vectors per thread in registers and up to 10 more in shared memory,
            // 2 CTAs per SM.
            c.threadsPerRow = threads
            c.clusterSize = cluster
            let held = (vectors + cluster * threads - 1) / (cluster * threads)
            c.vectorsPerThread = min(6, held)
            c.sharedVectorsPerThread = held - c.vectorsPerThread
        } else if !residual, let (threads, cluster) = clusterLayout(
            vectors: vectors, perThread: large, blocks: [1024], maxCluster: gpu.maxClusterSize)
        {
            // 1024 threads per CTA (1 CTA per SM), the row in registers.
            c.threadsPerRow = threads
            c.clusterSize = cluster
            c.vectorsPerThread = (vectors + cluster * threads - 1) / (cluster * threads)
            c.maxRegisters = 64
        } else {
            // Longer still: the largest cluster streams its parts of the row, pass by pass.
            c.threadsPerRow = 512
            c.clusterSize = gpu.maxClusterSize
            c.vectorsPerThread = residual ? max(1, min(2, 32 / vectorBytes)) : max(1, min(4, 64 / vectorBytes))
            c.rowStorage = .streaming
            c.maxRegisters = 64
            let perCTA = (vectors + c.clusterSize - 1) / c.clusterSize
            c.segments = (perCTA + c.threadsPerRow * c.vectorsPerThread - 1) / (c.threadsPerRow * c.vectorsPerThread)
        }

        let rowGroups = (rows + c.rowsPerBlock - 1) / c.rowsPerBlock
        if c.clusterSize == 1, c.rowStorage == .registers, rowGroups <= gpu.multiprocessors, c.blockSize <= 512 {
            // Few rows (decode): occupancy does not matter, latency does: the weight is loaded with the row
            // instead of after its reduction.
            c.weightInRegisters = true
            c.maxRegisters = 128
            // One CTA per row: up to 256 threads, two vectors each (a short chain of loads; N = 4096 bf16,
            // ncu median 3.17 µs at 256 threads, 3.23 at 512, 3.30 at 128; by events 4.9, 5.2, 4.9).
            if c.rowsPerBlock == 1 {
                c.threadsPerRow = max(c.threadsPerRow, min(256, nextPowerOfTwo((vectors + 1) / 2)))
                c.vectorsPerThread = (vectors + c.threadsPerRow - 1) / c.threadsPerRow
            }
            if let threads = gpu.tuning.decodeThreads, c.rowsPerBlock == 1, threads >= 32, threads <= 1024,
                (vectors + threads - 1) / threads <= 16
            {
                c.threadsPerRow = threads
                c.vectorsPerThread = (vectors + threads - 1) / threads
            }
        }

        // Teams (never more than row groups). Clusters loop over rows: exactly the resident ones (refined by the
        // driver's occupancy query at launch).
        let perSM = residentBlocks(
            threads: c.blockSize, registers: c.maxRegisters, sharedBytes: forwardSharedBytes(c, rowElementBytes: rowElementBytes),
            gpu: gpu)
        let needed = (rows + c.rowsPerBlock - 1) / c.rowsPerBlock
        // One CTA per row group: a grid of every row group (the hardware starts each CTA as one ends: rows in
        // flight at every phase; measured 0.95-0.98 of copy at N = 256-16384 against 0.92-0.95 for a persistent
        // grid); but LayerNorm rows in CTAs of which 2 fit per SM lose that way (two reductions per row with
        // nothing to overlap them: 0.85 against 0.91), so they loop over rows, staged, in 4 waves of teams (so
        // that teams finishing early leave no long tail).
        let persistent = c.clusterSize > 1 || (layer && perSM <= 2)
        let waves = gpu.tuning.forwardWaves ?? (persistent ? (c.clusterSize == 1 ? 4 : 1) : 0)
        var teams = waves == 0 ? needed : max(1, min(needed, gpu.multiprocessors * perSM * waves / c.clusterSize))
        if c.weightInRegisters, weightRows > 1 {
            // A team's rows then keep their weight row when the grid's row step is a multiple of H.
            let unit = weightRows / greatestCommonDivisor(c.rowsPerBlock, weightRows)
            if teams >= unit { teams -= teams % unit }
        }
        c.teams = teams
        // Clusters (one weight row) of 8 CTAs or more, and LayerNorm's (weight and bias): the parameters in shared
        // memory, when that keeps the CTAs per SM. Measured: bf16 N = 262144 0.853 → 0.884, LayerNorm 65536
        // 0.675 → 0.721; RMSNorm in clusters of 2-4 lost 1-2 points (65536: 0.896 → 0.885).
        if gpu.asyncCopies, gpu.tuning.parameters, c.clusterSize >= 8 || (c.clusterSize > 1 && bias),
            c.rowStorage == .registers, c.sharedVectorsPerThread == 0, weightRows == 1, !c.weightInRegisters,
            !parameterElementBytes.isEmpty,
            parameterElementBytes.allSatisfy({ vectorWidth * $0 >= 4 })
        {
            let bytes = c.vectorsPerThread * c.blockSize * vectorWidth * parameterElementBytes.reduce(0, +)
            if bytes <= gpu.sharedMemoryPerBlock - 4096,
                residentBlocks(threads: c.blockSize, registers: c.maxRegisters, sharedBytes: bytes, gpu: gpu) >= perSM
            {
                c.parameterBytes = bytes
            }
        }
        // Staging, when a team has rows after its first and the copy fits beside the CTAs the registers allow.
        if stageable, c.rowStorage == .registers, c.sharedVectorsPerThread == 0, needed > teams, c.rowsPerBlock == 1,
            c.clusterSize == 1 || layer
        {
            let bytes = c.vectorsPerThread * c.blockSize * vectorWidth * inputElementBytes.reduce(0, +)
            if bytes + c.parameterBytes <= gpu.sharedMemoryPerBlock - 4096,
                residentBlocks(threads: c.blockSize, registers: c.maxRegisters, sharedBytes: bytes + c.parameterBytes, gpu: gpu) >= perSM
            {
                c.stagedBytes = bytes
            }
        }
        return c
    }

    /// Backward: as the forward pass, with x and dy of the thread's columns (and the next row's, loaded
    /// early) in registers; past what a cluster holds, one CTA streams each row.
    private static func chooseBackward(
        columns: Int, rows: Int, weightRows: Int, vectorWidth: Int, pairBytes: Int, inputElementBytes: [Int], accumulators: Int,
        gpu: GPU
    ) -> LaunchConfiguration {
        let vectors = (columns + vectorWidth - 1) / vectorWidth
        // x and dy of 2 vectors of 16 bytes each (64 bytes), and as much again for the next row.
        // x and dy of 64 bytes per thread where one CTA of 256 threads holds the row that way; longer rows
        // hold 128 bytes per thread, staged (N = 8192 bf16 in one CTA instead of a cluster of 2: 0.71 → 0.85
        // of copy; fp32 N = 4096 0.79 → 0.94; 65536 bf16 0.64 → 0.71).
        let narrow = max(1, min(8, 64 / (vectorWidth * pairBytes)))
        let stageable = gpu.asyncCopies && gpu.tuning.staging > 0 && inputElementBytes.allSatisfy { vectorWidth * $0 >= 4 }
        let wide = stageable && vectors > 256 * narrow
        // Rows one CTA holds take twice the narrow vectors per thread (128 bytes) where that leaves fewer vector
        // slots idle (threads per row come in powers of two), or where it makes one warp hold the row, whose
        // sums then need only shuffles instead of an exchange between warps through shared memory. Measured
        // (S20, S24, bf16, fraction of copy): LayerNorm backward N = 768 0.62 → 0.87, 1024 0.73 → 0.85 (one
        // warp), 1536 0.66 → 0.78, 2560 0.55 → 0.73, 3072 0.64 → 0.81 (fewer idle slots); RMSNorm 0.78 → 0.86,
        // 0.83 → 0.84, 0.83 → 0.86, 0.77 → 0.89, 0.83 → 0.89; fp16 the same. Where both fill their slots alike
        // (powers of two), 128 bytes lost: bf16 N = 512 0.91 → 0.83, 2048 0.87 → 0.75, 4096 0.87 → 0.78.
        func slots(_ perThread: Int) -> Int {
            let threads = min(256, max(32, nextPowerOfTwo((vectors + perThread - 1) / perThread)))
            return threads * ((vectors + threads - 1) / threads)
        }
        // (Measured for full 16-byte vectors, where narrow is 2; narrower vectors of odd N keep narrow.)
        let measured = narrow <= 2
        let oneWarp = measured && vectors > 32 * narrow && vectors <= 64 * narrow
        let fuller = measured && vectors > 32 * narrow && vectors <= 256 * narrow && slots(2 * narrow) < slots(narrow)
        let perThread = gpu.tuning.backwardVectors ?? (wide ? min(8, 2 * narrow) : oneWarp || fuller ? 2 * narrow : narrow)
        var c = LaunchConfiguration(
            threadsPerRow: 1, rowsPerBlock: 1, clusterSize: 1, vectorWidth: vectorWidth, vectorsPerThread: perThread,
            rowStorage: .registers, weightInRegisters: false, prefetch: true, sharedAccumulators: true,
            maxRegisters: 128, teams: 1, segments: 1)

        if vectors <= 32 * perThread {
            c.threadsPerRow = min(32, nextPowerOfTwo((vectors + perThread - 1) / perThread))
            c.rowsPerBlock = smallRowBlock / c.threadsPerRow
            let rowsPerHead = (rows + weightRows - 1) / weightRows
            while c.blockSize > 32, (rowsPerHead + c.rowsPerBlock - 1) / c.rowsPerBlock * weightRows < 2 * gpu.multiprocessors {
                c.rowsPerBlock /= 2
            }
            c.vectorsPerThread = (vectors + c.threadsPerRow - 1) / c.threadsPerRow
        } else if vectors <= 256 * perThread {
            c.threadsPerRow = min(256, max(32, nextPowerOfTwo((vectors + perThread - 1) / perThread)))
            c.vectorsPerThread = (vectors + c.threadsPerRow - 1) / c.threadsPerRow
        } else if let (threads, cluster) = clusterLayout(
            vectors: vectors, perThread: perThread, blocks: [256, 512], maxCluster: gpu.maxClusterSize)
        {
            c.threadsPerRow = threads
            c.clusterSize = cluster
            c.vectorsPerThread = (vectors + cluster * threads - 1) / (cluster * threads)
        } else if let (threads, cluster) = clusterLayout(
            vectors: vectors, perThread: 2 * perThread, blocks: [512], maxCluster: gpu.maxClusterSize)
        {
            // Twice the vectors per thread, without the early loads of the next row (registers).
            c.threadsPerRow = threads
            c.clusterSize = cluster
            c.vectorsPerThread = (vectors + cluster * threads - 1) / (cluster * threads)
            c.prefetch = false
        } else {
            c.rowStorage = .streaming
        }
        if c.rowStorage == .registers,
            backwardSharedBytes(c, columns: columns, accumulators: accumulators) > gpu.sharedMemoryPerBlock - 2048
        {
            // The sums do not fit in shared memory (GPUs with less of it): stream instead.
            c.rowStorage = .streaming
        }
        if c.rowStorage == .streaming {
            // One CTA streams each row: read for the sums, read again for dx.
            c.threadsPerRow = 512
            c.rowsPerBlock = 1
            c.clusterSize = 1
            c.vectorsPerThread = 1
            c.rowStorage = .streaming
            c.prefetch = false
            c.sharedAccumulators = accumulators > 0 && accumulators * columns * 4 <= gpu.sharedMemoryPerBlock - 2048
        }
        if stageable, c.rowStorage == .registers, wide || c.clusterSize > 1 || gpu.tuning.staging == 2 {
            // Long rows: staging instead of the next row in registers: fewer registers, so more CTAs per SM
            // (64 bytes of x and dy per thread fit in 72 without spilling; 128 bytes keep 128). Measured: rows
            // of clusters gain (bf16 N = 65536: 0.57 → 0.64); short rows lose (their next row in registers is
            // loaded earlier: bf16 N = 1024 0.88 → 0.75).
            var staged = c
            staged.prefetch = false
            staged.maxRegisters = gpu.tuning.backwardRegisters
                ?? (c.vectorsPerThread * vectorWidth * pairBytes <= 64 ? backwardStagedRegisters : 128)
            staged.stagedBytes = c.vectorsPerThread * c.blockSize * vectorWidth * inputElementBytes.reduce(0, +)
            if backwardSharedBytes(staged, columns: columns, accumulators: accumulators) <= gpu.sharedMemoryPerBlock - 2048 {
                c = staged
            }
        }

        let perSM = residentBlocks(
            threads: c.blockSize, registers: c.maxRegisters,
            sharedBytes: backwardSharedBytes(c, columns: columns, accumulators: accumulators), gpu: gpu)
        let resident = max(1, gpu.multiprocessors * perSM * gpu.tuning.backwardWaves / c.clusterSize)
        // Each team owns one weight row and a share of its rows: a team per weight row at least, as many
        // parts per weight row as fill the GPU, and no more parts than row groups.
        let rowsPerHead = (rows + weightRows - 1) / weightRows
        let groups = max(1, (rowsPerHead + c.rowsPerBlock - 1) / c.rowsPerBlock)
        let parts = max(1, min(groups, resident / weightRows))
        c.teams = parts * weightRows
        return c
    }

    /// The first (threads per CTA, CTAs per cluster) that holds `vectors` vectors at `perThread` per thread
    /// with a power-of-two cluster no larger than `maxCluster`.
    private static func clusterLayout(vectors: Int, perThread: Int, blocks: [Int], maxCluster: Int) -> (Int, Int)? {
        for threads in blocks {
            let cluster = nextPowerOfTwo((vectors + threads * perThread - 1) / (threads * perThread))
            if cluster <= maxCluster { return (threads, cluster) }
        }
        return nil
    }

    /// Vectors a forward thread holds with shared memory (6 in registers, 10 in shared memory: 80 KB per
    /// 512-thread CTA, so 2 CTAs per SM).
    static let forwardHeldVectors = 16

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

    /// The layout with `clusterSize` halved (a cluster that does not fit on the GPU): the same row split
    /// over more vectors per thread, or streaming.
    /// Threads per CTA for sub-warp rows, before shrinking for few rows.
    static let smallRowBlock = 256

    /// One tensor's accesses, for choosing the vector width.
    struct Access {
        var address: UInt
        /// Elements between rows.
        var rowStride: Int
        var elementBytes: Int
        /// Rows accessed (the stride does not matter for one).
        var rows: Int
    }

    /// The widest vector (8, 4, 2 or 1 elements) such that every access is aligned: N is a multiple of
    /// it, and each tensor's start and row stride in bytes are multiples of its vector's size (capped at 16).
    /// Starts at 16 bytes of the narrowest dtype.
    static func vectorWidth(columns: Int, accesses: [Access]) -> Int {
        var finder = VectorWidthFinder(columns: columns, narrowestBytes: accesses.map(\.elementBytes).min() ?? 4)
        for access in accesses {
            finder.include(address: access.address, rowStride: access.rowStride, elementBytes: access.elementBytes, rows: access.rows)
        }
        return finder.width
    }
}

/// ``LaunchConfiguration/vectorWidth(columns:accesses:)`` one tensor at a time, without allocating: the
/// conditions hold for a width if they hold for twice it, so halving per tensor finds the same width.
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
