#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `FUSEDNORM_CUDA_LOG=1` (``EnvironmentVariable/cudaLog``): each launch prepared is described on standard
/// error (layout, registers, local memory, resident clusters), for tuning.
enum CUDALaunchLog {
    static let enabled: Bool = (try? EnvironmentVariable.cudaLog.integer(in: EnvironmentVariable.process)) == 1

    static func record(_ name: String, _ launch: PreparedLaunch, gpu: CUDADevice, activeClusters: Int?, problem: String)
    {
        guard enabled else { return }
        var registers: Int32 = 0, local: Int32 = 0
        _ = try? gpu.withContext {
            _ = gpu.driver.cuFuncGetAttribute(&registers, FunctionAttribute.numRegisters.rawValue, launch.function)
            _ = gpu.driver.cuFuncGetAttribute(&local, FunctionAttribute.localSizeBytes.rawValue, launch.function)
        }
        let line =
            "fusednorm plan \(name) \(problem): \(launch.configuration); \(launch.blocks) blocks of \(launch.threads), "
            + "\(launch.sharedBytes) B shared, \(registers) registers, \(local) B local"
            + (activeClusters.map { ", \($0) clusters resident" } ?? "") + "\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
    }
}

extension LaunchConfiguration.Tuning {
    /// The tuning switches this process was started with (the defaults where one is not accepted: operations
    /// on a GPU then throw before they launch, see ``EnvironmentVariable/check(for:)``).
    static let environment: Self = (try? Self(environment: EnvironmentVariable.process)) ?? Self()

    /// The switches `environment` sets (``EnvironmentVariable``'s `FUSEDNORM_CUDA_*` tuning entries).
    /// - Throws: ``FusedNormError/invalidEnvironmentVariable(name:value:reason:)`` for a value out of range.
    init(environment: [String: String]) throws {
        self.init()
        if let staging = try EnvironmentVariable.cudaStage.integer(in: environment) { self.staging = staging }
        if let waves = try EnvironmentVariable.cudaWaves.integer(in: environment) { forwardWaves = waves }
        decodeThreads = try EnvironmentVariable.cudaDecodeThreads.integer(in: environment)
        backwardVectors = try EnvironmentVariable.cudaBackwardVectors.integer(in: environment)
        if let waves = try EnvironmentVariable.cudaBackwardWaves.integer(in: environment) { backwardWaves = waves }
        backwardRegisters = try EnvironmentVariable.cudaBackwardRegisters.integer(in: environment)
        if let parameters = try EnvironmentVariable.cudaParameters.integer(in: environment) {
            self.parameters = parameters == 1
        }
        forwardVectors = try EnvironmentVariable.cudaForwardVectors.integer(in: environment)
    }
}
