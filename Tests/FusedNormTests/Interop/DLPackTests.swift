import CDLPack
import CDLPackTestSupport
import FusedNormReference
import Testing

@testable import FusedNorm

/// DLPack import and export: no copy, the deleter called exactly once, the read-only flag honoured,
/// unsupported tensors named, and exports read back by a consumer written in C.
/// Serialized: the C producer counts its deleter calls in one process-wide counter.
@Suite("DLPack", .serialized)
struct DLPackTests {
    /// Caller memory of `rows` rows of `columns` elements, `rowStride` apart, holding `values` in `dtype`.
    final class HostMemory {
        let pointer: UnsafeMutableRawPointer
        let byteCount: Int
        init(byteCount: Int) {
            self.byteCount = byteCount
            pointer = .allocate(byteCount: byteCount, alignment: 64)
            pointer.initializeMemory(as: UInt8.self, repeating: 0x7F, count: byteCount)
        }
        deinit { pointer.deallocate() }
    }

    static func dlType(_ dtype: DType) -> DLDataType {
        switch dtype {
        case .float32: DLDataType(code: UInt8(kDLFloat.rawValue), bits: 32, lanes: 1)
        case .float16: DLDataType(code: UInt8(kDLFloat.rawValue), bits: 16, lanes: 1)
        case .bfloat16: DLDataType(code: UInt8(kDLBfloat.rawValue), bits: 16, lanes: 1)
        }
    }

    static let cpu = DLDevice(device_type: kDLCPU, device_id: 0)

    /// A producer's tensor over `memory` (C-made, counting deleter), with explicit strides.
    static func produce(
        _ memory: HostMemory, dtype: DType, shape: [Int64], strides: [Int64]?, byteOffset: UInt64 = 0,
        device: DLDevice = cpu, type: DLDataType? = nil, major: UInt32 = 1, flags: UInt64 = 0
    ) -> UnsafeMutablePointer<DLManagedTensorVersioned> {
        shape.withUnsafeBufferPointer { shape in
            if let strides {
                return strides.withUnsafeBufferPointer { strides in
                    dlpack_test_make_versioned(
                        memory.pointer, byteOffset, device, type ?? dlType(dtype), Int32(shape.count),
                        shape.baseAddress, strides.baseAddress, major, flags)
                }
            }
            return dlpack_test_make_versioned(
                memory.pointer, byteOffset, device, type ?? dlType(dtype), Int32(shape.count), shape.baseAddress, nil,
                major, flags)
        }
    }

    /// Reads a host DLTensor through the C consumer.
    static func consume(_ tensor: DLTensor, count: Int) -> [Double] {
        var out = [Double](repeating: .nan, count: count)
        var view = tensor
        let read = out.withUnsafeMutableBufferPointer { dlpack_test_read(&view, $0.baseAddress, Int64(count)) }
        #expect(read == Int64(count), "the C consumer read \(read) of \(count) elements")
        return out
    }

