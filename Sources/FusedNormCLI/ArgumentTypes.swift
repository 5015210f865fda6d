import ArgumentParser
import FusedNorm

extension DType: ExpressibleByArgument {
    /// Parses `float32`, `float16`, `bfloat16` and the aliases ``DType/init(name:)`` knows.
    public init?(argument: String) { self.init(name: argument) }

    public static var allValueStrings: [String] { allCases.map(\.rawValue) }
}

extension RMSNormStyle: ExpressibleByArgument {
    /// Parses a preset's name: `standard`, `llama` or `gemma`.
    public init?(argument: String) { self.init(presetName: argument) }

    public static var allValueStrings: [String] { presets.map(\.name) }

    public var defaultValueDescription: String { description }
}

/// Parsers for comma-separated option values such as `--dtypes float32,bfloat16`.
enum ListArgument {
    /// Splits `text` at commas and parses each item with `parse`.
    /// - Throws: a `ValidationError` naming the first item `parse` rejects and what is expected.
    static func parse<Element>(
        _ text: String, expected: String, _ parse: (String) -> Element?
    ) throws -> [Element] {
        let items = text.split(separator: ",").map { $0.trimmingWhitespace }.filter { !$0.isEmpty }
        guard !items.isEmpty else { throw ValidationError("the list is empty; expected \(expected)") }
        return try items.map { item in
            guard let element = parse(item) else {
                throw ValidationError("unknown value '\(item)'; expected \(expected)")
            }
            return element
        }
    }

    /// An operation's name in the one spelling the commands use, hyphenated (`rmsnorm-backward`, as
    /// `fusednorm run` names its subcommands): underscores (`rmsnorm_backward`) become hyphens.
    static func operationName(_ text: String) -> String {
        String(text.lowercased().map { $0 == "_" ? "-" : $0 })
    }

    /// A list of dtype names.
    static func dtypes(_ text: String) throws -> [DType] {
        try parse(text, expected: "float32, float16 or bfloat16", DType.init(name:))
    }

    /// A list of row lengths, each at least 1 (`4096` or `2^12`).
    static func columns(_ text: String) throws -> [Int] {
        try parse(text, expected: "positive integers such as 4096 or 2^12", positiveInteger(_:))
    }

    /// One count of at least 1, written as `67108864` or `2^26`.
    static func positiveInteger(_ text: String) throws -> Int {
        guard let value = positiveInteger(text) else {
            throw ValidationError("'\(text)' is not a positive integer such as 4096 or 2^12")
        }
        return value
    }

    private static func positiveInteger(_ item: String) -> Int? {
        let parts = item.split(separator: "^")
        if parts.count == 2, parts[0] == "2", let exponent = Int(parts[1]), (0..<48).contains(exponent) {
            return 1 << exponent
        }
        guard let value = Int(item), value >= 1 else { return nil }
        return value
    }
}
