import CDLPack
import CFusedNormABI
import FusedNorm

extension Tensor {
    /// A tensor over the memory a C descriptor describes (no copy, not owned), after checking every field.
    /// - Parameter argument: the parameter's name, for messages.
    /// - Throws: ``InterfaceError`` with the status and a message starting with `argument`.
    init(descriptor: UnsafePointer<fusednorm_tensor>, argument: String) throws {
        do {
            let fields = try DescriptorFields(descriptor.pointee)
            try fields.device.checkUsable()
            var shape = fields.shape, strides = fields.strides
            self = try shape.withUnsafeMutableBufferPointer { shapePointer in
                try strides.withUnsafeMutableBufferPointer { stridePointer in
                    var view = DLTensor(
                        data: descriptor.pointee.data, device: fields.device.dlpackDevice,
                        ndim: Int32(fields.shape.count),
                        dtype: fields.dtype.dlpackType, shape: shapePointer.baseAddress,
                        strides: stridePointer.baseAddress,
                        byte_offset: 0)
                    return try Tensor(borrowingDLPack: &view, isReadOnly: fields.isReadOnly)
                }
            }
        } catch {
            throw InterfaceError(error, context: argument)
        }
    }

    /// ``init(descriptor:argument:)`` for an optional descriptor.
    init?(optionalDescriptor descriptor: UnsafePointer<fusednorm_tensor>?, argument: String) throws {
        guard let descriptor else { return nil }
        try self.init(descriptor: descriptor, argument: argument)
    }
}

/// The fields of a descriptor, each checked on its own (the layout is checked when a tensor is made).
struct DescriptorFields {
    var device: Device
    var dtype: DType
    var shape: [Int64]
    var strides: [Int64]
    var isReadOnly: Bool

    init(_ d: fusednorm_tensor) throws {
        guard (1...Int32(FUSEDNORM_MAX_DIMS)).contains(d.ndim) else {
            throw InterfaceError.invalid("ndim is \(d.ndim); it must be 1 ... \(FUSEDNORM_MAX_DIMS)")
        }
        guard d.reserved == 0 else { throw InterfaceError.invalid("reserved is \(d.reserved); it must be 0") }
        let knownFlags = UInt32(FUSEDNORM_TENSOR_READ_ONLY)
        guard d.flags & ~knownFlags == 0 else {
            throw InterfaceError.invalid(
                "flags 0x\(String(d.flags, radix: 16)) has unknown bits (known: FUSEDNORM_TENSOR_READ_ONLY = 1)")
        }
        isReadOnly = d.flags & knownFlags != 0
        device = try Device(descriptorType: d.device_type, index: d.device_index)
        dtype = try DType(descriptor: d.dtype)
        let rank = Int(d.ndim)
        shape = withUnsafeBytes(of: d.shape) { Array($0.bindMemory(to: Int64.self).prefix(rank)) }
        strides = withUnsafeBytes(of: d.strides) { Array($0.bindMemory(to: Int64.self).prefix(rank)) }
        if let negative = shape.firstIndex(where: { $0 < 0 }) {
            throw InterfaceError.invalid("shape \(shape) has a negative dimension (\(negative))")
        }
    }
}

extension Device {
    /// The device of a descriptor: DLPack's codes, CPU 1 (index 0), CUDA 2.
    init(descriptorType type: fusednorm_device_type, index: Int32) throws {
        switch type {
        case fusednorm_device_type(FUSEDNORM_DEVICE_CPU):
            guard index == 0 else { throw InterfaceError.invalid("device_index is \(index) for the CPU; it must be 0") }
            self = .cpu
        case fusednorm_device_type(FUSEDNORM_DEVICE_CUDA):
            guard index >= 0 else { throw InterfaceError.invalid("device_index is \(index); it must be >= 0") }
            self = .cuda(Int(index))
        default:
            throw InterfaceError.invalid(
                "device_type is \(type); known: FUSEDNORM_DEVICE_CPU (1), FUSEDNORM_DEVICE_CUDA (2)")
        }
    }

    /// Throws a device error when a CUDA device cannot be used (no driver, no NVRTC, no such GPU).
    func checkUsable() throws {
        guard case .cuda(let index) = self else { return }
        let status = CUDA.status
        if let problem = status.problem {
            throw InterfaceError.device("device \(self) is not usable: \(problem)")
        }
        guard index < status.devices.count else {
            throw InterfaceError.device("device \(self) is not usable: \(status.devices.count) CUDA device(s) present")
        }
    }

    /// As DLPack describes it.
    var dlpackDevice: DLDevice {
        switch self {
        case .cpu: DLDevice(device_type: kDLCPU, device_id: 0)
        case .cuda(let index): DLDevice(device_type: kDLCUDA, device_id: Int32(index))
        }
    }

    /// As a descriptor describes it.
    var descriptorCodes: (type: fusednorm_device_type, index: Int32) {
        switch self {
        case .cpu: (fusednorm_device_type(FUSEDNORM_DEVICE_CPU), 0)
        case .cuda(let index): (fusednorm_device_type(FUSEDNORM_DEVICE_CUDA), Int32(index))
        }
    }
}

extension DType {
    /// The dtype of a descriptor code.
    init(descriptor code: fusednorm_dtype) throws {
        switch code {
        case fusednorm_dtype(FUSEDNORM_FLOAT32): self = .float32
        case fusednorm_dtype(FUSEDNORM_FLOAT16): self = .float16
        case fusednorm_dtype(FUSEDNORM_BFLOAT16): self = .bfloat16
        default:
            throw InterfaceError.invalid(
                "dtype is \(code); known: FUSEDNORM_FLOAT32 (1), FUSEDNORM_FLOAT16 (2), FUSEDNORM_BFLOAT16 (3)")
        }
    }

    /// The descriptor code of this dtype.
    var descriptorCode: fusednorm_dtype {
        switch self {
        case .float32: fusednorm_dtype(FUSEDNORM_FLOAT32)
        case .float16: fusednorm_dtype(FUSEDNORM_FLOAT16)
        case .bfloat16: fusednorm_dtype(FUSEDNORM_BFLOAT16)
        }
    }

    /// As DLPack describes it.
    var dlpackType: DLDataType {
        switch self {
        case .float32: DLDataType(code: UInt8(kDLFloat.rawValue), bits: 32, lanes: 1)
        case .float16: DLDataType(code: UInt8(kDLFloat.rawValue), bits: 16, lanes: 1)
        case .bfloat16: DLDataType(code: UInt8(kDLBfloat.rawValue), bits: 16, lanes: 1)
        }
    }
}

/// `fusednorm_tensor_check`: the checks of every operation, without running anything.
@_cdecl("fusednorm_tensor_check")
public func fusednorm_tensor_check(_ tensor: UnsafePointer<fusednorm_tensor>?) -> fusednorm_status {
    callBoundary("fusednorm_tensor_check") {
        _ = try Tensor(descriptor: try required(tensor, "tensor"), argument: "tensor")
    }
}
