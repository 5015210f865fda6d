import FusedNorm

/// Bytes a normalization moves through device memory, kernel by kernel: the eager Hugging Face formula in
/// PyTorch (forward and its autograd backward), PyTorch's fused `F.rms_norm`/`F.layer_norm`, and FusedNorm's
/// floor (``BenchOperation/bytes(rows:columns:heads:dtype:)``, the bytes `fusednorm bench` divides by).
///
/// Each kernel reads and writes whole tensors: M·N elements (a tensor like x), M (one value per row) or N
/// (a weight row), each of a dtype's bytes, so that a kernel's bytes are a·M·N + b·M + c·N (the page
/// evaluates those coefficients). Intermediate tensors are assumed to miss the caches (true once M·N·4
/// bytes exceed the GPU's L2, 50 MB on an H100). The eager kernels follow PyTorch's autograd formulas
/// (`derivatives.yaml`); their number varies with the PyTorch version (check with Nsight Compute's
/// `dram__bytes`: docs/notes/traffic-model.md).
struct TrafficModel {
    /// The size of one tensor a kernel touches.
    enum Extent: String, Codable, Sendable {
        /// M·N elements.
        case tensor
        /// M elements (one per row).
        case rows
        /// N elements (a weight or bias row).
        case columns
    }

    /// One tensor read or written by a kernel.
    struct Access: Codable, Equatable, Sendable {
        var name: String
        var extent: Extent
        var elementBytes: Int

        func bytes(rows: Int, columns: Int) -> Int {
            elementBytes * (extent == .tensor ? rows * columns : extent == .rows ? rows : columns)
        }
    }

    /// One kernel launch.
    struct Kernel: Codable, Equatable, Sendable {
        var name: String
        var reads: [Access]
        var writes: [Access]

        func readBytes(rows: Int, columns: Int) -> Int {
            reads.reduce(0) { $0 + $1.bytes(rows: rows, columns: columns) }
        }
        func writeBytes(rows: Int, columns: Int) -> Int {
            writes.reduce(0) { $0 + $1.bytes(rows: rows, columns: columns) }
        }
        func bytes(rows: Int, columns: Int) -> Int {
            readBytes(rows: rows, columns: columns) + writeBytes(rows: rows, columns: columns)
        }
    }

    /// Which normalization.
    enum Norm: String, CaseIterable, Sendable, Codable {
        case rmsnorm, layernorm
    }

    var norm: Norm
    var dtype: DType
    /// The pre-norm residual add (s = x + residual; the norm of s; s is also the next residual stream).
    var residual: Bool

    private var b: Int { dtype.byteCount }
    private func t(_ name: String, _ bytes: Int? = nil) -> Access {
        Access(name: name, extent: .tensor, elementBytes: bytes ?? b)
    }
    private func r(_ name: String, _ bytes: Int? = nil) -> Access {
        Access(name: name, extent: .rows, elementBytes: bytes ?? b)
    }
    private func c(_ name: String) -> Access { Access(name: name, extent: .columns, elementBytes: b) }
    private func k(_ name: String, _ reads: [Access], _ writes: [Access]) -> Kernel {
        Kernel(name: name, reads: reads, writes: writes)
    }

