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

step "fusednorm run: the GPU's output files against the CPU's"
timeout 120 python3 bench/compare-run-devices.py --fusednorm "$bin/fusednorm" > "$out/run-devices.log" 2>&1
echo "exit $?"
tail -1 "$out/run-devices.log"
