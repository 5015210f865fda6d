import CFusedNormCPU

extension CPUBackend {
    /// Whether ``copyStreaming(bytes:from:to:)`` streams its stores on this CPU (AVX2), rather than calling `memcpy`.
    static var copyStreams: Bool { cfn_copy_streams() != 0 }

    /// Copies `bytes` bytes from `source` to `destination` (host addresses, not overlapping) with non-temporal
    /// stores, fenced before it returns (`cfn_copy_streaming`).
    static func copyStreaming(bytes: Int, from source: UInt, to destination: UInt) {
        cfn_copy_streaming(
            UnsafeMutableRawPointer(bitPattern: destination), UnsafeRawPointer(bitPattern: source), bytes)
    }
}
