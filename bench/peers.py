#!/usr/bin/env python3
"""FusedNorm against its peers on one CUDA GPU, in one run, with one timing method.

Times `torch.nn.functional.rms_norm` (eager), `torch.compile` of the Hugging Face LlamaRMSNorm formula and
Liger-Kernel's RMSNorm (forward and backward), runs `fusednorm bench --device cuda --json` on the same shapes
right after, and writes BENCHMARKS.md, a plot (SVG) and the raw JSON.

Method (the same as `fusednorm bench --device cuda`): warm-up calls first; then the stream is kept busy by a
sleep kernel while the host queues the timed calls, each between two CUDA events, so that launch gaps are not
counted; the median of the per-call times; inputs are random (never zeros) and rotate among enough buffer sets
to exceed three times the L2 cache, so L2 does not flatter small shapes; the device-to-device copy bandwidth
(bytes read + written) is measured in the same run and every result is also given as a fraction of it.

Bytes per call are the floor, the same formula for every implementation: forward reads x (+ residual) and the
weight once and writes y (+ s) once; backward reads x, dy, the weight and rstd once and writes dx and dweight
once. So the ratio of two implementations' GB/s is the inverse ratio of their times.

Usage (on the GPU machine, after unpacking the statically linked `fusednorm`; see bench/run-gpu.sh):
    python3 bench/peers.py --fusednorm /tmp/pack/bin/fusednorm --out OUTDIR [--quick]
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # --report-from needs no GPU and no PyTorch
    torch = F = None

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32} if torch else {
    "bfloat16": None, "float16": None, "float32": None}
SIZES = {"bfloat16": 2, "float16": 2, "float32": 4}
MAIN_COLS = [1 << k for k in range(8, 19)] + [4095, 5120, 1 << 20]
ELEMENTS = 1 << 27
EPS = 1e-6


def log(*args):
    print(*args, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- timing
class Timer:
    """Per-call CUDA event times, queued behind a sleep kernel, median of `repeats`."""

    def __init__(self, warmup=5, repeats=40):
        self.warmup, self.repeats = warmup, repeats
        self.cycles_per_second = 1.98e9  # the sleep only covers the host's queuing; a rough clock is enough

    def median_seconds(self, call, sets, host_seconds_per_call=50e-6):
        for i in range(self.warmup):
            call(i % sets)
        torch.cuda.synchronize()
        events = [torch.cuda.Event(enable_timing=True) for _ in range(self.repeats + 1)]
        # Keep the GPU busy while the host queues every timed call, so no launch gap is timed.
        torch.cuda._sleep(int(min(self.repeats * host_seconds_per_call, 0.2) * self.cycles_per_second))
        for i in range(self.repeats):
            events[i].record()
            call((self.warmup + i) % sets)
        events[-1].record()
        torch.cuda.synchronize()
        times = [events[i].elapsed_time(events[i + 1]) for i in range(self.repeats)]
        return statistics.median(times) / 1e3


def l2_bytes():
    props = torch.cuda.get_device_properties(0)
    return getattr(props, "L2_cache_size", 50 << 20)


def buffer_sets(bytes_per_set, cap=4096):
    return max(1, min(cap, math.ceil(3 * l2_bytes() / max(bytes_per_set, 1))))


def random_tensor(shape, dtype):
    return (torch.randn(shape, device="cuda", dtype=torch.float32) * 0.5 + 0.25).to(dtype)


def copy_gbps(timer):
    n = 1 << 28
    src = torch.randn(n // 4, device="cuda", dtype=torch.float32)
    dst = torch.empty_like(src)
    seconds = timer.median_seconds(lambda i: dst.copy_(src), 1)
    return 2 * src.numel() * 4 / seconds / 1e9


# ---------------------------------------------------------------- peers
def llama_rmsnorm(x, w, eps: float = EPS):
    """The Hugging Face LlamaRMSNorm forward, as written there."""
    input_dtype = x.dtype
    h = x.to(torch.float32)
    variance = h.pow(2).mean(-1, keepdim=True)
    h = h * torch.rsqrt(variance + eps)
    return w * h.to(input_dtype)


def load_peers():
    # Timing a backward pass repeatedly needs retain_graph=True, which compiled graphs with donated buffers refuse.
    import torch._functorch.config as functorch_config

    functorch_config.donated_buffer = False
    peers = {
        "torch_eager": lambda x, w: F.rms_norm(x, (x.shape[-1],), w, EPS),
        "torch_compile": torch.compile(llama_rmsnorm),
    }
    try:
        from liger_kernel.ops.rms_norm import LigerRMSNormFunction

        peers["liger"] = lambda x, w: LigerRMSNormFunction.apply(x, w, EPS, 0.0, "llama", False)
    except Exception as error:  # reported in BENCHMARKS.md
        log(f"liger-kernel unavailable: {error}")
    return peers


def rms_bytes(rows, cols, size, backward):
    # forward: x, w read; y written. backward: x, dy, w, rstd read; dx, dw written.
    if backward:
        return 3 * rows * cols * size + 2 * cols * size + 4 * rows
    return 2 * rows * cols * size + cols * size


def time_peer(timer, fn, rows, cols, dtype, backward):
    size = dtype.itemsize
    sets = buffer_sets(rms_bytes(rows, cols, size, backward), cap=64 if backward else 4096)
    x = random_tensor((sets, rows, cols), dtype)
    w = random_tensor((cols,), dtype)
    if not backward:
        return timer.median_seconds(lambda i: fn(x[i], w), sets)
    xs = [x[i].detach().clone().requires_grad_(True) for i in range(sets)]
    w = w.requires_grad_(True)
    ys = [fn(xi, w) for xi in xs]
    dy = random_tensor((rows, cols), dtype)
    return timer.median_seconds(
        lambda i: torch.autograd.grad(ys[i], [xs[i], w], dy, retain_graph=True), sets, host_seconds_per_call=200e-6)


# ---------------------------------------------------------------- FusedNorm
def run_fusednorm(binary, out_dir, name, arguments):
    path = os.path.join(out_dir, f"fusednorm-{name}.json")
    command = [binary, "bench", "--device", "cuda", "--json", path] + arguments
    log("$ " + " ".join(command))
    started = time.time()
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log(result.stdout[-4000:])
    log(f"({time.time() - started:.0f} s, exit {result.returncode})")
    if result.returncode != 0:
        raise SystemExit(f"fusednorm bench {name} failed with exit status {result.returncode}")
    with open(path) as file:
        return json.load(file)


DECODE_NCU = ["ncu", "--clock-control", "none", "--kernel-name", "regex:norm_forward", "--launch-skip", "10",
              "--launch-count", "30", "--metrics", "gpu__time_duration.sum"]


def run_decode_ncu(binary, out_dir):
    """The decode kernel's own duration (M = 1, N = 4096, bf16), as Nsight Compute measures it: ncu flushes the
    caches before each profiled launch (x and w come from DRAM), and times the kernel alone, without the launch
    gaps that CUDA events around back-to-back launches include. Saved as fusednorm-decode-ncu.json."""
    command = DECODE_NCU + [binary, "bench", "--device", "cuda", "--ops", "rmsnorm", "--dtypes", "bfloat16", "--cols",
                            "4096", "--rows", "1", "--repeats", "50", "--time-limit", "0.2"]
    log("$ " + " ".join(command))
    try:
        result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as error:
        log(f"ncu not run: {error}")
        return None
    scale = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "nsecond": 1e-3, "usecond": 1.0, "msecond": 1e3}
    durations = []
    for line in result.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[0] == "gpu__time_duration.sum" and fields[1] in scale:
            durations.append(float(fields[2].replace(",", "")) * scale[fields[1]])
    if not durations:
        log("ncu gave no kernel durations:\n" + result.stdout[-2000:])
        return None
    record = {"op": "rmsnorm", "dtype": "bfloat16", "rows": 1, "cols": 4096, "launches": len(durations),
              "median_microseconds": statistics.median(durations), "min_microseconds": min(durations),
              "command": " ".join(DECODE_NCU + ["fusednorm"] + command[len(DECODE_NCU) + 1:])}
    with open(os.path.join(out_dir, "fusednorm-decode-ncu.json"), "w") as file:
        json.dump(record, file, indent=1)
    log(f"decode kernel (ncu): median {record['median_microseconds']:.2f} µs over {len(durations)} launches")
    return record


# ---------------------------------------------------------------- report
def fmt(gbps, copy):
    return f"{gbps:,.0f} ({gbps / copy:.3f})" if gbps else "–"


# The targets: (op, smallest N, largest N, fraction of copy) for bf16 and fp16; fp32 may be 0.05 lower.
TARGETS = [
    ("rmsnorm", 1024, 1 << 20, 0.95), ("rmsnorm", 256, 512, 0.85),
    ("layernorm", 1024, 1 << 20, 0.95), ("layernorm", 256, 512, 0.85),
    ("rmsnorm-residual", 1024, 1 << 20, 0.93),
    ("rmsnorm-backward", 1, 16384, 0.90), ("rmsnorm-backward", 16385, 262144, 0.80),
    ("layernorm-backward", 1, 16384, 0.90), ("layernorm-backward", 16385, 262144, 0.80),
]


def targets_section(fused):
    """One line per target: met or not, and the worst measured N, from `fusednorm bench`'s own fractions."""
    lines = ["## Targets (fraction of the copy bandwidth, `fusednorm bench`'s own measurement)", "",
             "| op | dtype | N range | target | worst measured (N) | met at |", "|---|---|---|---:|---|---:|"]
    for op, low, high, target in TARGETS:
        for dtype in DTYPES:
            goal = target - (0.05 if dtype == "float32" else 0)
            rows = [r for r in fused["main"] if r["op"] == op and r["dtype"] == dtype and low <= r["cols"] <= high]
            if not rows:
                continue
            worst = min(rows, key=lambda r: r["fraction_of_copy"])
            met = sum(r["fraction_of_copy"] >= goal for r in rows)
            lines.append(f"| {op} | {dtype} | {low}-{high} | {goal:.2f} | {worst['fraction_of_copy']:.3f} ({worst['cols']}) | "
                         f"{met}/{len(rows)} N |")
    contiguous = {(r["op"], r["dtype"], r["cols"]): r["fraction_of_copy"] for r in fused["main"]}
    for name, label in (("qk", "per-head QK-norm"), ("strided", "strided rows")):
        for r in fused.get(name) or []:
            base = contiguous.get((r["op"], r["dtype"], 4096))
            if base is not None:
                lines.append(f"| {r['op']} ({label}, N={r['cols']}) | {r['dtype']} | vs contiguous N=4096 | within 0.05 | "
                             f"{r['fraction_of_copy']:.3f} vs {base:.3f} | {'yes' if r['fraction_of_copy'] >= base - 0.05 else 'no'} |")
    ncu = fused.get("decode_ncu")
    for r in fused.get("decode") or []:
        if r["op"] == "rmsnorm" and r["rows"] == 1 and r["cols"] == 4096:
            host = r.get("host_microseconds")
            kernel = f"{ncu['median_microseconds']:.2f} µs kernel (ncu), " if ncu else ""
            met = "yes" if ncu and host is not None and ncu["median_microseconds"] <= 4 and host <= 10 else ""
            lines.append(f"| decode rmsnorm M=1 N=4096 | {r['dtype']} | kernel <= 4 µs, host <= 10 µs | | "
                         f"{kernel}{r['median_seconds'] * 1e6:.1f} µs per call by events, "
                         f"{host if host is None else round(host, 1)} µs host | {met} |")
    if ncu:
        lines += ["", f"Decode kernel time: median of {ncu['launches']} launches by Nsight Compute "
                  f"(`{ncu['command']}`; caches flushed before each launch). The events column of the decode table "
                  "times back-to-back calls, launch gaps included."]
    return lines + [""]


