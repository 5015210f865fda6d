import FusedNorm
import Testing

@Suite("Tensor creation, round trips and views")
struct TensorTests {
    @Test("Creation sets shape, dtype, rows, columns and contiguity", arguments: TestDevices.all, DType.allCases)
    func creation(device: Device, dtype: DType) throws {
        let t = try Tensor([1, 2, 3, 4, 5, 6], shape: [2, 1, 3], dtype: dtype, device: device)
        let label = "\(dtype) on \(device)"
        #expect(t.shape == [2, 1, 3] && t.dtype == dtype && t.device == device, "\(label): \(t)")
        #expect(t.rows == 2 && t.columns == 3 && t.count == 6 && t.rowStride == 3 && t.isContiguous, "\(label): \(t)")
        #expect(t.rowShape == [2, 1], "\(label): rowShape \(t.rowShape)")
        #expect(try t.toArray() == [1, 2, 3, 4, 5, 6], "\(label): values")
        let vector = try Tensor([7, 8, 9], dtype: dtype, device: device)
        #expect(vector.shape == [3] && vector.rows == 1 && vector.rowShape == [1], "\(label): rank 1 \(vector)")
        #expect(
            try Tensor.zeros([2, 5], dtype: dtype, device: device).toArray() == [Float](repeating: 0, count: 10),
            "\(label): zeros")
        #expect(
            try Tensor.ones([5], dtype: dtype, device: device).toArray() == [Float](repeating: 1, count: 5),
            "\(label): ones")
        #expect(
            try Tensor(repeating: -2.5, shape: [3, 2], dtype: dtype, device: device).toArray()
                == [Float](repeating: -2.5, count: 6), "\(label): repeating")
        #expect(
            t.description.contains("[2, 1, 3]") && t.description.contains(dtype.description),
            "\(label): description \(t.description)")
    }

    @Test("Zero rows are allowed: empty values, empty outputs, zero dweight", arguments: TestDevices.all)
    func zeroRows(device: Device) throws {
        let x = try Tensor([], shape: [0, 8], device: device)
        #expect(try x.rows == 0 && x.count == 0 && x.toArray().isEmpty)
        let y = try rmsNorm(x, weight: Tensor.ones([8], device: device))
        #expect(try y.shape == [0, 8] && y.toArray().isEmpty)
        // The training forms too: statistics of shape [0] (x's row shape).
        do {
            let forward = try rmsNormForward(x)
            #expect(forward.output.shape == [0, 8] && forward.rstd.shape == [0], "rstd of [0, 8] is \(forward.rstd)")
            let layerForward = try layerNormForward(x)
            #expect(layerForward.mean?.shape == [0], "mean of [0, 8] is \(String(describing: layerForward.mean))")
        } catch {
            Issue.record("the training forward of x [0, 8] on \(device) threw \(error)")
        }
        let gradients = try rmsNormBackward(x, input: x, weight: Tensor.ones([8], dtype: .bfloat16, device: device))
        #expect(try gradients.weight?.toArray() == [Float](repeating: 0, count: 8), "dweight over no rows is zero")
        let layer = try layerNormBackward(
            x, input: x, weight: Tensor.ones([8], device: device), bias: Tensor.ones([8], device: device))
        #expect(try layer.bias?.toArray() == [Float](repeating: 0, count: 8), "dbias over no rows is zero")
    }

    @Test("toArray returns the values rounded to the dtype, exactly", arguments: TestDevices.all, DType.allCases)
    func roundTrip(device: Device, dtype: DType) throws {
        var rng = SplitMix64(label: "round trip \(dtype)")
        let values = rng.values(1000, -300, 300) + [0, -0.0, 1, -1, 0.5, 65504, 1e-3, .infinity, -.infinity]
        let tensor = try Tensor(values, shape: [values.count], dtype: dtype, device: device)
        let back = try tensor.toArray()
        #expect(differingBits(back, values.map(dtype.round)) == 0, "\(dtype) on \(device)")
        // Values already in the dtype come back unchanged, and a second round trip changes nothing.
        #expect(
            try differingBits(Tensor(back, dtype: dtype, device: device).toArray(), back) == 0,
            "\(dtype) on \(device): second trip")
        if dtype != .float32 {
            #expect(back != values, "\(dtype) on \(device): rounding should change some values")
        }
        // NaN survives storage.
        #expect(try Tensor([.nan, 1], dtype: dtype, device: device).toArray()[0].isNaN, "\(dtype) on \(device): NaN")
    }

    @Test("rows(_:step:) is a strided view sharing memory", arguments: TestDevices.all)
    func rowsView(device: Device) throws {
        let parent = try Tensor((0..<40).map(Float.init), shape: [10, 4], device: device)
        let view = try parent.rows(1..<10, step: 3)  // rows 1, 4, 7
        #expect(view.shape == [3, 4] && view.rowStride == 12 && !view.isContiguous, "\(view)")
        #expect(try view.toArray() == [4, 5, 6, 7, 16, 17, 18, 19, 28, 29, 30, 31])
        try view.write([Float](repeating: -1, count: 12))
        let after = try parent.toArray()
        for r in 0..<10 {
            let expected: [Float] = [1, 4, 7].contains(r) ? [-1, -1, -1, -1] : (0..<4).map { Float(r * 4 + $0) }
            #expect(
                row(after, r, columns: 4) == expected,
                "row \(r) of the parent after writing through the view on \(device)")
        }
        // Rows of a rank-3 tensor flatten the leading dimensions.
        let cube = try Tensor((0..<24).map(Float.init), shape: [2, 3, 4], device: device)
        let flat = try cube.rows(2..<6, step: 2)
        #expect(try flat.shape == [2, 4] && flat.toArray() == [8, 9, 10, 11, 16, 17, 18, 19])
        let sub = try view.rows(1..<3)
        #expect(try sub.rowStride == 12 && sub.toArray() == [Float](repeating: -1, count: 8), "a view of a view")
        #expect(try parent.rows(3..<3).shape == [0, 4], "an empty row range")
    }

    @Test("columns(_:) is a misaligned view sharing memory", arguments: TestDevices.all, DType.allCases)
    func columnsView(device: Device, dtype: DType) throws {
        let parent = try Tensor((0..<30).map(Float.init), shape: [3, 10], dtype: dtype, device: device)
        let view = try parent.columns(1..<8)
        #expect(view.shape == [3, 7] && view.rowStride == 10 && !view.isContiguous && view.dtype == dtype, "\(view)")
        #expect(try view.toArray() == [1, 2, 3, 4, 5, 6, 7, 11, 12, 13, 14, 15, 16, 17, 21, 22, 23, 24, 25, 26, 27])
        try view.fill(with: 0.5)
        let after = try parent.toArray()
        for i in 0..<30 {
            let inside = (1..<8).contains(i % 10)
            #expect(after[i] == (inside ? 0.5 : Float(i)), "element \(i) of the parent (\(dtype), \(device))")
        }
        let narrower = try view.columns(2..<4)
        #expect(try narrower.shape == [3, 2] && narrower.toArray() == [0.5, 0.5, 0.5, 0.5, 0.5, 0.5])
        let cube = try Tensor.zeros([2, 3, 6], dtype: dtype, device: device).columns(4..<6)
        #expect(cube.shape == [2, 3, 2] && cube.rowStride == 6 && cube.rows == 6)
    }

    @Test("reshaped keeps the memory and the row stride", arguments: TestDevices.all)
    func reshapedView(device: Device) throws {
        let parent = try Tensor((0..<24).map(Float.init), shape: [4, 6], device: device)
        let cube = try parent.reshaped([2, 2, 6])
        #expect(try cube.shape == [2, 2, 6] && cube.toArray() == parent.toArray())
        let narrow = try parent.reshaped([8, 3])
        #expect(try narrow.rowStride == 3 && narrow.toArray() == (0..<24).map(Float.init))
        try narrow.rows(0..<1).fill(with: 100)
        #expect(try parent.toArray().prefix(4) == [100, 100, 100, 3], "writing through a reshaped view on \(device)")
        // A strided view may be reshaped when the last dimension stays: its row stride is kept.
        let strided = try parent.rows(0..<4, step: 2).reshaped([2, 1, 6])
        #expect(try strided.rowStride == 12 && strided.toArray() == [100, 100, 100, 3, 4, 5, 12, 13, 14, 15, 16, 17])
        let shifted = try parent.columns(1..<4).reshaped([2, 2, 3])
        #expect(try shifted.rowStride == 6 && shifted.toArray() == [100, 100, 3, 7, 8, 9, 13, 14, 15, 19, 20, 21])
        // One row of a column view is contiguous, so its last dimension may change.
        let single = try parent.rows(1..<2).columns(2..<6).reshaped([2, 2])
        #expect(try single.toArray() == [8, 9, 10, 11])
    }

    @Test("fill(with:) of a view writes only the view, NaN included", arguments: TestDevices.all, DType.allCases)
    func fillView(device: Device, dtype: DType) throws {
        let parent = try Tensor(repeating: 3, shape: [6, 5], dtype: dtype, device: device)
        try parent.rows(0..<6, step: 2).columns(1..<3).fill(with: .nan)
        let values = try parent.toArray()
        for i in 0..<30 {
            let inside = (i / 5) % 2 == 0 && (1..<3).contains(i % 5)
            #expect(inside ? values[i].isNaN : values[i] == 3, "element \(i) (\(dtype), \(device))")
        }
    }

    @Test("copy(into:) between contiguous and strided views", arguments: TestDevices.all, DType.allCases)
    func copyInto(device: Device, dtype: DType) throws {
        var rng = SplitMix64(label: "copy \(dtype)")
        let source = try Tensor(rng.values(4 * 5), shape: [4, 5], dtype: dtype, device: device)
        let expected = try source.toArray()
        // contiguous -> strided
        let wide = try Tensor(repeating: 96, shape: [8, 7], dtype: dtype, device: device)
        let strided = try wide.rows(0..<8, step: 2).columns(2..<7)
        try source.copy(into: strided)
        #expect(try strided.toArray() == expected, "into a strided view (\(dtype), \(device))")
        let all = try wide.toArray()
        let outside = all.enumerated().filter { i, _ in !((i / 7) % 2 == 0 && (2..<7).contains(i % 7)) }
        #expect(outside.allSatisfy { $0.element == 96 }, "copy wrote outside the view (\(dtype), \(device))")
        // strided -> contiguous, strided -> strided
        let back = try Tensor.zeros([4, 5], dtype: dtype, device: device)
        try strided.copy(into: back)
        #expect(try back.toArray() == expected, "from a strided view")
        let other = try Tensor.zeros([4, 9], dtype: dtype, device: device).columns(3..<8)
        try strided.copy(into: other)
        #expect(try other.toArray() == expected, "strided to strided")
        // A copy is a copy: writing the source afterwards leaves it alone.
        try source.fill(with: 0)
        #expect(try back.toArray() == expected, "the copy changed with its source")
    }

    @Test("to(_:) and converted(to:) make contiguous copies", arguments: TestDevices.all)
    func toDevice(device: Device) throws {
        let parent = try Tensor((0..<20).map { Float($0) + 0.1 }, shape: [4, 5], device: .cpu)
        let view = try parent.rows(0..<4, step: 2).columns(1..<4)
        let moved = try view.to(device)
        #expect(moved.device == device && moved.isContiguous && moved.shape == [2, 3])
        #expect(try moved.toArray() == view.toArray(), "values on \(device)")
        try parent.fill(with: -1)
        let expected: [Float] = [1, 2, 3, 11, 12, 13].map { Float($0) + 0.1 }
        #expect(try moved.toArray() == expected, "to(\(device)) is a copy, not a view")
        let home = try moved.to(.cpu)
        #expect(try home.device == .cpu && home.toArray() == moved.toArray(), "back to the CPU")
        let converted = try moved.converted(to: .bfloat16)
        #expect(converted.dtype == .bfloat16 && converted.device == device)
        #expect(try converted.toArray() == expected.map(DType.bfloat16.round), "converted values")
        try device.synchronize()
    }

    @Test("Results written by an operation are seen through every view of the output", arguments: TestDevices.all)
    func outputsVisibleThroughViews(device: Device) throws {
        let x = try Tensor([3, 4, 0, 5], shape: [2, 2], device: device)
        let parent = try Tensor(repeating: .nan, shape: [2, 4], device: device)
        let output = try parent.columns(1..<3)
        _ = try rmsNormForward(x, epsilon: 1e-12, output: output)
        let values = try parent.toArray()
        // rows [3, 4] and [0, 5] have rms 3.5355 and 3.5355
        let r = Float(1 / (12.5 as Double).squareRoot())
        let expected: [Float] = [3 * r, 4 * r, 0, 5 * r]
        #expect(values[0].isNaN && values[3].isNaN && values[4].isNaN && values[7].isNaN, "outside the view: \(values)")
        for (i, e) in zip([1, 2, 5, 6], expected) {
            #expect(abs(values[i] - e) <= 1e-6, "element \(i) is \(values[i]), expected \(e) on \(device)")
        }
    }
}
