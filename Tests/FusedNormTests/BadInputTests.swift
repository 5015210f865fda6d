import FusedNorm
import FusedNormReference
import Testing

/// Every caller mistake is a thrown ``FusedNormError`` of the right case, found before anything is written.
@Suite("Bad inputs throw the right FusedNormError")
struct BadInputTests {
    // MARK: Creating tensors

    @Test("A shape of rank 0 is rejected")
    func rankZero() {
        expectError(.rankZero, "Tensor([], shape: [])") { try Tensor([], shape: []) }
        expectError(.rankZero, "zeros([])") { try Tensor.zeros([]) }
        expectError(.rankZero, "Tensor(repeating:shape: [])") { try Tensor(repeating: 1, shape: []) }
    }

    @Test("Rows of length 0 are rejected", arguments: [[0], [4, 0], [2, 3, 0]])
    func emptyRows(shape: [Int]) {
        expectError(.emptyRows, "Tensor([], shape: \(shape))") { try Tensor([], shape: shape) }
        expectError(.emptyRows, "ones(\(shape))") { try Tensor.ones(shape, dtype: .bfloat16) }
    }

    @Test("Negative dimensions are rejected", arguments: [[-1], [-2, 4], [4, -3], [2, -1, -4]])
    func negativeDimensions(shape: [Int]) {
        expectError(.invalidShape, argument: "shape", "Tensor([], shape: \(shape))") { try Tensor([], shape: shape) }
        expectError(.invalidShape, "zeros(\(shape))") { try Tensor.zeros(shape) }
    }

    @Test("A shape with too many elements is rejected, not overflowed")
    func hugeShape() {
        expectError(.invalidShape, "zeros([1 << 40, 1 << 40])") { try Tensor.zeros([1 << 40, 1 << 40]) }
    }

    @Test("The number of values must match the shape")
    func countMismatch() throws {
        let error = expectError(.countMismatch, "5 values for [2, 3]") { try Tensor([1, 2, 3, 4, 5], shape: [2, 3]) }
        #expect(error == .countMismatch(expected: 6, actual: 5), "got \(String(describing: error))")
        expectError(.countMismatch, "7 values for [2, 3]") { try Tensor([1, 2, 3, 4, 5, 6, 7], shape: [2, 3]) }
        let tensor = try Tensor.zeros([2, 3])
        expectError(.countMismatch, "write of 5 values into [2, 3]") { try tensor.write([1, 2, 3, 4, 5]) }
        let view = try Tensor.zeros([6, 3]).rows(0..<6, step: 2)
        expectError(.countMismatch, "write of 18 values into a view of 9") {
            try view.write([Float](repeating: 1, count: 18))
        }
    }

    // MARK: Views

    @Test("View ranges outside the tensor, an empty column range and a step below 1 are rejected")
    func badViews() throws {
        let tensor = try Tensor.zeros([4, 6])
        expectError(.invalidArgument, argument: "range", "rows(0..<5)") { try tensor.rows(0..<5) }
        expectError(.invalidArgument, argument: "range", "rows(-1..<2)") { try tensor.rows(-1..<2) }
        expectError(.invalidArgument, argument: "step", "rows(step: 0)") { try tensor.rows(0..<4, step: 0) }
        expectError(.invalidArgument, argument: "step", "rows(step: -1)") { try tensor.rows(0..<4, step: -1) }
        expectError(.invalidArgument, argument: "range", "columns(0..<7)") { try tensor.columns(0..<7) }
        expectError(.invalidArgument, argument: "range", "columns(-1..<3)") { try tensor.columns(-1..<3) }
        expectError(.invalidArgument, argument: "range", "columns(2..<2)") { try tensor.columns(2..<2) }
        expectError(.shapeMismatch, argument: "shape", "reshaped([5, 5])") { try tensor.reshaped([5, 5]) }
        expectError(.invalidShape, argument: "shape", "reshaped([-4, -6])") { try tensor.reshaped([-4, -6]) }
        expectError(.rankZero, "reshaped([])") { try tensor.reshaped([]) }
        expectError(.emptyRows, "reshaped([24, 0])") { try tensor.reshaped([24, 0]) }
        let strided = try tensor.rows(0..<4, step: 2)
        expectError(.invalidArgument, argument: "shape", "changing the last dimension of a strided view") {
            try strided.reshaped([12])
        }
        let narrow = try tensor.columns(1..<4)
        expectError(.invalidArgument, argument: "shape", "changing the last dimension of a column view") {
            try narrow.reshaped([3, 4])
        }
    }

