import Testing

@testable import FusedNorm

/// The kernels' parameter structs: declared once in Swift, the CUDA C declaration generated from them, and
/// the Swift layout checked against C's (in Swift, and by NVRTC compiling `static_assert`s).
@Suite("CUDA kernel parameters")
struct CUDAKernelParametersTests {
    static var all: [any KernelParameters.Type] { KernelFiles.parameterTypes }

    /// The offsets C gives fields of these sizes (each aligned to its size), and the struct's size.
    static func cLayout(_ sizes: [Int]) -> (offsets: [Int], size: Int) {
        var offset = 0, offsets: [Int] = []
        for size in sizes {
            offset = (offset + size - 1) / size * size
            offsets.append(offset)
            offset += size
        }
        let alignment = sizes.max() ?? 1
        return (offsets, (offset + alignment - 1) / alignment * alignment)
    }

    /// `offsetof` as a constant expression: NVRTC has no <cstddef>, and 13.0 no `__builtin_offsetof` (13.5 has
    /// it); EDG's `__INTADDR__` makes the classic null-pointer form constant in both.
    static let offsetMacro = """
        #if defined(__has_builtin)
        #if __has_builtin(__builtin_offsetof)
        #define FN_OFFSETOF(T, f) __builtin_offsetof(T, f)
        #endif
        #endif
        #ifndef FN_OFFSETOF
        #define FN_OFFSETOF(T, f) ((unsigned long long)__INTADDR__(&(((T*)0)->f)))
        #endif

        """

    /// A kernel source that compiles only if C lays out the generated struct as Swift does.
    static func probe(_ type: any KernelParameters.Type, offsetError: Int = 0) -> String {
        func text<P: KernelParameters>(_: P.Type) -> String {
            var source = Self.offsetMacro + P.cudaDeclaration
            for (index, field) in P.fields.enumerated() {
                let offset = field.offset + (index == P.fields.count - 1 ? offsetError : 0)
                source +=
                    "static_assert(FN_OFFSETOF(\(P.cudaName), \(field.cudaName)) == \(offset), \"\(field.cudaName)\");\n"
            }
            source += "static_assert(sizeof(\(P.cudaName)) == \(MemoryLayout<P>.stride), \"size\");\n"
            source += "static_assert(alignof(\(P.cudaName)) == \(MemoryLayout<P>.alignment), \"alignment\");\n"
            return source + "extern \"C\" __global__ void probe(const \(P.cudaName) p) {}\n"
        }
        return text(type)
    }

    @Test("Swift lays out every parameter struct as C does: fields in order, each aligned to its size")
    func swiftLayout() {
        for type in Self.all {
            let fields = type.fields
            #expect(fields.count >= 3, "\(type)")  // reflection found the fields (the copy kernel has 3)
            let expected = Self.cLayout(fields.map(\.size))
            #expect(fields.map(\.offset) == expected.offsets, "\(type)")
            #expect(Set(fields.map(\.cudaName)).count == fields.count, "\(type)")
            func stride<P: KernelParameters>(_: P.Type) -> Int { MemoryLayout<P>.stride }
            #expect(stride(type) == expected.size, "\(type)")
        }
    }

    @Test("the CUDA declaration is generated from the Swift fields")
    func declaration() {
        let declaration = ForwardParameters.cudaDeclaration
        #expect(declaration.contains("struct ForwardParams {\n    const void* x;\n    const void* residual;\n"))
        #expect(declaration.contains("    long long weight_rows;\n"))
        #expect(declaration.hasSuffix("    float epsilon;\n    float weight_offset;\n};\n"))
        #expect(BackwardParameters.cudaDeclaration.contains("    float* partials;\n"))
        #expect(ReduceParameters.cudaDeclaration.contains("    const float* partials;\n"))
        // Every kernel file compiles against the generated header.
        #expect(KernelFiles.headers.contains { $0.name == "Parameters.cuh" && $0.text == KernelFiles.parametersHeader })
    }

    @Test("an argument block holds the Swift struct's bytes")
    func argumentBlock() {
        var parameters = ReduceParameters()
        parameters.partials = FloatInputPointer(0x10)
        parameters.parts = -3
        parameters.dbiasStride = 7
        let arguments = KernelArguments(parameters)
        #expect(arguments.words == [0x10, 0, 0, UInt64(bitPattern: -3), 0, 0, 0, 7])
        var forward = ForwardParameters()
        forward.epsilon = 1.5
        forward.weightOffset = -2
        #expect(
            KernelArguments(forward).words.last == UInt64(Float(1.5).bitPattern) | UInt64(Float(-2).bitPattern) << 32)
    }

    @Test(
        "NVRTC lays out every generated struct at the offsets Swift uses; a wrong offset fails to compile",
        .enabled(if: CUDAEnvironment.shared.nvrtc != nil, "needs NVRTC (FUSEDNORM_NVRTC or a CUDA toolkit)"))
    func probeCompiles() throws {
        let nvrtc = try #require(CUDAEnvironment.shared.nvrtc)
        let options = ["--gpu-architecture=compute_75", "--std=c++17"]
        for type in Self.all {
            let program = KernelProgram(name: "probe.cu", source: Self.probe(type))
            #expect(throws: Never.self, "\(type)") { _ = try nvrtc.compile(program, options: options, cubin: false) }
            // The probe can fail: the last field's offset off by 4.
            let broken = KernelProgram(name: "probe.cu", source: Self.probe(type, offsetError: 4))
            #expect(throws: CUDAError.self, "\(type)") { _ = try nvrtc.compile(broken, options: options, cubin: false) }
        }
    }
}
