#!/usr/bin/env bash
# Builds bench/cpu-rows/rows.c against the C row kernels (clang from the Swift toolchain, -O2 as a release build)
# and runs it with the given arguments (see rows.c). From the repository root:
#   bench/cpu-rows/run.sh backward bfloat16 1 4 32768        # LayerNorm backward, 4 rows in cache
#   bench/cpu-rows/run.sh backward bfloat16 1 16384 16384 2  # streamed from memory on two threads
#   CFLAGS=-DROWS_N=16384 bench/cpu-rows/run.sh backward float16 1 4 8192   # another row length N
set -euo pipefail
src=Sources/CFusedNormCPU
bin=${TMPDIR:-/tmp}/fusednorm-cpu-rows
clang -O2 ${CFLAGS:-} -pthread -I"$src/include" -I"$src" bench/cpu-rows/rows.c "$src"/*.c -o "$bin" -lm
"$bin" "$@"
