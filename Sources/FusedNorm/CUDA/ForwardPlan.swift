/// The forward pass's launch plan: what the layout rules need to know about a problem, and the rules.
///
/// The layout is the first case of ``Layout`` that holds the row (sub-warp groups, one CTA, clusters of
/// CTAs with the row in registers, then in registers and shared memory, then streamed); then few-row
/// (decode) grids, the grid's teams, the parameters in shared memory and staging are decided in turn.
/// The measurements behind every number: docs/notes/launch-plans.md.
struct ForwardPlan: Hashable, Sendable {
    /// N.
    var columns: Int
    var rows: Int
    /// 1, or H for per-head weights.
    var weightRows = 1
    /// Elements per vector access (``VectorWidthFinder``).
    var vectorWidth: Int
    /// Bytes of the dtype a row is held in: s with a residual, else x.
    var rowElementBytes: Int
    /// Bytes of each dtype a row is read in, for staging: x's, then the residual's.
    var inputElementBytes: [Int]
    /// Bytes of the weight's and the bias's dtypes (those present).
    var parameterElementBytes: [Int] = []
    /// A residual is added: x and the residual are both loaded before they are added.
    var residual = false
    /// LayerNorm with a bias.
    var bias = false
    /// LayerNorm: its registers leave no room for rows held in shared memory.
    var layer = false

    init(
        columns: Int, rows: Int, weightRows: Int = 1, vectorWidth: Int, rowElementBytes: Int,
        inputElementBytes: [Int]? = nil,
        parameterElementBytes: [Int] = [], residual: Bool = false, bias: Bool = false, layer: Bool = false
    ) {
        self.columns = columns
        self.rows = rows
        self.weightRows = weightRows
        self.vectorWidth = vectorWidth
        self.rowElementBytes = rowElementBytes
        self.inputElementBytes = inputElementBytes ?? [rowElementBytes]
        self.parameterElementBytes = parameterElementBytes
        self.residual = residual
        self.bias = bias
        self.layer = layer
    }

    var vectors: Int { (columns + vectorWidth - 1) / vectorWidth }
    var vectorBytes: Int { vectorWidth * rowElementBytes }

    // MARK: Tables

    /// Row data a thread holds in registers, in bytes of its storage dtype(s): the first row that matches
    /// (nil: any). Sub-warp rows keep their weight in registers too; a residual is loaded beside x before
    /// the two are added; LayerNorm's bias and staging (the next row's addresses) take registers of their own.
    static let rowBudgets: [(short: Bool?, residual: Bool?, biasOrStaged: Bool?, bytes: Int)] = [
        (short: true, residual: nil, biasOrStaged: nil, bytes: 64),
        (short: nil, residual: true, biasOrStaged: nil, bytes: 64),
        (short: nil, residual: nil, biasOrStaged: true, bytes: 96),
        (short: nil, residual: nil, biasOrStaged: nil, bytes: 128),
    ]

    /// Register caps (`__maxnreg__`) of every layout, without and with a residual; with the block size they
    /// fix the CTAs per SM (64K registers). Lower caps spilled and were slower; medium rows fit in 52-56.
    static let registerCaps: [Layout: (plain: Int, residual: Int)] = [
        .shortRows: (plain: 64, residual: 80),  // 4 CTAs of 256 threads; 80: 6 of 128 with a residual
        .oneBlock: (plain: 56, residual: 80),  // 9 CTAs of 128 threads, 18 of 64 (64 when staged with a bias)
        .cluster: (plain: 64, residual: 80),  // 2 CTAs of 512 threads
        .clusterWithSharedRows: (plain: 64, residual: 64),  // (no residual rows) 2 CTAs of 512 threads
        .largeBlockCluster: (plain: 64, residual: 64),  // (no residual rows) 1 CTA of 1024 threads
        .streaming: (plain: 64, residual: 64),  // 2 CTAs of 512 threads, a residual included
    ]
    /// Medium rows of LayerNorm with a bias, staged: the next row's addresses need a few registers more.
    static let stagedBiasRegisters = 64
    /// Few rows (decode): occupancy does not matter, latency does.
    static let decodeRegisters = 128

