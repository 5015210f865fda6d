import Synchronization

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

/// A CUDA translation unit as NVRTC gets it: the main file's text and the headers it includes by name.
struct KernelProgram: Sendable {
    /// The main file's name (shown in compile logs).
    let name: String
    /// The main file's text.
    let source: String
    /// `#include "NAME"` targets: (name, text), in the order given to `nvrtcCreateProgram`.
    let headers: [(name: String, text: String)]
    /// FNV-1a digest of every file's name and text (headers included), computed once: the disk cache's key,
    /// so that a changed header never reuses an image made from the old one.
    let digest: String

    init(name: String, source: String, headers: [(name: String, text: String)] = []) {
        self.name = name
        self.source = source
        self.headers = headers
        digest = Self.digest(of: [(name, source)] + headers)
    }

    /// The digest of files given as (name, text): each name and text with its length first, so that no two
    /// different lists of files give the same bytes.
    static func digest(of files: [(name: String, text: String)]) -> String {
        var bytes: [UInt8] = []
        for (name, text) in files {
            for part in [Array(name.utf8), Array(text.utf8)] {
                withUnsafeBytes(of: UInt64(part.count).littleEndian) { bytes += $0 }
                bytes += part
            }
        }
        return fnv1a64Hex(bytes)
    }
}

/// CUDA C source of one family of kernels, with the entry points a module of it exports.
struct KernelSource: Sendable {
    /// A short name, used in cache keys and compile logs.
    let name: String
    /// The translation unit, headers included.
    let program: KernelProgram
    /// The `extern "C"` kernels to look up after loading.
    let entryPoints: [String]

    init(name: String, program: KernelProgram, entryPoints: [String]) {
        self.name = name
        self.program = program
        self.entryPoints = entryPoints
    }

    /// The program's digest (every file, headers included).
    var digest: String { program.digest }
}

/// One specialization of a kernel source: the `-D` definitions that pick dtypes, variant and launch shape.
struct KernelRequest: Sendable {
    let source: KernelSource
    /// `NAME=VALUE` pairs, passed as `-DNAME=VALUE`.
    let definitions: [String]

    /// Identifies the specialization within one process (source name and definitions).
    var memoryKey: String { source.name + "|" + definitions.joined(separator: " ") }
}

/// A module loaded into one device's context, with its kernels. Unloaded in `deinit`.
final class LoadedModule: @unchecked Sendable {
    // @unchecked: immutable after init; the driver API is thread-safe.
    let gpu: CUDADevice
    let module: CUhandle
    /// Kernels by entry-point name.
    let functions: [String: CUhandle]

    /// Loads an image (CUBIN or PTX) and looks up `entryPoints`; raises each kernel's dynamic shared
    /// memory limit to the device's maximum, so launches may ask for up to ``CUDADevice/sharedMemoryPerBlock``
    /// minus the kernel's static shared memory.
    init(image: [UInt8], entryPoints: [String], gpu: CUDADevice) throws {
        self.gpu = gpu
        let driver = gpu.driver
        var loaded: CUhandle?
        try gpu.withContext {
            try driver.check("cuModuleLoadData(\(image.count) bytes, device \(gpu.index))") { driver in
                image.withUnsafeBytes { driver.cuModuleLoadData(&loaded, $0.baseAddress) }
            }
        }
        module = loaded!
        var functions: [String: CUhandle] = [:]
        do {
            try gpu.withContext {
                for name in entryPoints {
                    var function: CUhandle?
                    try driver.check("cuModuleGetFunction(\(name))") { $0.cuModuleGetFunction(&function, loaded, name) }
                    var staticShared: Int32 = 0
                    try driver.check("cuFuncGetAttribute(shared size, \(name))") {
                        $0.cuFuncGetAttribute(&staticShared, FunctionAttribute.sharedSizeBytes.rawValue, function)
                    }
                    let dynamicLimit = Int32(max(0, gpu.sharedMemoryPerBlock - Int(staticShared)))
                    try driver.check("cuFuncSetAttribute(max dynamic shared memory \(dynamicLimit), \(name))") {
                        $0.cuFuncSetAttribute(
                            function, FunctionAttribute.maxDynamicSharedSizeBytes.rawValue, dynamicLimit)
                    }
                    if gpu.architecture >= 90 {
                        // Clusters of up to 16 CTAs (8 is the portable limit); refused harmlessly elsewhere.
                        _ = driver.cuFuncSetAttribute(
                            function, FunctionAttribute.nonPortableClusterSizeAllowed.rawValue, 1)
                    }
                    functions[name] = function!
                }
            }
        } catch {
            _ = try? gpu.withContext { _ = driver.cuModuleUnload(loaded) }
            throw error
        }
        self.functions = functions
    }

    deinit {
        let gpu = self.gpu, module = self.module
        _ = try? gpu.withContext { _ = gpu.driver.cuModuleUnload(module) }
    }

