/// A caller's mistake, found before any work is done. Nothing has been written when one is thrown.
public enum FusedNormError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A tensor must have at least one dimension.
    case rankZero(argument: String)
    /// The normalized (last) dimension has length zero.
    case emptyRows(argument: String)
    /// A dimension is negative, or a view reaches outside its memory.
    case invalidShape(argument: String, shape: [Int], reason: String)
    /// A tensor's shape does not fit the operation.
    case shapeMismatch(argument: String, expected: String, actual: [Int])
    /// A tensor's dtype does not fit the operation.
    case dtypeMismatch(argument: String, expected: DType, actual: DType)
    /// The number of values does not match the shape.
    case countMismatch(expected: Int, actual: Int)
    /// epsilon must be finite and greater than zero.
    case invalidEpsilon(Float)
    /// Another argument is out of its valid range.
    case invalidArgument(name: String, reason: String)
    /// The tensors of one call live on different devices.
    case deviceMismatch(argument: String, expected: Device, actual: Device)
    /// The device is not present or cannot be used; `reason` says why.
    case deviceUnavailable(Device, reason: String)
    /// Wrapped memory of `byteCount` bytes is too small for the shape and strides, which reach `requiredBytes`.
    case bufferTooSmall(argument: String, requiredBytes: Int, byteCount: Int)
    /// A data address is not a multiple of the dtype's size (`alignment` bytes).
    case misalignedAddress(argument: String, address: UInt, alignment: Int)
    /// A read-only tensor (memory the caller lent for reading only) was passed where results are written.
    case readOnly(argument: String)
    /// The tensor's layout is valid but this device cannot run on it in this version; `reason` says why.
    case unsupportedLayout(argument: String, device: Device, reason: String)
    /// A `FUSEDNORM_*` environment variable has a value the library does not accept (see ``EnvironmentVariable``).
    case invalidEnvironmentVariable(name: String, value: String, reason: String)

    public var description: String {
        switch self {
        case .rankZero(let argument):
            "\(argument) has rank 0; a tensor needs at least one dimension (the normalized one)"
        case .emptyRows(let argument):
            "\(argument) has rows of length 0; the normalized (last) dimension must be at least 1"
        case .invalidShape(let argument, let shape, let reason):
            "\(argument) has invalid shape \(shape): \(reason)"
        case .shapeMismatch(let argument, let expected, let actual):
            "\(argument) has shape \(actual), expected \(expected)"
        case .dtypeMismatch(let argument, let expected, let actual):
            "\(argument) has dtype \(actual), expected \(expected)"
        case .countMismatch(let expected, let actual):
            "got \(actual) values for a shape of \(expected) elements"
        case .invalidEpsilon(let epsilon):
            "epsilon must be finite and greater than 0, got \(epsilon)"
        case .invalidArgument(let name, let reason):
            "invalid \(name): \(reason)"
        case .deviceMismatch(let argument, let expected, let actual):
            "\(argument) is on \(actual) but the operation's other tensors are on \(expected); move it with .to(\(expected))"
        case .deviceUnavailable(let device, let reason):
            "device \(device) is not usable: \(reason)"
        case .bufferTooSmall(let argument, let requiredBytes, let byteCount):
            "\(argument) needs \(requiredBytes) bytes for its shape and strides, but its memory has \(byteCount)"
        case .misalignedAddress(let argument, let address, let alignment):
            "\(argument)'s data address 0x\(String(address, radix: 16)) is not a multiple of \(alignment) bytes, the size of its dtype"
        case .readOnly(let argument):
            "\(argument) is read-only (its memory was lent for reading) and cannot receive results"
        case .unsupportedLayout(let argument, let device, let reason):
            "\(argument) cannot be used on \(device): \(reason)"
        case .invalidEnvironmentVariable(let name, let value, let reason):
            "environment variable \(name)=\(value) is not valid: \(reason) (unset it for the default)"
        }
    }
}