    @Test("copy(into:) needs the same shape and dtype")
    func badCopy() throws {
        let source = try Tensor.ones([2, 3])
        expectError(.shapeMismatch, argument: "destination", "copy into [3, 2]") {
            try source.copy(into: Tensor.zeros([3, 2]))
        }
        expectError(.shapeMismatch, argument: "destination", "copy into [6]") {
            try source.copy(into: Tensor.zeros([6]))
        }
        expectError(.dtypeMismatch, argument: "destination", "copy into bf16") {
            try source.copy(into: Tensor.zeros([2, 3], dtype: .bfloat16))
        }
    }

    // MARK: Names

    @Test(
        "Unknown device names parse to nil; known ones parse",
        arguments: ["tpu", "cuda:", "cuda:x", "cuda:-1", "cuda:1.5", "", "cpu0", "metal"])
    func unknownDeviceName(name: String) {
        #expect(Device(name: name) == nil, "Device(name: \"\(name)\") should be nil")
    }

    @Test("Known device names parse")
    func knownDeviceNames() {
        #expect(Device(name: "cpu") == .cpu)
        #expect(Device(name: "CPU") == .cpu)
        #expect(Device(name: "cuda") == .cuda(0))
        #expect(Device(name: "gpu") == .cuda(0))
        #expect(Device(name: "cuda:3") == .cuda(3))
        #expect(Device(name: "auto") == Device.best)
        #expect(Device.best == (TestDevices.cudaAvailable ? .cuda(0) : .cpu), "best is \(Device.best)")
        #expect(Device.cuda(2).description == "cuda:2" && Device.cpu.description == "cpu")
        #expect(Device(name: Device.cuda(5).description) == .cuda(5), "description round trip")
    }

    @Test("Unknown dtype names parse to nil", arguments: ["float64", "fp8", "int8", "", "bf", "float 32"])
    func unknownDTypeName(name: String) {
        #expect(DType(name: name) == nil, "DType(name: \"\(name)\") should be nil")
    }

