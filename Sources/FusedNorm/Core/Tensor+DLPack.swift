import CDLPack

/// Why a DLPack tensor (or a C descriptor) cannot be used as a FusedNorm tensor.
public enum DLPackError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Well-formed, but FusedNorm does not handle it; the text names what (a dtype, a device, a layout).
    case unsupported(String)
    /// Malformed: a NULL pointer where memory is needed, a misaligned address, an ndim out of range.
    case invalid(String)

    public var description: String {
        switch self {
        case .unsupported(let what): "unsupported DLPack tensor: \(what)"
        case .invalid(let what): "invalid DLPack tensor: \(what)"
        }
    }
}

extension Tensor {
    /// Imports a DLPack 1.x tensor without a copy, taking ownership of it: its deleter is called exactly
    /// once, when the last tensor viewing its memory is gone.
    ///
    /// float32, float16 and bfloat16 on `kDLCPU`, `kDLCUDAHost` (as `.cpu`) or `kDLCUDA`, the last
    /// dimension contiguous, rows evenly strided or grouped (``Tensor/groupStride``: rows within the
    /// second-to-last dimension, e.g. a (T, H, D) view of a fused qkv tensor). A tensor flagged `DLPACK_FLAG_BITMASK_READ_ONLY` is
    /// never written: passing it (or a view of it) as an output throws.
    /// - Parameter managed: the producer's tensor. When this throws, it still belongs to the caller (the
    ///   deleter has not been called).
    /// - Throws: ``DLPackError`` naming what is unsupported or malformed; ``FusedNormError`` for a bad shape.
    public init(dlpack managed: UnsafeMutablePointer<DLManagedTensorVersioned>) throws {
        let version = managed.pointee.version
        guard version.major == UInt32(DLPACK_MAJOR_VERSION) else {
            throw DLPackError.unsupported(
                "DLPack version \(version.major).\(version.minor); FusedNorm reads major version \(DLPACK_MAJOR_VERSION)"
            )
        }
        let readOnly = managed.pointee.flags & DLPACK_FLAG_BITMASK_READ_ONLY != 0
        let address = UInt(bitPattern: managed)
        self = try withUnsafePointer(to: managed.pointee.dl_tensor) { tensor in
            try Tensor(dlTensor: tensor, isReadOnly: readOnly) {
                let managed = UnsafeMutablePointer<DLManagedTensorVersioned>(bitPattern: address)!
                managed.pointee.deleter?(managed)
            }
        }
    }

    /// Imports a legacy (pre-1.0) DLPack tensor without a copy, taking ownership of it; as
    /// ``init(dlpack:)-(UnsafeMutablePointer<DLManagedTensorVersioned>)`` (legacy tensors have no read-only flag).
    public init(dlpack managed: UnsafeMutablePointer<DLManagedTensor>) throws {
        let address = UInt(bitPattern: managed)
        self = try withUnsafePointer(to: managed.pointee.dl_tensor) { tensor in
            try Tensor(dlTensor: tensor, isReadOnly: false) {
                let managed = UnsafeMutablePointer<DLManagedTensor>(bitPattern: address)!
                managed.pointee.deleter?(managed)
            }
        }
    }

    /// Views the memory of a `DLTensor` without a copy and without taking ownership: the caller keeps the
    /// memory alive for as long as the returned tensor and its views are used.
    /// - Parameters:
    ///   - tensor: the DLPack view; read during this call only.
    ///   - isReadOnly: the tensor must never be written (as an output, operations throw).
    public init(borrowingDLPack tensor: UnsafePointer<DLTensor>, isReadOnly: Bool = false) throws {
        try self.init(dlTensor: tensor, isReadOnly: isReadOnly, release: nil)
    }

