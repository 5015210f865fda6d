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

/// NVRTC, the CUDA run-time compiler, loaded with `dlopen` from the first place it is found
/// (see ``searchLocations(environment:)``) and resolved once into a table of C function pointers.
struct NVRTC: @unchecked Sendable {
    // @unchecked: an immutable table of C function pointers into a library that `library` keeps
    // loaded; NVRTC is thread-safe for distinct programs.
    let library: DynamicLibrary
    /// `libnvrtc-builtins` from NVRTC's own folder, loaded first so that NVRTC's `dlopen` of it by
    /// name finds it even when that folder is not on the loader's path (Python wheels, toolkit folders).
    let companions: [DynamicLibrary]
    /// (major, minor), from `nvrtcVersion`.
    let version: (major: Int, minor: Int)
    /// The real architectures (e.g. 90 for sm_90) this NVRTC can make CUBIN for; empty when it cannot say.
    let supportedArchitectures: [Int]

    let nvrtcGetErrorString: @convention(c) (Int32) -> UnsafePointer<CChar>?
    let nvrtcCreateProgram:
        @convention(c) (
            UnsafeMutablePointer<OpaquePointer?>?, UnsafePointer<CChar>?, UnsafePointer<CChar>?, Int32,
            UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<UnsafePointer<CChar>?>?
        ) -> Int32
    let nvrtcDestroyProgram: @convention(c) (UnsafeMutablePointer<OpaquePointer?>?) -> Int32
    let nvrtcCompileProgram: @convention(c) (OpaquePointer?, Int32, UnsafePointer<UnsafePointer<CChar>?>?) -> Int32
    let nvrtcGetProgramLogSize: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int>?) -> Int32
    let nvrtcGetProgramLog: @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>?) -> Int32
    let nvrtcGetCUBINSize: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int>?) -> Int32
    let nvrtcGetCUBIN: @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>?) -> Int32
    let nvrtcGetPTXSize: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int>?) -> Int32
    let nvrtcGetPTX: @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>?) -> Int32

    /// The environment variable that names the NVRTC library to use, ahead of every other place.
    static let overrideVariable = EnvironmentVariable.nvrtc.name
    /// Names tried through the loader's search path (`LD_LIBRARY_PATH`, the ld.so cache).
    static let libraryNames = ["libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12"]

    /// `version` as "major.minor".
    var versionString: String { "\(version.major).\(version.minor)" }

    /// Where NVRTC is looked for, in order: the override variable, the loader's path, the CUDA
    /// toolkit folders, then the `nvidia` wheels of Python site-packages.
    /// - Returns: the candidates to `dlopen` (paths with globs expanded, or bare names for the loader),
    ///   and a line for each place, for the message when none loads.
    static func searchLocations(environment: [String: String]) -> (candidates: [String], places: [String]) {
        var candidates: [String] = []
        var places: [String] = []
        if let path = environment[overrideVariable], !path.isEmpty {
            candidates.append(path)
            places.append("\(overrideVariable)=\(path)")
        } else {
            places.append("\(overrideVariable) (unset)")
        }
        candidates += libraryNames
        places.append("the loader's path (\(libraryNames.joined(separator: ", ")))")

        var folderPatterns = [
            "/usr/local/cuda/lib64",
            "/usr/local/cuda/targets/x86_64-linux/lib",
            "/usr/local/cuda-*/targets/x86_64-linux/lib",
            "/usr/local/cuda-*/lib64",
        ]
        var pythonRoots = [
            "/usr/lib/python3*/site-packages", "/usr/lib/python3*/dist-packages",
            "/usr/local/lib/python3*/site-packages", "/usr/local/lib/python3*/dist-packages",
        ]
        if let home = environment["HOME"], !home.isEmpty {
            pythonRoots.append("\(home)/.local/lib/python3*/site-packages")
        }
        if let venv = environment["VIRTUAL_ENV"], !venv.isEmpty {
            pythonRoots.append("\(venv)/lib/python3*/site-packages")
        }
        for root in pythonRoots {
            folderPatterns.append("\(root)/nvidia/cuda_nvrtc/lib")
            folderPatterns.append("\(root)/nvidia/cu13/lib")
            folderPatterns.append("\(root)/nvidia/cu12/lib")
        }
        places += folderPatterns
        for folder in folderPatterns.flatMap(expandGlob) {
            let files = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
            // Newest first, comparing the version numbers after `libnvrtc.so.` as numbers (13.0 > 12.8 > 12.10 is wrong, 12.10 > 12.8).
            let version = { (name: String) in
                name.dropFirst("libnvrtc.so.".count).split(separator: ".").map { Int($0) ?? 0 }
            }
            let versioned = files.filter { $0.hasPrefix("libnvrtc.so.") }.sorted {
                version($1).lexicographicallyPrecedes(version($0))
            }
            for name in (files.contains("libnvrtc.so") ? ["libnvrtc.so"] : []) + versioned {
                candidates.append("\(folder)/\(name)")
            }
        }
        return (candidates, places)
    }

    /// Finds and loads NVRTC.
    /// - Returns: the table, or a message listing every place that was looked in.
    static func load(environment: [String: String] = ProcessInfo.processInfo.environment) -> Result<NVRTC, LoadFailure>
    {
        let (candidates, places) = searchLocations(environment: environment)
        var reasons: [String] = []
        for candidate in candidates {
            let companions = candidate.contains("/") ? loadBuiltins(besides: candidate) : []
            switch DynamicLibrary.open(candidate) {
            case .failure(let failure):
                if candidate == environment[overrideVariable] { reasons.append(failure.description) }
            case .success(let library):
                switch make(library, companions: companions) {
                case .success(let nvrtc): return .success(nvrtc)
                case .failure(let unusable): reasons.append("\(candidate): \(unusable.reason)")
                }
            }
        }
        return .failure(LoadFailure(places: places, reasons: reasons))
    }

    /// Why NVRTC could not be loaded: where it was looked for, and what failed where something was found.
    struct LoadFailure: Error, Sendable, CustomStringConvertible {
        var places: [String]
        var reasons: [String]
        var description: String {
            var text = "no NVRTC (the CUDA run-time compiler, libnvrtc.so): looked in " + places.joined(separator: "; ")
            if !reasons.isEmpty { text += ". Found but unusable: " + reasons.joined(separator: "; ") }
            return text + ". Set \(NVRTC.overrideVariable) to the library's path."
        }
    }

    /// Why a library that loaded is not a usable NVRTC.
    private struct Unusable: Error {
        var reason: String
    }

    /// Opens the `libnvrtc-builtins.so*` files in the folder of `path` (the `.alt` variants excepted).
    private static func loadBuiltins(besides path: String) -> [DynamicLibrary] {
        let folder = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        let files = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        return files.filter { $0.hasPrefix("libnvrtc-builtins.so") && !$0.contains(".alt.") }.sorted().compactMap {
            try? DynamicLibrary.open("\(folder)/\($0)").get()
        }
    }

    private static func make(_ library: DynamicLibrary, companions: [DynamicLibrary]) -> Result<NVRTC, Unusable> {
        var r = SymbolResolver(library)
        let versionFunction: @convention(c) (UnsafeMutablePointer<Int32>?, UnsafeMutablePointer<Int32>?) -> Int32 =
            r.function("nvrtcVersion")
        let getErrorString: @convention(c) (Int32) -> UnsafePointer<CChar>? = r.function("nvrtcGetErrorString")
        let createProgram:
            @convention(c) (
                UnsafeMutablePointer<OpaquePointer?>?, UnsafePointer<CChar>?, UnsafePointer<CChar>?, Int32,
                UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<UnsafePointer<CChar>?>?
            ) -> Int32 = r.function("nvrtcCreateProgram")
        let destroyProgram: @convention(c) (UnsafeMutablePointer<OpaquePointer?>?) -> Int32 = r.function(
            "nvrtcDestroyProgram")
        let compileProgram: @convention(c) (OpaquePointer?, Int32, UnsafePointer<UnsafePointer<CChar>?>?) -> Int32 =
            r.function("nvrtcCompileProgram")
        let logSize: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int>?) -> Int32 = r.function(
            "nvrtcGetProgramLogSize")
        let log: @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>?) -> Int32 = r.function(
            "nvrtcGetProgramLog")
        let cubinSize: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int>?) -> Int32 = r.function(
            "nvrtcGetCUBINSize")
        let cubin: @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>?) -> Int32 = r.function("nvrtcGetCUBIN")
        let ptxSize: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int>?) -> Int32 = r.function(
            "nvrtcGetPTXSize")
        let ptx: @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>?) -> Int32 = r.function("nvrtcGetPTX")
        guard r.missing.isEmpty else { return .failure(Unusable(reason: "lacks \(r.missing.joined(separator: ", "))")) }

        var major: Int32 = 0, minor: Int32 = 0
        guard versionFunction(&major, &minor) == 0 else { return .failure(Unusable(reason: "nvrtcVersion failed")) }

        var architectures: [Int] = []
        let countFunction: (@convention(c) (UnsafeMutablePointer<Int32>?) -> Int32)? =
            r.optionalFunction("nvrtcGetNumSupportedArchs")
        let listFunction: (@convention(c) (UnsafeMutablePointer<Int32>?) -> Int32)? =
            r.optionalFunction("nvrtcGetSupportedArchs")
        if let countFunction, let listFunction {
            var count: Int32 = 0
            if countFunction(&count) == 0, count > 0 {
                var list = [Int32](repeating: 0, count: Int(count))
                if listFunction(&list) == 0 { architectures = list.map(Int.init) }
            }
        }
        return .success(
            NVRTC(
                library: library, companions: companions, version: (Int(major), Int(minor)),
                supportedArchitectures: architectures,
                nvrtcGetErrorString: getErrorString, nvrtcCreateProgram: createProgram,
                nvrtcDestroyProgram: destroyProgram, nvrtcCompileProgram: compileProgram,
                nvrtcGetProgramLogSize: logSize, nvrtcGetProgramLog: log, nvrtcGetCUBINSize: cubinSize,
                nvrtcGetCUBIN: cubin, nvrtcGetPTXSize: ptxSize, nvrtcGetPTX: ptx))
    }

    /// Runs one NVRTC call and throws a ``CUDAError`` when it does not return `NVRTC_SUCCESS`.
    @inline(__always)
    func check(_ operation: @autoclosure () -> String, log: () -> String? = { nil }, _ call: (NVRTC) -> Int32) throws {
        let result = call(self)
        if result != 0 {
            let name = nvrtcGetErrorString(result).map { String(cString: $0) } ?? "nvrtcResult \(result)"
            throw CUDAError(library: .nvrtc, code: result, name: name, operation: operation(), log: log())
        }
    }

    /// What NVRTC is asked to make for a GPU: CUBIN for its own architecture when this NVRTC knows it,
    /// else PTX for the newest architecture it knows below (which the driver compiles at load).
    func target(forArchitecture architecture: Int) -> (option: String, cubin: Bool) {
        if supportedArchitectures.isEmpty || supportedArchitectures.contains(architecture) {
            return ("--gpu-architecture=sm_\(architecture)", true)
        }
        let older = supportedArchitectures.filter { $0 <= architecture }.max() ?? supportedArchitectures.min()!
        return ("--gpu-architecture=compute_\(older)", false)
    }

    /// Compiles a CUDA C program into a loadable image.
    /// - Parameters:
    ///   - program: the main file and the headers it includes.
    ///   - options: NVRTC options, the `--gpu-architecture` one included.
    ///   - cubin: true for CUBIN (`nvrtcGetCUBIN`), false for PTX.
    /// - Returns: the image bytes (PTX ends with its NUL).
    /// - Throws: ``CUDAError`` with the whole compile log when compilation fails.
    func compile(_ kernelProgram: KernelProgram, options: [String], cubin: Bool) throws -> [UInt8] {
        let name = kernelProgram.name
        let program = try NVRTCProgram(nvrtc: self, program: kernelProgram)
        let arguments = options.map { strdup($0) }
        defer { arguments.forEach { free($0) } }
        let pointers = arguments.map { UnsafePointer<CChar>($0) }
        try check("nvrtcCompileProgram(\(name) \(options.joined(separator: " ")))", log: { program.log() }) { nvrtc in
            pointers.withUnsafeBufferPointer {
                nvrtc.nvrtcCompileProgram(program.handle, Int32(pointers.count), $0.baseAddress)
            }
        }
        var size = 0
        try check(cubin ? "nvrtcGetCUBINSize" : "nvrtcGetPTXSize") {
            cubin ? $0.nvrtcGetCUBINSize(program.handle, &size) : $0.nvrtcGetPTXSize(program.handle, &size)
        }
        var image = [UInt8](repeating: 0, count: size)
        try check(cubin ? "nvrtcGetCUBIN" : "nvrtcGetPTX") { nvrtc in
            image.withUnsafeMutableBytes { raw in
                let pointer = raw.baseAddress?.assumingMemoryBound(to: CChar.self)
                return cubin ? nvrtc.nvrtcGetCUBIN(program.handle, pointer) : nvrtc.nvrtcGetPTX(program.handle, pointer)
            }
        }
        return image
    }
}

