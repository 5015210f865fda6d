// TEMPORARY scalar implementation, to be replaced by the SIMD multi-core kernels.
extension RowView {
    @inline(__always) func load(_ row: Int, _ column: Int) -> Float {
        let p = UnsafeRawPointer(bitPattern: address(row: row, column: column))!
        switch dtype {
        case .float32: return p.load(as: Float.self)
        case .float16: return Float(p.load(as: Float16.self))
        case .bfloat16: return Float(BFloat16(bitPattern: p.load(as: UInt16.self)))
        }
    }
    @inline(__always) func store(_ value: Float, _ row: Int, _ column: Int) {
        let p = UnsafeMutableRawPointer(bitPattern: address(row: row, column: column))!
        switch dtype {
        case .float32: p.storeBytes(of: value, as: Float.self)
        case .float16: p.storeBytes(of: Float16(value), as: Float16.self)
        case .bfloat16: p.storeBytes(of: BFloat16(value).bitPattern, as: UInt16.self)
        }
    }
}

extension CPUBackend {
    func run(_ p: NormForwardProblem) throws {
        let n = p.columns
        var s = [Float](repeating: 0, count: n)
        for row in 0..<p.rows {
            for c in 0..<n {
                var v = p.x.load(row, c)
                if let r = p.residual, let so = p.residualOutput {
                    v += r.load(row, c)
                    so.store(v, row, c)
                    v = so.load(row, c)
                }
                s[c] = v
            }
            var mean: Float = 0
            if p.kind == .layer { mean = s.reduce(0, +) / Float(n) }
            var sq: Float = 0
            for c in 0..<n { sq += (s[c] - mean) * (s[c] - mean) }
            let rstd = 1 / (sq / Float(n) + p.epsilon).squareRoot()
            if let a = p.rstd { UnsafeMutablePointer<Float>(bitPattern: a)![row] = rstd }
            if let a = p.mean { UnsafeMutablePointer<Float>(bitPattern: a)![row] = mean }
            let wr = row % p.weightRows
            let roundDType = p.residualOutput?.dtype ?? p.x.dtype
            for c in 0..<n {
                var hat = (s[c] - mean) * rstd
                let w = (p.weight?.load(wr, c) ?? (p.kind == .rms ? 1 - p.weightOffset : 1)) + (p.kind == .rms ? p.weightOffset : 0)
                if p.kind == .rms, p.casting == .llama { hat = roundDType.round(hat) }
                p.output.store(hat * w + (p.bias?.load(wr, c) ?? 0), row, c)
            }
        }
    }

    func run(_ p: NormBackwardProblem) throws {
        let n = p.columns
        var dw = [Float](repeating: 0, count: p.weightRows * n)
        var db = [Float](repeating: 0, count: p.weightRows * n)
        for row in 0..<p.rows {
            var mean: Float = 0
            if p.kind == .layer { mean = (0..<n).reduce(0) { $0 + p.x.load(row, $1) } / Float(n) }
            var sq: Float = 0
            for c in 0..<n { let d = p.x.load(row, c) - mean; sq += d * d }
            let rstd = 1 / (sq / Float(n) + p.epsilon).squareRoot()
            let wr = row % p.weightRows
            var sumG: Float = 0, sumGH: Float = 0
            for c in 0..<n {
                let hat = (p.x.load(row, c) - mean) * rstd
                let w = (p.weight.map { $0.load(wr, c) + p.weightOffset }) ?? 1
                let g = p.dy.load(row, c) * w
                sumG += g; sumGH += g * hat
                dw[wr * n + c] += p.dy.load(row, c) * hat
                db[wr * n + c] += p.dy.load(row, c)
            }
            let mg = p.kind == .layer ? sumG / Float(n) : 0, mgh = sumGH / Float(n)
            for c in 0..<n {
                let hat = (p.x.load(row, c) - mean) * rstd
                let w = (p.weight.map { $0.load(wr, c) + p.weightOffset }) ?? 1
                let g = p.dy.load(row, c) * w
                var dx = rstd * (g - mg - hat * mgh)
                if let rg = p.residualGradient { dx += rg.load(row, c) }
                p.dx.store(dx, row, c)
            }
        }
        for h in 0..<p.weightRows {
            for c in 0..<n {
                p.dweight?.store(dw[h * n + c], h, c)
                p.dbias?.store(db[h * n + c], h, c)
            }
        }
    }
}
