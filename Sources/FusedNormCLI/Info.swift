import ArgumentParser
import FusedNorm

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `fusednorm info`: the devices FusedNorm finds and how it will use them.
struct InfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info", abstract: "Show the CPU and GPUs FusedNorm finds, and why a GPU is not usable.")

    func run() throws {
        let console = Console.current
        for line in cpuLines() + [""] + gpuLines() + [""] + environmentLines() + [
            "", "Default device (auto): \(Device.best)",
        ] {
            console.print(line)
        }
        // Everything is shown first; a value the library refuses then fails the command.
        try EnvironmentVariable.check()
    }

    /// The `FUSEDNORM_*` variables set, each with what it steers, or why its value is refused.
    func environmentLines() -> [String] {
        let active = EnvironmentVariable.active()
        guard !active.isEmpty else {
            return [
                "Environment",
                "  no FUSEDNORM_* variable set (\(EnvironmentVariable.all.count) are read; see the EnvironmentVariables article)",
            ]
        }
        return ["Environment"]
            + active.map { name, value, variable in
                let note: String
                if let variable {
                    note = variable.problem(with: value).map { "NOT VALID: \($0)" } ?? variable.meaning
                } else {
                    note = "not read by FusedNorm (a misspelling?)"
                }
                return "  \(name)=\(value): \(note)"
            }
    }

    /// The CPU: model, cores, threads and vector instructions.
    func cpuLines() -> [String] {
        let processor = ProcessorDescription.current
        var lines = ["CPU"]
        if let model = processor.model { lines.append("  model:         \(model)") }
        lines.append("  cores:         \(CPUSettings.coreCount)")
        lines.append("  threads:       \(CPUSettings.threadCount) (CPUSettings.threadCount)")
        if !processor.vectorFeatures.isEmpty {
            lines.append("  vector ISA:    \(processor.vectorFeatures.joined(separator: " "))")
        }
        lines.append("  kernels:       \(CPUSettings.kernels.rawValue): \(CPUSettings.simdDescription)")
        lines.append(
            "  SIMD width:    \(CPUSettings.vectorLanes) x Float (\(CPUSettings.vectorLanes * 32)-bit registers, CPUSettings.vectorLanes); kernels available here: \(CPUSettings.availableKernels.map(\.rawValue).joined(separator: ", "))"
        )
        return lines
    }

    /// The GPUs from ``CUDA/status``, or why none is usable.
    func gpuLines() -> [String] {
        let status = CUDA.status
        var lines = ["GPU (CUDA)"]
        lines.append("  driver:        \(status.driverVersion ?? "not loaded")")
        lines.append(
            "  NVRTC:         \(status.nvrtcVersion.map { "\($0)\(status.nvrtcPath.map { " (\($0))" } ?? "")" } ?? "not found")"
        )
        lines.append("  kernel cache:  \(status.kernelCacheDirectory ?? "none")")
        for device in status.devices {
            let memory = String(printf: "%.1f GiB", Double(device.memoryBytes) / Double(1 << 30))
            lines.append(
                "  cuda:\(device.index):        \(device.name), compute capability \(device.computeCapability), \(device.multiprocessorCount) SMs, \(memory)"
            )
        }
        if let problem = status.problem {
            lines.append("  not usable:    \(problem)")
        } else if status.devices.isEmpty {
            lines.append("  devices:       none")
        }
        return lines
    }
}

/// What Linux's /proc/cpuinfo says about the processor (nothing elsewhere).
struct ProcessorDescription {
    var model: String?
    /// The SIMD extensions relevant to the kernels, in the order they were introduced.
    var vectorFeatures: [String]

    static var current: ProcessorDescription {
        let text = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        var model: String?
        var flags: Set<String> = []
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingWhitespace }
            guard parts.count == 2 else { continue }
            switch parts[0] {
            case "model name" where model == nil: model = parts[1]
            case "flags" where flags.isEmpty, "Features" where flags.isEmpty:
                flags = Set(parts[1].split(separator: " ").map(String.init))
            default: break
            }
        }
        let known = [
            "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512vl", "avx512bw", "avx512dq", "avx512_fp16",
            "avx512_bf16", "asimd", "asimdhp", "sve", "bf16",
        ]
        return ProcessorDescription(model: model, vectorFeatures: known.filter(flags.contains))
    }
}
