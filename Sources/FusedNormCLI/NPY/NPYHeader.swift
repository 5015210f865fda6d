/// The dictionary at the start of a .npy file: element type, memory order and shape.
struct NPYHeader: Equatable {
    var elementType: NPYElementType
    var shape: [Int]

    /// Parses a header such as `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`.
    /// - Throws: ``NPYError`` for a malformed header, a dtype other than '<f2'/'<f4'/'<f8', Fortran order,
    ///   or a negative dimension.
    init(parsing text: String) throws {
        var parser = PythonLiteralParser(text)
        guard case .dictionary(let entries) = try parser.parseValue() else {
            throw NPYError.malformedHeader("expected a dictionary")
        }
        try parser.expectEnd()
        let dictionary = Dictionary(entries, uniquingKeysWith: { _, last in last })

        switch dictionary["descr"] {
        case .string(let descr)?:
            // '=' is native order, little-endian on every platform FusedNorm runs on.
            let normalized = descr.hasPrefix("=") ? "<" + descr.dropFirst() : descr
            guard let type = NPYElementType(rawValue: normalized) else { throw NPYError.unsupportedDType(descr) }
            elementType = type
        case .list?, .tuple?:
            throw NPYError.unsupportedDType("structured")
        case nil:
            throw NPYError.malformedHeader("no 'descr' key")
        default:
            throw NPYError.malformedHeader("'descr' is not a string")
        }

        switch dictionary["fortran_order"] {
        case .boolean(false)?: break
        case .boolean(true)?: throw NPYError.fortranOrder
        case nil: throw NPYError.malformedHeader("no 'fortran_order' key")
        default: throw NPYError.malformedHeader("'fortran_order' is not True or False")
        }

        guard case .tuple(let dimensions)? = dictionary["shape"] else {
            throw NPYError.malformedHeader(dictionary["shape"] == nil ? "no 'shape' key" : "'shape' is not a tuple")
        }
        shape = try dimensions.map { dimension in
            guard case .integer(let value) = dimension else {
                throw NPYError.invalidShape("dimensions must be integers")
            }
            guard value >= 0 else { throw NPYError.invalidShape("dimension \(value) is negative") }
            return value
        }
        var count = 1
        for dimension in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
            guard !overflow else { throw NPYError.invalidShape("\(shape) has too many elements") }
            count = product
        }
    }
}

/// A value of the small Python literal language .npy headers are written in.
enum PythonLiteral: Equatable {
    case string(String)
    case integer(Int)
    case boolean(Bool)
    case none
    case tuple([PythonLiteral])
    case list([PythonLiteral])
    case dictionary([(String, PythonLiteral)])

    static func == (lhs: PythonLiteral, rhs: PythonLiteral) -> Bool {
        switch (lhs, rhs) {
        case (.string(let a), .string(let b)): a == b
        case (.integer(let a), .integer(let b)): a == b
        case (.boolean(let a), .boolean(let b)): a == b
        case (.none, .none): true
        case (.tuple(let a), .tuple(let b)), (.list(let a), .list(let b)): a == b
        case (.dictionary(let a), .dictionary(let b)): a.map(\.0) == b.map(\.0) && a.map(\.1) == b.map(\.1)
        default: false
        }
    }
}

/// A recursive-descent parser for Python literals: strings, integers, True/False/None, tuples, lists and
/// dictionaries with string keys.
struct PythonLiteralParser {
    private let characters: [Character]
    private var position = 0
    /// Containers open around the current position; bounded so that a hostile header cannot exhaust the stack.
    private var depth = 0
    private static let maximumDepth = 32

    init(_ text: String) { characters = Array(text) }

    mutating func parseValue() throws -> PythonLiteral {
        skipWhitespace()
        guard let character = peek() else { throw NPYError.malformedHeader("unexpected end of header") }
        if "{([".contains(character) {
            guard depth < Self.maximumDepth else { throw NPYError.malformedHeader("nested too deeply") }
            depth += 1
        }
        defer { if "{([".contains(character) { depth -= 1 } }
        switch character {
        case "{":
            position += 1
            let items = try parseSequence(closing: "}") { parser in
                guard case .string(let key) = try parser.parseValue() else {
                    throw NPYError.malformedHeader("dictionary keys must be strings")
                }
                try parser.expect(":")
                return (key, try parser.parseValue())
            }
            return .dictionary(items)
        case "(":
            position += 1
            return .tuple(try parseSequence(closing: ")") { try $0.parseValue() })
        case "[":
            position += 1
            return .list(try parseSequence(closing: "]") { try $0.parseValue() })
        case "'", "\"":
            return .string(try parseString())
        case "-", "0"..."9":
            return .integer(try parseInteger())
        default:
            let word = parseWord()
            switch word {
            case "True": return .boolean(true)
            case "False": return .boolean(false)
            case "None": return .none
            default: throw NPYError.malformedHeader("unexpected '\(word.isEmpty ? String(character) : word)'")
            }
        }
    }

    /// Throws unless only whitespace is left.
    mutating func expectEnd() throws {
        skipWhitespace()
        guard position == characters.count else {
            throw NPYError.malformedHeader("unexpected text after the dictionary")
        }
    }

    /// Comma-separated items up to `closing`; a trailing comma is allowed.
    private mutating func parseSequence<Item>(
        closing: Character, item: (inout PythonLiteralParser) throws -> Item
    ) throws -> [Item] {
        var items: [Item] = []
        while true {
            skipWhitespace()
            if peek() == closing {
                position += 1
                return items
            }
            items.append(try item(&self))
            skipWhitespace()
            if peek() == "," {
                position += 1
            } else {
                try expect(closing)
                return items
            }
        }
    }

    private mutating func parseString() throws -> String {
        let quote = characters[position]
        position += 1
        var result = ""
        while let character = peek() {
            position += 1
            if character == quote { return result }
            if character == "\\", let escaped = peek() {
                position += 1
                result.append(escaped)
            } else {
                result.append(character)
            }
        }
        throw NPYError.malformedHeader("unterminated string")
    }

    private mutating func parseInteger() throws -> Int {
        var digits = ""
        if peek() == "-" {
            digits.append("-")
            position += 1
        }
        while let character = peek(), character.isASCII, character.isNumber {
            digits.append(character)
            position += 1
        }
        if peek() == "L" { position += 1 }  // Python 2 wrote long integers as 3L.
        guard let value = Int(digits) else { throw NPYError.malformedHeader("invalid integer '\(digits)'") }
        return value
    }

    private mutating func parseWord() -> String {
        var word = ""
        while let character = peek(), character.isLetter || character == "_" {
            word.append(character)
            position += 1
        }
        return word
    }

    private mutating func expect(_ character: Character) throws {
        skipWhitespace()
        guard peek() == character else { throw NPYError.malformedHeader("expected '\(character)'") }
        position += 1
    }

    private mutating func skipWhitespace() {
        while let character = peek(), character.isWhitespace { position += 1 }
    }

    private func peek() -> Character? { position < characters.count ? characters[position] : nil }
}
