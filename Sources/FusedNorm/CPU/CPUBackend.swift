#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The CPU backend: host memory, and the normalization passes on every core.
final class CPUBackend: Backend {
    static let shared = CPUBackend()
    var device: Device { .cpu }

    func allocate(byteCount: Int) throws -> any Buffer { HostBuffer(byteCount: byteCount) }

    func upload(rows: Int, rowBytes: Int, from source: UnsafeRawPointer, sourcePitch: Int, to address: UInt, pitch: Int) throws {
        copyRows(rows, rowBytes, from: source, sourcePitch, to: UnsafeMutableRawPointer(bitPattern: address)!, pitch)
    }

    func download(rows: Int, rowBytes: Int, from address: UInt, pitch: Int, to destination: UnsafeMutableRawPointer, destinationPitch: Int) throws {
        copyRows(rows, rowBytes, from: UnsafeRawPointer(bitPattern: address)!, pitch, to: destination, destinationPitch)
    }

    func copy(rows: Int, rowBytes: Int, from source: UInt, sourcePitch: Int, to destination: UInt, pitch: Int) throws {
        copyRows(rows, rowBytes, from: UnsafeRawPointer(bitPattern: source)!, sourcePitch, to: UnsafeMutableRawPointer(bitPattern: destination)!, pitch)
    }

    func synchronize() throws {}

    private func copyRows(_ rows: Int, _ rowBytes: Int, from source: UnsafeRawPointer, _ sourcePitch: Int, to destination: UnsafeMutableRawPointer, _ destinationPitch: Int) {
        if sourcePitch == rowBytes, destinationPitch == rowBytes {
            memcpy(destination, source, rows * rowBytes)
            return
        }
        for row in 0..<rows {
            memcpy(destination + row * destinationPitch, source + row * sourcePitch, rowBytes)
        }
    }
}
