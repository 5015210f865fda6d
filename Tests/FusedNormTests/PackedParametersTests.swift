import CFusedNormCPU
import Testing

@testable import FusedNorm

/// LayerNorm forward of 16-bit rows reads its weight and bias packed in the rows' dtype when every value is
/// exact in it (`cfn_pack_weight_bias`, ``PackedWeightBias``). The packed row is the same numbers in fewer
/// bytes: these tests hold the C kernels to the same bits with it as without it, on every C build, and the
/// packing to refusing any value it would change.
@Suite("CPU kernels: LayerNorm's packed 16-bit parameters")
struct PackedParametersTests {
    /// The C builds this CPU runs (none on a CPU without AVX2: the tests then have nothing to run).
    static let builds: [Int32] =
        cfn_row_kernels() >= CFN_KERNELS_AVX2 ? Array(Int32(CFN_KERNELS_AVX2)...cfn_row_kernels()) : []

    /// The value `value` rounds to in `dtype`, as its bits.
    static func bits(_ value: Float, _ dtype: DType) -> UInt16 {
        dtype == .float16 ? Float16(value).bitPattern : BFloat16(value).bitPattern
    }

    /// One row through `cfn_forward_row` into an output poisoned with `poison`, starting `shift` elements
    /// after a 32-byte boundary (so that the row's head and tail take the partial steps).
    static func row(
        x: [UInt16], weight: [Float], bias: [Float], packed: [UInt16]?, dtype: DType, shift: Int, poison: UInt16,
        kernels: Int32
    ) -> [UInt16] {
        let n = x.count
        var output = [UInt16](repeating: poison, count: n + 16)
        x.withUnsafeBufferPointer { x in
            weight.withUnsafeBufferPointer { weight in
                bias.withUnsafeBufferPointer { bias in
                    output.withUnsafeMutableBufferPointer { output in
                        var args = cfn_forward_row_args()
                        args.columns = n
                        args.centered = 1
                        args.x_dtype = dtype.rowKernelCode
                        args.x = UnsafeRawPointer(x.baseAddress!)
                        args.output_dtype = dtype.rowKernelCode
                        let aligned = (16 - Int(bitPattern: output.baseAddress!) % 32 / 2) % 16
                        args.output = UnsafeMutableRawPointer(output.baseAddress! + aligned + shift)
                        args.hat_dtype = Int32(CFN_FLOAT32)
                        args.weight = weight.baseAddress
                        args.bias = bias.baseAddress
                        args.epsilon = 1e-5
                        if let packed {
                            packed.withUnsafeBufferPointer { packed in
                                args.weight_bias = UnsafeRawPointer(packed.baseAddress!)
                                cfn_forward_row(&args, kernels)
                            }
                        } else {
                            cfn_forward_row(&args, kernels)
                        }
                        let start = aligned + shift
                        output.baseAddress!.update(from: output.baseAddress! + start, count: n)
                    }
                }
            }
        }
        return Array(output.prefix(n))
    }

