// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "FusedNorm",
    products: [
        .library(name: "FusedNorm", targets: ["FusedNorm"]),
        .executable(name: "fusednorm", targets: ["fusednorm"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // Documentation only: `swift package generate-documentation --target FusedNorm` builds the DocC catalog.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        // The library: backend-agnostic API in Core/Operations/Layers, one folder per backend.
        .target(
            name: "FusedNorm", dependencies: ["CFusedNormCPU"],
            // The CUDA kernels' sources, compiled by NVRTC at run time, carried in the binary.
            resources: [
                "Common.cuh", "NormForward.cu", "NormForwardRows.cuh", "NormForwardSteps.cuh", "NormBackward.cu",
                "NormBackwardRows.cuh", "NormBackwardReduce.cuh",
            ].map { .embedInCode("CUDA/Kernels/\($0)") }
        ),
        // The CPU backend's row kernels and row conversions in C, compiled per function for AVX2/FMA/F16C and
        // picked at run time (Swift has no per-function target attributes); the Swift kernels are the fallback.
        .target(name: "CFusedNormCPU"),
        // A simple float64 implementation of every operation, the yardstick for tests and `fusednorm check`.
        .target(name: "FusedNormReference", dependencies: ["FusedNorm"]),
        // The command-line tool's commands, as a library so that tests can drive them.
        .target(
            name: "FusedNormCLI",
            dependencies: [
                "FusedNorm", "FusedNormReference",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(name: "fusednorm", dependencies: ["FusedNormCLI"]),
        // launch-plans.golden: the recorded launch plans, read by CUDALaunchPlanGoldenTests through #filePath.
        .testTarget(name: "FusedNormTests", dependencies: ["FusedNorm", "FusedNormReference"], exclude: ["CUDA/launch-plans.golden"]),
        .testTarget(name: "FusedNormCLITests", dependencies: ["FusedNormCLI", "FusedNorm", "FusedNormReference"]),
    ]
)
