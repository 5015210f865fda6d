#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

extension String {
    /// `arguments` formatted by C's `printf` rules (`%.2f`, `%.1e`, `%d`): what Foundation's
    /// `String(format:)` does for numbers, without linking the full Foundation (and its ICU data) into the
    /// static binary.
    init(printf format: String, _ arguments: CVarArg...) {
        var buffer = [CChar](repeating: 0, count: 64)
        let needed = Int(withVaList(arguments) { vsnprintf(&buffer, buffer.count, format, $0) })
        if needed >= buffer.count {
            buffer = [CChar](repeating: 0, count: needed + 1)
            _ = withVaList(arguments) { vsnprintf(&buffer, buffer.count, format, $0) }
        }
        self = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }
}

extension StringProtocol {
    /// The text without the spaces, tabs and newlines at its ends.
    var trimmingWhitespace: String {
        String(drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed())
    }
}
