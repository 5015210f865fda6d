import FusedNorm
import FusedNormReference
import Testing

/// The hidden sizes every property test sweeps: tiny, odd, one past a power of two, and past 65536.
let sweptColumns = [1, 2, 3, 7, 8, 33, 127, 4095, 4096, 5120, 65537]

/// x's shape for a column count and a variant index: rank 1, several rows, rank 3; few rows when N is large
/// (the suite runs in debug builds).
func sweptShape(columns n: Int, variant: Int) -> [Int] {
    switch n {
    case 65537...: variant % 2 == 0 ? [n] : [1, n]
    case 1000...: variant == 0 ? [n] : [2, n]
    default: [[n], [3, n], [5, n], [2, 2, n]][variant % 4]
    }
}

enum RMSNormForwardCases {
    static let dtypes = DType.allCases
    static let weights: [DType?] = [.float32, .bfloat16, .float16, nil]

    /// Every N in every layout of x and of the preallocated output, cycling dtypes, weights, rounding and offset.
    static let shapes: [ForwardCase] = sweptColumns.enumerated().flatMap { i, n in
        Layout.allCases.enumerated().map { j, layout in
            let k = 4 * i + j
            return ForwardCase(
                norm: .rms, shape: sweptShape(columns: n, variant: j), x: dtypes[k % 3], weight: weights[(i + j) % 4],
                weightOffset: Float((i / 2 + j) % 2), rounding: (i + j / 2) % 2 == 0 ? .once : .twice,
                output: dtypes[(k / 3 + j) % 3], xLayout: layout, outputLayout: Layout.allCases[(i + j + 1) % 4],
                epsilon: [1e-5, 1e-6, 0.1][k % 3])
        }
    }

    /// Every combination of x dtype, weight dtype (or none), output dtype, rounding and offset, on a small shape.
    static let dtypeCombinations: [ForwardCase] = dtypes.flatMap { x in
        weights.flatMap { weight in
            dtypes.flatMap { output in
                RMSNormStyle.Rounding.allCases.flatMap { rounding in
                    (weight == nil ? [Float(0)] : [0, 1]).map { offset in
                        ForwardCase(
                            norm: .rms, shape: [3, 33], x: x, weight: weight, weightOffset: offset, rounding: rounding,
                            output: output)
                    }
                }
            }
        }
    }

    /// A strided, misaligned weight; large and small magnitudes (ε comparable to the mean square); the plain API.
    static let others: [ForwardCase] = [
        ForwardCase(
            norm: .rms, shape: [2, 4, 64], x: .bfloat16, weight: .bfloat16, perHead: true,
            weightLayout: .shiftedEveryOtherRow),
        ForwardCase(norm: .rms, shape: [3, 127], x: .float16, weight: .float32, weightLayout: .shiftedColumns),
        ForwardCase(norm: .rms, shape: [3, 127], x: .float32, scale: 1000),
        ForwardCase(norm: .rms, shape: [3, 127], x: .bfloat16, rounding: .twice, scale: 1000),
        ForwardCase(norm: .rms, shape: [3, 127], x: .float32, epsilon: 1e-6, scale: 1e-3),
        ForwardCase(norm: .rms, shape: [3, 127], x: .float16, output: .float32, epsilon: 1e-6, scale: 1e-3),
        ForwardCase(norm: .rms, shape: [2, 4096], x: .bfloat16, weight: .bfloat16, rounding: .twice, api: .plain),
        ForwardCase(
            norm: .rms, shape: [3, 33], x: .float16, weight: nil, output: .float32, xLayout: .everyThirdRow, api: .plain
        ),
        ForwardCase(norm: .rms, shape: [65537], x: .float32, weight: .bfloat16, weightOffset: 1, api: .plain),
        // Either side of a 1024-element block.
        ForwardCase(
            norm: .rms, shape: [2, 1023], x: .float16, weight: .bfloat16, rounding: .twice, xLayout: .shiftedColumns),
        ForwardCase(
            norm: .rms, shape: [2, 1025], x: .bfloat16, weight: .float32, residual: .float32, output: .float32,
            outputLayout: .everyThirdRow),
        // Many short rows (work split over threads).
        ForwardCase(
            norm: .rms, shape: [300, 8], x: .bfloat16, weight: .float32, rounding: .twice, xLayout: .shiftedColumns,
            outputLayout: .everyThirdRow),
    ]
}