    /// Checks `tensor` completely (CUDA memory with the driver: it must belong to the device), then wraps its
    /// memory in an ``ExternalBuffer`` that runs `release` once.
    init(dlTensor tensor: UnsafePointer<DLTensor>, isReadOnly: Bool, release: (@Sendable () -> Void)?) throws {
        let view = tensor.pointee
        guard view.ndim >= 1 else {
            throw DLPackError.unsupported(
                "ndim \(view.ndim); FusedNorm needs at least one dimension (the normalized one)")
        }
        guard view.shape != nil else { throw DLPackError.invalid("shape is NULL for ndim \(view.ndim)") }
        let dtype = try DType(dlpack: view.dtype)
        let device = try Device(dlpack: view.device)
        let rank = Int(view.ndim)
        let shape = (0..<rank).map { Int(view.shape[$0]) }
        let strides = view.strides.map { strides in (0..<rank).map { Int(strides[$0]) } }
        let layout = try StridedLayout(shape: shape, strides: strides, argument: "tensor")
        let (address, overflow) = UInt(bitPattern: view.data).addingReportingOverflow(UInt(view.byte_offset))
        guard !overflow else { throw DLPackError.invalid("data + byte_offset overflows") }
        let elements = shape.reduce(1, *)
        if elements > 0 {
            guard address != 0 else { throw DLPackError.invalid("data is NULL for a tensor of \(elements) elements") }
            guard address % UInt(dtype.byteCount) == 0 else {
                throw DLPackError.unsupported(
                    "data + byte_offset (0x\(String(address, radix: 16))) is not aligned to \(dtype.byteCount) bytes, the size of a \(dtype) element"
                )
            }
        }
        // The bytes the view reaches: the buffer's size.
        let rowsPerGroup = shape.count >= 3 ? shape[shape.count - 2] : shape.dropLast().reduce(1, *)
        let (uniformGroupStride, groupOverflow) = rowsPerGroup.multipliedReportingOverflow(by: layout.rowStride)
        guard layout.groupStride != nil || !groupOverflow,
            let extent = Tensor.extent(
                shape: shape, rowStride: layout.rowStride, groupStride: layout.groupStride ?? uniformGroupStride),
            case (let byteCount, false) = extent.multipliedReportingOverflow(by: dtype.byteCount)
        else {
            throw FusedNormError.invalidShape(
                argument: "tensor", shape: shape, reason: "the strides reach past the address space")
        }
        let groupStride = layout.groupStride ?? uniformGroupStride
        // Every check before the buffer exists: a refused import must not run `release` (the deleter).
        try Tensor.validateLayout(
            shape: shape, dtype: dtype, rowStride: layout.rowStride, groupStride: groupStride, address: address,
            byteOffset: 0, byteCount: byteCount, argument: "tensor")
        if case .cuda = device, byteCount > 0 {
            try CUDABackend.checkDeviceMemory(address, byteCount: byteCount, on: device)
        }
        let buffer = ExternalBuffer(
            address: address, byteCount: byteCount, device: device, isReadOnly: isReadOnly, release: release)
        self.init(
            shape: shape, dtype: dtype, rowStride: layout.rowStride, groupStride: groupStride, buffer: buffer,
            byteOffset: 0)
    }
}

extension DType {
    /// The dtype of a DLPack element type: float32, float16 or bfloat16, one lane.
    init(dlpack type: DLDataType) throws {
        guard type.lanes == 1 else {
            throw DLPackError.unsupported(
                "\(type.lanes) lanes per element (vector types); FusedNorm reads scalars (lanes 1)")
        }
        switch (UInt32(type.code), type.bits) {
        case (kDLFloat.rawValue, 32): self = .float32
        case (kDLFloat.rawValue, 16): self = .float16
        case (kDLBfloat.rawValue, 16): self = .bfloat16
        default:
            throw DLPackError.unsupported(
                "dtype \(DType.dlpackName(code: type.code, bits: type.bits)); FusedNorm handles float32, float16 and bfloat16"
            )
        }
    }

    /// The DLPack element type of this dtype.
    var dlpack: DLDataType {
        switch self {
        case .float32: DLDataType(code: UInt8(kDLFloat.rawValue), bits: 32, lanes: 1)
        case .float16: DLDataType(code: UInt8(kDLFloat.rawValue), bits: 16, lanes: 1)
        case .bfloat16: DLDataType(code: UInt8(kDLBfloat.rawValue), bits: 16, lanes: 1)
        }
    }

    /// A readable name for a DLPack type code and width, e.g. "int32" or "float64".
    static func dlpackName(code: UInt8, bits: UInt8) -> String {
        let names: [UInt32: String] = [
            kDLInt.rawValue: "int", kDLUInt.rawValue: "uint", kDLFloat.rawValue: "float",
            kDLOpaqueHandle.rawValue: "opaque handle ", kDLBfloat.rawValue: "bfloat", kDLComplex.rawValue: "complex",
            kDLBool.rawValue: "bool",
        ]
        return "\(names[UInt32(code)] ?? "code \(code) of ")\(bits)"
    }
}

extension Device {
    /// The device of a DLPack tensor: `kDLCPU` and `kDLCUDAHost` (pinned host memory) are `.cpu`, `kDLCUDA` is `.cuda(id)`.
    init(dlpack device: DLDevice) throws {
        switch device.device_type {
        case kDLCPU, kDLCUDAHost: self = .cpu
        case kDLCUDA:
            guard device.device_id >= 0 else { throw DLPackError.invalid("CUDA device id \(device.device_id)") }
            self = .cuda(Int(device.device_id))
        default:
            throw DLPackError.unsupported(
                "device type \(device.device_type.rawValue) (\(Device.dlpackName(device.device_type))); FusedNorm runs on kDLCPU, kDLCUDAHost and kDLCUDA"
            )
        }
    }

    /// The DLPack name of a device type.
    static func dlpackName(_ type: DLDeviceType) -> String {
        switch type {
        case kDLOpenCL: "kDLOpenCL"
        case kDLVulkan: "kDLVulkan"
        case kDLMetal: "kDLMetal"
        case kDLVPI: "kDLVPI"
        case kDLROCM: "kDLROCM"
        case kDLROCMHost: "kDLROCMHost"
        case kDLExtDev: "kDLExtDev"
        case kDLCUDAManaged: "kDLCUDAManaged"
        case kDLOneAPI: "kDLOneAPI"
        case kDLWebGPU: "kDLWebGPU"
        case kDLHexagon: "kDLHexagon"
        case kDLMAIA: "kDLMAIA"
        default: "unknown"
        }
    }

    /// This device as DLPack describes it.
    var dlpack: DLDevice {
        switch self {
        case .cpu: DLDevice(device_type: kDLCPU, device_id: 0)
        case .cuda(let index): DLDevice(device_type: kDLCUDA, device_id: Int32(index))
        }
    }
}