    @Test("Known dtype names parse")
    func knownDTypeNames() {
        for (names, dtype) in [
            (["float32", "fp32", "f32", "float", "FP32"], DType.float32),
            (["float16", "fp16", "f16", "half"], .float16), (["bfloat16", "bf16", "BF16"], .bfloat16),
        ] {
            for name in names { #expect(DType(name: name) == dtype, "DType(name: \"\(name)\")") }
        }
        for dtype in DType.allCases {
            #expect(DType(name: dtype.description) == dtype, "description round trip of \(dtype)")
        }
        #expect(DType.float32.byteCount == 4 && DType.float16.byteCount == 2 && DType.bfloat16.byteCount == 2)
    }

    // MARK: Devices

    @Test("Memory on a GPU that cannot be used throws deviceUnavailable", .requiresNoCUDA)
    func noGPU() {
        let error = expectError(.deviceUnavailable, "Tensor(..., device: .cuda(0)) without a usable GPU") {
            try Tensor([1, 2, 3], device: .cuda(0))
        }
        if case .deviceUnavailable(let device, let reason)? = error {
            #expect(device == .cuda(0) && !reason.isEmpty, "got \(device): \(reason)")
        }
        expectError(.deviceUnavailable, "zeros on .cuda(0)") { try Tensor.zeros([2, 2], device: .cuda(0)) }
        expectError(.deviceUnavailable, "to(.cuda(0))") { try Tensor.ones([2, 2]).to(.cuda(0)) }
        expectError(.deviceUnavailable, "synchronize .cuda(0)") { try Device.cuda(0).synchronize() }
        expectError(.deviceUnavailable, "RMSNorm layer on .cuda(0)") { try RMSNorm(dimensions: 8, device: .cuda(0)) }
    }

    @Test(
        "A device that is not there throws deviceUnavailable",
        arguments: [1000, -1] + (CUDA.status.devices.count <= 7 ? [7] : []))
    func missingDevice(index: Int) throws {
        let error = expectError(.deviceUnavailable, "Tensor on .cuda(\(index))") {
            try Tensor([1, 2], device: .cuda(index))
        }
        if case .deviceUnavailable(let device, _)? = error { #expect(device == .cuda(index)) }
        expectError(.deviceUnavailable, "copy to .cuda(\(index))") { try Tensor.ones([2]).to(.cuda(index)) }
    }

    @Test("Tensors on different devices cannot be mixed", .requiresCUDA)
    func mixedDevices() throws {
        let x = try Tensor.ones([2, 8], device: .cuda(0))
        let cpuWeight = try Tensor.ones([8])
        expectError(.deviceMismatch, argument: "weight", "GPU x, CPU weight") { try rmsNorm(x, weight: cpuWeight) }
        expectError(.deviceMismatch, argument: "residual", "GPU x, CPU residual") {
            try rmsNorm(x, residual: Tensor.ones([2, 8]))
        }
        expectError(.deviceMismatch, argument: "bias", "GPU x, CPU bias") { try layerNorm(x, bias: cpuWeight) }
        expectError(.deviceMismatch, argument: "output", "GPU x, CPU output") {
            try rmsNormForward(x, output: Tensor.zeros([2, 8]))
        }
        expectError(.deviceMismatch, argument: "outputGradient", "GPU x, CPU dy") {
            try rmsNormBackward(Tensor.ones([2, 8]), input: x)
        }
        expectError(.deviceMismatch, argument: "rstd", "GPU x, CPU rstd") {
            try rmsNormBackward(x, input: x, rstd: Tensor.ones([2]))
        }
        expectError(.deviceMismatch, argument: "destination", "copy from GPU into CPU") {
            try x.copy(into: Tensor.zeros([2, 8]))
        }
        // The other way round.
        expectError(.deviceMismatch, argument: "weight", "CPU x, GPU weight") {
            try rmsNorm(Tensor.ones([2, 8]), weight: Tensor.ones([8], device: .cuda(0)))
        }
    }

    // MARK: Operations (on every device)

    @Test("A weight, bias or residual of the wrong shape is rejected", arguments: TestDevices.all)
    func wrongParameterShapes(device: Device) throws {
        let x = try Tensor.ones([3, 8], device: device)
        for shape in [[7], [9], [1, 8], [2, 8], [8, 1], [3, 7], [1]] {
            let weight = try Tensor.ones(shape, device: device)
            expectError(.shapeMismatch, argument: "weight", "RMSNorm weight \(shape) for x [3, 8] on \(device)") {
                try rmsNorm(x, weight: weight)
            }
            expectError(.shapeMismatch, argument: "weight", "LayerNorm weight \(shape) on \(device)") {
                try layerNorm(x, weight: weight)
            }
            expectError(.shapeMismatch, argument: "bias", "LayerNorm bias \(shape) on \(device)") {
                try layerNorm(x, weight: Tensor.ones([8], device: device), bias: weight)
            }
            expectError(.shapeMismatch, argument: "weight", "backward weight \(shape) on \(device)") {
                try rmsNormBackward(x, input: x, weight: weight)
            }
        }
        for shape in [[3, 7], [2, 8], [8, 3], [24], [1, 3, 8], [3, 8, 1]] {
            let residual = try Tensor.ones(shape, device: device)
            expectError(.shapeMismatch, argument: "residual", "residual \(shape) for x [3, 8] on \(device)") {
                try rmsNorm(x, residual: residual)
            }
            expectError(.shapeMismatch, argument: "residual", "LayerNorm residual \(shape) on \(device)") {
                try layerNorm(x, residual: residual)
            }
            expectError(.shapeMismatch, argument: "outputGradient", "dy \(shape) on \(device)") {
                try rmsNormBackward(residual, input: x)
            }
            expectError(.shapeMismatch, argument: "residualGradient", "residualGradient \(shape) on \(device)") {
                try layerNormBackward(x, input: x, residualGradient: residual)
            }
        }
    }

    @Test(
        "Weight and bias must agree: per-head (H, D) with shared (D) is rejected in either order",
        arguments: TestDevices.all)
    func weightAndBiasAgree(device: Device) throws {
        let x = try Tensor.ones([2, 4, 8], device: device)
        let shared = try Tensor.ones([8], device: device), perHead = try Tensor.ones([4, 8], device: device)
        expectError(.shapeMismatch, argument: "bias", "weight (H, D) with bias (D) on \(device)") {
            try layerNorm(x, weight: perHead, bias: shared)
        }
        // The same mismatch with the roles swapped must not be accepted either: a kernel would then read a
        // (D) weight as if it had H rows.
        expectError(.shapeMismatch, "weight (D) with bias (H, D) on \(device)") {
            try layerNorm(x, weight: shared, bias: perHead)
        }
    }

    @Test("epsilon must be finite and positive", arguments: [Float(0), -0.0, -1e-6, .nan, .infinity, -.infinity])
    func badEpsilon(epsilon: Float) throws {
        let x = try Tensor.ones([2, 4])
        let label = "epsilon \(epsilon)"
        for (name, call) in [
            ("rmsNorm", { _ = try rmsNorm(x, epsilon: epsilon) }),
            ("rmsNorm residual", { _ = try rmsNorm(x, residual: x, epsilon: epsilon) }),
            ("rmsNormForward", { _ = try rmsNormForward(x, epsilon: epsilon) }),
            ("rmsNormBackward", { _ = try rmsNormBackward(x, input: x, epsilon: epsilon) }),
            ("layerNorm", { _ = try layerNorm(x, epsilon: epsilon) }),
            ("layerNorm residual", { _ = try layerNorm(x, residual: x, epsilon: epsilon) }),
            ("layerNormForward", { _ = try layerNormForward(x, epsilon: epsilon) }),
            ("layerNormBackward", { _ = try layerNormBackward(x, input: x, epsilon: epsilon) }),
            ("RMSNorm(dimensions:)", { _ = try RMSNorm(dimensions: 4, epsilon: epsilon) }),
            ("RMSNorm(weight:)", { _ = try RMSNorm(weight: Tensor.ones([4]), epsilon: epsilon) }),
            ("LayerNorm(dimensions:)", { _ = try LayerNorm(dimensions: 4, epsilon: epsilon) }),
            ("LayerNorm(weight:bias:)", { _ = try LayerNorm(weight: Tensor.ones([4]), epsilon: epsilon) }),
        ] as [(String, () throws -> Void)] {
            let error = expectError(.invalidEpsilon, "\(name) with \(label)") { try call() }
            if case .invalidEpsilon(let reported)? = error {
                #expect(
                    reported.bitPattern == epsilon.bitPattern || (reported.isNaN && epsilon.isNaN),
                    "\(name) reported \(reported)")
            }
        }
    }

    @Test("A style's weightOffset must be finite", arguments: [Float.nan, .infinity, -.infinity])
    func badWeightOffset(offset: Float) throws {
        let x = try Tensor.ones([2, 4]), style = RMSNormStyle(weightOffset: offset)
        expectError(.invalidArgument, argument: "weightOffset", "rmsNorm offset \(offset)") {
            try rmsNorm(x, style: style)
        }
        expectError(.invalidArgument, argument: "weightOffset", "backward offset \(offset)") {
            try rmsNormBackward(x, input: x, style: style)
        }
        expectError(.invalidArgument, argument: "weightOffset", "layer offset \(offset)") {
            try RMSNorm(dimensions: 4, style: style)
        }
    }

    @Test("Statistics of the wrong shape, dtype or layout are rejected", arguments: TestDevices.all)
    func badStatistics(device: Device) throws {
        let x = try Tensor.ones([2, 3, 8], device: device)
        let good = try Tensor.ones([2, 3], device: device)
        for shape in [[5], [7], [3, 2], [2, 3, 1], [1, 6]] {
            let rstd = try Tensor.ones(shape, device: device)
            expectError(.shapeMismatch, argument: "rstd", "rstd \(shape) for x [2, 3, 8] on \(device)") {
                try rmsNormBackward(x, input: x, rstd: rstd)
            }
            expectError(.shapeMismatch, argument: "mean", "mean \(shape) on \(device)") {
                try layerNormBackward(x, input: x, mean: rstd, rstd: good)
            }
        }
        for dtype in [DType.bfloat16, .float16] {
            let rstd = try Tensor.ones([2, 3], dtype: dtype, device: device)
            expectError(.dtypeMismatch, argument: "rstd", "rstd in \(dtype) on \(device)") {
                try rmsNormBackward(x, input: x, rstd: rstd)
            }
            expectError(.dtypeMismatch, argument: "rstd", "LayerNorm rstd in \(dtype) on \(device)") {
                try layerNormBackward(x, input: x, mean: good, rstd: rstd)
            }
        }
        // x's row shape [2, 3], but rows 6 apart: statistics must be contiguous.
        let strided = try Tensor.ones([2, 6], device: device).columns(0..<3)
        expectError(.shapeMismatch, argument: "rstd", "non-contiguous rstd on \(device)") {
            try rmsNormBackward(x, input: x, rstd: strided)
        }
        // The flattened row count is accepted as well as the row shape.
        #expect(throws: Never.self, "rstd of shape [6] on \(device)") {
            try rmsNormBackward(x, input: x, rstd: Tensor.ones([6], device: device))
        }
        expectError(.invalidArgument, argument: "mean", "LayerNorm mean without rstd on \(device)") {
            try layerNormBackward(x, input: x, mean: good)
        }
        expectError(.invalidArgument, argument: "mean", "LayerNorm rstd without mean on \(device)") {
            try layerNormBackward(x, input: x, rstd: good)
        }
    }

