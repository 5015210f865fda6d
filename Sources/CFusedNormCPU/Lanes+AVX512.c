// Lanes.c compiled again for AVX-512 (see Lanes.h).
#define CFN_AVX512 1
#include "Lanes.c"
