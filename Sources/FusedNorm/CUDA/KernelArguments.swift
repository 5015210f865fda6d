/// The argument block of a kernel: a ``KernelParameters`` value's bytes (its `…Params` struct in CUDA C,
/// declared from the same Swift struct), passed as the kernel's only parameter. Fixed storage: building one
/// allocates nothing.
struct KernelArguments {
    static let capacity = 24
    private var storage:
        (
            UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
            UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64
        ) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    /// 8-byte words in use.
    let count: Int

    /// The block of `parameters`.
    init<Parameters: KernelParameters>(_ parameters: Parameters) {
        let size = MemoryLayout<Parameters>.size
        precondition(size <= Self.capacity * 8, "kernel argument block overflow")
        count = (size + 7) / 8
        withUnsafeMutableBytes(of: &storage) { block in
            withUnsafeBytes(of: parameters) { block.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: size) }
        }
    }

    /// The words in use.
    var words: [UInt64] {
        var copy = storage
        return withUnsafeBytes(of: &copy) { Array($0.bindMemory(to: UInt64.self).prefix(count)) }
    }

    /// Calls `body` with the block's address (valid only during the call).
    mutating func withPointer<R>(_ body: (UnsafeMutableRawPointer) throws -> R) rethrows -> R {
        try withUnsafeMutableBytes(of: &storage) { try body($0.baseAddress!) }
    }
}
