import Testing

@testable import FusedNorm

/// One operation on caller memory: every tensor (x, residual, dy, outputs) lives in memory the test owns,
/// laid out as `layout`; the result must equal, bit for bit, the same call on FusedNorm-allocated tensors.
struct WrappedCase: Sendable, CustomStringConvertible {
    enum Operation: String, Sendable, CaseIterable {
        case rmsForward, rmsResidualForward, layerForward, rmsBackward, layerBackward
    }
    var operation: Operation
    var dtype: DType
    var layout: CallerLayout
    var perHead: Bool
    var shape: [Int]

    var description: String { "\(operation) \(dtype) \(layout) \(shape)\(perHead ? " per-head" : "")" }

    static let all: [WrappedCase] = Operation.allCases.enumerated().flatMap { i, operation in
        CallerLayout.allCases.enumerated().flatMap { j, layout in
            DType.allCases.enumerated().map { k, dtype in
                WrappedCase(
                    operation: operation, dtype: dtype, layout: layout, perHead: (i + j + k) % 2 == 0,
                    shape: [[3, 4, 40], [5, 2, 33], [2, 8, 64]][(i + k) % 3])
            }
        }
    }
}

@Suite("Tensors over caller memory (zero-copy)")
struct WrappedMemoryTests {
    @Test(
        "every operation on wrapped memory, as inputs and preallocated outputs, equals the allocated call bit for bit",
        arguments: WrappedCase.all)
    func wrappedEqualsAllocated(_ c: WrappedCase) throws {
        var rng = SplitMix64(label: c.description)
        let count = c.shape.reduce(1, *)
        let (t, h, d) = (c.shape[0], c.shape[1], c.shape[2])
        let x = rng.values(count), other = rng.values(count)
        let weightShape = c.perHead ? [h, d] : [d]
        let weight = try Tensor(rng.values(weightShape.reduce(1, *), 0.5, 1.5), shape: weightShape, dtype: c.dtype)
        let bias = try Tensor(rng.values(weightShape.reduce(1, *)), shape: weightShape, dtype: .float32)

        // The same call on FusedNorm-allocated memory in the same layout, outputs included: the CPU kernels'
        // rounding may depend on where rows start (the residual add's sums do), so rows start at the same offsets.
        func allocated(_ values: [Float], _ shape: [Int], _ dtype: DType, _ layout: CallerLayout?) throws -> Tensor {
            guard let layout else { return try Tensor(values, shape: shape, dtype: dtype) }
            let (rowStride, groupStride) = layout.strides(shape)
            let base = try Tensor(allocating: [layout.extent(shape)], dtype: dtype, on: .cpu)
            let tensor = Tensor(
                shape: shape, dtype: dtype, rowStride: rowStride, groupStride: groupStride, buffer: base.buffer,
                byteOffset: 0)
            try tensor.write(values)
            return tensor
        }
        var callerMemory: [CallerTensor] = []
        func wrapped(_ values: [Float], _ shape: [Int], _ dtype: DType, _ layout: CallerLayout?) throws -> Tensor {
            let placed = try CallerTensor(values, shape: shape, dtype: dtype, layout: layout)
            callerMemory.append(placed)
            return placed.tensor
        }
        let poison = [Float](repeating: .nan, count: count)
        let statisticsPoison = [Float](repeating: .nan, count: t * h)
        let gradientPoison = [Float](repeating: .nan, count: weightShape.reduce(1, *))

        /// Runs the case on tensors from `make`; returns the tensors it wrote.
        func run(_ make: ([Float], [Int], DType, CallerLayout?) throws -> Tensor) throws -> [Tensor] {
            let a = try make(x, c.shape, c.dtype, c.layout), b = try make(other, c.shape, c.dtype, c.layout)
            let out = try make(poison, c.shape, c.dtype, c.layout), out2 = try make(poison, c.shape, c.dtype, c.layout)
            // Statistics and parameter gradients: contiguous fp32 (shape (T, H) and the weight's).
            let mean = try make(statisticsPoison, [t, h, 1], .float32, nil).reshaped([t, h])
            let rstd = try make(statisticsPoison, [t, h, 1], .float32, nil).reshaped([t, h])
            let dweight = try make(gradientPoison, weightShape, .float32, nil)
            let dbias = try make(gradientPoison, weightShape, .float32, nil)
            let (outputs, counters) = try MemoryCounters.counting { () throws -> [Tensor] in
                switch c.operation {
                case .rmsForward:
                    let r = try rmsNormForward(a, weight: weight, style: .gemma, output: out, rstdOutput: rstd)
                    #expect(r.output.dataAddress == out.dataAddress && r.rstd.dataAddress == rstd.dataAddress)
                    return [out, rstd]
                case .rmsResidualForward:
                    _ = try rmsNormForward(
                        a, residual: b, weight: weight, style: .llama, output: out, residualOutput: out2,
                        rstdOutput: rstd)
                    return [out, out2, rstd]
                case .layerForward:
                    _ = try layerNormForward(
                        a, weight: weight, bias: bias, output: out, meanOutput: mean, rstdOutput: rstd)
                    return [out, mean, rstd]
                case .rmsBackward:
                    let g = try rmsNormBackward(
                        b, input: a, weight: weight, residualGradient: b, style: .gemma, inputGradient: out,
                        weightGradient: dweight)
                    #expect(g.input.dataAddress == out.dataAddress && g.weight?.dataAddress == dweight.dataAddress)
                    return [out, dweight]
                case .layerBackward:
                    _ = try layerNormBackward(
                        b, input: a, weight: weight, bias: bias, inputGradient: out, weightGradient: dweight,
                        biasGradient: dbias)
                    return [out, dweight, dbias]
                }
            }
            #expect(
                counters.allocations == 0 && counters.copies == 0,
                "calls with every output given allocate and copy nothing")
            // The inputs were only read.
            #expect(try elementBits(a) == (try elementBits(Tensor(x, shape: c.shape, dtype: c.dtype))))
            return outputs
        }
        let expected = try run(allocated)
        let results = try run(wrapped)
        let a = callerMemory[0]
        #expect(
            a.tensor.dataAddress == UInt(bitPattern: a.owner.memory.baseAddress),
            "the tensor's data is the caller's memory")
        #expect(a.tensor.hasGroupedRows == (c.layout == .grouped || c.layout == .transposedHeads))
        for (result, reference) in zip(results, expected) {
            #expect(try elementBits(result) == (try elementBits(reference)), "\(c)")
        }
        // Read through the caller's pointer: the results are in the caller's memory, not in a copy.
        #expect(
            callerMemory[2].bitsThroughCallerMemory() == (try elementBits(expected[0])),
            "\(c): read through the caller's pointer")
    }

    @Test("the scoped form lends memory only inside the closure: a tensor kept past it throws on use")
    func scopedTensorCannotOutliveClosure() throws {
        var values = [Float](repeating: 1, count: 4 * 8)
        let escaped = try values.withUnsafeMutableBytes { memory in
            try Tensor.withWrapping(memory, shape: [4, 8], dtype: .float32) { x in
                #expect(x.dataAddress == UInt(bitPattern: memory.baseAddress))
                _ = try rmsNorm(x, output: x)
                return x
            }
        }
        #expect(values.allSatisfy { abs($0 - 1) < 1e-6 && $0 != 1 })  // rms of ones, 1 / sqrt(1 + ε): written in place
        expectError(.invalidArgument, argument: "x", "an escaped tensor used in an operation") { try rmsNorm(escaped) }
        expectError(.invalidArgument, argument: "tensor", "an escaped tensor read") { try escaped.toArray() }
        expectError(.invalidArgument, argument: "output", "an escaped tensor as output") {
            try rmsNorm(Tensor.ones([4, 8]), output: escaped)
        }
    }

    @Test("read-only memory is an input only: as any output it throws before any work")
    func readOnlyMemory() throws {
        let values = [Float](repeating: 2, count: 3 * 16)
        try values.withUnsafeBytes { memory in
            try Tensor.withWrapping(memory, shape: [3, 16], dtype: .float32) { x in
                #expect(!x.isWritable)
                let y = try rmsNorm(x)
                #expect(try y.toArray().allSatisfy { abs($0 - 1) < 1e-6 })
                expectError(.readOnly, argument: "output", "read-only output") { try rmsNorm(y, output: x) }
                expectError(.readOnly, argument: "inputGradient", "read-only dx") {
                    try rmsNormBackward(y, input: y, inputGradient: x)
                }
                let statistics = [Float](repeating: 0, count: 3)
                _ = try statistics.withUnsafeBytes { statisticsMemory in
                    try Tensor.withWrapping(statisticsMemory, shape: [3], dtype: .float32) { rstd in
                        expectError(.readOnly, argument: "rstdOutput", "read-only statistics") {
                            try rmsNormForward(y, rstdOutput: rstd)
                        }
                    }
                }
                expectError(.readOnly, argument: "tensor", "write") { try x.write([Float](repeating: 0, count: 48)) }
                expectError(.readOnly, argument: "destination", "copy into") { try y.copy(into: x) }
            }
        }
        #expect(values.allSatisfy { $0 == 2 })
    }

    @Test("the owner of unscoped wrapped memory is released exactly once, after the last view")
    func ownerReleasedOnce() throws {
        final class Owner {
            let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: 256, alignment: 64)
            let released: Counter
            init(_ released: Counter) { self.released = released }
            deinit {
                memory.deallocate()
                released.count += 1
            }
        }
        final class Counter: @unchecked Sendable { var count = 0 }
        let released = Counter()
        var view: Tensor?
        do {
            let owner = Owner(released)
            let tensor = try Tensor(unsafeWrapping: owner.memory, shape: [4, 16], dtype: .float32, owner: owner)
            try tensor.write([Float](repeating: 3, count: 64))
            view = try tensor.rows(1..<3).columns(2..<10)
        }
        #expect(released.count == 0, "a view keeps the owner alive")
        #expect(try view!.toArray() == [Float](repeating: 3, count: 16))
        view = nil
        #expect(released.count == 1)
    }

    @Test("bad wrapped memory throws a typed error before any work")
    func badMemory() throws {
        let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: 1024, alignment: 64)
        defer { memory.deallocate() }
        expectError(.bufferTooSmall, argument: "memory", "too small for the shape") {
            try Tensor(unsafeWrapping: memory, shape: [17, 16], dtype: .float32)
        }
        expectError(.bufferTooSmall, argument: "memory", "too small for the stride") {
            try Tensor(unsafeWrapping: memory, shape: [4, 16], dtype: .float32, rowStride: 81)
        }
        expectError(.bufferTooSmall, argument: "memory", "too small for the group stride") {
            try Tensor(unsafeWrapping: memory, shape: [3, 2, 8], dtype: .float32, rowStride: 8, groupStride: 121)
        }
        expectError(.misalignedAddress, argument: "memory", "odd address for float16") {
            try Tensor(
                unsafeWrapping: UnsafeMutableRawBufferPointer(rebasing: memory[1...]), shape: [4], dtype: .float16)
        }
        expectError(.misalignedAddress, argument: "memory", "address 2 mod 4 for float32") {
            try Tensor(
                unsafeWrapping: UnsafeMutableRawBufferPointer(rebasing: memory[2...]), shape: [4], dtype: .float32)
        }
        expectError(.invalidShape, argument: "memory", "overlapping rows") {
            try Tensor(unsafeWrapping: memory, shape: [4, 16], dtype: .float32, rowStride: 8)
        }
        expectError(.invalidShape, argument: "memory", "overlapping groups") {
            try Tensor(unsafeWrapping: memory, shape: [3, 4, 8], dtype: .float32, rowStride: 8, groupStride: 16)
        }
        expectError(.invalidShape, argument: "memory", "negative stride") {
            try Tensor(unsafeWrapping: memory, shape: [4, 16], dtype: .float32, rowStride: -16)
        }
        expectError(.invalidShape, argument: "memory", "negative dimension") {
            try Tensor(unsafeWrapping: memory, shape: [-1, 16], dtype: .float32)
        }
        expectError(.invalidArgument, argument: "device", "host memory API given a CPU for device memory") {
            try Tensor(unsafeWrappingDeviceAddress: 0x1000, byteCount: 64, device: .cpu, shape: [16], dtype: .float32)
        }
    }

    @Test("a wrapped device address on a machine without a usable GPU is deviceUnavailable", .requiresNoCUDA)
    func deviceMemoryWithoutGPU() {
        expectError(.deviceUnavailable, "wrapping device memory without a GPU") {
            try Tensor(
                unsafeWrappingDeviceAddress: 0x1000, byteCount: 64, device: .cuda(0), shape: [16], dtype: .float32)
        }
    }

    @Test("a wrapped tensor with another device's tensors is a device mismatch", .requiresCUDA)
    func deviceMismatch() throws {
        var values = [Float](repeating: 1, count: 16)
        _ = try values.withUnsafeMutableBytes { memory in
            try Tensor.withWrapping(memory, shape: [16], dtype: .float32) { x in
                expectError(.deviceMismatch, argument: "weight", "CPU x with a GPU weight") {
                    try rmsNorm(x, weight: Tensor.ones([16], device: .cuda(0)))
                }
            }
        }
    }
}

