// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "FusedNorm",
    products: [
        .library(name: "FusedNorm", targets: ["FusedNorm"]),
        .executable(name: "fusednorm", targets: ["fusednorm"]),
        // The C interface (Sources/FusedNormC/ABI/include/fusednorm.h) as libFusedNormC.so; README.md says how to
        // build it self-contained (no Swift runtime needed on the target machine).
        .library(name: "FusedNormC", type: .dynamic, targets: ["FusedNormC"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // Documentation only: `swift package generate-documentation --target FusedNorm` builds the DocC catalog.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        // The library: backend-agnostic API in Core/Operations/Layers, one folder per backend.
        .target(
            name: "FusedNorm", dependencies: ["CFusedNormCPU", "CDLPack"],
            // The CUDA kernels' sources (and the bench's copy kernel), compiled by NVRTC at run time, carried in the binary.
            resources: [
                "Common.cuh", "NormForward.cu", "NormForwardRows.cuh", "NormForwardSteps.cuh", "NormBackward.cu",
                "NormBackwardRows.cuh", "NormBackwardReduce.cuh", "CopyVectors.cu",
            ].map { .embedInCode("CUDA/Kernels/\($0)") }
        ),
        // The CPU backend's row kernels and row conversions in C, compiled per function for AVX2/FMA/F16C and
        // picked at run time (Swift has no per-function target attributes); the Swift kernels are the fallback.
        .target(name: "CFusedNormCPU"),
        // The DLPack exchange structs, declared from the published specification.
        .target(name: "CDLPack"),
        // The C interface: the header and its plain-C parts (errors, versions) ...
        .target(name: "CFusedNormABI", path: "Sources/FusedNormC/ABI"),
        // ... and the @_cdecl functions over the public FusedNorm API.
        .target(name: "FusedNormC", dependencies: ["FusedNorm", "CFusedNormABI", "CDLPack"], exclude: ["ABI"]),
        // A DLPack producer and consumer written in C, for the tests of import and export.
        .target(name: "CDLPackTestSupport", dependencies: ["CDLPack"], path: "Tests/CInterop/DLPackTestSupport"),
        // A simple float64 implementation of every operation, the yardstick for tests and `fusednorm check`.
        .target(name: "FusedNormReference", dependencies: ["FusedNorm"]),
        // The command-line tool's commands, as a library so that tests can drive them.
        .target(
            name: "FusedNormCLI",
            dependencies: [
                "FusedNorm", "FusedNormReference",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            // `fusednorm explain --html`: the interactive page, embedded in the binary (PackageResources.explain_html).
            resources: [.embedInCode("Explain/explain.html")]
        ),
        .executableTarget(name: "fusednorm", dependencies: ["FusedNormCLI"]),
        // launch-plans.golden: the recorded launch plans, read by CUDALaunchPlanGoldenTests through #filePath.
        .testTarget(
            name: "FusedNormTests", dependencies: ["FusedNorm", "FusedNormReference", "CDLPack", "CDLPackTestSupport"],
            exclude: ["CUDA/launch-plans.golden"]),
        .testTarget(name: "FusedNormCLITests", dependencies: ["FusedNormCLI", "FusedNorm", "FusedNormReference"]),
    ]
)
