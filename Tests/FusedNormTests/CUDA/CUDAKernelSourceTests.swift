import Foundation
import Testing

@testable import FusedNorm

/// The kernel sources as the binary carries them (embedded `.cu`/`.cuh` files), and the disk cache's key,
/// which must change with any file NVRTC reads, headers included. Needs no GPU and no NVRTC.
@Suite("CUDA kernel sources")
struct CUDAKernelSourceTests {
    /// The folder of the kernel files in the source tree.
    static let kernelFolder = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Sources/FusedNorm/CUDA/Kernels").path

    static let sources: [KernelSource] = [.normForward, .normBackward]

    static func key(_ source: KernelSource) -> String {
        KernelCache.diskKey(
            KernelRequest(source: source, definitions: ["VEC=8"]), nvrtcVersion: "13.0",
            options: ["--gpu-architecture=sm_90", "--std=c++17", "-DVEC=8"], architecture: 90)
    }

    @Test("the embedded files are the ones in the source tree, every .cuh a header of every program")
    func embeddedFiles() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.kernelFolder)
        let headers = names.filter { $0.hasSuffix(".cuh") }
        #expect(!headers.isEmpty)
        for source in Self.sources {
            let onDisk = try String(contentsOfFile: "\(Self.kernelFolder)/\(source.program.name)", encoding: .utf8)
            #expect(source.program.source == onDisk, "\(source.program.name) is stale in the binary")
            for header in headers {
                let text = try String(contentsOfFile: "\(Self.kernelFolder)/\(header)", encoding: .utf8)
                #expect(
                    source.program.headers.contains { $0.name == header && $0.text == text },
                    "\(source.name): \(header)")
            }
        }
    }

    @Test("every #include names a header of the program, so NVRTC reads no file the cache key misses")
    func includesAreHeaders() {
        for source in Self.sources {
            let program = source.program
            for text in [program.source] + program.headers.map(\.text) {
                for line in text.split(separator: "\n")
                where line.trimmingCharacters(in: .whitespaces).hasPrefix("#include") {
                    let parts = line.split(separator: "\"")
                    #expect(parts.count >= 2, "\(source.name): \(line) (only quoted includes of the program's headers)")
                    if parts.count >= 2 {
                        #expect(program.headers.contains { $0.name == parts[1] }, "\(source.name): \(line)")
                    }
                }
            }
        }
    }

    @Test("the disk cache key changes when any header changes, and not otherwise")
    func keyCoversHeaders() {
        for source in Self.sources {
            let program = source.program
            #expect(Self.key(source) == Self.key(source))
            #expect(program.headers.count >= 2)
            for index in program.headers.indices {
                var headers = program.headers
                headers[index].text += "\n// edited\n"
                let edited = KernelSource(
                    name: source.name,
                    program: KernelProgram(name: program.name, source: program.source, headers: headers),
                    entryPoints: source.entryPoints)
                #expect(
                    Self.key(edited) != Self.key(source), "\(source.name): editing \(headers[index].name) kept the key")
            }
            let mainEdited = KernelSource(
                name: source.name,
                program: KernelProgram(name: program.name, source: program.source + " ", headers: program.headers),
                entryPoints: source.entryPoints)
            #expect(Self.key(mainEdited) != Self.key(source))
        }
        // Text moved from a header into the main file is a different program.
        let one = KernelProgram(name: "a.cu", source: "#include \"h\"\nx", headers: [("h", "y")])
        let other = KernelProgram(name: "a.cu", source: "#include \"h\"\nxy", headers: [("h", "")])
        #expect(one.digest != other.digest)
    }
}