@Suite("RMSNorm forward against the float64 reference")
struct RMSNormForwardTests {
    @Test("every N and layout (CPU)", arguments: RMSNormForwardCases.shapes)
    func shapesCPU(_ c: ForwardCase) throws { try checkForward(c, on: .cpu) }

    @Test("every N and layout (CUDA)", .requiresCUDA, arguments: RMSNormForwardCases.shapes)
    func shapesCUDA(_ c: ForwardCase) throws { try checkForward(c, on: .cuda(0)) }

    @Test("every dtype, rounding and offset (CPU)", arguments: RMSNormForwardCases.dtypeCombinations)
    func dtypesCPU(_ c: ForwardCase) throws { try checkForward(c, on: .cpu) }

    @Test("every dtype, rounding and offset (CUDA)", .requiresCUDA, arguments: RMSNormForwardCases.dtypeCombinations)
    func dtypesCUDA(_ c: ForwardCase) throws { try checkForward(c, on: .cuda(0)) }

    @Test("strided weights, magnitudes, plain API (CPU)", arguments: RMSNormForwardCases.others)
    func othersCPU(_ c: ForwardCase) throws { try checkForward(c, on: .cpu) }

    @Test("strided weights, magnitudes, plain API (CUDA)", .requiresCUDA, arguments: RMSNormForwardCases.others)
    func othersCUDA(_ c: ForwardCase) throws { try checkForward(c, on: .cuda(0)) }

    @Test(
        "The llama style rounds ŝ to the input dtype before the weight; the standard style does not",
        arguments: TestDevices.all)
    func roundingDiffers(device: Device) throws {
        // x in bf16, output float32, weight 1.5: under llama, y/1.5 must be exactly a bf16 value; under
        // standard (one rounding, to float32) most elements are not.
        var rng = SplitMix64(label: "casting")
        let x = try Tensor(rng.values(256), shape: [2, 128], dtype: .bfloat16, device: device)
        let weight = try Tensor(repeating: 1.5, shape: [128], device: device)
        let llama = try rmsNorm(x, weight: weight, style: .llama, outputDType: .float32).toArray()
        let gemma = try rmsNorm(x, weight: weight, style: .standard, outputDType: .float32).toArray()
        let llamaOffGrid = llama.filter { DType.bfloat16.round($0 / 1.5) != $0 / 1.5 }.count
        let gemmaOffGrid = gemma.filter { DType.bfloat16.round($0 / 1.5) != $0 / 1.5 }.count
        #expect(llamaOffGrid == 0, "llama style on \(device): \(llamaOffGrid) of 256 values of y/w are not bf16 values")
        #expect(
            gemmaOffGrid > 128,
            "standard style on \(device): only \(gemmaOffGrid) of 256 values of y/w are off the bf16 grid")
    }

    @Test("A weight offset of 1 adds one to the stored weight", arguments: TestDevices.all)
    func weightOffset(device: Device) throws {
        var rng = SplitMix64(label: "offset")
        let x = try Tensor(rng.values(3 * 40), shape: [3, 40], device: device)
        let stored = rng.values(40, -0.5, 0.5)
        let gemma = try rmsNorm(x, weight: Tensor(stored, device: device), style: .gemma).toArray()
        let plain = try rmsNorm(x, weight: Tensor(stored.map { $0 + 1 }, device: device)).toArray()
        let error = Reference.relativeError(gemma, doubles(plain))
        #expect(error <= 1e-6, "offset 1 on \(device): relative error \(error) against the weight w + 1")
    }
}
