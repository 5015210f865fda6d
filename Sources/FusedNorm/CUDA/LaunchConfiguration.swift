/// How a normalization kernel is laid over the GPU. Pure data, chosen by ``choose(for:columns:rows:weightRows:vectorWidth:rowElementBytes:accumulators:multiprocessors:sharedMemoryPerBlock:)``
/// and turned into `-D` definitions (compile-time shape) and a grid (run-time), apart from the kernels.
///
/// A row of N elements is split into vectors of ``vectorWidth`` elements; ``threadsPerRow`` threads
/// share a row (a sub-warp group for small N, a whole block for large N); a block holds
/// ``rowsPerBlock`` rows. Where the row lives between its reduction and its use:
/// - ``RowStorage/registers``: each thread keeps ``vectorsPerThread`` vectors in registers (one read);
/// - ``RowStorage/sharedMemory``: the row is kept in shared memory in its storage dtype (one read);
/// - ``RowStorage/global``: the row is read again from global memory / L2 (any N).
struct LaunchConfiguration: Hashable, Sendable, CustomStringConvertible {
    /// Which kernel the configuration is for.
    enum Pass: Sendable { case forward, backward }

    /// Where a row is kept between the reduction and the rescale (the kernel's `STORAGE` macro).
    enum RowStorage: Int, Sendable {
        case registers = 0
        case sharedMemory = 1
        case global = 2
    }

    var threadsPerRow: Int
    var rowsPerBlock: Int
    /// Elements per vector access (16 bytes for the narrowest dtype when alignment allows; 1 = scalar).
    var vectorWidth: Int
    /// Vectors each thread keeps in registers (``RowStorage/registers`` only; else 0).
    var vectorsPerThread: Int
    var rowStorage: RowStorage
    /// Backward, streaming: the per-block dweight/dbias sums live in shared memory (else in the
    /// global partial buffer).
    var sharedAccumulators: Bool
    /// Forward: blocks in the grid (each loops over rows). Backward: blocks per weight row (the
    /// number of partial sums per dweight element).
    var blocks: Int

    var blockSize: Int { threadsPerRow * rowsPerBlock }

    /// The compile-time part, as `-D` definitions.
    var definitions: [String] {
        [
            "TPR=\(threadsPerRow)", "RPB=\(rowsPerBlock)", "VEC=\(vectorWidth)", "VPT=\(max(vectorsPerThread, 1))",
            "STORAGE=\(rowStorage.rawValue)", "ACC_SHARED=\(sharedAccumulators ? 1 : 0)",
        ]
    }

    var description: String {
        "\(threadsPerRow) threads/row × \(rowsPerBlock) rows/block, vector \(vectorWidth), "
            + "\(rowStorage)\(rowStorage == .registers ? " (\(vectorsPerThread)/thread)" : ""), \(blocks) blocks"
    }

    /// Floats of row data a thread may hold in registers: the forward pass keeps s; the backward pass
    /// keeps x, dy, the weight and two accumulators, so it gets less.
    static func registerBudget(_ pass: Pass) -> Int { pass == .forward ? 32 : 16 }
    /// Threads per row (= block) of the streaming layouts.
    static func streamingThreads(_ pass: Pass) -> Int { pass == .forward ? 1024 : 512 }
    /// Largest block that keeps a row in registers.
    static let maxRegisterBlock = 512
    /// Threads per block for sub-warp rows, before shrinking for few rows.
    static let smallRowBlock = 256

