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

/// Where commands write their output (standard output) and their errors and progress (standard error).
///
/// Commands write through ``Console/current``, a task-local value, so that tests can capture what a
/// command prints while running it through the same code path as the `fusednorm` binary.
struct Console: Sendable {
    /// Writes text to standard output, as is.
    var writeOutput: @Sendable (String) -> Void
    /// Writes text to standard error, as is.
    var writeError: @Sendable (String) -> Void
    /// Whether standard error is a terminal, where progress lines are redrawn in place.
    var errorIsTerminal: Bool

    /// The process's standard output and standard error.
    static let standard = Console(
        writeOutput: { text in writeAll(text, to: STDOUT_FILENO) },
        writeError: { text in writeAll(text, to: STDERR_FILENO) },
        errorIsTerminal: isatty(STDERR_FILENO) != 0)

    /// The console of the running command.
    @TaskLocal static var current: Console = .standard

    /// Writes `line` and a newline to standard output.
    func print(_ line: String = "") { writeOutput(line + "\n") }

    /// Writes `line` and a newline to standard error.
    func printError(_ line: String) { writeError(line + "\n") }

    /// Writes every byte of `text` to the file descriptor, retrying short and interrupted writes.
    private static func writeAll(_ text: String, to descriptor: Int32) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                return
            }
            bytes = bytes.dropFirst(written)
        }
    }
}

/// Ends the process with `status` (C's `exit`, which `ParsableCommand.exit(withError:)` hides inside commands).
func exitProcess(_ status: Int32) -> Never {
    exit(status)
}

/// A mistake in a command line or in the files it names, reported as one `error:` line.
struct CLIError: Error, CustomStringConvertible, Equatable {
    var description: String

    init(_ description: String) { self.description = description }
}
