import FusedNorm
import Testing

/// The case of a ``FusedNormError`` without its payload, to state which error a bad input must give.
enum ErrorKind: String, Sendable {
    case rankZero, emptyRows, invalidShape, shapeMismatch, dtypeMismatch, countMismatch, invalidEpsilon,
        invalidArgument, deviceMismatch, deviceUnavailable, bufferTooSmall, misalignedAddress, readOnly,
        unsupportedLayout, invalidEnvironmentVariable
}

extension FusedNormError {
    var kind: ErrorKind {
        switch self {
        case .rankZero: .rankZero
        case .emptyRows: .emptyRows
        case .invalidShape: .invalidShape
        case .shapeMismatch: .shapeMismatch
        case .dtypeMismatch: .dtypeMismatch
        case .countMismatch: .countMismatch
        case .invalidEpsilon: .invalidEpsilon
        case .invalidArgument: .invalidArgument
        case .deviceMismatch: .deviceMismatch
        case .deviceUnavailable: .deviceUnavailable
        case .bufferTooSmall: .bufferTooSmall
        case .misalignedAddress: .misalignedAddress
        case .readOnly: .readOnly
        case .unsupportedLayout: .unsupportedLayout
        case .invalidEnvironmentVariable: .invalidEnvironmentVariable
        }
    }

    /// The argument (or parameter name) the error blames, where the case has one.
    var argument: String? {
        switch self {
        case .rankZero(let argument), .emptyRows(let argument): argument
        case .invalidShape(let argument, _, _), .shapeMismatch(let argument, _, _), .dtypeMismatch(let argument, _, _),
            .deviceMismatch(let argument, _, _):
            argument
        case .invalidArgument(let name, _): name
        case .bufferTooSmall(let argument, _, _), .misalignedAddress(let argument, _, _), .readOnly(let argument),
            .unsupportedLayout(let argument, _, _):
            argument
        case .invalidEnvironmentVariable(let name, _, _): name
        case .countMismatch, .invalidEpsilon, .deviceUnavailable: nil
        }
    }
}

/// Expects `body` to throw a ``FusedNormError`` of `kind` (blaming `argument` when given).
@discardableResult
func expectError<R>(
    _ kind: ErrorKind, argument: String? = nil, _ what: String,
    sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> R
) -> FusedNormError? {
    do {
        let result = try body()
        Issue.record(
            "\(what): expected FusedNormError.\(kind.rawValue), but the call returned \(result)",
            sourceLocation: sourceLocation)
        return nil
    } catch let error as FusedNormError {
        #expect(error.kind == kind, "\(what): expected .\(kind.rawValue), got \(error)", sourceLocation: sourceLocation)
        if let argument {
            #expect(
                error.argument == argument, "\(what): expected the error to name \(argument), got \(error)",
                sourceLocation: sourceLocation)
        }
        // Every error must describe itself in words.
        #expect(!error.description.isEmpty, sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record(
            "\(what): expected FusedNormError.\(kind.rawValue), got \(type(of: error)): \(error)",
            sourceLocation: sourceLocation)
        return nil
    }
}
