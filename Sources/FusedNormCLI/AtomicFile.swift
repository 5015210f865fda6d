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

/// Writes a group of files all or nothing: each goes to a temporary file beside its target, and the
/// temporary files are renamed into place only after every one was written. On failure every temporary
/// file is removed, so no output is left behind, not even partially written.
enum AtomicFiles {
    /// A file to write: where, and its bytes.
    struct Entry {
        var path: String
        var contents: [UInt8]
    }

    /// Writes every entry, or (when it throws) none.
    /// - Throws: `CLIError` when two entries name the same file or a file cannot be written.
    static func writeAll(_ entries: [Entry]) throws {
        let targets = entries.map { URL(fileURLWithPath: $0.path).standardizedFileURL.path }
        if let duplicate = targets.first(where: { target in targets.filter { $0 == target }.count > 1 }) {
            throw CLIError("\(duplicate) is named for two outputs")
        }
        var temporaryPaths: [String] = []
        defer { for path in temporaryPaths { unlink(path) } }
        for entry in entries {
            temporaryPaths.append(try writeTemporary(entry.contents, beside: entry.path))
        }
        for (index, entry) in entries.enumerated() {
            guard rename(temporaryPaths[index], entry.path) == 0 else {
                throw CLIError("cannot write \(entry.path): \(String(cString: strerror(errno)))")
            }
            temporaryPaths[index] = ""  // renamed: nothing to clean up
        }
        temporaryPaths.removeAll()
    }

    /// Writes `contents` to a new file in `target`'s folder named after it (`.NAME.RANDOM.tmp`) and returns its path.
    private static func writeTemporary(_ contents: [UInt8], beside target: String) throws -> String {
        let url = URL(fileURLWithPath: target)
        let folder = url.deletingLastPathComponent().path
        while true {
            let path =
                folder + "/." + url.lastPathComponent + "." + String(UInt32.random(in: 0...UInt32.max), radix: 36)
                + ".tmp"
            let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
            if descriptor < 0 {
                if errno == EEXIST { continue }
                throw CLIError("cannot write \(target): \(String(cString: strerror(errno)))")
            }
            defer { close(descriptor) }
            var written = 0
            while written < contents.count {
                let result = contents.withUnsafeBytes { raw in
                    write(descriptor, raw.baseAddress! + written, raw.count - written)
                }
                if result < 0 {
                    if errno == EINTR { continue }
                    let reason = String(cString: strerror(errno))
                    unlink(path)
                    throw CLIError("cannot write \(target): \(reason)")
                }
                written += result
            }
            return path
        }
    }
}
