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

/// A progress line on standard error while long work runs.
///
/// On a terminal the line is redrawn in place with `\r` (at most ten times a second); otherwise a
/// plain line is written at most every ``plainInterval`` seconds, so that logs stay short.
final class Progress {
    private let title: String
    private let total: Int
    private let console: Console
    private let start = ContinuousClock.now
    private var lastReport: ContinuousClock.Instant?
    private var drawnWidth = 0
    private var wrotePlainLine = false

    /// Seconds between plain lines when standard error is not a terminal.
    static let plainInterval: Double = 10

    /// - Parameters:
    ///   - title: what is being done, e.g. "check".
    ///   - total: the number of steps.
    init(_ title: String, total: Int, console: Console = .current) {
        self.title = title
        self.total = total
        self.console = console
    }

    /// Reports that `completed` steps are done and the next is `detail`.
    func update(completed: Int, detail: String) {
        let now = ContinuousClock.now
        let interval = console.errorIsTerminal ? 0.1 : Progress.plainInterval
        if let lastReport, (now - lastReport).seconds < interval { return }
        if lastReport == nil, !console.errorIsTerminal { lastReport = now; return }  // no line for quick work
        lastReport = now
        let line = "\(title): \(completed)/\(total) \(detail) (\(Int((now - start).seconds)) s)"
        if console.errorIsTerminal {
            let padding = String(repeating: " ", count: max(0, drawnWidth - line.count))
            console.writeError("\r" + line + padding)
            drawnWidth = line.count
        } else {
            console.printError(line)
            wrotePlainLine = true
        }
    }

    /// Clears the progress line (on a terminal) or reports completion (otherwise, when a line was written).
    func finish() {
        if console.errorIsTerminal {
            if drawnWidth > 0 { console.writeError("\r" + String(repeating: " ", count: drawnWidth) + "\r") }
        } else if wrotePlainLine {
            console.printError("\(title): \(total)/\(total) done (\(Int((ContinuousClock.now - start).seconds)) s)")
        }
    }
}

extension Duration {
    /// The duration in seconds.
    var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) * 1e-18
    }
}