    /// The one heuristic: chooses the layout from the problem's size and the GPU.
    /// - Parameters:
    ///   - pass: forward or backward.
    ///   - columns: N.
    ///   - rows: rows of the problem.
    ///   - weightRows: 1, or H for per-head weights (backward: blocks come per weight row).
    ///   - vectorWidth: from ``vectorWidth(columns:accesses:)``.
    ///   - rowElementBytes: bytes of the dtype a cached row is stored in (shared-memory layout).
    ///   - accumulators: backward: 0, 1 or 2 fp32 sums per column (dweight, dbias).
    ///   - multiprocessors: the GPU's SM count.
    ///   - sharedMemoryPerBlock: the most dynamic shared memory a block may use.
    static func choose(
        for pass: Pass, columns: Int, rows: Int, weightRows: Int = 1, vectorWidth: Int, rowElementBytes: Int,
        accumulators: Int = 0, multiprocessors: Int, sharedMemoryPerBlock: Int
    ) -> LaunchConfiguration {
        let vectors = (columns + vectorWidth - 1) / vectorWidth
        let maxVectorsPerThread = max(1, registerBudget(pass) / vectorWidth)
        let sharedBudget = sharedMemoryPerBlock - 1024  // leave room for the reductions' static arrays
        var configuration: LaunchConfiguration

        if vectors <= 32 * maxVectorsPerThread {
            // Small rows: a power-of-two group of at most 32 threads per row, several rows per block.
            let threads = min(32, nextPowerOfTwo((vectors + maxVectorsPerThread - 1) / maxVectorsPerThread))
            var rowsPerBlock = smallRowBlock / threads
            while rowsPerBlock * threads > 32, (rows + rowsPerBlock - 1) / rowsPerBlock < 2 * multiprocessors {
                rowsPerBlock /= 2
            }
            configuration = LaunchConfiguration(
                threadsPerRow: threads, rowsPerBlock: rowsPerBlock, vectorWidth: vectorWidth,
                vectorsPerThread: (vectors + threads - 1) / threads, rowStorage: .registers,
                sharedAccumulators: false, blocks: 0)
        } else if vectors <= maxRegisterBlock * maxVectorsPerThread {
            // Medium rows: one block per row, the row in registers.
            let threads = min(maxRegisterBlock, max(32, nextPowerOfTwo((vectors + maxVectorsPerThread - 1) / maxVectorsPerThread)))
            configuration = LaunchConfiguration(
                threadsPerRow: threads, rowsPerBlock: 1, vectorWidth: vectorWidth,
                vectorsPerThread: (vectors + threads - 1) / threads, rowStorage: .registers,
                sharedAccumulators: false, blocks: 0)
        } else {
            // Large rows: one block per row streaming over it; the row in shared memory when it fits
            // (forward), else read again.
            let fitsShared = pass == .forward && columns * rowElementBytes <= sharedBudget
            configuration = LaunchConfiguration(
                threadsPerRow: streamingThreads(pass), rowsPerBlock: 1, vectorWidth: vectorWidth, vectorsPerThread: 0,
                rowStorage: fitsShared ? .sharedMemory : .global,
                sharedAccumulators: accumulators > 0 && accumulators * columns * 4 <= sharedBudget, blocks: 0)
        }

        let residentBlocks = max(2, 2048 / configuration.blockSize)
        switch pass {
        case .forward:
            let needed = (rows + configuration.rowsPerBlock - 1) / configuration.rowsPerBlock
            configuration.blocks = max(1, min(needed, multiprocessors * residentBlocks * 4))
        case .backward:
            // Each block owns one weight row and a fixed share of its rows, and writes one partial sum
            // per column: few enough partials to keep the extra traffic small, enough blocks to fill the GPU.
            let rowsPerHead = (rows + weightRows - 1) / weightRows
            let groups = (rowsPerHead + configuration.rowsPerBlock - 1) / configuration.rowsPerBlock
            let target = multiprocessors * residentBlocks * (accumulators > 0 ? 1 : 4)
            configuration.blocks = max(1, min(groups, (target + weightRows - 1) / weightRows))
        }
        return configuration
    }

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
        let narrowest = accesses.map(\.elementBytes).min() ?? 4
        var width = 16 / narrowest
        while width > 1 {
            let aligned = columns % width == 0 && accesses.allSatisfy { access in
                let alignment = min(16, width * access.elementBytes)
                return access.address % UInt(alignment) == 0
                    && (access.rows <= 1 || (access.rowStride * access.elementBytes) % alignment == 0)
            }
            if aligned { break }
            width /= 2
        }
        return width
    }
}

/// The smallest power of two >= `value` (1 for values <= 1).
func nextPowerOfTwo(_ value: Int) -> Int {
    var power = 1
    while power < value { power <<= 1 }
    return power
}