@Suite("README zero-copy example")
struct ReadmeZeroCopyExampleTests {
    @Test("The README's zero-copy calls run and do what they say (CPU part)")
    func zeroCopyExample() throws {
        let tokens = 3, heads = 2, headDimension = 128
        var random = SplitMix64(label: "README zero-copy")
        let weight = try Tensor(random.values(4096, 0.5, 1.5), shape: [4096], dtype: .bfloat16)
        var activations = random.values(tokens * 4096).map(BFloat16.init)
        let before = try Tensor(activations, shape: [tokens, 4096])
        let expected = try rmsNorm(before, weight: weight).toArray(of: BFloat16.self)
        try activations.withUnsafeMutableBytes { memory in
            try Tensor.withWrapping(memory, shape: [tokens, 4096], dtype: .bfloat16) { x in
                _ = try rmsNorm(x, weight: weight, output: x)
            }
        }
        #expect(activations == expected, "normalized in place, in the array's storage")

        let qkv = try Tensor(
            random.values(tokens * 3 * heads * headDimension), shape: [tokens, 3 * heads * headDimension],
            dtype: .bfloat16)
        let qNormWeight = try Tensor(random.values(headDimension, 0.5, 1.5), shape: [headDimension], dtype: .bfloat16)
        let q = try qkv.columns(0..<heads * headDimension).reshaped([tokens, heads, headDimension])
        let packed = try Tensor(q.toArray(of: BFloat16.self), shape: [tokens, heads, headDimension])
        _ = try rmsNorm(q, weight: qNormWeight, output: q)
        #expect(try q.toArray(of: BFloat16.self) == rmsNorm(packed, weight: qNormWeight).toArray(of: BFloat16.self))

        let storage = CallerMemory(byteCount: 2 * (4096 + 64) * 2)
        let wrapped = try Tensor(
            unsafeWrapping: storage.memory, shape: [2, 4096], dtype: .float16, rowStride: 4096 + 64, owner: storage)
        #expect(wrapped.rowStride == 4160 && wrapped.dataAddress == UInt(bitPattern: storage.memory.baseAddress))

        let t = try Tensor(activations, shape: [tokens, 4096])
        let back: [BFloat16] = try t.toArray(of: BFloat16.self)
        #expect(t.dtype == .bfloat16 && back == activations)
    }
}
