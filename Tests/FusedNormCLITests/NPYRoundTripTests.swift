import Foundation
import Testing

@testable import FusedNormCLI

/// The .npy reader and writer: what is written is read back exactly, whatever the element type, shape
/// and header version, and files as NumPy writes them are understood.
struct NPYRoundTripTests {
    static let shapes: [[Int]] = [[], [1], [7], [3, 5], [2, 3, 4], [2, 0, 3]]

    @Test(arguments: NPYElementType.allCases, [UInt8(1), 2, 3])
    func writtenArraysReadBackExactly(elementType: NPYElementType, version: UInt8) throws {
        for shape in Self.shapes {
            let count = shape.reduce(1, *)
            // Values representable in every element type, so that the round trip must be exact.
            let values = testValues(count).map { Double(Float16($0)) }
            let array = NPYArray(shape: shape, values: values, elementType: elementType)
            let bytes = try NPYFile.encode(array, version: version)
            #expect(try NPYFile.decode(bytes) == array, "shape \(shape)")
        }
    }

    @Test(arguments: [UInt8(1), 2, 3])
    func dataStartsOnA64ByteBoundary(version: UInt8) throws {
        let bytes = try NPYFile.encode(
            NPYArray(shape: [3], values: [1, 2, 3], elementType: .float32), version: version)
        #expect((bytes.count - 12) % 64 == 0)
        #expect(bytes[6] == version)
    }

    @Test
    func float32WriterMatchesNumPysLayout() throws {
        let bytes = try NPYFile.encode(NPYArray(shape: [2, 2], floats: [1, 2, 3, 4]))
        let header = String(decoding: bytes[10..<(10 + Int(bytes[8]) + Int(bytes[9]) << 8)], as: UTF8.self)
        #expect(header.hasPrefix("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }"))
        #expect(header.hasSuffix("\n"))
        #expect(Array(bytes.suffix(16)) == float32Bytes([1, 2, 3, 4]))
    }

    @Test(arguments: [
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }",
        "{'shape': (2, 2), 'fortran_order': False, 'descr': '<f4'}",
        "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2L, 2L)}",
        "{'descr':'<f4','fortran_order':False,'shape':(2,2,),}",
    ])
    func headersInOtherSpellingsAreRead(header: String) throws {
        let array = try NPYFile.decode(handmadeNPY(header: header, data: float32Bytes([1, 2, 3, 4])))
        #expect(array.shape == [2, 2])
        #expect(array.values == [1, 2, 3, 4])
    }

    @Test
    func float16AndFloat64ValuesAreDecodedExactly() throws {
        let halfBits: [UInt16] = [0x3C00, 0xC000, 0x7C00, 0x0001]  // 1, -2, +inf, smallest subnormal
        let half = try NPYFile.decode(
            handmadeNPY(
                header: "{'descr': '<f2', 'fortran_order': False, 'shape': (4,), }",
                data: halfBits.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }))
        #expect(half.values == [1, -2, .infinity, Double(Float16.leastNonzeroMagnitude)])
        let double = try NPYFile.decode(
            handmadeNPY(
                header: "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }",
                data: withUnsafeBytes(of: (0.1).bitPattern.littleEndian, Array.init)))
        #expect(double.values == [0.1])
    }

    @Test
    func deeplyNestedHeadersAreRejectedNotOverflowed() {
        let header = "{'descr': " + String(repeating: "[", count: 100_000) + "}"
        #expect(throws: NPYError.malformedHeader("nested too deeply")) {
            try NPYFile.decode(handmadeNPY(header: header, data: [], major: 2))
        }
    }

    @Test
    func trailingBytesAfterTheDataAreIgnored() throws {
        let bytes = try NPYFile.encode(NPYArray(shape: [2], floats: [5, 6])) + [0, 0, 0]
        #expect(try NPYFile.decode(bytes).values == [5, 6])
    }
}
