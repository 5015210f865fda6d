import FusedNormCLI

FusedNormCommand.runAsTool()
