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

/// One `FUSEDNORM_*` environment variable: what it steers, the values it takes and its default.
///
/// ``all`` is the one table of every variable the library reads; each reading site reads through it, so
/// that a value out of range or that does not parse is refused with a message
/// (``FusedNormError/invalidEnvironmentVariable(name:value:reason:)``) instead of being ignored. An
/// operation checks the variables of its device's backend before it runs; `fusednorm` checks them all.
/// An empty value counts as unset.
public struct EnvironmentVariable: Sendable, Hashable, CustomStringConvertible {
    /// The values a variable takes.
    public enum Values: Sendable, Hashable {
        /// One of these words.
        case oneOf([String])
        /// A decimal integer in this range.
        case integer(ClosedRange<Int>)
        /// The path of a file that exists, or a bare library name (no `/`) for the loader to find.
        case library
        /// The path of a folder, made when missing.
        case folder
    }

    /// The backend that reads a variable.
    public enum Scope: String, Sendable, Hashable {
        case cpu
        case cuda
    }

    /// `FUSEDNORM_...`.
    public let name: String
    /// What it steers, in one sentence.
    public let meaning: String
    public let values: Values
    /// What happens when it is unset.
    public let defaultValue: String
    public let scope: Scope

    public var description: String { name }

    /// The accepted values in words, for messages and the docs' table.
    public var acceptedValues: String {
        switch values {
        case .oneOf(let words): words.joined(separator: ", ")
        case .integer(let range):
            range == 0...1 ? "0 or 1" : "an integer from \(range.lowerBound) to \(range.upperBound)"
        case .library: "the path of an existing file, or a library name without a slash for the loader to find"
        case .folder: "a folder path"
        }
    }

    /// This variable's value in `environment` after checking it; nil when unset or empty.
    /// - Throws: ``FusedNormError/invalidEnvironmentVariable(name:value:reason:)`` when the value is not accepted.
    public func value(in environment: [String: String]) throws -> String? {
        guard let value = environment[name], !value.isEmpty else { return nil }
        if let reason = problem(with: value) {
            throw FusedNormError.invalidEnvironmentVariable(name: name, value: value, reason: reason)
        }
        return value
    }

    /// The variable's integer value in `environment`; nil when unset.
    func integer(in environment: [String: String]) throws -> Int? {
        try value(in: environment).flatMap { Int($0) }
    }

    /// Why `value` is not accepted, or nil when it is.
    public func problem(with value: String) -> String? {
        switch values {
        case .oneOf(let words):
            return words.contains(value) ? nil : "expected one of \(acceptedValues)"
        case .integer(let range):
            guard let number = Int(value) else { return "not an integer; expected \(acceptedValues)" }
            return range.contains(number) ? nil : "out of range; expected \(acceptedValues)"
        case .library:
            guard value.contains("/") else { return nil }
            var status = stat()
            guard stat(value, &status) == 0 else { return "no such file; expected \(acceptedValues)" }
            return status.st_mode & S_IFMT == S_IFDIR ? "a folder; expected \(acceptedValues)" : nil
        case .folder:
            return nil
        }
    }
}

