// SwiftPM builds a C target from at least one source file; CDLPack's declarations are all in include/dlpack.h.
#include "dlpack.h"