    @Test("Preallocated outputs of the wrong shape or dtype are rejected", arguments: TestDevices.all)
    func badOutputs(device: Device) throws {
        let x = try Tensor.ones([3, 8], dtype: .bfloat16, device: device)
        let residual = try Tensor.ones([3, 8], dtype: .float32, device: device)
        for shape in [[3, 7], [8, 3], [24], [1, 3, 8]] {
            let output = try Tensor.zeros(shape, dtype: .bfloat16, device: device)
            expectError(.shapeMismatch, argument: "output", "output \(shape) on \(device)") {
                try rmsNormForward(x, output: output)
            }
            expectError(.shapeMismatch, argument: "output", "LayerNorm output \(shape) on \(device)") {
                try layerNormForward(x, output: output)
            }
            expectError(.shapeMismatch, argument: "residualOutput", "residualOutput \(shape) on \(device)") {
                try rmsNormForward(x, residual: residual, residualOutput: output)
            }
            expectError(.shapeMismatch, argument: "inputGradient", "inputGradient \(shape) on \(device)") {
                try rmsNormBackward(x, input: x, inputGradient: output)
            }
            expectError(.shapeMismatch, argument: "inputGradient", "LayerNorm inputGradient \(shape) on \(device)") {
                try layerNormBackward(x, input: x, inputGradient: output)
            }
        }
        let fp16 = try Tensor.zeros([3, 8], dtype: .float16, device: device)
        expectError(.dtypeMismatch, argument: "output", "fp16 output for outputDType bf16 on \(device)") {
            try rmsNormForward(x, outputDType: .bfloat16, output: fp16)
        }
        expectError(.dtypeMismatch, argument: "output", "LayerNorm fp16 output for outputDType fp32 on \(device)") {
            try layerNormForward(x, outputDType: .float32, output: fp16)
        }
        expectError(
            .dtypeMismatch, argument: "residualOutput", "fp16 residualOutput for residualDType fp32 on \(device)"
        ) {
            try rmsNormForward(x, residual: residual, residualDType: .float32, residualOutput: fp16)
        }
        expectError(.invalidArgument, argument: "residualOutput", "residualOutput without a residual on \(device)") {
            try rmsNormForward(x, residualOutput: fp16)
        }
        expectError(
            .invalidArgument, argument: "residualOutput", "LayerNorm residualOutput without a residual on \(device)"
        ) {
            try layerNormForward(x, residualOutput: fp16)
        }
        expectError(.invalidArgument, argument: "residualDType", "residualDType without a residual on \(device)") {
            try rmsNormForward(x, residualDType: .float32)
        }
    }

