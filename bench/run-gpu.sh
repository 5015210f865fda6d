#!/usr/bin/env bash
# Regenerates BENCHMARKS.md's GPU numbers. Two halves:
#
#   here (no GPU needed), from the repository root:
#     swift build -c release --static-swift-stdlib --product fusednorm
#     ../shared/tools/device-pack .build/release/fusednorm            # -> .device/pack.tar.xz
#     python3 -m pip download --no-deps liger-kernel==0.8.5 -d .whl   # the Liger-Kernel peer
#
#   on the GPU machine (PyTorch and Triton installed), from the repository root with .device and .whl:
#     bench/run-gpu.sh OUTDIR
#
# OUTDIR receives BENCHMARKS.md, benchmarks.svg and the raw JSON; copy the first two into the repository.
set -euo pipefail
out=${1:?usage: bench/run-gpu.sh OUTDIR}
mkdir -p "$out"
rm -rf /tmp/pack && tar xJf .device/pack.tar.xz -C /tmp
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}  # keeps Quack's folders (bench/extract-wheels.py)
fi
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,temperature.gpu,utilization.gpu --format=csv
export PYTHONUNBUFFERED=1
python3 bench/peers.py --fusednorm /tmp/pack/bin/fusednorm --out "$out" --command "bench/run-gpu.sh OUTDIR  (see the comment at its top for the build steps)"
