/// The backward pass's launch plan: what the layout rules need to know about a problem, and the rules.
///
/// As the forward pass, with x and dy of the thread's columns (and the next row's, loaded early or staged)
/// in registers; past what a cluster holds, one CTA streams each row. Each team owns one weight row and a
/// fixed, contiguous share of its rows, so that its dweight partial sums come in a fixed order. The
/// measurements behind every number: docs/notes/launch-plans.md.
struct BackwardPlan: Hashable, Sendable {
    /// N.
    var columns: Int
    var rows: Int
    /// 1, or H for per-head weights: teams come per weight row.
    var weightRows = 1
    /// Elements per vector access (``VectorWidthFinder``).
    var vectorWidth: Int
    /// Bytes of x's dtype plus dy's.
    var pairBytes: Int
    /// Bytes of x's and dy's dtypes, for staging.
    var inputElementBytes: [Int]
    /// fp32 sums per column: 0, 1 or 2 (dweight, dbias).
    var accumulators = 0

    init(
        columns: Int, rows: Int, weightRows: Int = 1, vectorWidth: Int, pairBytes: Int, inputElementBytes: [Int]? = nil,
        accumulators: Int = 0
    ) {
        self.columns = columns
        self.rows = rows
        self.weightRows = weightRows
        self.vectorWidth = vectorWidth
        self.pairBytes = pairBytes
        self.inputElementBytes = inputElementBytes ?? [pairBytes / 2]
        self.accumulators = accumulators
    }

    var vectors: Int { (columns + vectorWidth - 1) / vectorWidth }

    // MARK: Tables

    /// x and dy bytes per thread in registers: the usual amount, and where staged rows get twice it.
    static let rowBytes = (narrow: 64, mostVectors: 8)
    /// Threads per CTA of sub-warp rows, before shrinking for few rows; the largest CTA of one row.
    static let shortRowBlock = 256
    static let oneBlockThreads = 256
    /// Cluster CTA sizes, tried in order: with the next row in registers, then with twice the vectors per
    /// thread and no early loads.
    static let clusterBlocks = (prefetched: [256, 512], doubled: [512])
    /// Streaming: one CTA of this many threads per row.
    static let streamingThreads = 512
    /// Register caps: the next row in registers; staged with up to 64 bytes of x and dy per thread (72 does
    /// not spill, 64 did: 3 CTAs of 256 threads per SM against 2 at 128).
    static let registers = (prefetched: 128, staged: 72, stagedBytes: 64)
    /// Shared memory per CTA kept free of sums and staged rows.
    static let sharedReserve = 2048

    // MARK: Rules

    /// The layout and grid of this problem on `gpu`; `teams` is parts × weight rows.
    func configuration(gpu: LaunchConfiguration.GPU) -> LaunchConfiguration {
        let vectors = self.vectors
        let narrow = max(1, min(Self.rowBytes.mostVectors, Self.rowBytes.narrow / (vectorWidth * pairBytes)))
        let stageable =
            gpu.asyncCopies && gpu.tuning.staging > 0 && inputElementBytes.allSatisfy { vectorWidth * $0 >= 4 }
        // Rows longer than one CTA holds at 64 bytes per thread: 128 bytes per thread, staged.
        let wide = stageable && vectors > Self.oneBlockThreads * narrow
        let perThread =
            gpu.tuning.backwardVectors
            ?? (wide ? min(Self.rowBytes.mostVectors, 2 * narrow) : doubles(narrow) ? 2 * narrow : narrow)
        var c = LaunchConfiguration(
            threadsPerRow: 1, rowsPerBlock: 1, clusterSize: 1, vectorWidth: vectorWidth, vectorsPerThread: perThread,
            rowStorage: .registers, weightInRegisters: false, prefetch: true, sharedAccumulators: true,
            maxRegisters: Self.registers.prefetched, teams: 1, segments: 1)
        layout(&c, perThread: perThread, gpu: gpu)
        if c.rowStorage == .registers, sharedBytes(c) > gpu.sharedMemoryPerBlock - Self.sharedReserve {
            // The sums do not fit in shared memory (GPUs with less of it): stream instead.
            c.rowStorage = .streaming
        }
        if c.rowStorage == .streaming {
            // One CTA streams each row: read for the sums, read again for dx.
            c.threadsPerRow = Self.streamingThreads
            c.rowsPerBlock = 1
            c.clusterSize = 1
            c.vectorsPerThread = 1
            c.prefetch = false
            c.sharedAccumulators =
                accumulators > 0 && accumulators * columns * 4 <= gpu.sharedMemoryPerBlock - Self.sharedReserve
        }
        if stageable, c.rowStorage == .registers, wide || c.clusterSize > 1 || gpu.tuning.staging == 2 {
            // Long rows: staging instead of the next row in registers (fewer registers, more CTAs per SM);
            // short rows keep the next row in registers (loaded earlier).
            var staged = c
            staged.prefetch = false
            staged.maxRegisters =
                gpu.tuning.backwardRegisters
                ?? (c.vectorsPerThread * vectorWidth * pairBytes <= Self.registers.stagedBytes
                    ? Self.registers.staged : Self.registers.prefetched)
            staged.stagedBytes = c.vectorsPerThread * c.blockSize * vectorWidth * inputElementBytes.reduce(0, +)
            if sharedBytes(staged) <= gpu.sharedMemoryPerBlock - Self.sharedReserve { c = staged }
        }
        c.teams = teams(c, gpu: gpu)
        return c
    }