    /// The eager forward pass, kernel by kernel.
    var eagerForward: [Kernel] {
        let input = residual ? "s" : "x"
        var kernels = residual ? [k("add (s = x + residual)", [t("x"), t("residual")], [t("s")])] : []
        switch norm {
        case .rmsnorm:
            // LlamaRMSNorm: x.to(float32); pow(2).mean(-1); + eps; rsqrt; x * r; .to(input dtype); weight * ...
            let cast = b != 4, f = 4
            if cast { kernels.append(k("to(float32)", [t(input)], [t("xf", f)])) }
            let xf = cast ? "xf" : input
            kernels += [
                k("pow(2)", [t(xf, f)], [t("x²", f)]),
                k("mean(-1)", [t("x²", f)], [r("variance", f)]),
                k("+ eps", [r("variance", f)], [r("variance + eps", f)]),
                k("rsqrt", [r("variance + eps", f)], [r("r", f)]),
                k("* (xf · r)", [t(xf, f), r("r", f)], [t("h", f)]),
            ]
            if cast { kernels.append(k("to(\(dtype.rawValue))", [t("h", f)], [t("hb")])) }
            kernels.append(
                k(cast ? "* (weight · hb)" : "* (weight · h)", [c("weight"), t(cast ? "hb" : "h")], [t("y")]))
        case .layernorm:
            // The formula in the input dtype: mean; x - mean; pow(2); mean; + eps; rsqrt; * r; * w; + b.
            kernels += [
                k("mean(-1)", [t(input)], [r("mean")]),
                k("- (x - mean)", [t(input), r("mean")], [t("xc")]),
                k("pow(2)", [t("xc")], [t("xc²")]),
                k("mean(-1)", [t("xc²")], [r("variance")]),
                k("+ eps", [r("variance")], [r("variance + eps")]),
                k("rsqrt", [r("variance + eps")], [r("r")]),
                k("* (xc · r)", [t("xc"), r("r")], [t("h")]),
                k("* (h · weight)", [t("h"), c("weight")], [t("hw")]),
                k("+ bias", [t("hw"), c("bias")], [t("y")]),
            ]
        }
        return kernels
    }

    /// The eager backward pass PyTorch's autograd runs for the forward, kernel by kernel.
    var eagerBackward: [Kernel] {
        var kernels: [Kernel] = []
        switch norm {
        case .rmsnorm:
            let cast = b != 4, f = 4
            let h = cast ? "hb" : "h", xf = cast ? "xf" : (residual ? "s" : "x")
            kernels += [
                k("mul (dy · weight)", [t("dy"), c("weight")], [t("d\(h)")]),
                k("mul (dy · \(h))", [t("dy"), t(h)], [t("dy·\(h)")]),
                k("sum over rows → dweight", [t("dy·\(h)")], [c("dweight")]),
            ]
            if cast { kernels.append(k("to(float32) (ToCopyBackward)", [t("dhb")], [t("dh", f)])) }
            kernels += rsqrtChain(gradient: "dh", centered: xf, bytes: f)
            if cast { kernels.append(k("to(\(dtype.rawValue)) (ToCopyBackward)", [t("dxf", f)], [t("dx")])) }
        case .layernorm:
            kernels += [
                k("sum over rows → dbias", [t("dy")], [c("dbias")]),
                k("mul (dy · weight)", [t("dy"), c("weight")], [t("dh")]),
                k("mul (dy · h)", [t("dy"), t("h")], [t("dy·h")]),
                k("sum over rows → dweight", [t("dy·h")], [c("dweight")]),
            ]
            kernels += rsqrtChain(gradient: "dh", centered: "xc", bytes: b)
            kernels += [
                k("neg (SubBackward)", [t("dxc")], [t("-dxc")]),
                k("sum(-1) → dmean", [t("-dxc")], [r("dmean")]),
                k("div (MeanBackward: expand / N)", [r("dmean")], [t("dx (via mean)")]),
                k("add (accumulate dx)", [t("dxc"), t("dx (via mean)")], [t("dx")]),
            ]
        }
        if residual {
            kernels.append(k("add (accumulate ds: norm + downstream)", [t("dx"), t("ds downstream")], [t("ds")]))
        }
        return kernels
    }