    @Test(
        "The packed parameters give the same bits as the Floats, head, vector loop and tail, on every C build",
        arguments: [DType.float16, .bfloat16], [1, 3, 33, 4095, 4096, 5120])
    func sameBits(dtype: DType, columns n: Int) throws {
        var rng = SplitMix64(label: "packed \(dtype) \(n)")
        let x = rng.values(n, -2, 3).map { Self.bits($0, dtype) }
        // Parameters exact in the dtype, with the values a decoder could get wrong among them: zeros of
        // both signs, negatives, the dtype's subnormals, its largest values, Inf.
        let specials: [Float] =
            dtype == .float16
            ? [0, -0.0, -1.5, 0x1p-24, -0x1p-20, 65504, -.infinity, 0x1p-14]
            : [0, -0.0, -1.5, 0x1p-133, -0x1p-127, 0x1.FEp127, .infinity, 0x1p-126]
        var weight = rng.values(n, 0.5, 1.5), bias = rng.values(n, -0.5, 0.5)
        for (k, value) in specials.enumerated() where n > 8 {
            weight[(k * 7 + 1) % n] = value
            bias[(k * 11 + 2) % n] = value
        }
        let round = { (v: Float) in dtype == .float16 ? Float(Float16(v)) : BFloat16(v).floatValue }
        weight = weight.map(round)
        bias = bias.map(round)
        var packed = [UInt16](repeating: 0, count: 2 * n)
        #expect(cfn_pack_weight_bias(weight, bias, n, dtype.rowKernelCode, &packed) == 1)
        for kernels in Self.builds {
            for shift in [0, 3] {
                let floats = Self.row(
                    x: x, weight: weight, bias: bias, packed: nil, dtype: dtype, shift: shift, poison: 0x7E01,
                    kernels: kernels)
                let fromPacked = Self.row(
                    x: x, weight: weight, bias: bias, packed: packed, dtype: dtype, shift: shift, poison: 0x7E02,
                    kernels: kernels)
                let differing = (0..<n).filter { floats[$0] != fromPacked[$0] }
                #expect(
                    differing.count == 0,
                    "build \(kernels), shift \(shift): \(differing.count) of \(n) differ, first at \(differing.first ?? -1)"
                )
            }
        }
    }

    @Test(
        "Outputs in float32's subnormal range: the same bits from the packed parameters as from the Floats, and on every C build",
        arguments: [DType.float16, .bfloat16], [64, 4096])
    func subnormalOutputs(dtype: DType, columns n: Int) throws {
        // y = ŝ·w with |ŝ| < 4 and weights of 2^-127 and below: float32 subnormals (a bfloat16 row of them takes
        // the exact rounding: vcvtne2ps2bf16 would flush them to zero), mixed with normal weights in some
        // stretches of 32 (the AVX-512 build's step) and not in others. float16 rounds them all to zero.
        var rng = SplitMix64(label: "packed subnormal \(dtype) \(n)")
        let x = rng.values(n, -2, 3).map { Self.bits($0, dtype) }
        let round = { (v: Float) in dtype == .float16 ? Float(Float16(v)) : BFloat16(v).floatValue }
        let weight = (0..<n).map { round($0 % 96 < 64 ? 0x1p-127 * Float(1 + $0 % 3) : 1.25) }
        let bias = [Float](repeating: 0, count: n)
        var packed = [UInt16](repeating: 0, count: 2 * n)
        #expect(cfn_pack_weight_bias(weight, bias, n, dtype.rowKernelCode, &packed) == 1)
        var outputs: [[UInt16]] = []
        for kernels in Self.builds {
            let floats = Self.row(
                x: x, weight: weight, bias: bias, packed: nil, dtype: dtype, shift: 0, poison: 0x7E01, kernels: kernels)
            let fromPacked = Self.row(
                x: x, weight: weight, bias: bias, packed: packed, dtype: dtype, shift: 0, poison: 0x7E02,
                kernels: kernels)
            let differing = (0..<n).filter { floats[$0] != fromPacked[$0] }
            #expect(
                differing.count == 0,
                "build \(kernels): \(differing.count) of \(n) differ, first at \(differing.first ?? -1)")
            outputs.append(fromPacked)
        }
        for (kernels, output) in zip(Self.builds, outputs).dropFirst() {
            #expect(output == outputs[0], "build \(kernels) differs from build \(Self.builds[0])")
        }
        // The rows hold subnormal outputs to test (bfloat16 keeps them; float16 flushes them, as it must).
        if dtype == .bfloat16 {
            #expect(outputs.first.map { $0.filter { $0 & 0x7F80 == 0 && $0 & 0x7F != 0 }.count > n / 4 } ?? true)
        }
    }

    @Test(
        "Packing refuses a weight or bias that the dtype does not hold exactly", arguments: [DType.float16, .bfloat16])
    func refusesInexactValues(dtype: DType) {
        let n = 40
        let exactWeight = [Float](repeating: 1.5, count: n), exactBias = [Float](repeating: -0.25, count: n)
        var packed = [UInt16](repeating: 0, count: 2 * n)
        #expect(cfn_pack_weight_bias(exactWeight, exactBias, n, dtype.rowKernelCode, &packed) == 1)
        // One ulp of float32 off a value of the dtype, and a NaN payload the dtype cannot carry.
        for inexact in [Float(1.5).nextUp, Float(bitPattern: 0x7FC0_0001)] {
            var weight = exactWeight
            weight[n - 1] = inexact
            #expect(cfn_pack_weight_bias(weight, exactBias, n, dtype.rowKernelCode, &packed) == 0, "weight \(inexact)")
        }
        // float16 packs the weights alone (its biases are read as Floats): only bfloat16 checks the bias.
        var bias = exactBias
        bias[0] = Float(0.1)
        #expect(cfn_pack_weight_bias(exactWeight, bias, n, dtype.rowKernelCode, &packed) == (dtype == .float16 ? 1 : 0))
    }
}