    /// Whether rows one CTA holds take twice the narrow vectors per thread (128 bytes): where that makes one
    /// warp hold the row (its sums then need only shuffles), or leaves fewer vector slots idle (threads per
    /// row come in powers of two). Measured for full 16-byte vectors, where narrow is 2.
    func doubles(_ narrow: Int) -> Bool {
        guard narrow <= 2, vectors > threadsPerWarp * narrow else { return false }
        func slots(_ perThread: Int) -> Int {
            let threads = min(
                Self.oneBlockThreads, max(threadsPerWarp, nextPowerOfTwo((vectors + perThread - 1) / perThread)))
            return threads * ((vectors + threads - 1) / threads)
        }
        let oneWarp = vectors <= 64 * narrow
        let fuller = vectors <= Self.oneBlockThreads * narrow && slots(2 * narrow) < slots(narrow)
        return oneWarp || fuller
    }

    /// Sub-warp groups, one CTA, a cluster with the next row in registers, a cluster with twice the vectors
    /// per thread and no early loads; else streaming.
    func layout(_ c: inout LaunchConfiguration, perThread: Int, gpu: LaunchConfiguration.GPU) {
        let vectors = self.vectors
        if vectors <= threadsPerWarp * perThread {
            c.threadsPerRow = min(threadsPerWarp, nextPowerOfTwo((vectors + perThread - 1) / perThread))
            c.rowsPerBlock = Self.shortRowBlock / c.threadsPerRow
            // Fewer rows per CTA until the grid has two CTAs per SM.
            let rowsPerHead = (rows + weightRows - 1) / weightRows
            while c.blockSize > threadsPerWarp,
                (rowsPerHead + c.rowsPerBlock - 1) / c.rowsPerBlock * weightRows < 2 * gpu.multiprocessors
            {
                c.rowsPerBlock /= 2
            }
            c.vectorsPerThread = (vectors + c.threadsPerRow - 1) / c.threadsPerRow
        } else if vectors <= Self.oneBlockThreads * perThread {
            c.threadsPerRow = min(
                Self.oneBlockThreads, max(threadsPerWarp, nextPowerOfTwo((vectors + perThread - 1) / perThread)))
            c.vectorsPerThread = (vectors + c.threadsPerRow - 1) / c.threadsPerRow
        } else if let (threads, cluster) = LaunchConfiguration.clusterLayout(
            vectors: vectors, perThread: perThread, blocks: Self.clusterBlocks.prefetched,
            maxCluster: gpu.maxClusterSize)
        {
            c.threadsPerRow = threads
            c.clusterSize = cluster
            c.vectorsPerThread = (vectors + cluster * threads - 1) / (cluster * threads)
        } else if let (threads, cluster) = LaunchConfiguration.clusterLayout(
            vectors: vectors, perThread: 2 * perThread, blocks: Self.clusterBlocks.doubled,
            maxCluster: gpu.maxClusterSize)
        {
            c.threadsPerRow = threads
            c.clusterSize = cluster
            c.vectorsPerThread = (vectors + cluster * threads - 1) / (cluster * threads)
            c.prefetch = false
        } else {
            c.rowStorage = .streaming
        }
    }

    /// Teams: a team per weight row at least, as many parts per weight row as fill the GPU (resident teams
    /// times the waves), and no more parts than row groups.
    func teams(_ c: LaunchConfiguration, gpu: LaunchConfiguration.GPU) -> Int {
        let perSM = LaunchConfiguration.residentBlocks(
            threads: c.blockSize, registers: c.maxRegisters, sharedBytes: sharedBytes(c), gpu: gpu)
        let resident = max(1, gpu.multiprocessors * perSM * gpu.tuning.backwardWaves / c.clusterSize)
        let rowsPerHead = (rows + weightRows - 1) / weightRows
        let groups = max(1, (rowsPerHead + c.rowsPerBlock - 1) / c.rowsPerBlock)
        return max(1, min(groups, resident / weightRows)) * weightRows
    }

    /// The teams of a cluster layout `c` when only `residentClusters` clusters can be resident at once (the
    /// driver's count at launch): fewer parts per weight row, as many as they allow (at least one).
    static func teams(_ c: LaunchConfiguration, residentClusters: Int, weightRows: Int) -> Int {
        residentClusters < c.teams ? max(1, residentClusters / weightRows) * weightRows : c.teams
    }

    /// Dynamic shared memory of a CTA of layout `c`.
    func sharedBytes(_ c: LaunchConfiguration) -> Int {
        LaunchConfiguration.backwardSharedBytes(c, columns: columns, accumulators: accumulators)
    }
}

extension BackwardPlan {
    /// The plan of a backward problem whose tensors allow vectors of `vectorWidth` elements.
    init(_ problem: NormBackwardProblem, vectorWidth: Int) {
        self.init(
            columns: problem.columns, rows: problem.rows, weightRows: problem.weightRows, vectorWidth: vectorWidth,
            pairBytes: problem.x.dtype.byteCount + problem.dy.dtype.byteCount,
            inputElementBytes: [problem.x.dtype.byteCount, problem.dy.dtype.byteCount],
            accumulators: (problem.dweight != nil ? 1 : 0) + (problem.dbias != nil ? 1 : 0))
    }
}
