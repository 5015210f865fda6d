import Foundation
import Testing

@testable import FusedNorm

/// The folder `FUSEDNORM_KERNEL_DUMP` names, if set.
private let kernelDumpFolder = ProcessInfo.processInfo.environment["FUSEDNORM_KERNEL_DUMP"].flatMap {
    $0.isEmpty ? nil : $0
}

/// Writes the PTX and CUBIN of every kernel plan of the "CUDA kernels compile" suite into the folder that
/// `FUSEDNORM_KERNEL_DUMP` names, so that two versions of the kernel sources can be compared without a GPU
/// (`cmp` of the two dumps' files; docs/notes/cuda-sources.md). Runs only when the variable is set.
@Suite(
    "CUDA kernel image dump",
    .enabled(
        if: kernelDumpFolder != nil && CUDAEnvironment.shared.nvrtc != nil, "set FUSEDNORM_KERNEL_DUMP (and NVRTC)"))
struct CUDAKernelImageDumpTests {

    /// PTX and CUBIN of one program, compiled once.
    static func images(_ nvrtc: NVRTC, program: KernelProgram, options: [String]) throws -> (
        ptx: [UInt8], cubin: [UInt8]
    ) {
        let compiled = try NVRTCProgram(nvrtc: nvrtc, program: program)
        let arguments = options.map { strdup($0) }
        defer { arguments.forEach { free($0) } }
        let pointers = arguments.map { UnsafePointer<CChar>($0) }
        try nvrtc.check("nvrtcCompileProgram", log: { compiled.log() }) { nvrtc in
            pointers.withUnsafeBufferPointer {
                nvrtc.nvrtcCompileProgram(compiled.handle, Int32(pointers.count), $0.baseAddress)
            }
        }
        var ptxSize = 0, cubinSize = 0
        try nvrtc.check("nvrtcGetPTXSize") { $0.nvrtcGetPTXSize(compiled.handle, &ptxSize) }
        try nvrtc.check("nvrtcGetCUBINSize") { $0.nvrtcGetCUBINSize(compiled.handle, &cubinSize) }
        var ptx = [UInt8](repeating: 0, count: ptxSize), cubin = [UInt8](repeating: 0, count: cubinSize)
        try nvrtc.check("nvrtcGetPTX") { nvrtc in
            ptx.withUnsafeMutableBytes {
                nvrtc.nvrtcGetPTX(compiled.handle, $0.baseAddress?.assumingMemoryBound(to: CChar.self))
            }
        }
        try nvrtc.check("nvrtcGetCUBIN") { nvrtc in
            cubin.withUnsafeMutableBytes {
                nvrtc.nvrtcGetCUBIN(compiled.handle, $0.baseAddress?.assumingMemoryBound(to: CChar.self))
            }
        }
        return (Array(ptx.prefix { $0 != 0 }), cubin)
    }

    /// The program of `source`: as embedded, or with its files read from the folder `FUSEDNORM_KERNEL_SOURCES`
    /// names (every `.cuh` there, and the generated Parameters.cuh), to compare kernel sources without a build.
    static func program(_ source: KernelSource) throws -> KernelProgram {
        guard let folder = ProcessInfo.processInfo.environment["FUSEDNORM_KERNEL_SOURCES"], !folder.isEmpty else {
            return source.program
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".cuh") }.sorted()
        let headers = try names.map { ($0, try String(contentsOfFile: "\(folder)/\($0)", encoding: .utf8)) }
        let main = try String(contentsOfFile: "\(folder)/\(source.program.name)", encoding: .utf8)
        return KernelProgram(
            name: source.program.name, source: main,
            headers: headers + [("Parameters.cuh", KernelFiles.parametersHeader)])
    }

    @Test("every sm_90 plan, and the sm_80 and sm_75 samples, as PTX and CUBIN", arguments: [90, 80, 75])
    func dump(_ architecture: Int) throws {
        let nvrtc = try #require(CUDAEnvironment.shared.nvrtc)
        let folder = try #require(kernelDumpFolder) + "/sm_\(architecture)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        var gpu = LaunchConfiguration.GPU.h200
        if architecture < 90 { gpu.maxClusterSize = 1 }
        if architecture < 80 { gpu.asyncCopies = false }
        let all = CUDAKernelCompileTests.plans(gpu: gpu)
        let plans = architecture == 90 ? all : all.enumerated().filter { $0.offset % 9 == 0 }.map(\.element)
        var manifest = ""
        for (index, (label, plan)) in plans.enumerated() {
            let options =
                ["--gpu-architecture=sm_\(architecture)", "--std=c++17"] + plan.request.definitions.map { "-D" + $0 }
            let name = String(format: "%03d", index)
            let (ptx, cubin) = try Self.images(nvrtc, program: try Self.program(plan.request.source), options: options)
            try Data(ptx).write(to: URL(fileURLWithPath: "\(folder)/\(name).ptx"))
            try Data(cubin).write(to: URL(fileURLWithPath: "\(folder)/\(name).cubin"))
            manifest += "\(name) \(label): \(options.joined(separator: " "))\n"
        }
        try manifest.write(toFile: "\(folder)/manifest.txt", atomically: true, encoding: .utf8)
    }
}
