#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `FUSEDNORM_CUDA_LOG=1`: each launch prepared is described on standard error (layout, registers, local
/// memory, resident clusters), for tuning.
enum CUDALaunchLog {
    static let enabled: Bool = getenv("FUSEDNORM_CUDA_LOG").map { String(cString: $0) == "1" } ?? false

    static func record(_ name: String, _ launch: PreparedLaunch, gpu: CUDADevice, activeClusters: Int?, problem: String) {
        guard enabled else { return }
        var registers: Int32 = 0, local: Int32 = 0
        _ = try? gpu.withContext {
            _ = gpu.driver.cuFuncGetAttribute(&registers, FunctionAttribute.numRegisters.rawValue, launch.function)
            _ = gpu.driver.cuFuncGetAttribute(&local, FunctionAttribute.localSizeBytes.rawValue, launch.function)
        }
        let line = "fusednorm plan \(name) \(problem): \(launch.configuration); \(launch.blocks) blocks of \(launch.threads), "
            + "\(launch.sharedBytes) B shared, \(registers) registers, \(local) B local"
            + (activeClusters.map { ", \($0) clusters resident" } ?? "") + "\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
    }
}

extension LaunchConfiguration.Tuning {
    /// The tuning switches this process was started with.
    static let environment: Self = {
        func integer(_ name: String) -> Int? { getenv(name).flatMap { Int(String(cString: $0)) } }
        var tuning = Self()
        if let staging = integer("FUSEDNORM_CUDA_STAGE"), (0...2).contains(staging) { tuning.staging = staging }
        if let waves = integer("FUSEDNORM_CUDA_WAVES"), waves >= 0 { tuning.forwardWaves = waves }
        tuning.decodeThreads = integer("FUSEDNORM_CUDA_DECODE_THREADS")
        if let vectors = integer("FUSEDNORM_CUDA_BACKWARD_VECTORS"), (1...8).contains(vectors) { tuning.backwardVectors = vectors }
        if let waves = integer("FUSEDNORM_CUDA_BACKWARD_WAVES"), (1...16).contains(waves) { tuning.backwardWaves = waves }
        if let registers = integer("FUSEDNORM_CUDA_BACKWARD_REGISTERS"), (32...255).contains(registers) { tuning.backwardRegisters = registers }
        if let parameters = integer("FUSEDNORM_CUDA_PARAMETERS") { tuning.parameters = parameters != 0 }
        if let vectors = integer("FUSEDNORM_CUDA_FORWARD_VECTORS"), (1...16).contains(vectors) { tuning.forwardVectors = vectors }
        return tuning
    }()
}
