import ArgumentParser
import FusedNorm

/// The `--device` option every command that computes takes: `cpu`, `cuda`, `cuda:N` or `auto`
/// (``Device/best``, the default). The one place that turns a device name into a usable ``Device``.
struct DeviceOption: ParsableArguments {
    @Option(name: .long, help: "Where to run: cpu, cuda, cuda:N or auto (the GPU when one is usable, else the CPU).")
    var device: String = "auto"

    func validate() throws {
        guard Device(name: device) != nil else {
            throw ValidationError("unknown device '\(device)'; expected cpu, cuda, cuda:N or auto")
        }
    }

    /// The named device after checking the `FUSEDNORM_*` environment variables (all of them, whatever the
    /// device) and that the device can hold a tensor.
    /// - Throws: ``FusedNormError/invalidEnvironmentVariable(name:value:reason:)`` for a value the library
    ///   refuses; ``FusedNormError/deviceUnavailable(_:reason:)`` saying why, for example a GPU without a CUDA driver.
    func resolve() throws -> Device {
        try EnvironmentVariable.check()
        guard let resolved = Device(name: device) else {
            throw CLIError("unknown device '\(device)'; expected cpu, cuda, cuda:N or auto")
        }
        if case .cuda(let index) = resolved, let problem = CUDA.status.problem {
            throw FusedNormError.deviceUnavailable(.cuda(index), reason: problem)
        }
        // Allocating a tensor is the library's own check, which also covers a GPU index that is not there.
        _ = try Tensor(repeating: 0, shape: [1], device: resolved)
        return resolved
    }
}
