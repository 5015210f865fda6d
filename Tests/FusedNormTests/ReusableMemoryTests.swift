import Testing

@testable import FusedNorm

/// The backward pass's partial buffers are kept from call to call (`ReusableMemory`).
struct ReusableMemoryTests {
    @Test
    func aCallReusesTheKeptBufferWhenItIsLargeEnoughAndKeepsTheLargest() {
        let memory = ReusableMemory()
        #expect(memory.byteCount == 0)
        let first = memory.with(byteCount: 4096) { UInt(bitPattern: $0) }
        #expect(first % 64 == 0)
        #expect(memory.byteCount == 4096)
        #expect(memory.with(byteCount: 1000) { UInt(bitPattern: $0) } == first)
        #expect(memory.byteCount == 4096, "a smaller call keeps the larger buffer")
        memory.with(byteCount: 8192) { pointer in pointer.storeBytes(of: 1, toByteOffset: 8191, as: UInt8.self) }
        #expect(memory.byteCount == 8192)
        memory.clear()
        #expect(memory.byteCount == 0)
    }

    @Test
    func callsAtTheSameTimeGetTheirOwnBuffers() {
        let memory = ReusableMemory()
        let (outer, inner) = memory.with(byteCount: 256) { outer in
            (UInt(bitPattern: outer), memory.with(byteCount: 256) { UInt(bitPattern: $0) })
        }
        #expect(outer != inner)
        #expect(memory.byteCount == 256, "one of the two is kept, the other freed")
        memory.clear()
    }

    @Test(
        "A backward pass gives the same bits whether it finds the kept partials of an earlier, larger call or fresh memory",
        arguments: [Norm.rms, .layer])
    func keptPartialsDoNotLeakIntoTheNextCall(_ norm: Norm) throws {
        var rng = SplitMix64(label: "kept partials \(norm)")
        func gradients(rows: Int, columns: Int) throws -> [[Float]] {
            let x = try Tensor(rng.values(rows * columns), shape: [rows, columns])
            let dy = try Tensor(rng.values(rows * columns, -1, 1), shape: [rows, columns])
            let weight = try Tensor(rng.values(columns, 0.5, 1.5), shape: [columns])
            let bias = try Tensor(rng.values(columns, -0.5, 0.5), shape: [columns])
            switch norm {
            case .rms:
                let forward = try rmsNormForward(x, weight: weight)
                let g = try rmsNormBackward(dy, input: x, weight: weight, rstd: forward.rstd)
                return [try g.input.toArray(), try g.weight!.toArray()]
            case .layer:
                let forward = try layerNormForward(x, weight: weight, bias: bias)
                let g = try layerNormBackward(
                    dy, input: x, weight: weight, bias: bias, mean: forward.mean, rstd: forward.rstd)
                return [try g.input.toArray(), try g.weight!.toArray(), try g.bias!.toArray()]
            }
        }
        let state = rng
        CPUSettings.clearCache()
        let fresh = try gradients(rows: 64, columns: 1000)
        _ = try gradients(rows: 256, columns: 4096)  // leaves larger partials behind, full of its sums
        rng = state
        let reused = try gradients(rows: 64, columns: 1000)
        for (a, b) in zip(fresh, reused) { #expect(differingBits(a, b) == 0) }
    }
}
