#!/usr/bin/env bash
# Correctness on a GPU machine: the whole test suite with the GPU tests enabled, `fusednorm check --device cuda`,
# and compute-sanitizer (memcheck, racecheck) over `fusednorm check`. Two halves:
#
#   here (no GPU needed), from the repository root:
#     swift build -c release --build-tests -Xswiftc -enable-testing --scratch-path .build-release-tests
#     swift build -c release --static-swift-stdlib --product fusednorm --scratch-path .build-static
#     ../shared/tools/device-pack .build-release-tests/release/FusedNormPackageTests.xctest .build-static/release/fusednorm
#
#   on the GPU machine, from the repository root with .device carried:
#     bench/verify-gpu.sh OUTDIR
#
# Each step has a time limit so that the whole run fits one 10-minute call; a step cut short says so.
set -uo pipefail
out=${1:?usage: bench/verify-gpu.sh OUTDIR}
mkdir -p "$out"
rm -rf /tmp/pack && tar xJf .device/pack.tar.xz -C /tmp
export LD_LIBRARY_PATH=/tmp/pack/lib
bin=/tmp/pack/bin
step() { echo; echo "== $1 ($(date -u +%H:%M:%S))"; }

step environment
nvidia-smi --query-gpu=index,name,memory.total,driver_version,compute_cap --format=csv
"$bin/fusednorm" info

step "test suite (GPU tests enabled)"
timeout 240 "$bin/FusedNormPackageTests.xctest" --testing-library swift-testing > "$out/tests.log" 2>&1
echo "exit $?"
grep -E "✘|skipped|Test run" "$out/tests.log" | tail -15

step "fusednorm check --device cuda"
timeout 120 "$bin/fusednorm" check --device cuda > "$out/check.log" 2>&1
echo "exit $?"
tail -1 "$out/check.log"

step "compute-sanitizer memcheck"
timeout 120 compute-sanitizer --tool memcheck --leak-check no "$bin/fusednorm" check --device cuda \
  --cols 1,33,4095,5120,65537,262144,1048576 --dtypes bfloat16,float32 > "$out/memcheck.log" 2>&1
echo "exit $?"
grep -E "ERROR SUMMARY|passed, " "$out/memcheck.log" | tail -2

step "compute-sanitizer racecheck"
timeout 100 compute-sanitizer --tool racecheck "$bin/fusednorm" check --device cuda \
  --cols 33,5120,65537 --dtypes bfloat16 > "$out/racecheck.log" 2>&1
echo "exit $?"
grep -E "RACECHECK SUMMARY|hazard|passed, " "$out/racecheck.log" | tail -3

# fusednorm check has few rows per shape; layouts that loop over rows with the next one staged, and clusters
# with their parameters in shared memory, need more rows than the grid has teams: fusednorm bench gives them.
# (racecheck is slower: fewer shapes, just enough rows: LayerNorm's staged clusters with their parameters in
# shared memory at N = 65536, the backward's staged 128-byte rows at 16384.)
staged="bench --device cuda --ops rmsnorm,layernorm,rmsnorm-backward,layernorm-backward --dtypes bfloat16,float32 \
  --cols 16384,65536,262144 --elements 33554432 --repeats 1 --time-limit 0.01"
raced="bench --device cuda --ops layernorm,rmsnorm-backward --dtypes bfloat16 --cols 16384,65536 --elements 8388608 \
  --repeats 1 --time-limit 0.01"
step "compute-sanitizer memcheck and racecheck on staged layouts"
timeout 100 compute-sanitizer --tool memcheck --leak-check no "$bin/fusednorm" $staged > "$out/memcheck-staged.log" 2>&1
echo "memcheck exit $?"
grep -E "ERROR SUMMARY" "$out/memcheck-staged.log" | tail -1
FUSEDNORM_CUDA_LOG=1 timeout 150 compute-sanitizer --tool racecheck "$bin/fusednorm" $raced > "$out/racecheck-staged.log" 2>&1
echo "racecheck exit $?"
grep -E "RACECHECK SUMMARY" "$out/racecheck-staged.log" | tail -1

step "fusednorm run: the GPU's output files against the CPU's"
timeout 120 python3 bench/compare-run-devices.py --fusednorm "$bin/fusednorm" > "$out/run-devices.log" 2>&1
echo "exit $?"
tail -1 "$out/run-devices.log"