def write_report(out_dir, device_name, copy, peer_rows, fused, command):
    lines = [
        "# FusedNorm benchmarks",
        "",
        "Regenerate (GPU numbers; from the repository root, on the lent GPU machine):",
        "",
        "```",
        command,
        "```",
        "",
        f"Device: {device_name}. Device-to-device copy in the same run: **{copy:,.0f} GB/s** (bytes read + written).",
        "Cells are GB/s and, in brackets, the fraction of that copy bandwidth. Bytes are the floor for every",
        "implementation: forward reads x and w, writes y; backward reads x, dy, w, rstd, writes dx and dw.",
        "Ratio = FusedNorm / best peer (> 1 means FusedNorm is faster). Liger-Kernel refuses N > 65536.",
        "",
    ] + targets_section(fused)
    fused_main = {(r["op"], r["dtype"], r["cols"]): r for r in fused["main"]}
    for op, backward in (("rmsnorm", False), ("rmsnorm-backward", True)):
        for dtype in DTYPES:
            cols = sorted({c for (o, d, c) in peer_rows if o == op and d == dtype})
            if not cols:
                continue
            names = sorted({p for rows in peer_rows.values() for p in rows})
            lines += [f"## {op}, {dtype}", "", "| N | FusedNorm | " + " | ".join(names) + " | ratio |",
                      "|---:|---:|" + "---:|" * len(names) + "---:|"]
            for c in cols:
                peers = peer_rows[(op, dtype, c)]
                mine = fused_main.get((op, dtype, c))
                my_bytes = rms_bytes(ELEMENTS // c, c, SIZES[dtype], backward)
                my_gbps = my_bytes / mine["median_seconds"] / 1e9 if mine else None
                best = max(peers.values()) if peers else None
                ratio = f"{my_gbps / best:.2f}x" if my_gbps and best else "–"
                lines.append(f"| {c} | {fmt(my_gbps, copy)} | " + " | ".join(fmt(peers.get(n), copy) for n in names)
                             + f" | {ratio} |")
            lines.append("")
    for name, title in (("main", "All FusedNorm operations (fused bytes, as `fusednorm bench` counts them)"),
                        ("decode", "Decode shapes (few rows)"), ("qk", "Per-head QK-norm (rows × 32 heads × 128, (H, D) weight)"),
                        ("strided", "Strided rows (x = every third row of a larger tensor)")):
        rows = fused.get(name) or []
        if not rows:
            continue
        lines += [f"## {title}", "", "| op | dtype | rows | N | kernel µs | host µs/call | GB/s | of copy |",
                  "|---|---|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            host = r.get("host_microseconds")
            host_cell = f"{host:,.1f}" if host is not None else "–"
            lines.append(f"| {r['op']} | {r['dtype']} | {r['rows']} | {r['cols']} | {r['median_seconds'] * 1e6:,.1f} | "
                         f"{host_cell} | {r['gbps']:,.0f} | {r['fraction_of_copy']:.3f} |")
        lines.append("")
    with open(os.path.join(out_dir, "BENCHMARKS.md"), "w") as file:
        file.write("\n".join(lines))


def plot(out_dir, copy, peer_rows, fused):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception as error:
        log(f"no plot: {error}")
        return
    figure, axes = plt.subplots(1, 2, figsize=(14, 5), sharey=True)
    for axis, (op, backward) in zip(axes, (("rmsnorm", False), ("rmsnorm-backward", True))):
        dtype = "bfloat16"
        series = {}
        for (o, d, c), peers in peer_rows.items():
            if o == op and d == dtype:
                for name, gbps in peers.items():
                    series.setdefault(name, []).append((c, gbps))
        for r in fused["main"]:
            if r["op"] == op and r["dtype"] == dtype:
                size = SIZES[dtype]
                series.setdefault("FusedNorm", []).append(
                    (r["cols"], rms_bytes(r["rows"], r["cols"], size, backward) / r["median_seconds"] / 1e9))
        for name, points in sorted(series.items()):
            points.sort()
            axis.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=name)
        axis.axhline(copy, color="gray", linestyle="--", label="device copy")
        axis.set_xscale("log", base=2)
        axis.set_xlabel("N (row length)")
        axis.set_title(f"{op}, {dtype}")
        axis.grid(True, alpha=0.3)
    axes[0].set_ylabel("GB/s")
    axes[0].legend()
    figure.tight_layout()
    figure.savefig(os.path.join(out_dir, "benchmarks.svg"))


def save_peers(out_dir, copy, peer_rows):
    """The peers' results so far (rewritten after every cell, so a cut-short run keeps what it measured)."""
    with open(os.path.join(out_dir, "peers.json"), "w") as file:
        json.dump({"copy_gbps": copy, "device": torch.cuda.get_device_name(0),
                   "peers": [{"op": o, "dtype": d, "cols": c, "gbps": v} for (o, d, c), v in peer_rows.items()]},
                  file, indent=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fusednorm", help="path to the fusednorm binary (required unless --report-from)")
    parser.add_argument("--out", required=True, help="folder for BENCHMARKS.md, benchmarks.svg and the JSON")
    parser.add_argument("--quick", action="store_true", help="fewer shapes, for a smoke test")
    parser.add_argument("--command", default="bench/run-gpu.sh", help="the command to print at the top")
    parser.add_argument("--report-from", help="rebuild the report from a finished run's JSON in this folder, timing nothing")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    if args.report_from:
        return report_from(args.report_from, args.out, args.command)
    torch.manual_seed(0)
    timer = Timer()
    cols_list = [4096, 65536] if args.quick else MAIN_COLS
    dtypes = ["bfloat16"] if args.quick else list(DTYPES)

    copy = copy_gbps(timer)
    log(f"device copy: {copy:,.0f} GB/s")
    peers = load_peers()
    peer_rows = {}
    for op, backward in (("rmsnorm", False), ("rmsnorm-backward", True)):
        for dtype in dtypes:
            for cols in cols_list:
                rows = ELEMENTS // cols
                size = SIZES[dtype]
                cell = {}
                for name, fn in peers.items():
                    try:
                        seconds = time_peer(timer, fn, rows, cols, DTYPES[dtype], backward)
                        cell[name] = rms_bytes(rows, cols, size, backward) / seconds / 1e9
                    except Exception as error:
                        log(f"{name} {op} {dtype} N={cols}: {type(error).__name__}: {str(error)[:200]}")
                    torch.cuda.empty_cache()
                peer_rows[(op, dtype, cols)] = cell
                log(f"{op} {dtype} N={cols}: " + ", ".join(f"{k} {v:,.0f}" for k, v in cell.items()))
                save_peers(args.out, copy, peer_rows)

    cols_arg = ",".join(map(str, cols_list))
    all_ops = "rmsnorm,rmsnorm-residual,rmsnorm-backward,layernorm,layernorm-backward"
    fused = {
        "main": run_fusednorm(args.fusednorm, args.out, "main",
                              ["--ops", all_ops, "--dtypes", ",".join(dtypes), "--cols", cols_arg,
                               "--elements", str(ELEMENTS)]),
        "decode": run_fusednorm(args.fusednorm, args.out, "decode",
                                ["--ops", "rmsnorm,rmsnorm-residual,layernorm", "--dtypes", "bfloat16",
                                 "--cols", "4096,8192", "--rows", "1,8,32,128"]),
        "qk": run_fusednorm(args.fusednorm, args.out, "qk",
                            ["--ops", "rmsnorm,rmsnorm-backward", "--dtypes", "bfloat16,float16", "--cols", "128",
                             "--heads", "32", "--elements", str(ELEMENTS)]),
        "strided": run_fusednorm(args.fusednorm, args.out, "strided",
                                 ["--ops", "rmsnorm,rmsnorm-backward,layernorm", "--dtypes", "bfloat16",
                                  "--cols", "4096", "--row-step", "3", "--elements", str(ELEMENTS)]),
    }
    fused["decode_ncu"] = run_decode_ncu(args.fusednorm, args.out)
    write_report(args.out, torch.cuda.get_device_name(0), copy, peer_rows, fused, args.command)
    plot(args.out, copy, peer_rows, fused)
    log(open(os.path.join(args.out, "BENCHMARKS.md")).read())


def report_from(folder, out_dir, command):
    with open(os.path.join(folder, "peers.json")) as file:
        saved = json.load(file)
    peer_rows = {(p["op"], p["dtype"], p["cols"]): p["gbps"] for p in saved["peers"]}
    fused = {}
    for name in ("main", "decode", "qk", "strided"):
        with open(os.path.join(folder, f"fusednorm-{name}.json")) as file:
            fused[name] = json.load(file)
    ncu_path = os.path.join(folder, "fusednorm-decode-ncu.json")
    if os.path.exists(ncu_path):
        with open(ncu_path) as file:
            fused["decode_ncu"] = json.load(file)
    write_report(out_dir, saved["device"], saved["copy_gbps"], peer_rows, fused, command)
    plot(out_dir, saved["copy_gbps"], peer_rows, fused)


if __name__ == "__main__":
    main()
