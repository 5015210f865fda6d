#!/usr/bin/env python3
"""Tests of bench/peers.py's parts that need no GPU and no PyTorch: byte counts, argument parsing, and the report
from a fake result set. Run: python3 bench/test_peers.py"""
import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peers  # noqa: E402
from peer_kernels import OPS, op_bytes  # noqa: E402


def fake_run(folder):
    """A finished run: three peers (one skipped), two dtypes, three N, and fusednorm's JSON with both copies."""
    cells, main = [], []
    for op in OPS:
        for dtype in ("bfloat16", "float32"):
            for cols in (4095, 4096, 65536):
                cell = {"torch_eager": 1000.0, "quack": 2900.0}
                if op in ("rmsnorm", "rmsnorm-backward") and cols % 8 == 0:
                    cell["liger_cutedsl"] = 2800.0
                cells.append({"op": op, "dtype": dtype, "cols": cols, "gbps": cell})
                rows = peers.ELEMENTS // cols
                seconds = op_bytes(op, rows, cols, peers.SIZES[dtype]) / 2950e9
                main.append({"op": op, "dtype": dtype, "cols": cols, "rows": rows, "median_seconds": seconds,
                             "gbps": 2950.0, "copy_gbps": 3000.0, "copy_kind": "copy_kernel", "memcpy_gbps": 2891.0,
                             "streaming_copy_gbps": 3000.0, "fraction_of_copy": 0.983})
    with open(os.path.join(folder, "peers.json"), "w") as file:
        json.dump({"device": "test data", "torch_copy_gbps": {"bfloat16": 2950.0, "float32": 2940.0},
                   "skipped": {"liger": "ModuleNotFoundError: no liger_kernel"}, "peers": cells}, file)
    with open(os.path.join(folder, "fusednorm-main.json"), "w") as file:
        json.dump(main, file)


class PeersTests(unittest.TestCase):
    def test_bytes_are_those_of_fusednorm_bench(self):
        # rmsnorm-backward, 3 rows of 8 float16: x, dy, dx (48 bytes each), weight and dweight, rstd (as the CLI test).
        self.assertEqual(op_bytes("rmsnorm-backward", 3, 8, 2), 3 * 48 + 2 * 16 + 12)
        self.assertEqual(op_bytes("rmsnorm-residual", 2, 4, 4), 4 * 32 + 16)
        self.assertEqual(op_bytes("layernorm-backward", 2, 4, 2), 3 * 16 + 4 * 8 + 16)

    def test_arguments(self):
        args = peers.parse_arguments(["--out", "x", "--fusednorm", "f", "--ops", "rmsnorm,layernorm", "--peers", "quack"])
        self.assertEqual((args.ops, args.peers), (["rmsnorm", "layernorm"], ["quack"]))
        for bad in (["--out", "x", "--fusednorm", "f", "--ops", "softmax"], ["--out", "x", "--peers", "apex"], ["--out", "x"]):
            with self.assertRaises(SystemExit), open(os.devnull, "w") as null:
                stderr, sys.stderr = sys.stderr, null
                try:
                    peers.parse_arguments(bad)
                finally:
                    sys.stderr = stderr

    def test_report_from_a_finished_run(self):
        with tempfile.TemporaryDirectory() as run, tempfile.TemporaryDirectory() as out:
            fake_run(run)
            stderr, sys.stderr = sys.stderr, open(os.devnull, "w")  # "no plot" without matplotlib
            try:
                peers.report_from(run, out, "bench/run-gpu.sh OUTDIR")
            finally:
                sys.stderr.close()
                sys.stderr = stderr
            text = open(os.path.join(out, "BENCHMARKS.md")).read()
        self.assertIn("Peers not measured: liger (ModuleNotFoundError: no liger_kernel).", text)
        # The yardstick of a dtype is the best of the three copies: here fusednorm's kernel (3,000 GB/s).
        self.assertIn("| bfloat16 | 2,950 | 2,891 | 3,000 | copy_kernel |", text)
        for op in OPS:
            self.assertIn(f"## {op}, bfloat16", text)
        # FusedNorm at 2,950 GB/s against the best copy 3,000, and 2,950 / 2,900 (Quack) = 1.02x.
        self.assertIn("| 4096 | 2,950 (0.983) | 1,000 (0.333) | 2,800 (0.933) | 2,900 (0.967) | 1.02x |", text)
        # Liger's CuTe DSL column only where it ran; the LayerNorm tables have no such column.
        layer = text.split("## layernorm, bfloat16")[1].split("##")[0]
        self.assertNotIn("liger_cutedsl", layer)


if __name__ == "__main__":
    unittest.main()
