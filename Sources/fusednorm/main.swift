import FusedNormCLI

FusedNormCommand.main()
