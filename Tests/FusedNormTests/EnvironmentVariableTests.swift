import Foundation
import Testing

@testable import FusedNorm

@Suite("FUSEDNORM_* environment variables")
struct EnvironmentVariableTests {
    @Test("The table names every variable once, each with a meaning, its values and a default")
    func tableIsComplete() {
        let names = EnvironmentVariable.all.map(\.name)
        #expect(Set(names).count == names.count)
        #expect(names.count == 12)
        for variable in EnvironmentVariable.all {
            #expect(variable.name.hasPrefix(EnvironmentVariable.prefix))
            #expect(
                !variable.meaning.isEmpty && !variable.defaultValue.isEmpty && !variable.acceptedValues.isEmpty,
                "\(variable)")
        }
        // The reading sites read through the table.
        #expect(NVRTC.overrideVariable == EnvironmentVariable.nvrtc.name)
        #expect(KernelCache.directoryVariable == EnvironmentVariable.kernelCache.name)
    }

    @Test("The DocC article's table lists every variable with the code's accepted values")
    func articleListsEveryVariable() throws {
        let article = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(
                "Sources/FusedNorm/FusedNorm.docc/EnvironmentVariables.md")
        let rows = try String(contentsOf: article, encoding: .utf8).split(separator: "\n").filter {
            $0.hasPrefix("| `FUSEDNORM_")
        }
        #expect(rows.count == EnvironmentVariable.all.count)
        for variable in EnvironmentVariable.all {
            let row = rows.first { $0.hasPrefix("| `\(variable.name)` |") }
            #expect(row != nil, "\(variable.name) is not in the article's table")
            if case .integer(let range) = variable.values, let row {
                let words = range == 0...1 ? "`0` or `1`" : "an integer from \(range.lowerBound) to \(range.upperBound)"
                #expect(row.contains(words), "\(variable.name): the article does not say \(words)")
            }
        }
    }

    @Test(
        "Values out of range or that do not parse are refused with the name, the value and what is accepted",
        arguments: [
            ("FUSEDNORM_CPU_KERNELS", "avx3"), ("FUSEDNORM_CPU_KERNELS", "AVX2"), ("FUSEDNORM_CUDA_STAGE", "3"),
            ("FUSEDNORM_CUDA_STAGE", "one"), ("FUSEDNORM_CUDA_WAVES", "-1"), ("FUSEDNORM_CUDA_DECODE_THREADS", "16"),
            ("FUSEDNORM_CUDA_BACKWARD_VECTORS", "9"), ("FUSEDNORM_CUDA_BACKWARD_WAVES", "0"),
            ("FUSEDNORM_CUDA_BACKWARD_REGISTERS", "256"), ("FUSEDNORM_CUDA_PARAMETERS", "2"),
            ("FUSEDNORM_CUDA_FORWARD_VECTORS", "4 "), ("FUSEDNORM_CUDA_LOG", "yes"),
            ("FUSEDNORM_NVRTC", "/no/such/libnvrtc.so"), ("FUSEDNORM_NVRTC", "/"),
        ])
    func badValuesAreRefused(name: String, value: String) throws {
        let error = expectError(.invalidEnvironmentVariable, argument: name, "\(name)=\(value)") {
            try EnvironmentVariable.check([name: value])
        }
        let variable = try #require(EnvironmentVariable.all.first { $0.name == name })
        let description = error?.description ?? ""
        #expect(
            description.contains("\(name)=\(value)") && description.contains(variable.acceptedValues), "\(description)")
    }

    @Test("Accepted values pass, and an empty value counts as unset")
    func goodValuesPass() throws {
        let environment = [
            "FUSEDNORM_CPU_KERNELS": "portable", "FUSEDNORM_CUDA_STAGE": "0", "FUSEDNORM_CUDA_WAVES": "64",
            "FUSEDNORM_CUDA_DECODE_THREADS": "1024", "FUSEDNORM_CUDA_BACKWARD_VECTORS": "1",
            "FUSEDNORM_CUDA_BACKWARD_WAVES": "16",
            "FUSEDNORM_CUDA_BACKWARD_REGISTERS": "32", "FUSEDNORM_CUDA_PARAMETERS": "0",
            "FUSEDNORM_CUDA_FORWARD_VECTORS": "16",
            "FUSEDNORM_CUDA_LOG": "1", "FUSEDNORM_KERNEL_CACHE": "/tmp/any folder", "FUSEDNORM_NVRTC": "",
        ]
        try EnvironmentVariable.check(environment)
        #expect(try EnvironmentVariable.nvrtc.value(in: environment) == nil)
        // a bare library name is kept as it is, for the loader to search its path
        #expect(try EnvironmentVariable.nvrtc.value(in: ["FUSEDNORM_NVRTC": "libnvrtc.so.13"]) == "libnvrtc.so.13")
        #expect(try EnvironmentVariable.cudaWaves.integer(in: environment) == 64)
        let tuning = try LaunchConfiguration.Tuning(environment: environment)
        #expect(
            tuning.staging == 0 && tuning.forwardWaves == 64 && tuning.decodeThreads == 1024
                && tuning.backwardVectors == 1)
        #expect(
            tuning.backwardWaves == 16 && tuning.backwardRegisters == 32 && !tuning.parameters
                && tuning.forwardVectors == 16)
        #expect(try LaunchConfiguration.Tuning(environment: [:]) == LaunchConfiguration.Tuning())
        #expect(throws: FusedNormError.self) {
            try LaunchConfiguration.Tuning(environment: ["FUSEDNORM_CUDA_WAVES": "x"])
        }
    }

    @Test("active lists the variables set in table order, then unknown FUSEDNORM_ names")
    func activeVariables() {
        let active = EnvironmentVariable.active(in: [
            "FUSEDNORM_CUDA_WAVES": "2", "FUSEDNORM_CPU_KERNELS": "avx2", "FUSEDNORM_CPU_KERNEL": "avx2",
            "FUSEDNORM_NVRTC": "", "HOME": "/home/u",
        ])
        #expect(active.map(\.name) == ["FUSEDNORM_CPU_KERNELS", "FUSEDNORM_CUDA_WAVES", "FUSEDNORM_CPU_KERNEL"])
        #expect(active.map(\.value) == ["avx2", "2", "avx2"])
        #expect(active.last?.variable == nil && active.first?.variable == .cpuKernels)
    }

    @Test("An operation refuses a bad value of its backend's variables before it runs")
    func operationsRefuseBadValues() throws {
        let x = try Tensor.ones([2, 8])
        let output = try Tensor(repeating: 7, shape: [2, 8])
        EnvironmentVariable.$override.withValue(["FUSEDNORM_CPU_KERNELS": "fast"]) {
            expectError(.invalidEnvironmentVariable, argument: "FUSEDNORM_CPU_KERNELS", "rmsNorm") {
                try rmsNorm(x, output: output)
            }
            expectError(.invalidEnvironmentVariable, argument: "FUSEDNORM_CPU_KERNELS", "layerNormBackward") {
                try layerNormBackward(x, input: x)
            }
            expectError(.invalidEnvironmentVariable, argument: "FUSEDNORM_CPU_KERNELS", "RMSNorm layer") {
                try RMSNorm(dimensions: 8)(x)
            }
        }
        #expect(try output.toArray().allSatisfy { $0 == 7 }, "nothing was written")
        // A CUDA variable does not concern the CPU backend, but it does a GPU operation (checked before the
        // device is opened, so the check itself holds on a machine without a GPU as well).
        try EnvironmentVariable.$override.withValue(["FUSEDNORM_CUDA_STAGE": "5"]) { () throws in
            _ = try rmsNorm(x)
            try EnvironmentVariable.check(for: .cpu)
            expectError(.invalidEnvironmentVariable, argument: "FUSEDNORM_CUDA_STAGE", "the CUDA backend's check") {
                try EnvironmentVariable.check(for: .cuda(0))
            }
            if let gpuTensor = try? x.to(.cuda(0)) {
                expectError(.invalidEnvironmentVariable, argument: "FUSEDNORM_CUDA_STAGE", "rmsNorm on cuda:0") {
                    try rmsNorm(gpuTensor)
                }
            }
        }
    }
}
