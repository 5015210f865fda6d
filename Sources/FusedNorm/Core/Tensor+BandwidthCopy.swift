/// How ``Tensor/copy(into:method:)`` moves memory: the copies `fusednorm bench` measures as its bandwidth
/// yardstick, the faster of which every kernel is compared with.
@_spi(Benchmarking) public enum CopyMethod: String, CaseIterable, Sendable {
    /// The device's own copy, as ``Tensor/copy(into:)`` does it: `memcpy` on the CPU, `cuMemcpyDtoD` on CUDA.
    case library
    /// FusedNorm's copy: on the CPU non-temporal (streaming) stores, which do not read a destination line before
    /// writing it (`cfn_copy_streaming`; `memcpy` on a CPU without AVX2); on CUDA a grid-stride kernel of
    /// 16-byte loads and stores (`copy_vectors`).
    case streaming

    /// What the method is on `device`, for reports: `memcpy`, `streaming` (non-temporal stores), `cuMemcpyDtoD`
    /// or `copy_kernel`.
    public func name(on device: Device) -> String {
        switch (self, device) {
        case (.library, .cpu): "memcpy"
        case (.streaming, .cpu): CPUBackend.copyStreams ? "streaming" : "memcpy (no AVX2 for streaming stores)"
        case (.library, .cuda): "cuMemcpyDtoD"
        case (.streaming, .cuda): "copy_kernel"
        }
    }
}

extension Tensor {
    /// Copies the elements into `destination` (same shape, dtype and device) with `method`.
    ///
    /// `destination[i] = self[i]` for every element, as ``copy(into:)``; only the way memory is moved differs.
    /// On the CPU the copy is done when this returns (stores fenced); on CUDA it is queued on the current stream.
    /// - Parameters:
    ///   - destination: the tensor to write; must not overlap this one.
    ///   - method: the copy to use.
    /// - Throws: ``FusedNormError`` when devices, shapes or dtypes differ; ``CUDAError`` from the driver.
    @_spi(Benchmarking) public func copy(into destination: Tensor, method: CopyMethod) throws {
        guard method == .streaming else { return try copy(into: destination) }
        try requireCopyable(into: destination)
        guard count > 0 else { return }
        let source = rowView, target = destination.rowView
        // One span when both are contiguous, else row by row (rows found as every operation finds them, groups
        // included).
        let (spans, spanBytes) =
            isContiguous && destination.isContiguous ? (1, count * dtype.byteCount) : (rows, columns * dtype.byteCount)
        switch device {
        case .cpu:
            for span in 0..<spans {
                CPUBackend.copyStreaming(
                    bytes: spanBytes, from: source.address(row: span), to: target.address(row: span))
            }
        case .cuda(let index):
            let backend = try CUDABackend.cudaBackend(forDevice: index)
            for span in 0..<spans {
                try backend.copyWithKernel(
                    bytes: spanBytes, from: source.address(row: span), to: target.address(row: span))
            }
        }
    }
}
