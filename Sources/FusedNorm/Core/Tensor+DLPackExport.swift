import CDLPack

/// What an exported DLPack tensor owns: the tensor (so its memory stays alive) and the shape and strides
/// arrays the `DLTensor` points to. Released by the deleter.
private final class DLPackExport {
    let tensor: Tensor
    let shape: UnsafeMutablePointer<Int64>
    let strides: UnsafeMutablePointer<Int64>

    init(_ tensor: Tensor) {
        self.tensor = tensor
        let rank = tensor.shape.count
        shape = .allocate(capacity: rank)
        strides = .allocate(capacity: rank)
        // The last dimension is contiguous; the second-to-last steps by rowStride; the ones before step by
        // groupStride times the dimensions between (for uniform rows groupStride = rowsPerGroup · rowStride).
        strides[rank - 1] = 1
        shape[rank - 1] = Int64(tensor.columns)
        var step = tensor.rows > 1 ? tensor.rowStride : tensor.columns
        for dimension in stride(from: rank - 2, through: 0, by: -1) {
            shape[dimension] = Int64(tensor.shape[dimension])
            if dimension == rank - 3 { step = tensor.groupStride }
            strides[dimension] = Int64(step)
            step = step &* tensor.shape[dimension]
        }
    }

    deinit {
        shape.deallocate()
        strides.deallocate()
    }

    /// The `DLTensor` describing the tensor, pointing into this export's arrays.
    var dlTensor: DLTensor {
        DLTensor(
            data: UnsafeMutableRawPointer(bitPattern: tensor.rowView.address), device: tensor.device.dlpack,
            ndim: Int32(tensor.shape.count), dtype: tensor.dtype.dlpack, shape: shape, strides: strides, byte_offset: 0)
    }
}

extension Tensor {
    /// Exports this tensor as a DLPack 1.x tensor over the same memory (no copy).
    ///
    /// The export keeps this tensor's memory alive until the consumer calls its deleter, exactly once.
    /// A read-only tensor is exported with `DLPACK_FLAG_BITMASK_READ_ONLY`.
    /// - Returns: a tensor the consumer owns (`version` 1.0, strides always given).
    public func dlpackVersioned() -> UnsafeMutablePointer<DLManagedTensorVersioned> {
        let export = DLPackExport(self)
        let managed = UnsafeMutablePointer<DLManagedTensorVersioned>.allocate(capacity: 1)
        managed.initialize(
            to: DLManagedTensorVersioned(
                version: DLPackVersion(major: UInt32(DLPACK_MAJOR_VERSION), minor: UInt32(DLPACK_MINOR_VERSION)),
                manager_ctx: Unmanaged.passRetained(export).toOpaque(),
                deleter: { managed in
                    guard let managed else { return }
                    if let context = managed.pointee.manager_ctx { Unmanaged<AnyObject>.fromOpaque(context).release() }
                    managed.deallocate()
                },
                flags: isWritable ? 0 : DLPACK_FLAG_BITMASK_READ_ONLY,
                dl_tensor: export.dlTensor))
        return managed
    }

    /// Exports this tensor as a legacy (pre-1.0) DLPack tensor over the same memory (no copy), for consumers
    /// that do not read DLPack 1.x; as ``dlpackVersioned()``, without the read-only flag (legacy tensors have none).
    public func dlpack() -> UnsafeMutablePointer<DLManagedTensor> {
        let export = DLPackExport(self)
        let managed = UnsafeMutablePointer<DLManagedTensor>.allocate(capacity: 1)
        managed.initialize(
            to: DLManagedTensor(
                dl_tensor: export.dlTensor,
                manager_ctx: Unmanaged.passRetained(export).toOpaque(),
                deleter: { managed in
                    guard let managed else { return }
                    if let context = managed.pointee.manager_ctx { Unmanaged<AnyObject>.fromOpaque(context).release() }
                    managed.deallocate()
                }))
        return managed
    }
}
