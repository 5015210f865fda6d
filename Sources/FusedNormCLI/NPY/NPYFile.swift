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

/// The element types FusedNorm reads from and writes to .npy files: little-endian IEEE floats.
enum NPYElementType: String, Sendable, CaseIterable {
    case float16 = "<f2"
    case float32 = "<f4"
    case float64 = "<f8"

    /// Bytes per element.
    var byteCount: Int {
        switch self {
        case .float16: 2
        case .float32: 4
        case .float64: 8
        }
    }
}

/// An n-dimensional array read from or written to a NumPy .npy file, in C (row-major) order.
///
/// Values are held as `Double`, which represents float16, float32 and float64 elements exactly.
struct NPYArray: Equatable, Sendable {
    /// The dimensions; empty for a 0-dimensional (scalar) array.
    var shape: [Int]
    /// `shape.reduce(1, *)` values in C order.
    var values: [Double]
    /// The element type the file stored (or will store).
    var elementType: NPYElementType

    init(shape: [Int], values: [Double], elementType: NPYElementType = .float64) {
        self.shape = shape
        self.values = values
        self.elementType = elementType
    }

    /// An array of float32 values, stored as '<f4'.
    init(shape: [Int], floats: [Float]) {
        self.init(shape: shape, values: floats.map(Double.init), elementType: .float32)
    }
}

/// Why bytes are not a .npy array FusedNorm can read.
enum NPYError: Error, Equatable, CustomStringConvertible {
    /// The file does not start with "\x93NUMPY".
    case badMagic
    case unsupportedVersion(major: UInt8, minor: UInt8)
    /// The file ends inside the preamble or the header.
    case truncatedHeader
    case malformedHeader(String)
    /// A dtype other than little-endian float16/32/64 (`descr` as written in the header).
    case unsupportedDType(String)
    case fortranOrder
    case invalidShape(String)
    /// The file holds fewer data bytes than the shape needs.
    case truncatedData(expectedBytes: Int, availableBytes: Int)
    /// The header does not fit in the 16-bit length of a version 1.0 file.
    case headerTooLong

    var description: String {
        switch self {
        case .badMagic:
            "not a .npy file (it does not start with the magic string \\x93NUMPY)"
        case .unsupportedVersion(let major, let minor):
            "unsupported .npy format version \(major).\(minor) (versions 1.0, 2.0 and 3.0 are read)"
        case .truncatedHeader:
            "truncated .npy file: it ends inside the header"
        case .malformedHeader(let reason):
            "malformed .npy header: \(reason)"
        case .unsupportedDType(let descr):
            "unsupported dtype '\(descr)': \(NPYError.dtypeAdvice(descr))"
        case .fortranOrder:
            "Fortran-ordered arrays are not supported; save a C-ordered array (numpy.ascontiguousarray)"
        case .invalidShape(let reason):
            "invalid shape in the .npy header: \(reason)"
        case .truncatedData(let expected, let available):
            "truncated .npy file: the shape needs \(expected) data bytes but only \(available) follow the header"
        case .headerTooLong:
            "the .npy header is too long for format version 1.0"
        }
    }

    private static func dtypeAdvice(_ descr: String) -> String {
        let expected = "expected little-endian float16, float32 or float64 ('<f2', '<f4' or '<f8')"
        guard let order = descr.first else { return expected }
        let kind = descr.dropFirst().first
        if order == ">" && kind == "f" {
            return "big-endian data is not supported; \(expected), e.g. array.astype('<f4')"
        }
        switch kind {
        case "i", "u": return "integer arrays are not supported; \(expected)"
        case "b": return "boolean arrays are not supported; \(expected)"
        case "O": return "object arrays are not supported; \(expected)"
        case "c": return "complex arrays are not supported; \(expected)"
        default: return expected
        }
    }
}

