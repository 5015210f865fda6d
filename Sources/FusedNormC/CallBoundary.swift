import CFusedNormABI
import FusedNorm

/// An error of the C layer itself, with the status it maps to.
struct InterfaceError: Error, CustomStringConvertible {
    var status: fusednorm_status
    var description: String

    init(status: fusednorm_status, description: String) {
        self.status = status
        self.description = description
    }

    static func invalid(_ message: String) -> InterfaceError {
        InterfaceError(status: fusednorm_status(FUSEDNORM_INVALID_ARGUMENT), description: message)
    }

    static func unsupported(_ message: String) -> InterfaceError {
        InterfaceError(status: fusednorm_status(FUSEDNORM_UNSUPPORTED), description: message)
    }

    static func device(_ message: String) -> InterfaceError {
        InterfaceError(status: fusednorm_status(FUSEDNORM_DEVICE_ERROR), description: message)
    }

    /// `error` as a status and message, its message prefixed with `context` (e.g. the argument's name).
    init(_ error: any Error, context: String? = nil) {
        let prefix = context.map { "\($0): " } ?? ""
        switch error {
        case let error as InterfaceError:
            self = InterfaceError(status: error.status, description: prefix + error.description)
        case let error as FusedNormError:
            let message = prefix + Self.cNames(error.description)
            switch error {
            case .deviceUnavailable:
                self = InterfaceError(status: fusednorm_status(FUSEDNORM_DEVICE_ERROR), description: message)
            case .unsupportedLayout, .misalignedAddress: self = .unsupported(message)
            default: self = .invalid(message)
            }
        case let error as DLPackError:
            switch error {
            case .unsupported(let what): self = .unsupported(prefix + what)
            case .invalid(let what): self = .invalid(prefix + what)
            }
        case let error as CUDAError:
            // CUDA_ERROR_OUT_OF_MEMORY is 2 in the driver API.
            let status = error.library == .driver && error.code == 2 ? FUSEDNORM_OUT_OF_MEMORY : FUSEDNORM_DEVICE_ERROR
            self = InterfaceError(status: fusednorm_status(status), description: prefix + error.description)
        default:
            self = InterfaceError(
                status: fusednorm_status(FUSEDNORM_INTERNAL), description: prefix + "unexpected error: \(error)")
        }
    }
}

extension InterfaceError {
    /// The Swift API's argument names in `message` replaced by the C header's (`rstdOutput` -> `rstd_output`).
    static func cNames(_ message: String) -> String {
        var result = message
        for (swift, c) in [
            ("outputGradient", "output_gradient"), ("inputGradient", "input_gradient"),
            ("weightGradient", "weight_gradient"),
            ("biasGradient", "bias_gradient"), ("residualGradient", "residual_gradient"),
            ("residualOutput", "residual_output"),
            ("rstdOutput", "rstd_output"), ("meanOutput", "mean_output"), ("weightOffset", "weight_offset"),
        ] {
            result = result.replacing(swift, with: c)
        }
        return result
    }
}

/// Runs the body of C entry point `function`: every error becomes a status, and its message (prefixed
/// with the function's name) this thread's `fusednorm_last_error()`. Nothing thrown leaves this function.
func callBoundary(_ function: String, _ body: () throws -> Void) -> fusednorm_status {
    do {
        try body()
        return fusednorm_status(FUSEDNORM_SUCCESS)
    } catch {
        let failure = InterfaceError(error)
        fusednorm_internal_set_last_error("\(function): \(failure.description)")
        return failure.status
    }
}

/// The pointer, or an invalid-argument error naming it.
func required<T>(_ pointer: UnsafePointer<T>?, _ name: String) throws -> UnsafePointer<T> {
    guard let pointer else { throw InterfaceError.invalid("\(name) is NULL but required") }
    return pointer
}

/// The pointer, or an invalid-argument error naming it.
func required<T>(_ pointer: UnsafeMutablePointer<T>?, _ name: String) throws -> UnsafeMutablePointer<T> {
    guard let pointer else { throw InterfaceError.invalid("\(name) is NULL but required") }
    return pointer
}