    @Test("Layers reject bad dimensions")
    func badLayers() {
        expectError(.emptyRows, "RMSNorm(dimensions: 0)") { try RMSNorm(dimensions: 0) }
        expectError(.invalidShape, "RMSNorm(dimensions: -4)") { try RMSNorm(dimensions: -4) }
        expectError(.invalidArgument, argument: "heads", "RMSNorm(dimensions: 8, heads: -2)") {
            try RMSNorm(dimensions: 8, heads: -2)
        }
        expectError(.invalidArgument, argument: "heads", "RMSNorm(dimensions: 8, heads: 0)") {
            try RMSNorm(dimensions: 8, heads: 0)
        }
        expectError(.emptyRows, "LayerNorm(dimensions: 0)") { try LayerNorm(dimensions: 0) }
        expectError(.invalidShape, "LayerNorm(dimensions: -1)") { try LayerNorm(dimensions: -1) }
    }

    @Test("A layer applied to x with the wrong N throws shapeMismatch", arguments: TestDevices.all)
    func layerWrongWidth(device: Device) throws {
        let x = try Tensor.ones([2, 12], device: device)
        expectError(.shapeMismatch, argument: "weight", "RMSNorm(8) on N = 12, \(device)") {
            try RMSNorm(dimensions: 8, device: device)(x)
        }
        expectError(.shapeMismatch, argument: "weight", "LayerNorm(8) on N = 12, \(device)") {
            try LayerNorm(dimensions: 8, device: device)(x)
        }
    }

