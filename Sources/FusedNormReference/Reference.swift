import FusedNorm