    @Test(
        "An imported strided tensor is the producer's memory: results written through it, deleter called once",
        arguments: DType.allCases)
    func importWritesThroughCallerMemory(dtype: DType) throws {
        let rows = 5, columns = 37, stride = 41
        var random = SplitMix64(label: "dlpack import \(dtype)")
        let memoryX = HostMemory(byteCount: rows * stride * dtype.byteCount)
        let memoryY = HostMemory(byteCount: rows * stride * dtype.byteCount)
        let before = dlpack_test_deleter_calls()
        do {
            let xManaged = Self.produce(
                memoryX, dtype: dtype, shape: [Int64(rows), Int64(columns)], strides: [Int64(stride), 1])
            let values = random.values(rows * columns).map { Double(dtype.round($0)) }
            var view = xManaged.pointee.dl_tensor
            #expect(
                values.withUnsafeBufferPointer { dlpack_test_write(&view, $0.baseAddress, Int64(values.count)) }
                    == Int64(values.count))
            let x = try Tensor(dlpack: xManaged)
            let yManaged = Self.produce(
                memoryY, dtype: dtype, shape: [Int64(rows), Int64(columns)], strides: [Int64(stride), 1])
            let y = try Tensor(dlpack: yManaged)
            #expect(x.shape == [rows, columns] && x.rowStride == stride && x.dtype == dtype && x.device == .cpu)
            #expect(try x.toArray().map(Double.init) == values, "the import reads the producer's values")

            // Import and operation allocate and copy nothing: the output is the producer's memory.
            let counted = try MemoryCounters.counting {
                try rmsNorm(try Tensor(borrowingDLPack: &view), output: y)
            }
            #expect(
                counted.counters.allocations == 0 && counted.counters.copies == 0,
                "\(counted.counters.allocations) allocations, \(counted.counters.copies) copies")
            #expect(
                counted.result.rowView.address == UInt(bitPattern: memoryY.pointer), "the result is the caller's memory"
            )
            // Read through the producer's own view with the C consumer: the result is in its memory (no copy).
            let expected = try rmsNorm(try Tensor(values.map(Float.init), shape: [rows, columns], dtype: dtype))
                .toArray()
            let written = Self.consume(yManaged.pointee.dl_tensor, count: rows * columns)
            #expect(written == expected.map(Double.init), "y read back from the producer's memory by the C consumer")
            // A view of a view keeps the memory too.
            let firstRows = try x.rows(0..<2)
            #expect(dlpack_test_deleter_calls() == before, "no deleter runs while tensors view the memory")
            _ = firstRows
        }
        #expect(dlpack_test_deleter_calls() == before + 2, "each import's deleter ran exactly once")
        // The padding between rows is untouched (0x7F bytes).
        for row in 0..<rows - 1 {
            for byte in (row * stride + columns) * dtype.byteCount..<(row + 1) * stride * dtype.byteCount {
                #expect(memoryY.pointer.load(fromByteOffset: byte, as: UInt8.self) == 0x7F, "byte \(byte) between rows")
            }
        }
    }

    @Test("A read-only import is read but never written: as an output it throws")
    func readOnlyImport() throws {
        let memory = HostMemory(byteCount: 4 * 8 * 4)
        let before = dlpack_test_deleter_calls()
        do {
            let frozen = try Tensor(
                dlpack: Self.produce(
                    memory, dtype: .float32, shape: [4, 8], strides: nil, flags: DLPACK_FLAG_BITMASK_READ_ONLY))
            expectError(.readOnly, argument: "output", "a read-only output") {
                try rmsNorm(try Tensor.ones([4, 8]), output: frozen)
            }
            expectError(.readOnly, argument: "tensor", "writing a read-only tensor") { try frozen.fill(with: 1) }
            expectError(.readOnly, argument: "destination", "copying into a read-only tensor") {
                try Tensor.ones([4, 8]).copy(into: frozen)
            }
            #expect(
                (0..<32 * 4).allSatisfy { memory.pointer.load(fromByteOffset: $0, as: UInt8.self) == 0x7F },
                "nothing written")
            _ = try rmsNorm(frozen)  // as an input it is fine
            // Exported again, it keeps the flag.
            let exported = frozen.dlpackVersioned()
            #expect(exported.pointee.flags & DLPACK_FLAG_BITMASK_READ_ONLY != 0)
            dlpack_test_release_versioned(exported)
        }
        #expect(dlpack_test_deleter_calls() == before + 1)
    }

    @Test("Unsupported or malformed DLPack tensors are refused by name, and stay the caller's (no deleter call)")
    func refusals() throws {
        let memory = HostMemory(byteCount: 4096)
        let cases: [(String, UnsafeMutablePointer<DLManagedTensorVersioned>, String)] = [
            (
                "int32",
                Self.produce(
                    memory, dtype: .float32, shape: [4, 8], strides: nil,
                    type: DLDataType(code: UInt8(kDLInt.rawValue), bits: 32, lanes: 1)), "int32"
            ),
            (
                "float64",
                Self.produce(
                    memory, dtype: .float32, shape: [4, 8], strides: nil,
                    type: DLDataType(code: UInt8(kDLFloat.rawValue), bits: 64, lanes: 1)), "float64"
            ),
            (
                "lanes",
                Self.produce(
                    memory, dtype: .float32, shape: [4, 8], strides: nil,
                    type: DLDataType(code: UInt8(kDLFloat.rawValue), bits: 32, lanes: 4)), "lanes"
            ),
            (
                "device",
                Self.produce(
                    memory, dtype: .float32, shape: [4, 8], strides: nil,
                    device: DLDevice(device_type: kDLROCM, device_id: 0)), "kDLROCM"
            ),
            ("last stride", Self.produce(memory, dtype: .float32, shape: [4, 8], strides: [16, 2]), "last stride"),
            (
                "byte offset", Self.produce(memory, dtype: .bfloat16, shape: [4, 8], strides: nil, byteOffset: 3),
                "aligned"
            ),
            ("version", Self.produce(memory, dtype: .float32, shape: [4, 8], strides: nil, major: 2), "version 2"),
            (
                "three levels", Self.produce(memory, dtype: .float32, shape: [2, 2, 2, 8], strides: [200, 50, 16, 1]),
                "levels"
            ),
            (
                "groups across dimensions",
                Self.produce(memory, dtype: .float32, shape: [3, 2, 2, 8], strides: [100, 16, 8, 1]), "second-to-last"
            ),
        ]
        let before = dlpack_test_deleter_calls()
        for (what, managed, needle) in cases {
            do {
                _ = try Tensor(dlpack: managed)
                Issue.record("\(what): imported")
            } catch let error as DLPackError {
                guard case .unsupported = error else { Issue.record("\(what): \(error) is not .unsupported"); continue }
                #expect(error.description.contains(needle), "\(what): \(error) names \(needle)")
            }
            dlpack_test_free_versioned(managed)
        }
        #expect(dlpack_test_deleter_calls() == before, "a refused import leaves the tensor to its owner")
        let overlapping = Self.produce(memory, dtype: .float32, shape: [4, 8], strides: [4, 1])
        expectError(.invalidShape, "rows overlap") { try Tensor(dlpack: overlapping) }
        dlpack_test_free_versioned(overlapping)
    }

    @Test(
        "The (T, H, D) q view of a fused qkv tensor imports without a copy, as grouped rows", arguments: DType.allCases)
    func groupedRowsOfFusedQKV(dtype: DType) throws {
        let tokens = 5, heads = 3, headSize = 24
        var random = SplitMix64(label: "dlpack qkv \(dtype)")
        let qkvValues = random.values(tokens * 3 * heads * headSize).map(dtype.round)
        let qkv = try Tensor(qkvValues, shape: [tokens, 3 * heads * headSize], dtype: dtype)
        let exported = qkv.dlpackVersioned()
        defer { dlpack_test_release_versioned(exported) }
        // The producer's q view: same data, shape (T, H, D), strides (3·H·D, D, 1).
        var shape: [Int64] = [Int64(tokens), Int64(heads), Int64(headSize)]
        var strides: [Int64] = [Int64(3 * heads * headSize), Int64(headSize), 1]
        var view = exported.pointee.dl_tensor
        let q = try shape.withUnsafeMutableBufferPointer { shape in
            try strides.withUnsafeMutableBufferPointer { strides in
                view.ndim = 3
                view.shape = shape.baseAddress
                view.strides = strides.baseAddress
                return try Tensor(borrowingDLPack: &view)
            }
        }
        #expect(
            q.shape == [tokens, heads, headSize] && q.rowStride == headSize && q.groupStride == 3 * heads * headSize)
        let tokenStride = 3 * heads * headSize, qWidth = heads * headSize
        let qValues: [Float] = (0..<tokens).flatMap { (t: Int) -> ArraySlice<Float> in
            qkvValues[t * tokenStride..<t * tokenStride + qWidth]
        }
        #expect(try q.toArray() == Array(qValues))
        let weight = try Tensor(random.values(heads * headSize), shape: [heads, headSize], dtype: dtype)
        let packed = try Tensor(Array(qValues), shape: [tokens, heads, headSize], dtype: dtype)
        #expect(
            differingBits(try rmsNorm(q, weight: weight).toArray(), try rmsNorm(packed, weight: weight).toArray()) == 0)
        // Exported again, the grouped view keeps its strides: a C consumer reads q's values.
        let again = q.dlpackVersioned()
        #expect(Array(UnsafeBufferPointer(start: again.pointee.dl_tensor.strides, count: 3)) == strides)
        #expect(Self.consume(again.pointee.dl_tensor, count: qValues.count) == qValues.map(Double.init))
        dlpack_test_release_versioned(again)
    }

    @Test(
        "Export: a C consumer reads the tensor (strided rows too); the tensor lives until the deleter runs",
        arguments: DType.allCases)
    func exportReadByCConsumer(dtype: DType) throws {
        var random = SplitMix64(label: "dlpack export \(dtype)")
        let values = random.values(6 * 20)
        let exported: UnsafeMutablePointer<DLManagedTensorVersioned>
        let legacy: UnsafeMutablePointer<DLManagedTensor>
        do {
            let wide = try Tensor(values, shape: [2, 3, 20], dtype: dtype)
            exported = try wide.columns(4..<17).dlpackVersioned()  // rows 20 apart, 13 long
            legacy = wide.dlpack()
        }  // the Swift tensors are gone here; the exports keep the memory
        let view = exported.pointee.dl_tensor
        #expect(exported.pointee.version.major == 1 && view.ndim == 3 && view.device.device_type == kDLCPU)
        #expect(Array(UnsafeBufferPointer(start: view.shape, count: 3)) == [2, 3, 13])
        #expect(Array(UnsafeBufferPointer(start: view.strides, count: 3)) == [60, 20, 1])
        let read = Self.consume(view, count: 6 * 13)
        let expected = (0..<6).flatMap { row in (4..<17).map { Double(dtype.round(values[row * 20 + $0])) } }
        #expect(read == expected, "the C consumer reads the exported values")
        #expect(Self.consume(legacy.pointee.dl_tensor, count: 120) == values.map { Double(dtype.round($0)) })

        // Round trip: importing the export views the same memory.
        let back = try Tensor(dlpack: exported)
        #expect(try back.toArray().map(Double.init) == expected)
        let again = back.dlpackVersioned()
        #expect(again.pointee.dl_tensor.data == view.data, "no copy on the way back")
        dlpack_test_release_versioned(again)
        dlpack_test_release_legacy(legacy)
    }

    @Test(
        "A CUDA tensor is checked with the driver on import: without a usable GPU the import throws, the tensor stays the caller's"
    )
    func cudaImportNeedsTheDevice() throws {
        let fake = HostMemory(byteCount: 256)
        let before = dlpack_test_deleter_calls()
        let managed = Self.produce(
            fake, dtype: .bfloat16, shape: [4, 16], strides: nil, device: DLDevice(device_type: kDLCUDA, device_id: 0))
        if TestDevices.all.contains(.cuda(0)) {
            // Host memory is not device memory the driver knows: refused by name.
            #expect(throws: (any Error).self, "host memory described as kDLCUDA") { try Tensor(dlpack: managed) }
        } else {
            expectError(.deviceUnavailable, "a CUDA import without a GPU") { try Tensor(dlpack: managed) }
        }
        #expect(dlpack_test_deleter_calls() == before)
        dlpack_test_free_versioned(managed)
    }
}