extension EnvironmentVariable {
    /// `FUSEDNORM_CPU_KERNELS`.
    public static let cpuKernels = EnvironmentVariable(
        name: "FUSEDNORM_CPU_KERNELS",
        meaning: "The CPU row kernels to run (the fastest this CPU has that is not faster than the one named).",
        values: .oneOf(["avx512", "avx2", "portable"]), defaultValue: "avx512 (the fastest this CPU runs)", scope: .cpu)
    /// `FUSEDNORM_NVRTC`.
    public static let nvrtc = EnvironmentVariable(
        name: "FUSEDNORM_NVRTC",
        meaning: "The NVRTC library (libnvrtc.so) to compile the GPU kernels with, ahead of every other place.",
        values: .library,
        defaultValue:
            "searched: the loader's path, the CUDA toolkit folders, then the nvidia wheels of Python site-packages",
        scope: .cuda)
    /// `FUSEDNORM_KERNEL_CACHE`.
    public static let kernelCache = EnvironmentVariable(
        name: "FUSEDNORM_KERNEL_CACHE", meaning: "The folder where compiled GPU kernels are kept between processes.",
        values: .folder, defaultValue: "$XDG_CACHE_HOME/fusednorm/kernels, else ~/.cache/fusednorm/kernels",
        scope: .cuda)
    /// `FUSEDNORM_CUDA_LOG`.
    public static let cudaLog = EnvironmentVariable(
        name: "FUSEDNORM_CUDA_LOG",
        meaning:
            "1: describe each GPU launch prepared on standard error (layout, registers, local memory, resident clusters).",
        values: .integer(0...1), defaultValue: "0 (silent)", scope: .cuda)
    /// `FUSEDNORM_CUDA_STAGE`.
    public static let cudaStage = EnvironmentVariable(
        name: "FUSEDNORM_CUDA_STAGE",
        meaning:
            "Tuning: stage rows in shared memory: 0 never, 1 where the heuristic does, 2 (backward) for every layout that holds rows.",
        values: .integer(0...2), defaultValue: "1", scope: .cuda)
    /// `FUSEDNORM_CUDA_WAVES`.
    public static let cudaWaves = EnvironmentVariable(
        name: "FUSEDNORM_CUDA_WAVES",
        meaning: "Tuning: forward teams = resident CTAs x this (0: one CTA per row group).",
        values: .integer(0...64),
        defaultValue: "the heuristic's (4 for LayerNorm's looping CTAs, 1 for clusters, else 0)", scope: .cuda)
    /// `FUSEDNORM_CUDA_DECODE_THREADS`.
    public static let cudaDecodeThreads = EnvironmentVariable(
        name: "FUSEDNORM_CUDA_DECODE_THREADS",
        meaning:
            "Tuning: threads per row of the few-row (decode) forward layout, where that leaves at most 16 vectors per thread.",
        values: .integer(32...1024), defaultValue: "the heuristic's", scope: .cuda)
    /// `FUSEDNORM_CUDA_BACKWARD_VECTORS`.
    public static let cudaBackwardVectors = EnvironmentVariable(
        name: "FUSEDNORM_CUDA_BACKWARD_VECTORS",
        meaning: "Tuning: x and dy vectors per thread held in registers by the backward pass.",
        values: .integer(1...8), defaultValue: "the heuristic's (64 bytes' worth)", scope: .cuda)
    /// `FUSEDNORM_CUDA_BACKWARD_WAVES`.
    public static let cudaBackwardWaves = EnvironmentVariable(
        name: "FUSEDNORM_CUDA_BACKWARD_WAVES", meaning: "Tuning: backward teams = resident teams x this.",
        values: .integer(1...16), defaultValue: "1", scope: .cuda)
    /// `FUSEDNORM_CUDA_BACKWARD_REGISTERS`.
    public static let cudaBackwardRegisters = EnvironmentVariable(
        name: "FUSEDNORM_CUDA_BACKWARD_REGISTERS", meaning: "Tuning: the register cap of the staged backward kernels.",
        values: .integer(32...255), defaultValue: "the heuristic's", scope: .cuda)
    /// `FUSEDNORM_CUDA_PARAMETERS`.
    public static let cudaParameters = EnvironmentVariable(
        name: "FUSEDNORM_CUDA_PARAMETERS",
        meaning:
            "Tuning: 1 keeps the forward pass's weight and bias in shared memory where the heuristic puts them there; 0 reloads them per row.",
        values: .integer(0...1), defaultValue: "1", scope: .cuda)
    /// `FUSEDNORM_CUDA_FORWARD_VECTORS`.
    public static let cudaForwardVectors = EnvironmentVariable(
        name: "FUSEDNORM_CUDA_FORWARD_VECTORS",
        meaning: "Tuning: vectors per thread of the forward pass on short and medium rows.",
        values: .integer(1...16), defaultValue: "the heuristic's (64 bytes' worth)", scope: .cuda)

    /// Every variable the library reads, in the order of the docs' table.
    public static let all: [EnvironmentVariable] = [
        cpuKernels, nvrtc, kernelCache, cudaLog, cudaStage, cudaWaves, cudaDecodeThreads, cudaBackwardVectors,
        cudaBackwardWaves, cudaBackwardRegisters, cudaParameters, cudaForwardVectors,
    ]
}

extension EnvironmentVariable {
    /// The prefix of every variable of the library.
    public static let prefix = "FUSEDNORM_"

    /// The process's `FUSEDNORM_*` variables, read once, when the library first needs them.
    static let process: [String: String] = ProcessInfo.processInfo.environment.filter { $0.key.hasPrefix(prefix) }

    /// Replaces the process's variables for a task (tests: a bad value without restarting the process).
    @TaskLocal static var override: [String: String]? = nil

    /// The `FUSEDNORM_*` variables in effect: the process's, or a test's `override`.
    public static var current: [String: String] { override ?? process }

    /// The variables set in `environment` (empty values left out), in table order, then any other
    /// `FUSEDNORM_*` name (which the library does not read: a typo?) with `variable` nil.
    public static func active(in environment: [String: String] = current) -> [(
        name: String, value: String, variable: EnvironmentVariable?
    )] {
        let known = all.compactMap { variable in
            environment[variable.name].flatMap { $0.isEmpty ? nil : (variable.name, $0, variable) }
        }
        let unknown = environment.filter { name, value in
            name.hasPrefix(prefix) && !value.isEmpty && !all.contains { $0.name == name }
        }
        .sorted { $0.key < $1.key }.map { (name: $0.key, value: $0.value, variable: EnvironmentVariable?.none) }
        return known + unknown
    }

    /// Checks every variable of `scope` (every variable when nil) in `environment`.
    /// - Throws: ``FusedNormError/invalidEnvironmentVariable(name:value:reason:)`` for the first one not accepted.
    public static func check(_ environment: [String: String] = current, scope: Scope? = nil) throws {
        for variable in all where scope == nil || variable.scope == scope {
            _ = try variable.value(in: environment)
        }
    }

    private static let processCPU = Result { try check(process, scope: .cpu) }
    private static let processCUDA = Result { try check(process, scope: .cuda) }

    /// Checks the variables of the backend that runs operations on `device` (the process's are checked
    /// once and the answer kept). Every operation calls this before it runs.
    static func check(for device: Device) throws {
        let scope: Scope = device == .cpu ? .cpu : .cuda
        if let override { return try check(override, scope: scope) }
        try (scope == .cpu ? processCPU : processCUDA).get()
    }
}