    /// Threads per CTA of sub-warp rows, before shrinking for few rows.
    static let shortRowBlock = 256
    /// The largest CTA of one row: residual rows keep 3 CTAs per SM at 80 registers.
    static let oneBlockThreads = (plain: 512, residual: 256)
    /// Threads per CTA of the cluster layouts, tried in order.
    static let clusterBlocks = (plain: [512], residual: [256, 512], sharedRows: [512], large: [1024])
    /// The most vectors a thread holds (the kernels' register arrays).
    static let maxVectorsPerThread = 16
    /// Vectors per thread in registers before half the threads are tried (see ``halved(_:short:gpu:)``), and
    /// the bound where that also fills idle vector slots.
    static let halvedVectors = (any: 6, fewerIdle: 8)
    /// Least threads per row where halving is tried: sub-warp rows, one CTA per row.
    static let halvedMinimumThreads = (short: 8, oneBlock: 64)
    /// Clusters with rows partly in shared memory: vectors per thread in all, of which in registers (the rest,
    /// up to 10, in shared memory: 80 KB per 512-thread CTA, so 2 CTAs per SM).
    static let heldVectors = (total: 16, inRegisters: 6)
    /// Streaming: bytes per thread and pass, and at most so many vectors (residual rows need room for two rows).
    static let streamingVectors = (plain: (bytes: 64, most: 4), residual: (bytes: 32, most: 2))
    /// Decode: threads per row up to this, two vectors each (a short chain of loads).
    static let decodeThreads = (maximum: 256, vectorsPerThread: 2)
    /// Grid waves of persistent teams: single CTAs (4, so that teams finishing early leave no long tail), clusters.
    static let persistentWaves = (singleBlock: 4, cluster: 1)
    /// Shared memory per CTA kept free of parameters and staged rows.
    static let sharedReserve = 4096

    /// The ways to lay a row out, in the order they are tried.
    enum Layout: CaseIterable {
        case shortRows, oneBlock, cluster, clusterWithSharedRows, largeBlockCluster, streaming
    }

    // MARK: Rules

    /// The layout and grid of this problem on `gpu`.
    func configuration(gpu: LaunchConfiguration.GPU) -> LaunchConfiguration {
        // Staging needs cp.async and words of at least 4 bytes (decided for good once the grid is known).
        let stageable =
            gpu.asyncCopies && gpu.tuning.staging > 0 && inputElementBytes.allSatisfy { vectorWidth * $0 >= 4 }
        // (The last layout, streaming, holds every row.)
        var c = Layout.allCases.lazy.compactMap { layout(for: $0, stageable: stageable, gpu: gpu) }.first!
        decode(&c, gpu: gpu)
        let perSM = LaunchConfiguration.residentBlocks(
            threads: c.blockSize, registers: c.maxRegisters,
            sharedBytes: LaunchConfiguration.forwardSharedBytes(c, rowElementBytes: rowElementBytes),
            gpu: gpu)
        let needed = (rows + c.rowsPerBlock - 1) / c.rowsPerBlock
        c.teams = teams(c, needed: needed, perSM: perSM, gpu: gpu)
        if shareParameters(c, gpu: gpu) {
            let bytes = c.vectorsPerThread * c.blockSize * vectorWidth * parameterElementBytes.reduce(0, +)
            if fits(bytes, c, perSM: perSM, gpu: gpu) { c.parameterBytes = bytes }
        }
        // Staging, when a team has rows after its first and the copy fits beside the CTAs the registers allow
        // (gains for one CTA per row and LayerNorm's clusters; lost for sub-warp rows and RMSNorm's clusters).
        if stageable, c.rowStorage == .registers, c.sharedVectorsPerThread == 0, needed > c.teams, c.rowsPerBlock == 1,
            c.clusterSize == 1 || layer
        {
            let bytes = c.vectorsPerThread * c.blockSize * vectorWidth * inputElementBytes.reduce(0, +)
            if fits(bytes + c.parameterBytes, c, perSM: perSM, gpu: gpu) { c.stagedBytes = bytes }
        }
        return c
    }

