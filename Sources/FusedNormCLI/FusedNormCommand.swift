import ArgumentParser

/// `fusednorm`: fused RMSNorm and LayerNorm from the command line.
public struct FusedNormCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "fusednorm",
        abstract: "Fused RMSNorm and LayerNorm kernels: check, benchmark and run them.",
        subcommands: [])

    public init() {}
}
