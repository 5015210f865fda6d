/// The argument block of a kernel: the fields of its `…Params` struct, packed in order as 8-byte words
/// (pointers and `long long`s one word each, two `float`s sharing one), passed as the kernel's only
/// parameter. Fixed storage: building one allocates nothing.
struct KernelArguments {
    static let capacity = 24
    private var storage: (
        UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
        UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64
    ) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    private(set) var count = 0

    init() {}

    /// The words appended so far.
    var words: [UInt64] {
        var copy = storage
        return withUnsafeBytes(of: &copy) { Array($0.bindMemory(to: UInt64.self).prefix(count)) }
    }

    private mutating func append(word: UInt64) {
        precondition(count < Self.capacity, "kernel argument block overflow")
        withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: word, toByteOffset: count * 8, as: UInt64.self) }
        count += 1
    }

    /// A pointer field (`const void*`, `float*`); 0 for null.
    mutating func append(address: UInt?) { append(word: UInt64(address ?? 0)) }

    /// A `long long` field.
    mutating func append(_ value: Int) { append(word: UInt64(bitPattern: Int64(value))) }

    /// Two consecutive `float` fields.
    mutating func append(_ first: Float, _ second: Float) {
        append(word: UInt64(first.bitPattern) | UInt64(second.bitPattern) << 32)
    }

    /// Calls `body` with the block's address (valid only during the call).
    mutating func withPointer<R>(_ body: (UnsafeMutableRawPointer) throws -> R) rethrows -> R {
        try withUnsafeMutableBytes(of: &storage) { try body($0.baseAddress!) }
    }
}