    /// Vectors per thread that `budget` bytes of registers hold (1 to 16).
    func vectors(budget: Int) -> Int { max(1, min(Self.maxVectorsPerThread, budget / vectorBytes)) }

    /// The row budget's first matching row of ``rowBudgets``.
    func rowBudget(short: Bool, staged: Bool) -> Int {
        Self.rowBudgets.first { row in
            (row.short.map { $0 == short } ?? true) && (row.residual.map { $0 == residual } ?? true)
                && (row.biasOrStaged.map { $0 == (bias || staged) } ?? true)
        }!.bytes
    }

    /// The register cap of `layout`.
    func registers(_ layout: Layout) -> Int {
        let caps = Self.registerCaps[layout]!
        return residual ? caps.residual : caps.plain
    }

    /// `layout` when it holds this row on `gpu` (nil: try the next).
    func layout(for layout: Layout, stageable: Bool, gpu: LaunchConfiguration.GPU) -> LaunchConfiguration? {
        let vectors = self.vectors
        let short = gpu.tuning.forwardVectors ?? self.vectors(budget: rowBudget(short: true, staged: false))
        let long = self.vectors(budget: rowBudget(short: false, staged: stageable && layer))
        let maxBlock = residual ? Self.oneBlockThreads.residual : Self.oneBlockThreads.plain
        var c = LaunchConfiguration(
            threadsPerRow: 1, rowsPerBlock: 1, clusterSize: 1, vectorWidth: vectorWidth, vectorsPerThread: 1,
            rowStorage: .registers, weightInRegisters: false, prefetch: false, sharedAccumulators: false,
            maxRegisters: registers(layout), teams: 1, segments: 1)
        func cluster(perThread: Int, blocks: [Int]) -> Bool {
            guard
                let (threads, size) = LaunchConfiguration.clusterLayout(
                    vectors: vectors, perThread: perThread, blocks: blocks, maxCluster: gpu.maxClusterSize)
            else { return false }
            c.threadsPerRow = threads
            c.clusterSize = size
            c.vectorsPerThread = (vectors + size * threads - 1) / (size * threads)
            return true
        }
        switch layout {
        case .shortRows:
            // A power-of-two group of at most 32 threads per row, several rows per CTA, the weight in registers
            // (RMSNorm without a residual: LayerNorm's bias would need too many).
            guard vectors <= threadsPerWarp * short else { return nil }
            c.threadsPerRow = halved(
                min(threadsPerWarp, nextPowerOfTwo((vectors + short - 1) / short)), short: true, gpu: gpu)
            c.rowsPerBlock = Self.shortRowBlock / c.threadsPerRow
            // Fewer rows per CTA until the grid has two CTAs per SM.
            while c.blockSize > threadsPerWarp, (rows + c.rowsPerBlock - 1) / c.rowsPerBlock < 2 * gpu.multiprocessors {
                c.rowsPerBlock /= 2
            }
            c.vectorsPerThread = (vectors + c.threadsPerRow - 1) / c.threadsPerRow
            c.weightInRegisters = !residual && !bias
        case .oneBlock:
            // One CTA per row, the row in registers.
            guard vectors <= maxBlock * short else { return nil }
            c.threadsPerRow = halved(
                min(maxBlock, max(threadsPerWarp, nextPowerOfTwo((vectors + short - 1) / short))), short: false,
                gpu: gpu)
            c.vectorsPerThread = (vectors + c.threadsPerRow - 1) / c.threadsPerRow
            if !residual, stageable, bias { c.maxRegisters = Self.stagedBiasRegisters }
        case .cluster:
            // A cluster of CTAs per row, each holding its part of the row in registers.
            guard cluster(perThread: long, blocks: residual ? Self.clusterBlocks.residual : Self.clusterBlocks.plain)
            else { return nil }
        case .clusterWithSharedRows:
            // RMSNorm, 16-byte vectors: 6 vectors per thread in registers and up to 10 more in shared memory.
            guard !residual, !bias, !layer, vectorBytes == 16, gpu.maxClusterSize > 1,
                cluster(perThread: Self.heldVectors.total, blocks: Self.clusterBlocks.sharedRows)
            else { return nil }
            let held = c.vectorsPerThread
            c.vectorsPerThread = min(Self.heldVectors.inRegisters, held)
            c.sharedVectorsPerThread = held - c.vectorsPerThread
        case .largeBlockCluster:
            // 1024 threads per CTA (1 CTA per SM), the row in registers.
            guard !residual, cluster(perThread: long, blocks: Self.clusterBlocks.large) else { return nil }
        case .streaming:
            // The largest cluster streams its parts of the row, pass by pass.
            let streaming = residual ? Self.streamingVectors.residual : Self.streamingVectors.plain
            c.threadsPerRow = Self.oneBlockThreads.plain
            c.clusterSize = gpu.maxClusterSize
            c.vectorsPerThread = max(1, min(streaming.most, streaming.bytes / vectorBytes))
            c.rowStorage = .streaming
            let perCTA = (vectors + c.clusterSize - 1) / c.clusterSize
            c.segments = (perCTA + c.threadsPerRow * c.vectorsPerThread - 1) / (c.threadsPerRow * c.vectorsPerThread)
        }
        return c
    }

