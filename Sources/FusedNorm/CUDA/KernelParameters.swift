/// A kernel's parameter struct, declared once in Swift: the CUDA C declaration is generated from the Swift
/// struct's fields (``cudaDeclaration``), and the Swift value's bytes are the kernel's argument block.
///
/// Each stored property is a ``KernelParameterField``, named in camelCase (its CUDA C name is the
/// snake_case spelling, `weightRows` → `weight_rows`). The fields are laid out by C's rules: Swift lays out a
/// struct of such fields the same way, which the tests check twice (the bytes of each field in Swift, and a
/// `static_assert(offsetof(...))` probe compiled by NVRTC with the offsets Swift uses).
protocol KernelParameters: BitwiseCopyable {
    /// The struct's name in CUDA C.
    static var cudaName: String { get }
    /// Every field zero (null pointers).
    init()
}

/// A field type of a kernel parameter struct, with its CUDA C spelling.
protocol KernelParameterField: BitwiseCopyable {
    static var cudaType: String { get }
}

extension Int: KernelParameterField {
    static var cudaType: String { "long long" }
}

extension Float: KernelParameterField {
    static var cudaType: String { "float" }
}

/// A device address the kernel reads through (`const void*`); 0 for null.
struct InputPointer: KernelParameterField {
    static var cudaType: String { "const void*" }
    var address: UInt = 0
    init(_ address: UInt? = nil) { self.address = address ?? 0 }
}

/// A device address the kernel writes through (`void*`); 0 for null.
struct OutputPointer: KernelParameterField {
    static var cudaType: String { "void*" }
    var address: UInt = 0
    init(_ address: UInt? = nil) { self.address = address ?? 0 }
}

/// A device address of fp32 values the kernel reads (`const float*`); 0 for null.
struct FloatInputPointer: KernelParameterField {
    static var cudaType: String { "const float*" }
    var address: UInt = 0
    init(_ address: UInt? = nil) { self.address = address ?? 0 }
}

/// A device address of fp32 values the kernel writes (`float*`); 0 for null.
struct FloatOutputPointer: KernelParameterField {
    static var cudaType: String { "float*" }
    var address: UInt = 0
    init(_ address: UInt? = nil) { self.address = address ?? 0 }
}

/// One field of a parameter struct as both languages see it.
struct KernelParameterLayout: Equatable, Sendable {
    /// The Swift property's name.
    var name: String
    /// The CUDA C field's name (snake_case).
    var cudaName: String
    var cudaType: String
    /// Where the Swift value holds the field, in bytes from the start.
    var offset: Int
    var size: Int
}

extension KernelParameters {
    /// The fields in declaration order, with the offsets Swift gives them: read from a value whose byte i
    /// is i, so that each field's first byte is its offset (the block is under 256 bytes).
    static var fields: [KernelParameterLayout] {
        precondition(MemoryLayout<Self>.size < 256, "\(Self.self) is too large to map by bytes")
        var probe = Self()
        withUnsafeMutableBytes(of: &probe) { bytes in
            for index in bytes.indices { bytes[index] = UInt8(index) }
        }
        return Mirror(reflecting: probe).children.map { child in
            guard let name = child.label, let field = child.value as? any KernelParameterField else {
                preconditionFailure("\(Self.self).\(child.label ?? "?") is not a KernelParameterField")
            }
            return layout(of: field, name: name)
        }
    }

    private static func layout<Field: KernelParameterField>(of field: Field, name: String) -> KernelParameterLayout {
        let bytes = withUnsafeBytes(of: field) { Array($0) }
        precondition(
            bytes.enumerated().allSatisfy { Int($1) == Int(bytes[0]) + $0 }, "\(Self.self).\(name) is not contiguous")
        return KernelParameterLayout(
            name: name, cudaName: snakeCase(name), cudaType: Field.cudaType, offset: Int(bytes[0]), size: bytes.count)
    }

    /// The CUDA C declaration, `struct Name { type field; ... };`, generated from the Swift fields.
    static var cudaDeclaration: String {
        var text =
            "/// Generated from the Swift struct \(Self.self): the same fields, in the same order.\nstruct \(cudaName) {\n"
        for field in fields { text += "    \(field.cudaType) \(field.cudaName);\n" }
        return text + "};\n"
    }
}

/// `weightRows` → `weight_rows`.
func snakeCase(_ name: String) -> String {
    var result = ""
    for character in name {
        if character.isUppercase {
            result += "_" + character.lowercased()
        } else {
            result.append(character)
        }
    }
    return result
}
