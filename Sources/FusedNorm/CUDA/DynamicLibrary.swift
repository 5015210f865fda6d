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

/// A shared library opened at run time with `dlopen`, closed with `dlclose` when the last reference goes.
///
/// The CUDA driver and NVRTC are loaded this way so that the package has no link-time CUDA dependency:
/// it builds, and everything but the GPU works, on machines without CUDA.
final class DynamicLibrary: @unchecked Sendable {
    // @unchecked: `handle` is immutable after init and `dlsym` is thread-safe.

    /// The path or name the library was opened with.
    let path: String
    private let handle: UnsafeMutableRawPointer

    private init(path: String, handle: UnsafeMutableRawPointer) {
        self.path = path
        self.handle = handle
    }

    deinit { dlclose(handle) }

    /// Opens a library by path, or by name through the loader's search path.
    /// - Returns: the library, or the loader's reason (`dlerror`) when it cannot be opened.
    static func open(_ path: String) -> Result<DynamicLibrary, LoadFailure> {
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            let reason = dlerror().map { String(cString: $0) } ?? "unknown error"
            return .failure(LoadFailure(path: path, reason: reason))
        }
        return .success(DynamicLibrary(path: path, handle: handle))
    }

    /// The address of the first of `names` that the library exports, or nil.
    func address(of names: [String]) -> UnsafeMutableRawPointer? {
        for name in names {
            if let address = dlsym(handle, name) { return address }
        }
        return nil
    }

    /// The file the loader resolved the library to: the mapping of `/proc/self/maps` that holds
    /// `symbol`'s address (Linux), or nil.
    func resolvedPath(symbol: String) -> String? {
        guard let address = dlsym(handle, symbol).map({ UInt(bitPattern: $0) }), let maps = Self.readMaps() else {
            return nil
        }
        for line in maps.split(separator: "\n") {
            // start-end perms offset device inode path
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 6, let dash = fields[0].firstIndex(of: "-"),
                let start = UInt(fields[0][..<dash], radix: 16),
                let end = UInt(fields[0][fields[0].index(after: dash)...], radix: 16),
                start <= address, address < end
            else { continue }
            return fields[5...].joined(separator: " ")
        }
        return nil
    }

    /// The whole of `/proc/self/maps`, read to its end (the file reports size 0, so whole-file readers
    /// that trust the size may stop early in a large process).
    private static func readMaps() -> String? {
        let descriptor = openForReading("/proc/self/maps")
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count <= 0 { break }
            bytes += chunk[0..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Why a library could not be opened.
    struct LoadFailure: Error, Sendable, CustomStringConvertible {
        var path: String
        var reason: String
        var description: String { "\(path): \(reason)" }
    }
}

/// Resolves C function pointers from a ``DynamicLibrary`` into typed `@convention(c)` values,
/// collecting the names that are missing so that one error can list them all.
struct SymbolResolver {
    let library: DynamicLibrary
    private(set) var missing: [String] = []

    init(_ library: DynamicLibrary) { self.library = library }

    /// The function exported under the first of `names` (versioned names such as `cuMemcpy2D_v2` first).
    /// A missing symbol is recorded and answered with a placeholder that must never be called;
    /// callers check ``missing`` before using the table.
    mutating func function<F>(_ names: String..., as type: F.Type = F.self) -> F {
        if let address = library.address(of: names) {
            return unsafeBitCast(address, to: F.self)
        }
        missing.append(names[0])
        return unsafeBitCast(Self.placeholderAddress, to: F.self)
    }

    /// Like ``function(_:as:)``, but a missing symbol is no error: nil.
    func optionalFunction<F>(_ names: String..., as type: F.Type = F.self) -> F? {
        library.address(of: names).map { unsafeBitCast($0, to: F.self) }
    }

    /// Non-null bits for the placeholder of a missing symbol (never called: a table with missing
    /// symbols is rejected as a whole).
    private static var placeholderAddress: UnsafeMutableRawPointer { UnsafeMutableRawPointer(bitPattern: 0x1)! }
}

/// `open(path, O_RDONLY)` (outside ``DynamicLibrary``, whose own `open` would shadow the C function).
private func openForReading(_ path: String) -> Int32 {
    open(path, O_RDONLY)
}
