extension CUDADevice {
    /// The heuristic's view of this GPU.
    var launchShape: LaunchConfiguration.GPU {
        LaunchConfiguration.GPU(
            multiprocessors: multiprocessorCount, sharedMemoryPerBlock: sharedMemoryPerBlock,
            sharedMemoryPerMultiprocessor: sharedMemoryPerMultiprocessor,
            registersPerMultiprocessor: registersPerMultiprocessor,
            maxClusterSize: architecture >= 90 ? 16 : 1, asyncCopies: architecture >= 80, tuning: .environment)
    }

    /// Queues a kernel on `stream`; the context must be current (``withContext(_:)``).
    /// - Parameters:
    ///   - function: from a ``LoadedModule``.
    ///   - blocks: one-dimensional grid (kernels loop over their work, so any size of work fits); a multiple
    ///     of the kernel's compile-time cluster size.
    ///   - threads: threads per block.
    ///   - sharedBytes: dynamic shared memory per block.
    ///   - arguments: the kernel's parameter struct.
    ///   - name: for error messages.
    func launchInContext(
        _ function: CUhandle, blocks: Int, threads: Int, sharedBytes: Int, stream: CUhandle,
        arguments: inout KernelArguments, name: @autoclosure () -> String
    ) throws {
        guard blocks >= 1, blocks <= Int(Int32.max), sharedBytes <= sharedMemoryPerBlock else {
            throw CUDAError(
                library: .driver, code: 1, name: "CUDA_ERROR_INVALID_VALUE",
                operation:
                    "launch of \(name()) with \(blocks) blocks and \(sharedBytes) bytes of shared memory (limit \(sharedMemoryPerBlock))"
            )
        }
        try arguments.withPointer { block in
            var parameter: UnsafeMutableRawPointer? = block
            try driver.check(
                "cuLaunchKernel(\(name()), \(blocks) blocks of \(threads) threads, \(sharedBytes) bytes shared, device \(index))"
            ) {
                $0.cuLaunchKernel(
                    function, UInt32(blocks), 1, 1, UInt32(threads), 1, 1, UInt32(sharedBytes), stream, &parameter, nil)
            }
        }
    }

    /// Clusters of a kernel with a compile-time cluster size that can be resident at once with `threads`
    /// threads and `sharedBytes` of dynamic shared memory per CTA (`cuOccupancyMaxActiveClusters`); nil when
    /// the driver cannot tell. The context must be current.
    func activeClusters(_ function: CUhandle, clusterSize: Int, threads: Int, sharedBytes: Int) -> Int? {
        guard let query = driver.cuOccupancyMaxActiveClusters else { return nil }
        // CUlaunchConfig: grid x, y, z, block x, y, z, shared bytes (7 × UInt32), the stream at offset 32,
        // attrs at 40, numAttrs at 48: 56 bytes. No attributes: the cluster size is the kernel's own.
        var config = [UInt64](repeating: 0, count: 7)
        config.withUnsafeMutableBytes { bytes in
            let words = bytes.bindMemory(to: UInt32.self)
            words[0] = UInt32(clusterSize * multiprocessorCount)
            words[1] = 1
            words[2] = 1
            words[3] = UInt32(threads)
            words[4] = 1
            words[5] = 1
            words[6] = UInt32(sharedBytes)
        }
        var clusters: Int32 = 0
        let result = config.withUnsafeBytes { query(&clusters, function, $0.baseAddress) }
        return result == 0 ? Int(clusters) : nil
    }
}
