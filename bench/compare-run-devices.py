#!/usr/bin/env python3
"""`fusednorm run` on the CPU and on the GPU, on the same .npy files: every output must agree.

For each operation (rmsnorm with a residual, layernorm, rmsnorm-backward, layernorm-backward), dtype and shape,
writes random inputs with NumPy, runs `fusednorm run OP ... --device cpu` and `--device cuda`, and compares
every output file by ‖gpu − cpu‖ / ‖cpu‖ against twice FusedNorm's tolerance for the dtype (each device is
within the tolerance of the float64 reference, possibly on opposite sides). Prints a table and a last line
`N passed, N failed`; exits 1 if any failed.

Usage (on a GPU machine): python3 bench/compare-run-devices.py --fusednorm /tmp/pack/bin/fusednorm
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

TOLERANCE = {"float32": 1e-5, "float16": 1e-3, "bfloat16": 8e-3}
SHAPES = [(7, 4096), (3, 5120), (2, 3, 33), (1, 65537)]


def run(binary, arguments):
    result = subprocess.run([binary, "run"] + arguments, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"fusednorm run {' '.join(arguments)}: exit {result.returncode}: {result.stdout.strip()}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fusednorm", required=True)
    args = parser.parse_args()
    random = np.random.default_rng(7)
    passed = failed = 0
    with tempfile.TemporaryDirectory() as folder:
        path = lambda name: os.path.join(folder, name)
        for shape in SHAPES:
            n = shape[-1]
            for name, array in (("x", random.standard_normal(shape)), ("r", random.standard_normal(shape)),
                                ("dy", random.standard_normal(shape)), ("w", random.uniform(0.5, 1.5, n)),
                                ("b", random.uniform(-0.5, 0.5, n))):
                np.save(path(f"{name}.npy"), array.astype(np.float32))
            for dtype in TOLERANCE:
                operations = {
                    "rmsnorm": (["--x", path("x.npy"), "--weight", path("w.npy"), "--residual", path("r.npy"),
                                 "--casting", "llama"], {"--out": "y", "--residual-out": "s", "--rstd": "rstd"}),
                    "layernorm": (["--x", path("x.npy"), "--weight", path("w.npy"), "--bias", path("b.npy")],
                                  {"--out": "y", "--mean": "mean", "--rstd": "rstd"}),
                    "rmsnorm-backward": (["--dy", path("dy.npy"), "--x", path("x.npy"), "--weight", path("w.npy"),
                                          "--weight-offset", "1"], {"--dx": "dx", "--dweight": "dw"}),
                    "layernorm-backward": (["--dy", path("dy.npy"), "--x", path("x.npy"), "--weight", path("w.npy"),
                                            "--bias", path("b.npy")], {"--dx": "dx", "--dweight": "dw", "--dbias": "db"}),
                }
                for operation, (inputs, outputs) in operations.items():
                    results = {}
                    for device in ("cpu", "cuda"):
                        flags = [f for flag, stem in outputs.items() for f in (flag, path(f"{stem}-{device}.npy"))]
                        run(args.fusednorm, [operation] + inputs + ["--dtype", dtype, "--device", device] + flags)
                        results[device] = {stem: np.load(path(f"{stem}-{device}.npy")).astype(np.float64)
                                           for stem in outputs.values()}
                    for stem in outputs.values():
                        cpu, gpu = results["cpu"][stem], results["cuda"][stem]
                        error = np.linalg.norm(gpu - cpu) / max(np.linalg.norm(cpu), 1e-30)
                        ok = cpu.shape == gpu.shape and np.isfinite(gpu).all() and error <= 2 * TOLERANCE[dtype]
                        passed, failed = passed + ok, failed + (not ok)
                        print(f"{operation:19} {dtype:9} {str(shape):12} {stem:5} {error:10.2e} {'ok' if ok else 'FAILED'}")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
