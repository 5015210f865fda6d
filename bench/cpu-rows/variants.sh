#!/usr/bin/env bash
# Round robin of versions of the C row kernels inside one process (see rows.c): each source folder (a copy of
# Sources/CFusedNormCPU, e.g. one saved before a change, or the working tree) is built into its own shared
# library, and the variants take turns, one timed run each per round, so that the host's slow spells fall on all of
# them alike. A variant is FOLDER[:LAYER[:PACKED]] (LAYER 1 LayerNorm, 0 RMSNorm; PACKED as rows.c's argument).
# From the repository root:
#   git archive HEAD Sources/CFusedNormCPU | tar -x -C /tmp/head     # the committed kernels
#   ROUNDS=20 bench/cpu-rows/variants.sh "/tmp/head/Sources/CFusedNormCPU:0 /tmp/head/Sources/CFusedNormCPU:1 Sources/CFusedNormCPU:1" \
#       forward bfloat16 1 16384 16384 2
# prints each variant's ns per element against the first's (here: RMSNorm, then LayerNorm before and after).
# The arguments after the variants are rows.c's; CFLAGS is passed to clang as in run.sh.
set -euo pipefail
variants=$1
shift
dir=${TMPDIR:-/tmp}/fusednorm-cpu-rows-variants
mkdir -p "$dir"
src=Sources/CFusedNormCPU
libraries=() index=0
for variant in $variants; do
    folder=${variant%%:*} options=${variant#"$folder"}
    library=$dir/kernels-$index.so
    clang -O2 ${CFLAGS:-} -shared -fPIC -pthread -I"$src/include" -I"$folder" "$folder"/*.c -o "$library" -lm
    libraries+=("$library$options")
    echo "kernels-$index.so: $variant"
    index=$((index + 1))
done
clang -O2 ${CFLAGS:-} -pthread -I"$src/include" -I"$src" bench/cpu-rows/rows.c "$src"/*.c -o "$dir/rows" -lm -ldl
VARIANTS="${libraries[*]}" "$dir/rows" "$@"
