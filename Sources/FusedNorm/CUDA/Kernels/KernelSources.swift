/// The kernel sources: the `.cu` and `.cuh` files beside this one, embedded in the binary at build time
/// (`resources: [.embedInCode(...)]` in Package.swift), handed to NVRTC as one main file and its headers.
extension KernelSource {
    /// RMSNorm and LayerNorm forward (NormForward.cu).
    static let normForward = KernelSource(
        name: "norm_forward", program: KernelFiles.program("NormForward.cu", PackageResources.NormForward_cu),
        entryPoints: ["norm_forward"])

    /// RMSNorm and LayerNorm backward and the dweight/dbias reduction (NormBackward.cu).
    static let normBackward = KernelSource(
        name: "norm_backward", program: KernelFiles.program("NormBackward.cu", PackageResources.NormBackward_cu),
        entryPoints: ["norm_backward", "reduce_partials"])
}

/// The embedded files, as NVRTC gets them.
enum KernelFiles {
    /// The headers every kernel may include, by the name its `#include "..."` uses.
    static let headers: [(name: String, text: String)] = [
        ("Common.cuh", text(PackageResources.Common_cuh)),
        ("Parameters.cuh", parametersHeader),
        ("NormForwardRows.cuh", text(PackageResources.NormForwardRows_cuh)),
        ("NormForwardSteps.cuh", text(PackageResources.NormForwardSteps_cuh)),
        ("NormBackwardRows.cuh", text(PackageResources.NormBackwardRows_cuh)),
        ("NormBackwardReduce.cuh", text(PackageResources.NormBackwardReduce_cuh)),
    ]

    private static func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    /// A kernel file with every header.
    static func program(_ name: String, _ bytes: [UInt8]) -> KernelProgram {
        KernelProgram(name: name, source: text(bytes), headers: headers)
    }
}
