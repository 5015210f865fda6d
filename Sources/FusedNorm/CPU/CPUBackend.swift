#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The CPU backend: host memory, and the normalization passes on ``CPUSettings/threadCount`` threads,
/// SIMD across each row (see ``CPUSettings/simdDescription``).
final class CPUBackend: Backend {
    static let shared = CPUBackend()
    var device: Device { .cpu }

    func allocate(byteCount: Int) throws -> any Buffer { HostBuffer(byteCount: byteCount) }

    func upload(rows: Int, rowBytes: Int, from source: UnsafeRawPointer, sourcePitch: Int, to address: UInt, pitch: Int)
        throws
    {
        Self.copyRows(rows, rowBytes, from: UInt(bitPattern: source), sourcePitch, to: address, pitch)
    }

    func download(
        rows: Int, rowBytes: Int, from address: UInt, pitch: Int, to destination: UnsafeMutableRawPointer,
        destinationPitch: Int
    ) throws {
        Self.copyRows(rows, rowBytes, from: address, pitch, to: UInt(bitPattern: destination), destinationPitch)
    }

    func copy(rows: Int, rowBytes: Int, from source: UInt, sourcePitch: Int, to destination: UInt, pitch: Int) throws {
        Self.copyRows(rows, rowBytes, from: source, sourcePitch, to: destination, pitch)
    }

    func synchronize() throws {}

    /// Bytes per piece of a contiguous copy: it is split into pieces of this size, spread over the threads.
    private static let copyPieceBytes = 1 << 20

    /// Copies `rows` rows of `rowBytes` bytes between host addresses with `memcpy`, split over
    /// ``CPUSettings/threadCount`` threads: a contiguous copy in chunks of pieces of ``copyPieceBytes``,
    /// a pitched copy in chunks of rows.
    private static func copyRows(
        _ rows: Int, _ rowBytes: Int, from source: UInt, _ sourcePitch: Int, to destination: UInt,
        _ destinationPitch: Int
    ) {
        guard rows > 0, rowBytes > 0 else { return }
        if rows == 1 || (sourcePitch == rowBytes && destinationPitch == rowBytes) {
            let total = rows * rowBytes
            let pieces = (total + copyPieceBytes - 1) / copyPieceBytes
            ParallelRows.run(count: pieces, workPerItem: copyPieceBytes / 4) { chunks in
                for range in chunks {
                    let start = range.lowerBound * copyPieceBytes, end = min(range.upperBound * copyPieceBytes, total)
                    memcpy(
                        UnsafeMutableRawPointer(bitPattern: destination + UInt(start))!,
                        UnsafeRawPointer(bitPattern: source + UInt(start))!, end - start)
                }
            }
            return
        }
        ParallelRows.run(count: rows, workPerItem: rowBytes / 4) { chunks in
            for row in chunks.joined() {
                memcpy(
                    UnsafeMutableRawPointer(bitPattern: destination + UInt(row * destinationPitch))!,
                    UnsafeRawPointer(bitPattern: source + UInt(row * sourcePitch))!, rowBytes)
            }
        }
    }
}