    // MARK: Nothing is written when a call fails

    @Test("A failed call leaves preallocated outputs untouched", arguments: TestDevices.all)
    func failedCallWritesNothing(device: Device) throws {
        var rng = SplitMix64(label: "failed call")
        let x = try Tensor(rng.values(3 * 16), shape: [3, 16], dtype: .bfloat16, device: device)
        let residual = try Tensor(rng.values(3 * 16), shape: [3, 16], device: device)
        let badWeight = try Tensor.ones([15], device: device)
        let output = try Tensor(repeating: .nan, shape: [3, 16], dtype: .bfloat16, device: device)
        let residualOutput = try Tensor(repeating: .nan, shape: [3, 16], device: device)
        let failures: [(String, () throws -> Void)] = [
            (
                "RMSNorm, bad weight",
                {
                    _ = try rmsNormForward(
                        x, residual: residual, weight: badWeight, output: output, residualOutput: residualOutput)
                }
            ),
            (
                "RMSNorm, bad epsilon",
                {
                    _ = try rmsNormForward(
                        x, residual: residual, epsilon: 0, output: output, residualOutput: residualOutput)
                }
            ),
            (
                "LayerNorm, bad bias",
                {
                    _ = try layerNormForward(
                        x, residual: residual, bias: badWeight, output: output, residualOutput: residualOutput)
                }
            ),
            (
                "RMSNorm, bad residual output dtype",
                {
                    _ = try rmsNormForward(
                        x, residual: residual, residualDType: .float16, output: output, residualOutput: residualOutput)
                }
            ),
            (
                "RMSNorm backward, bad weight",
                { _ = try rmsNormBackward(x, input: x, weight: badWeight, inputGradient: output) }
            ),
            (
                "RMSNorm backward, bad rstd",
                { _ = try rmsNormBackward(x, input: x, rstd: Tensor.ones([4], device: device), inputGradient: output) }
            ),
            (
                "LayerNorm backward, bad residual gradient",
                {
                    _ = try layerNormBackward(
                        x, input: x, residualGradient: Tensor.ones([16, 3], device: device), inputGradient: output)
                }
            ),
        ]
        for (name, call) in failures {
            #expect(throws: FusedNormError.self, "\(name) on \(device)") { try call() }
            let written =
                try output.toArray().filter { !$0.isNaN }.count + residualOutput.toArray().filter { !$0.isNaN }.count
            #expect(
                written == 0, "\(name) on \(device): \(written) poisoned elements were overwritten by a failed call")
        }
    }
}