/// One NVRTC program, destroyed in `deinit`.
final class NVRTCProgram {
    let nvrtc: NVRTC
    let handle: OpaquePointer?

    /// Creates the program of `program`'s main file, its headers given by name.
    init(nvrtc: NVRTC, program: KernelProgram) throws {
        self.nvrtc = nvrtc
        let texts = program.headers.map { strdup($0.text) }, names = program.headers.map { strdup($0.name) }
        defer { (texts + names).forEach { free($0) } }
        let textPointers = texts.map { UnsafePointer<CChar>($0) }, namePointers = names.map { UnsafePointer<CChar>($0) }
        var handle: OpaquePointer?
        try nvrtc.check("nvrtcCreateProgram(\(program.name))") { nvrtc in
            textPointers.withUnsafeBufferPointer { textBuffer in
                namePointers.withUnsafeBufferPointer { nameBuffer in
                    nvrtc.nvrtcCreateProgram(
                        &handle, program.source, program.name, Int32(texts.count), textBuffer.baseAddress,
                        nameBuffer.baseAddress)
                }
            }
        }
        self.handle = handle
    }

    deinit {
        var handle = self.handle
        _ = nvrtc.nvrtcDestroyProgram(&handle)
    }

    /// The compile log (warnings and errors), empty when there is none.
    func log() -> String {
        var size = 0
        guard nvrtc.nvrtcGetProgramLogSize(handle, &size) == 0, size > 1 else { return "" }
        var bytes = [CChar](repeating: 0, count: size)
        guard nvrtc.nvrtcGetProgramLog(handle, &bytes) == 0 else { return "" }
        return bytes.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }
}

/// The paths a shell glob pattern matches (the pattern itself when it has no wildcard and exists).
func expandGlob(_ pattern: String) -> [String] {
    guard pattern.contains("*") else {
        return FileManager.default.fileExists(atPath: pattern) ? [pattern] : []
    }
    var result = glob_t()
    defer { globfree(&result) }
    guard glob(pattern, 0, nil, &result) == 0 else { return [] }
    return (0..<Int(result.gl_pathc)).compactMap { index in
        result.gl_pathv[index].map { String(cString: $0) }
    }
}
