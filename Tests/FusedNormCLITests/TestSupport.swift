import Foundation
import Synchronization

@testable import FusedNormCLI

/// What one `fusednorm` invocation printed, and its exit status.
struct CommandOutcome {
    var status: Int32
    var output: String
    var error: String
}

/// Runs `fusednorm` with `arguments` through the same entry point as the binary, capturing what it prints.
func runFusedNorm(_ arguments: [String]) -> CommandOutcome {
    let output = Mutex(""), error = Mutex("")
    let console = Console(
        writeOutput: { text in output.withLock { $0 += text } },
        writeError: { text in error.withLock { $0 += text } },
        errorIsTerminal: false)
    let status = Console.$current.withValue(console) { FusedNormCommand.execute(arguments) }
    return CommandOutcome(status: status, output: output.withLock { $0 }, error: error.withLock { $0 })
}

/// A fresh folder under the system's temporary folder, removed by `remove()`.
struct TemporaryFolder {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "fusednorm-cli-tests-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    /// `name` inside the folder.
    func file(_ name: String) -> String { path + "/" + name }

    /// The names of the files in the folder (hidden ones included), sorted.
    func contents() throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: path).sorted() }

    func remove() { try? FileManager.default.removeItem(atPath: path) }

    /// Writes `array` as a .npy file named `name` and returns its path.
    @discardableResult
    func write(_ name: String, _ array: NPYArray, version: UInt8 = 1) throws -> String {
        try write(name, bytes: NPYFile.encode(array, version: version))
    }

    /// Writes raw bytes to a file named `name` and returns its path.
    @discardableResult
    func write(_ name: String, bytes: [UInt8]) throws -> String {
        try Data(bytes).write(to: URL(fileURLWithPath: file(name)))
        return file(name)
    }
}

/// Deterministic test values: a smooth, sign-changing pattern that is never all zeros.
func testValues(_ count: Int, seed: Int = 0) -> [Double] {
    (0..<count).map { index in sin(Double(index * 7 + seed * 13 + 1) * 0.37) * 2 + 0.1 }
}

/// The bytes of a .npy file built by hand: magic, version, a header padded to 64 bytes, then `data`.
func handmadeNPY(header: String, data: [UInt8], major: UInt8 = 1) -> [UInt8] {
    let lengthFieldSize = major == 1 ? 2 : 4
    var text = header
    let unpadded = 8 + lengthFieldSize + text.utf8.count + 1
    text += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
    var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [major, 0]
    for index in 0..<lengthFieldSize { bytes.append(UInt8(truncatingIfNeeded: text.utf8.count >> (8 * index))) }
    return bytes + Array(text.utf8) + data
}

/// Little-endian bytes of float32 values.
func float32Bytes(_ values: [Float]) -> [UInt8] {
    values.flatMap { value in withUnsafeBytes(of: value.bitPattern.littleEndian, Array.init) }
}
