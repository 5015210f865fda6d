/* Helpers of libFusedNormC's Swift layer, not part of the public interface (hidden in the shared library). */
#ifndef FUSEDNORM_INTERNAL_H
#define FUSEDNORM_INTERNAL_H

#include "fusednorm.h"

/* Stores `message` (copied) as this thread's fusednorm_last_error(). */
__attribute__((visibility("hidden"))) void fusednorm_internal_set_last_error(const char *message);

#endif
