import ArgumentParser
import FusedNorm

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// `fusednorm`: fused RMSNorm and LayerNorm from the command line.
public struct FusedNormCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "fusednorm",
        abstract: "Fused RMSNorm and LayerNorm kernels: check, benchmark and run them.",
        subcommands: [
            InfoCommand.self, CheckCommand.self, BenchCommand.self, RunCommand.self, ExplainCommand.self,
            TrafficCommand.self,
        ])

    public init() {}
}

extension FusedNormCommand {
    /// Runs the tool with the process's arguments and exits with its status. The `fusednorm` binary's `main`.
    public static func runAsTool() -> Never {
        exitProcess(execute(Array(CommandLine.arguments.dropFirst())))
    }

    /// Parses `arguments` (without the program name), runs the command they name and returns the exit status.
    ///
    /// Help goes to standard output with status 0. Any other failure is reported as a single line
    /// `error: ...` on standard error with a non-zero status: 64 for a malformed command line,
    /// 1 otherwise (or the status a command chose, such as `check` finding a failure).
    static func execute(_ arguments: [String]) -> Int32 {
        let console = Console.current
        do {
            var command = try parseAsRoot(arguments)
            try command.run()
            return 0
        } catch {
            let status = exitCode(for: error)
            if status == .success {
                let help = fullMessage(for: error)
                if !help.isEmpty { console.print(help) }
                return 0
            }
            let message =
                switch error {
                case let error as FusedNormError: error.description
                case let error as CLIError: error.description
                default: message(for: error)
                }
            if !message.isEmpty { console.printError("error: " + singleLine(message)) }
            return status.rawValue == 0 ? 1 : status.rawValue
        }
    }

    /// `message` with its lines joined, so that every error is one line.
    private static func singleLine(_ message: String) -> String {
        message.split(whereSeparator: \.isNewline).map { $0.trimmingWhitespace }
            .filter { !$0.isEmpty }.joined(separator: " ")
    }
}
