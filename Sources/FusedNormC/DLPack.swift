import CDLPack
import CFusedNormABI
import FusedNorm

extension fusednorm_tensor {
    /// A descriptor of a DLPack view, after the checks of a DLPack import (dtype, device, layout, alignment).
    init(dlTensor: UnsafePointer<DLTensor>, isReadOnly: Bool) throws {
        let view = dlTensor.pointee
        guard view.ndim >= 1, view.ndim <= Int32(FUSEDNORM_MAX_DIMS) else {
            throw InterfaceError.unsupported(
                "ndim \(view.ndim); descriptors hold 1 ... \(FUSEDNORM_MAX_DIMS) dimensions")
        }
        let tensor = try Tensor(borrowingDLPack: dlTensor, isReadOnly: isReadOnly)
        self.init()
        data = UnsafeMutableRawPointer(bitPattern: UInt(bitPattern: view.data) &+ UInt(view.byte_offset))
        (device_type, device_index) = tensor.device.descriptorCodes
        dtype = tensor.dtype.descriptorCode
        ndim = view.ndim
        flags = isReadOnly ? UInt32(FUSEDNORM_TENSOR_READ_ONLY) : 0
        let rank = Int(view.ndim)
        withUnsafeMutableBytes(of: &shape) { shape in
            withUnsafeMutableBytes(of: &strides) { strides in
                let shape = shape.bindMemory(to: Int64.self), strides = strides.bindMemory(to: Int64.self)
                var contiguous: Int64 = 1
                for k in stride(from: rank - 1, through: 0, by: -1) {
                    shape[k] = view.shape[k]
                    strides[k] = view.strides?[k] ?? contiguous
                    contiguous = contiguous &* max(view.shape[k], 1)
                }
            }
        }
    }
}

@_cdecl("fusednorm_tensor_from_dlpack")
public func fusednorm_tensor_from_dlpack(
    _ dlTensor: UnsafePointer<DLTensor>?, _ tensor: UnsafeMutablePointer<fusednorm_tensor>?
) -> fusednorm_status {
    callBoundary("fusednorm_tensor_from_dlpack") {
        let descriptor = try fusednorm_tensor(dlTensor: try required(dlTensor, "dl_tensor"), isReadOnly: false)
        try required(tensor, "tensor").pointee = descriptor
    }
}

@_cdecl("fusednorm_tensor_from_dlpack_managed")
public func fusednorm_tensor_from_dlpack_managed(
    _ managed: UnsafePointer<DLManagedTensor>?, _ tensor: UnsafeMutablePointer<fusednorm_tensor>?
) -> fusednorm_status {
    callBoundary("fusednorm_tensor_from_dlpack_managed") {
        let managed = try required(managed, "managed")
        let descriptor = try withUnsafePointer(to: managed.pointee.dl_tensor) {
            try fusednorm_tensor(dlTensor: $0, isReadOnly: false)
        }
        try required(tensor, "tensor").pointee = descriptor
    }
}

@_cdecl("fusednorm_tensor_from_dlpack_versioned")
public func fusednorm_tensor_from_dlpack_versioned(
    _ managed: UnsafePointer<DLManagedTensorVersioned>?, _ tensor: UnsafeMutablePointer<fusednorm_tensor>?
) -> fusednorm_status {
    callBoundary("fusednorm_tensor_from_dlpack_versioned") {
        let managed = try required(managed, "managed")
        let version = managed.pointee.version
        guard version.major == UInt32(DLPACK_MAJOR_VERSION) else {
            throw InterfaceError.unsupported(
                "DLPack version \(version.major).\(version.minor); major version \(DLPACK_MAJOR_VERSION) is read")
        }
        let readOnly = managed.pointee.flags & DLPACK_FLAG_BITMASK_READ_ONLY != 0
        let descriptor = try withUnsafePointer(to: managed.pointee.dl_tensor) {
            try fusednorm_tensor(dlTensor: $0, isReadOnly: readOnly)
        }
        try required(tensor, "tensor").pointee = descriptor
    }
}

@_cdecl("fusednorm_tensor_to_dlpack_versioned")
public func fusednorm_tensor_to_dlpack_versioned(
    _ tensor: UnsafePointer<fusednorm_tensor>?,
    _ managed: UnsafeMutablePointer<UnsafeMutablePointer<DLManagedTensorVersioned>?>?
) -> fusednorm_status {
    callBoundary("fusednorm_tensor_to_dlpack_versioned") {
        let destination = try required(managed, "managed")
        let view = try Tensor(descriptor: try required(tensor, "tensor"), argument: "tensor")
        destination.pointee = view.dlpackVersioned()
    }
}

@_cdecl("fusednorm_tensor_to_dlpack")
public func fusednorm_tensor_to_dlpack(
    _ tensor: UnsafePointer<fusednorm_tensor>?, _ managed: UnsafeMutablePointer<UnsafeMutablePointer<DLManagedTensor>?>?
) -> fusednorm_status {
    callBoundary("fusednorm_tensor_to_dlpack") {
        let destination = try required(managed, "managed")
        let view = try Tensor(descriptor: try required(tensor, "tensor"), argument: "tensor")
        destination.pointee = view.dlpack()
    }
}