    /// The backward kernels of `h = v · rsqrt(mean(v²) + eps)` from `gradient` (dh): dv through r and through v².
    private func rsqrtChain(gradient: String, centered v: String, bytes e: Int) -> [Kernel] {
        [
            k("mul (\(gradient) · r)", [t(gradient, e), r("r", e)], [t("d\(v) (direct)", e)]),
            k("mul (\(gradient) · \(v))", [t(gradient, e), t(v, e)], [t("\(gradient)·\(v)", e)]),
            k("sum(-1) → dr", [t("\(gradient)·\(v)", e)], [r("dr", e)]),
            k("pow(3) (RsqrtBackward)", [r("r", e)], [r("r³", e)]),
            k("mul (-0.5 · dr)", [r("dr", e)], [r("-0.5·dr", e)]),
            k("mul (· r³) → dvariance", [r("-0.5·dr", e), r("r³", e)], [r("dvariance", e)]),
            k("div (MeanBackward: expand / N)", [r("dvariance", e)], [t("d\(v)²", e)]),
            k("pow(1) (PowBackward)", [t(v, e)], [t("\(v)¹", e)]),
            k("mul (2 · \(v))", [t("\(v)¹", e)], [t("2\(v)", e)]),
            k("mul (d\(v)² · 2\(v))", [t("d\(v)²", e), t("2\(v)", e)], [t("d\(v) (via \(v)²)", e)]),
            k("add (accumulate d\(v))", [t("d\(v) (direct)", e), t("d\(v) (via \(v)²)", e)], [t("d\(v)", e)]),
        ]
    }

    /// PyTorch's fused `F.rms_norm`/`F.layer_norm` (one forward kernel; the backward as a dx kernel and a
    /// dweight (and dbias) kernel, each reading dy and x), with the residual add as a kernel of its own.
    var pytorchFused: (forward: [Kernel], backward: [Kernel]) {
        let input = residual ? "s" : "x"
        let layer = norm == .layernorm
        let name = layer ? "F.layer_norm" : "F.rms_norm"
        var forward = residual ? [k("add (s = x + residual)", [t("x"), t("residual")], [t("s")])] : []
        forward.append(
            k(
                "\(name) forward", [t(input), c("weight")] + (layer ? [c("bias")] : []),
                [t("y")] + (layer ? [r("mean", 4)] : []) + [r("rstd", 4)]))
        var backward = [
            k(
                "\(name) backward: dx",
                [t("dy"), t(input), c("weight")] + (layer ? [r("mean", 4)] : []) + [r("rstd", 4)], [t("dx")]),
            k(
                "\(name) backward: dweight" + (layer ? ", dbias" : ""),
                [t("dy"), t(input)] + (layer ? [r("mean", 4)] : []) + [r("rstd", 4)],
                [c("dweight")] + (layer ? [c("dbias")] : [])),
        ]
        if residual { backward.append(k("add (accumulate ds)", [t("dx"), t("ds downstream")], [t("ds")])) }
        return (forward, backward)
    }

    /// FusedNorm's floor: one kernel each way, the bytes `fusednorm bench` counts (plus, with a residual where
    /// bench has no such operation, the residual's read and s's write forward, the downstream ds read backward).
    func fusedFloor(rows: Int, columns: Int) -> (forward: Int, backward: Int, note: String?) {
        let tensor = rows * columns * b
        switch (norm, residual) {
        case (.rmsnorm, false):
            return (
                BenchOperation.rmsnorm.bytes(rows: rows, columns: columns, dtype: dtype),
                BenchOperation.rmsnormBackward.bytes(rows: rows, columns: columns, dtype: dtype), nil
            )
        case (.rmsnorm, true):
            return (
                BenchOperation.rmsnormResidual.bytes(rows: rows, columns: columns, dtype: dtype),
                BenchOperation.rmsnormBackward.bytes(rows: rows, columns: columns, dtype: dtype) + tensor,
                "backward: bench's rmsnorm_backward + the downstream ds read (M·N·b)"
            )
        case (.layernorm, false):
            return (
                BenchOperation.layernorm.bytes(rows: rows, columns: columns, dtype: dtype),
                BenchOperation.layernormBackward.bytes(rows: rows, columns: columns, dtype: dtype), nil
            )
        case (.layernorm, true):
            return (
                BenchOperation.layernorm.bytes(rows: rows, columns: columns, dtype: dtype) + 2 * tensor,
                BenchOperation.layernormBackward.bytes(rows: rows, columns: columns, dtype: dtype) + tensor,
                "bench's layernorm + the residual read and s write (2·M·N·b); backward + the downstream ds read (M·N·b)"
            )
        }
    }
}

extension Array where Element == TrafficModel.Kernel {
    func bytes(rows: Int, columns: Int) -> Int { reduce(0) { $0 + $1.bytes(rows: rows, columns: columns) } }
}