    /// Half of `threads` per row for rows between powers of two, where each thread then holds at most 6
    /// vectors (7-8 where that leaves fewer vector slots idle): more rows in flight per SM than with many
    /// threads idle in their last vector. Sub-warp rows: where slots were idle, or for LayerNorm.
    func halved(_ threads: Int, short: Bool, gpu: LaunchConfiguration.GPU) -> Int {
        let minimum = short ? Self.halvedMinimumThreads.short : Self.halvedMinimumThreads.oneBlock
        guard gpu.tuning.forwardVectors == nil, !residual, vectorBytes == 16, threads >= minimum else { return threads }
        let perThread = (vectors + threads - 1) / threads, perHalf = (vectors + threads / 2 - 1) / (threads / 2)
        let fewerIdle = perHalf * (threads / 2) < perThread * threads
        if short { return perHalf <= Self.halvedVectors.any && (fewerIdle || layer) ? threads / 2 : threads }
        return perHalf <= Self.halvedVectors.any || (perHalf <= Self.halvedVectors.fewerIdle && fewerIdle)
            ? threads / 2 : threads
    }

    /// Few rows (decode, a row group per SM at most): the weight loaded with the row instead of after its
    /// reduction, and one CTA per row of up to 256 threads, two vectors each.
    func decode(_ c: inout LaunchConfiguration, gpu: LaunchConfiguration.GPU) {
        let rowGroups = (rows + c.rowsPerBlock - 1) / c.rowsPerBlock
        guard c.clusterSize == 1, c.rowStorage == .registers, rowGroups <= gpu.multiprocessors, c.blockSize <= 512
        else { return }
        c.weightInRegisters = true
        c.maxRegisters = Self.decodeRegisters
        if c.rowsPerBlock == 1 {
            let perThread = Self.decodeThreads.vectorsPerThread
            c.threadsPerRow = max(
                c.threadsPerRow, min(Self.decodeThreads.maximum, nextPowerOfTwo((vectors + perThread - 1) / perThread)))
            c.vectorsPerThread = (vectors + c.threadsPerRow - 1) / c.threadsPerRow
        }
        if let threads = gpu.tuning.decodeThreads, c.rowsPerBlock == 1, threads >= threadsPerWarp, threads <= 1024,
            (vectors + threads - 1) / threads <= Self.maxVectorsPerThread
        {
            c.threadsPerRow = threads
            c.vectorsPerThread = (vectors + threads - 1) / threads
        }
    }

