#!/usr/bin/env bash
# A/B of two versions of the C row kernels on this shared, noisy host: builds bench/cpu-rows/rows.c against each
# source folder (copies of Sources/CFusedNormCPU, e.g. one saved before a change and the working tree) and runs the
# two builds in alternation, ROUNDS times, so that both see the same spells of the host. From the repository root:
#   cp -r Sources/CFusedNormCPU /tmp/before   # before the change
#   bench/cpu-rows/ab.sh /tmp/before Sources/CFusedNormCPU 4 forward bfloat16 1 4 32768
# The arguments after ROUNDS are rows.c's (see there); CFLAGS is passed to clang as in run.sh.
set -euo pipefail
a=$1 b=$2 rounds=$3
shift 3
bin=${TMPDIR:-/tmp}/fusednorm-cpu-rows-ab
for side in a b; do
    src=${!side}
    clang -O2 ${CFLAGS:-} -pthread -ISources/CFusedNormCPU/include -I"$src" bench/cpu-rows/rows.c "$src"/*.c -o "$bin-$side" -lm
done
for round in $(seq "$rounds"); do
    for side in a b; do echo "$side (${!side}): $("$bin-$side" "$@" | sed 's/.*: //')"; done
done