/// Reads and writes NumPy's .npy format (versions 1.0, 2.0 and 3.0), for float16, float32 and float64 in C order.
///
/// The format: the magic string "\x93NUMPY", a major and minor version byte, the header length
/// (2 bytes little-endian in version 1, 4 bytes in versions 2 and 3), then a Python dictionary literal
/// such as `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }` padded with spaces and a
/// newline so that the data starts on a 64-byte boundary, then the data.
enum NPYFile {
    static let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)

    /// Reads and decodes the file at `path`.
    /// - Throws: ``NPYError`` for a file that is not a readable array, `CLIError` when it cannot be opened.
    static func read(path: String) throws -> NPYArray {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw CLIError(FileManager.default.fileExists(atPath: path) ? "cannot read the file" : "no such file")
        }
        return try decode(data)
    }

    /// Decodes the bytes of a .npy file.
    static func decode<Bytes: Collection<UInt8>>(_ bytes: Bytes) throws -> NPYArray {
        let bytes = Array(bytes)
        let prefix = bytes.prefix(magic.count)
        guard prefix.elementsEqual(magic.prefix(prefix.count)), !bytes.isEmpty else { throw NPYError.badMagic }
        guard bytes.count >= 8 else { throw NPYError.truncatedHeader }
        let major = bytes[6], minor = bytes[7]
        let lengthFieldSize: Int
        switch (major, minor) {
        case (1, 0): lengthFieldSize = 2
        case (2, 0), (3, 0): lengthFieldSize = 4
        default: throw NPYError.unsupportedVersion(major: major, minor: minor)
        }
        guard bytes.count >= 8 + lengthFieldSize else { throw NPYError.truncatedHeader }
        var headerLength = 0
        for index in (0..<lengthFieldSize).reversed() {
            headerLength = headerLength << 8 | Int(bytes[8 + index])
        }
        let headerStart = 8 + lengthFieldSize
        guard bytes.count - headerStart >= headerLength else { throw NPYError.truncatedHeader }
        let headerBytes = bytes[headerStart..<headerStart + headerLength]
        // Versions 1 and 2 use latin-1 for the header, version 3 UTF-8.
        let headerText =
            major == 3
            ? String(decoding: headerBytes, as: UTF8.self)
            : String(String.UnicodeScalarView(headerBytes.map { Unicode.Scalar($0) }))
        let header = try NPYHeader(parsing: headerText)

        let dataStart = headerStart + headerLength
        let count = header.shape.reduce(1, *)
        let (expectedBytes, overflow) = count.multipliedReportingOverflow(by: header.elementType.byteCount)
        guard !overflow else { throw NPYError.invalidShape("\(header.shape) has too many elements") }
        let availableBytes = bytes.count - dataStart
        guard availableBytes >= expectedBytes else {
            throw NPYError.truncatedData(expectedBytes: expectedBytes, availableBytes: availableBytes)
        }
        let values = bytes.withUnsafeBytes { raw in
            decodeValues(
                UnsafeRawBufferPointer(rebasing: raw[dataStart..<dataStart + expectedBytes]),
                count: count, type: header.elementType)
        }
        return NPYArray(shape: header.shape, values: values, elementType: header.elementType)
    }

    /// Encodes `array` as a .npy file of its element type.
    /// - Parameter version: the format version to write: 1 (the default, as NumPy writes), 2 or 3.
    static func encode(_ array: NPYArray, version: UInt8 = 1) throws -> [UInt8] {
        precondition((1...3).contains(version), "NPY format version must be 1, 2 or 3")
        precondition(array.values.count == array.shape.reduce(1, *), "NPYArray values do not match its shape")
        let lengthFieldSize = version == 1 ? 2 : 4
        var header =
            "{'descr': '\(array.elementType.rawValue)', 'fortran_order': False, 'shape': \(pythonTuple(array.shape)), }"
        // Pad with spaces so that the data starts on a 64-byte boundary; the header ends with a newline.
        let unpadded = magic.count + 2 + lengthFieldSize + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        let headerLength = header.utf8.count
        guard version != 1 || headerLength <= Int(UInt16.max) else { throw NPYError.headerTooLong }

        var bytes = magic + [version, 0]
        for index in 0..<lengthFieldSize { bytes.append(UInt8(truncatingIfNeeded: headerLength >> (8 * index))) }
        bytes += Array(header.utf8)
        bytes += encodeValues(array.values, type: array.elementType)
        return bytes
    }

    /// `(3, 4)`, `(3,)` or `()`, as Python writes a tuple.
    static func pythonTuple(_ shape: [Int]) -> String {
        shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
    }

    private static func decodeValues(_ raw: UnsafeRawBufferPointer, count: Int, type: NPYElementType) -> [Double] {
        [Double](unsafeUninitializedCapacity: count) { values, initialized in
            switch type {
            case .float16:
                for index in 0..<count {
                    let bits = UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * index, as: UInt16.self))
                    values[index] = Double(Float16(bitPattern: bits))
                }
            case .float32:
                for index in 0..<count {
                    let bits = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * index, as: UInt32.self))
                    values[index] = Double(Float(bitPattern: bits))
                }
            case .float64:
                for index in 0..<count {
                    let bits = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * index, as: UInt64.self))
                    values[index] = Double(bitPattern: bits)
                }
            }
            initialized = count
        }
    }

    private static func encodeValues(_ values: [Double], type: NPYElementType) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: values.count * type.byteCount)
        bytes.withUnsafeMutableBytes { raw in
            for (index, value) in values.enumerated() {
                switch type {
                case .float16:
                    raw.storeBytes(of: Float16(value).bitPattern.littleEndian, toByteOffset: 2 * index, as: UInt16.self)
                case .float32:
                    raw.storeBytes(of: Float(value).bitPattern.littleEndian, toByteOffset: 4 * index, as: UInt32.self)
                case .float64:
                    raw.storeBytes(of: value.bitPattern.littleEndian, toByteOffset: 8 * index, as: UInt64.self)
                }
            }
        }
        return bytes
    }
}