    /// The kernel named `name`.
    func function(_ name: String) -> CUhandle {
        guard let function = functions[name] else { preconditionFailure("module has no kernel \(name)") }
        return function
    }
}

/// Compiled kernels: loaded modules per device and images in memory, and images on disk.
///
/// A lookup tries, in order: the module already loaded on the device; the image in memory; the image
/// on disk (in ``directory``, a file per key, the key a hash of source, GPU architecture, NVRTC version
/// and options); NVRTC. Disk entries are written atomically (a temporary file renamed into place)
/// and carry a header and checksum; an entry that fails them, or that the driver refuses to load,
/// is compiled again and overwritten, never trusted.
///
/// Operations use ``current``, ``shared`` unless a test installs its own cache. Loaded modules stay
/// loaded while the cache lives (``clearMemory()`` only forgets them), so a launch never races an unload.
final class KernelCache: Sendable {
    /// The process's cache, in ``defaultDirectory(environment:)``.
    static let shared = KernelCache(directory: defaultDirectory(environment: ProcessInfo.processInfo.environment))

    /// The cache operations use: ``shared`` unless replaced for a task (tests).
    @TaskLocal static var current: KernelCache = .shared

    /// The environment variable naming the cache folder.
    static let directoryVariable = EnvironmentVariable.kernelCache.name

    /// `FUSEDNORM_KERNEL_CACHE`, else `$XDG_CACHE_HOME/fusednorm/kernels`, else `~/.cache/fusednorm/kernels`;
    /// nil when none can be named (disk caching is then off).
    static func defaultDirectory(environment: [String: String]) -> String? {
        if let path = environment[directoryVariable], !path.isEmpty { return path }
        if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty { return "\(xdg)/fusednorm/kernels" }
        if let home = environment["HOME"], !home.isEmpty { return "\(home)/.cache/fusednorm/kernels" }
        return nil
    }

    /// Counts of what lookups did, for tests and `fusednorm` diagnostics.
    struct Statistics: Sendable, Equatable {
        /// Images made by NVRTC.
        var compilations = 0
        /// Seconds spent in NVRTC, in total.
        var compileSeconds = 0.0
        /// Images read from disk and accepted.
        var diskHits = 0
        /// Disk entries rejected (bad header or checksum, or refused by the driver) and rebuilt.
        var corruptEntries = 0
        /// Entries written to disk.
        var diskWrites = 0
    }

    /// The folder entries live in; nil: memory only.
    let directory: String?

    private struct State {
        var modules: [String: LoadedModule] = [:]
        var images: [String: [UInt8]] = [:]
        /// Modules forgotten by clearMemory, kept loaded until the cache goes.
        var retired: [LoadedModule] = []
        /// Launches made ready, by problem signature (their kernels are in `modules` or `retired`).
        var prepared: [PlanKey: PreparedLaunch] = [:]
        var statistics = Statistics()
    }
    private let state = Mutex(State())

    init(directory: String?) {
        self.directory = directory
    }

    /// What lookups have done so far.
    var statistics: Statistics { state.withLock { $0.statistics } }

    /// Forgets loaded modules and images in memory, so that the next lookups go to disk (or NVRTC).
    func clearMemory() {
        state.withLock { state in
            state.retired += state.modules.values
            state.modules = [:]
            state.images = [:]
            state.prepared = [:]
        }
    }

    /// The launch prepared for `key` before, or `make()`'s, remembered (at most 4096 signatures; then the
    /// memory starts over). The fast path of every operation: one lock, one lookup of integers.
    func preparedLaunch(_ key: PlanKey, make: () throws -> PreparedLaunch) throws -> PreparedLaunch {
        if let prepared = state.withLock({ $0.prepared[key] }) { return prepared }
        let prepared = try make()
        state.withLock { state in
            if state.prepared.count >= 4096 { state.prepared.removeAll(keepingCapacity: true) }
            state.prepared[key] = prepared
        }
        return prepared
    }

