import Testing

@testable import FusedNorm

/// The bench yardstick's copy kernel (`copy_vectors`) compiles with NVRTC, and its grid covers a copy. Needs
/// NVRTC only, not a GPU: set FUSEDNORM_NVRTC on a machine without CUDA. Whether it is fast, and whether it
/// copies right, only a GPU can tell (CUDACopyKernelTests there).
@Suite(
    "CUDA copy kernel compiles",
    .enabled(if: CUDAEnvironment.shared.nvrtc != nil, "needs NVRTC (FUSEDNORM_NVRTC or a CUDA toolkit)"))
struct CUDACopyKernelCompileTests {
    @Test("for sm_90, sm_80 and sm_75", arguments: [90, 80, 75])
    func compiles(_ architecture: Int) throws {
        let nvrtc = try #require(CUDAEnvironment.shared.nvrtc)
        let request = CUDABackend.copyRequest
        let options = ["--gpu-architecture=sm_\(architecture)", "--std=c++17"] + request.definitions.map { "-D" + $0 }
        let cubin = try nvrtc.compile(request.source.program, options: options, cubin: true)
        #expect(!cubin.isEmpty)
        // The PTX: 16-byte loads through the non-coherent path and 16-byte stores, the entry point by its C name.
        let ptxOptions =
            ["--gpu-architecture=compute_\(architecture)", "--std=c++17"] + request.definitions.map { "-D" + $0 }
        let ptx = String(
            decoding: try nvrtc.compile(request.source.program, options: ptxOptions, cubin: false), as: UTF8.self)
        #expect(ptx.contains(".entry copy_vectors"))
        #expect(ptx.contains("ld.global.nc.v4.u32"))
        #expect(ptx.contains("st.global.v4.u32"))
    }
}

/// The copy kernel's grid, which needs no GPU.
struct CUDACopyKernelGridTests {
    @Test("8 blocks per SM for large copies, fewer for small ones, never 0")
    func blocks() {
        #expect(CUDABackend.copyBlocks(bytes: 1 << 30, multiprocessors: 132) == 8 * 132)
        #expect(CUDABackend.copyBlocks(bytes: 1, multiprocessors: 132) == 1)
        // One block moves 256 threads × 4 vectors × 16 bytes in a step.
        #expect(CUDABackend.copyBlocks(bytes: 16384 + 1, multiprocessors: 132) == 2)
        #expect(CUDABackend.copyBlocks(bytes: 16384, multiprocessors: 132) == 1)
    }
}
