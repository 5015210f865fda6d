import Testing

@testable import FusedNorm

/// What the CUDA backend says and does where it cannot run, and the status it reports where it can.
@Suite("CUDA availability")
struct CUDAAvailabilityTests {
    @Test("isUsable agrees with status.problem, and .best with both")
    func usableAgreesWithStatus() {
        let status = CUDA.status
        #expect(CUDABackend.isUsable == (status.problem == nil))
        #expect(Device.best == (status.problem == nil ? .cuda(0) : .cpu))
        if status.problem == nil {
            #expect(!status.devices.isEmpty && status.driverVersion != nil && status.nvrtcVersion != nil)
            #expect(
                status.nvrtcPath?.hasPrefix("/") == true,
                "NVRTC's path is the resolved file: \(status.nvrtcPath ?? "nil")")
        }
    }

    @Test(
        "without a driver, a .cuda tensor throws deviceUnavailable naming the driver",
        .enabled(if: CUDA.status.driverVersion == nil, "this machine has a CUDA driver"))
    func noDriver() throws {
        let problem = try #require(CUDA.status.problem)
        #expect(problem.contains("driver") && problem.contains("libcuda.so.1"), "\(problem)")
        do {
            _ = try Tensor([1, 2, 3], device: .cuda(0))
            Issue.record("a .cuda(0) tensor was made without a driver")
        } catch let FusedNormError.deviceUnavailable(device, reason) {
            #expect(device == .cuda(0))
            #expect(reason.contains("driver"), "\(reason)")
        }
        #expect(throws: FusedNormError.self) { try CUDAStream(device: .cuda(0)) }
        #expect(throws: FusedNormError.self) { try CUDAEvent(device: .cuda(0)) }
        #expect(throws: FusedNormError.self) { try Device.cuda(0).synchronize() }
        #expect(throws: FusedNormError.self) { try Tensor([1, 2], device: .cpu).to(.cuda(1)) }
    }

    @Test("with GPUs, each device is described and an index past the last throws", .needsCUDAGPU)
    func devicesDescribed() throws {
        let status = CUDA.status
        for (index, device) in status.devices.enumerated() {
            #expect(
                device.index == index && !device.name.isEmpty && device.multiprocessorCount > 0
                    && device.memoryBytes > 0)
            #expect(device.computeCapability.split(separator: ".").count == 2)
        }
        do {
            _ = try Tensor([1], device: .cuda(status.devices.count))
            Issue.record("a tensor on a device past the last was made")
        } catch let FusedNormError.deviceUnavailable(_, reason) {
            #expect(reason.contains("no CUDA device"), "\(reason)")
        }
    }

    @Test("NVRTC is looked for in the documented order")
    func nvrtcSearchOrder() {
        let (candidates, places) = NVRTC.searchLocations(environment: [
            "FUSEDNORM_NVRTC": "/opt/x/libnvrtc.so.99", "HOME": "/home/u", "VIRTUAL_ENV": "/venv",
        ])
        #expect(candidates.first == "/opt/x/libnvrtc.so.99")
        #expect(Array(candidates.dropFirst().prefix(3)) == ["libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12"])
        #expect(places.contains("/usr/local/cuda/lib64"))
        #expect(places.contains("/usr/local/cuda-*/targets/x86_64-linux/lib"))
        #expect(places.contains("/home/u/.local/lib/python3*/site-packages/nvidia/cuda_nvrtc/lib"))
        #expect(places.contains("/venv/lib/python3*/site-packages/nvidia/cuda_nvrtc/lib"))
        #expect(places.contains("/usr/local/lib/python3*/dist-packages/nvidia/cuda_nvrtc/lib"))
        let unset = NVRTC.searchLocations(environment: [:])
        #expect(unset.places.first == "FUSEDNORM_NVRTC (unset)")
        #expect(unset.candidates.first == "libnvrtc.so")
    }

    @Test("a library opened by name reports the file the loader chose")
    func resolvedLibraryPath() throws {
        let libc = try DynamicLibrary.open("libc.so.6").get()
        let path = try #require(libc.resolvedPath(symbol: "malloc"))
        #expect(path.hasPrefix("/") && path.contains("libc"), "\(path)")
        #expect(libc.resolvedPath(symbol: "no_such_symbol_in_libc") == nil)
        switch DynamicLibrary.open("libfusednorm-does-not-exist.so") {
        case .success: Issue.record("a missing library opened")
        case .failure(let failure): #expect(failure.description.contains("libfusednorm-does-not-exist.so"))
        }
    }

    @Test("the kernel cache folder follows FUSEDNORM_KERNEL_CACHE, then XDG_CACHE_HOME, then HOME")
    func cacheFolder() {
        #expect(
            KernelCache.defaultDirectory(environment: [
                "FUSEDNORM_KERNEL_CACHE": "/c", "XDG_CACHE_HOME": "/x", "HOME": "/h",
            ]) == "/c")
        #expect(
            KernelCache.defaultDirectory(environment: ["XDG_CACHE_HOME": "/x", "HOME": "/h"]) == "/x/fusednorm/kernels")
        #expect(KernelCache.defaultDirectory(environment: ["HOME": "/h"]) == "/h/.cache/fusednorm/kernels")
        #expect(KernelCache.defaultDirectory(environment: [:]) == nil)
        #expect(CUDA.status.kernelCacheDirectory == KernelCache.shared.directory)
    }

    @Test("CUDAError names the call, the code and its name, and carries a compile log")
    func errorDescription() {
        let error = CUDAError(
            library: .driver, code: 2, name: "CUDA_ERROR_OUT_OF_MEMORY",
            operation: "cuMemAllocAsync(64 bytes, device 0)")
        #expect(
            error.description == "cuMemAllocAsync(64 bytes, device 0) failed: CUDA_ERROR_OUT_OF_MEMORY (CUresult 2)")
        let compile = CUDAError(
            library: .nvrtc, code: 6, name: "NVRTC_ERROR_COMPILATION", operation: "nvrtcCompileProgram",
            log: "k.cu(3): error")
        #expect(compile.description.hasSuffix("compile log:\nk.cu(3): error"))
    }
}