    /// Teams in the grid, never more than the `needed` row groups. One CTA per row group: a grid of every
    /// row group (the hardware starts each CTA as one ends). Clusters, and LayerNorm rows in CTAs of which
    /// at most 2 fit per SM, are persistent: the resident teams (times waves) loop over rows.
    func teams(_ c: LaunchConfiguration, needed: Int, perSM: Int, gpu: LaunchConfiguration.GPU) -> Int {
        let persistent = c.clusterSize > 1 || (layer && perSM <= 2)
        let waves =
            gpu.tuning.forwardWaves
            ?? (persistent ? (c.clusterSize == 1 ? Self.persistentWaves.singleBlock : Self.persistentWaves.cluster) : 0)
        var teams = waves == 0 ? needed : max(1, min(needed, gpu.multiprocessors * perSM * waves / c.clusterSize))
        if c.weightInRegisters, weightRows > 1 {
            // A team's rows then keep their weight row when the grid's row step is a multiple of H.
            let unit = weightRows / greatestCommonDivisor(c.rowsPerBlock, weightRows)
            if teams >= unit { teams -= teams % unit }
        }
        return teams
    }

    /// The teams of a cluster layout `c` when only `residentClusters` clusters can be resident at once
    /// (the driver's count at launch): no more teams than that.
    static func teams(_ c: LaunchConfiguration, residentClusters: Int) -> Int { min(c.teams, residentClusters) }

    /// Whether the weight and bias go to shared memory, copied once: clusters (one weight row) of 8 CTAs or
    /// more, and LayerNorm's (weight and bias); RMSNorm in clusters of 2-4 lost.
    func shareParameters(_ c: LaunchConfiguration, gpu: LaunchConfiguration.GPU) -> Bool {
        gpu.asyncCopies && gpu.tuning.parameters && (c.clusterSize >= 8 || (c.clusterSize > 1 && bias))
            && c.rowStorage == .registers && c.sharedVectorsPerThread == 0 && weightRows == 1 && !c.weightInRegisters
            && !parameterElementBytes.isEmpty && parameterElementBytes.allSatisfy { vectorWidth * $0 >= 4 }
    }

    /// Whether `bytes` of dynamic shared memory per CTA fit beside the reserve and keep `perSM` CTAs per SM.
    func fits(_ bytes: Int, _ c: LaunchConfiguration, perSM: Int, gpu: LaunchConfiguration.GPU) -> Bool {
        bytes <= gpu.sharedMemoryPerBlock - Self.sharedReserve
            && LaunchConfiguration.residentBlocks(
                threads: c.blockSize, registers: c.maxRegisters, sharedBytes: bytes, gpu: gpu) >= perSM
    }
}

extension ForwardPlan {
    /// The plan of a forward problem whose tensors allow vectors of `vectorWidth` elements.
    init(_ problem: NormForwardProblem, vectorWidth: Int) {
        self.init(
            columns: problem.columns, rows: problem.rows, weightRows: problem.weightRows, vectorWidth: vectorWidth,
            // s is held in the residual output's dtype with a residual, else in x's.
            rowElementBytes: (problem.residualOutput?.dtype ?? problem.x.dtype).byteCount,
            inputElementBytes: [problem.x.dtype.byteCount] + (problem.residual.map { [$0.dtype.byteCount] } ?? []),
            parameterElementBytes: [problem.weight, problem.bias].compactMap { $0?.dtype.byteCount },
            residual: problem.residual != nil, bias: problem.bias != nil, layer: problem.kind == .layer)
    }
}
