import Foundation

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
        writeOutput: { FileHandle.standardOutput.write(Data($0.utf8)) },
        writeError: { FileHandle.standardError.write(Data($0.utf8)) },
        errorIsTerminal: isatty(STDERR_FILENO) != 0)

    /// The console of the running command.
    @TaskLocal static var current: Console = .standard

    /// Writes `line` and a newline to standard output.
    func print(_ line: String = "") { writeOutput(line + "\n") }

    /// Writes `line` and a newline to standard error.
    func printError(_ line: String) { writeError(line + "\n") }
}

/// A mistake in a command line or in the files it names, reported as one `error:` line.
struct CLIError: Error, CustomStringConvertible, Equatable {
    var description: String

    init(_ description: String) { self.description = description }
}