    /// The module for `request` on `gpu`: loaded before, or made now.
    /// - Throws: ``CUDAError`` when NVRTC or the driver fails (a compile error carries the log).
    func module(for request: KernelRequest, on gpu: CUDADevice, nvrtc: NVRTC) throws -> LoadedModule {
        let moduleKey = "\(gpu.index)|\(request.memoryKey)"
        if let module = state.withLock({ $0.modules[moduleKey] }) { return module }

        let target = nvrtc.target(forArchitecture: gpu.architecture)
        let options = [target.option, "--std=c++17"] + request.definitions.map { "-D" + $0 }
        let key = Self.diskKey(
            request, nvrtcVersion: nvrtc.versionString, options: options, architecture: gpu.architecture)

        var module: LoadedModule
        if let image = state.withLock({ $0.images[key] }) {
            module = try LoadedModule(image: image, entryPoints: request.source.entryPoints, gpu: gpu)
        } else if let image = readEntry(key),
            let loaded = try? LoadedModule(image: image, entryPoints: request.source.entryPoints, gpu: gpu)
        {
            state.withLock {
                $0.statistics.diskHits += 1
                $0.images[key] = image
            }
            module = loaded
        } else {
            if entryExists(key) { state.withLock { $0.statistics.corruptEntries += 1 } }
            let start = ContinuousClock.now
            let image = try nvrtc.compile(request.source.program, options: options, cubin: target.cubin)
            let seconds = (ContinuousClock.now - start) / .seconds(1)
            module = try LoadedModule(image: image, entryPoints: request.source.entryPoints, gpu: gpu)
            let written = writeEntry(key, image: image, cubin: target.cubin)
            state.withLock {
                $0.statistics.compilations += 1
                $0.statistics.compileSeconds += seconds
                if written { $0.statistics.diskWrites += 1 }
                $0.images[key] = image
            }
        }
        return state.withLock { state in
            if let existing = state.modules[moduleKey] {
                state.retired.append(module)
                return existing
            }
            state.modules[moduleKey] = module
            return module
        }
    }

    // MARK: Disk entries

    /// The name of a request's disk entry: a hash of the whole program (the main file and every header, see
    /// ``KernelProgram/digest``), NVRTC's version and the options, then the source's name and architecture.
    static func diskKey(_ request: KernelRequest, nvrtcVersion: String, options: [String], architecture: Int) -> String
    {
        fnv1a64Hex(Array((request.source.digest + "|" + nvrtcVersion + "|" + options.joined(separator: " ")).utf8))
            + "-" + request.source.name + "-sm\(architecture)"
    }

    /// "FNKCACHE", format version, flags (bit 0: CUBIN), payload length, payload FNV-1a checksum.
    private static let magic = Array("FNKCACHE".utf8)
    private static let formatVersion: UInt32 = 1
    private static let headerSize = 8 + 4 + 4 + 8 + 8

    private func path(_ key: String) -> String? { directory.map { "\($0)/\(key).bin" } }

    private func entryExists(_ key: String) -> Bool {
        path(key).map { FileManager.default.fileExists(atPath: $0) } ?? false
    }

    /// The image of a valid entry, or nil (missing, or failing header or checksum).
    private func readEntry(_ key: String) -> [UInt8]? {
        guard let path = path(key), let data = FileManager.default.contents(atPath: path) else { return nil }
        let bytes = [UInt8](data)
        guard bytes.count >= Self.headerSize, Array(bytes[0..<8]) == Self.magic else { return nil }
        func integer<T: FixedWidthInteger>(_ offset: Int, _ type: T.Type) -> T {
            bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: T.self).littleEndian }
        }
        guard integer(8, UInt32.self) == Self.formatVersion else { return nil }
        let length = integer(16, UInt64.self), checksum = integer(24, UInt64.self)
        guard length == UInt64(bytes.count - Self.headerSize) else { return nil }
        let payload = Array(bytes[Self.headerSize...])
        guard fnv1a64(payload) == checksum, !payload.isEmpty else { return nil }
        return payload
    }

    /// Writes an entry atomically: a temporary file in the same folder, renamed over the entry.
    /// - Returns: whether it was written (a read-only or missing folder only turns disk caching off).
    private func writeEntry(_ key: String, image: [UInt8], cubin: Bool) -> Bool {
        guard let directory, let path = path(key) else { return false }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            return false
        }
        var bytes = Self.magic
        func append<T: FixedWidthInteger>(_ value: T) {
            withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
        }
        append(Self.formatVersion)
        append(UInt32(cubin ? 1 : 0))
        append(UInt64(image.count))
        append(fnv1a64(image))
        bytes += image
        let temporary = "\(path).tmp-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        guard FileManager.default.createFile(atPath: temporary, contents: Data(bytes)) else { return false }
        guard rename(temporary, path) == 0 else {
            unlink(temporary)
            return false
        }
        return true
    }
}

/// FNV-1a, 64 bits, of `bytes`: the disk cache's key hash and checksum.
func fnv1a64(_ bytes: [UInt8], seed: UInt64 = 0xcbf2_9ce4_8422_2325) -> UInt64 {
    var hash = seed
    for byte in bytes {
        hash ^= UInt64(byte)
        hash &*= 0x0000_0100_0000_01b3
    }
    return hash
}

/// Two FNV-1a hashes with different seeds, as 32 hex digits (a 128-bit key: collisions are not a concern).
func fnv1a64Hex(_ bytes: [UInt8]) -> String {
    let first = fnv1a64(bytes), second = fnv1a64(bytes, seed: 0x6c62_272e_07bb_0142)
    return [first, second].map { value in
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }.joined()
}
