#!/usr/bin/env python3
"""FusedNorm against its peers on one CUDA GPU, in one run, with one timing method.

Times the peers of `bench/peer_kernels.py` (torch eager, torch.compile, Liger-Kernel's Triton kernels, Liger's
CuTe DSL RMSNorm, Quack) on every operation each implements (RMSNorm forward with and without residual and
backward, LayerNorm forward and backward) and PyTorch's own copy (`dst.copy_(src)`, a peer yardstick), runs
`fusednorm bench --device cuda --json` on the same shapes right after, and writes BENCHMARKS.md, a plot (SVG) and
the raw JSON. A peer that does not import is skipped, with the reason in the log and in BENCHMARKS.md.

Method (the same as `fusednorm bench --device cuda`): warm-up calls first; then the stream is kept busy by a
sleep kernel while the host queues the timed calls, each between two CUDA events, so that launch gaps are not
counted; the median of the per-call times; inputs are random (never zeros) and rotate among enough buffer sets
to exceed three times the L2 cache, so L2 does not flatter small shapes.

Yardstick: the best copy measured in the run, per dtype: PyTorch's `copy_` (timed here, 2^27 elements of the
dtype, as `fusednorm bench` copies) and `fusednorm bench`'s two copies (`cuMemcpyDtoD` and its own 16-byte-vector
kernel; `memcpy_gbps`, `streaming_copy_gbps` in its JSON). Every cell gives absolute GB/s and, in brackets, the
fraction of that best copy.

Bytes per call are the floor, the same formula for every implementation, as `fusednorm bench` counts them
(`peer_kernels.op_bytes`): each input read once, each output written once. So the ratio of two
implementations' GB/s is the inverse ratio of their times.

Usage (on the GPU machine, after unpacking the statically linked `fusednorm`; see bench/run-gpu.sh):
    python3 bench/peers.py --fusednorm /tmp/pack/bin/fusednorm --out OUTDIR [--quick] [--ops ...] [--peers ...]
Rebuild the report from a finished run's JSON (no GPU, no PyTorch needed):
    python3 bench/peers.py --report-from RUNDIR --out OUTDIR
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_kernels import BACKWARD, OPS, Case, Unsupported, buffer_sets, load_peers, op_bytes  # noqa: E402

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
PEER_NAMES = ["torch_eager", "torch_compile", "liger", "liger_cutedsl", "quack"]


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


def torch_copy_gbps(timer, dtype):
    """PyTorch's device-to-device copy (`dst.copy_(src)`) of ELEMENTS elements of `dtype`: bytes read + written."""
    src = (torch.randn(ELEMENTS, device="cuda", dtype=torch.float32) * 0.5 + 0.25).to(DTYPES[dtype])
    dst = torch.empty_like(src)
    seconds = timer.median_seconds(lambda i: dst.copy_(src), 1)
    del src, dst
    torch.cuda.empty_cache()
    return 2 * ELEMENTS * SIZES[dtype] / seconds / 1e9


def time_peer(timer, builder, op, rows, cols, dtype):
    """Seconds per call (median) of one peer on one operation and shape."""
    backward = op in BACKWARD
    sets = buffer_sets(op_bytes(op, rows, cols, SIZES[dtype]), l2_bytes(), cap=64 if backward else 4096)
    case = Case(torch, op, rows, cols, DTYPES[dtype], sets)
    call = builder(case)
    return timer.median_seconds(call, sets, host_seconds_per_call=200e-6 if backward else 50e-6)


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


# Issue 17's targets: (op, smallest N, largest N, fraction of copy) for bf16 and fp16; fp32 may be 0.05 lower.
TARGETS = [
    ("rmsnorm", 256, 262144, 0.95), ("rmsnorm", 1 << 20, 1 << 20, 0.90),
    ("layernorm", 256, 262144, 0.95), ("layernorm", 1 << 20, 1 << 20, 0.90),
    ("rmsnorm-residual", 256, 262144, 0.95), ("rmsnorm-residual", 1 << 20, 1 << 20, 0.90),
    ("rmsnorm-backward", 1, 16384, 0.90), ("rmsnorm-backward", 16385, 262144, 0.85),
    ("rmsnorm-backward", 1 << 20, 1 << 20, 0.75),
    ("layernorm-backward", 1, 16384, 0.90), ("layernorm-backward", 16385, 262144, 0.85),
    ("layernorm-backward", 1 << 20, 1 << 20, 0.75),
]


def yardsticks(torch_copies, fused_main):
    """Per dtype: every copy measured in the run ({kind: GB/s}) and the best of them (GB/s, kind)."""
    result = {}
    for dtype in DTYPES:
        copies = {}
        if dtype in torch_copies:
            copies["torch copy_"] = torch_copies[dtype]
        records = [r for r in fused_main if r["dtype"] == dtype]
        for key, kind in (("memcpy_gbps", "cuMemcpyDtoD"), ("streaming_copy_gbps", "copy_kernel")):
            values = [r[key] for r in records if r.get(key)]
            if values:
                copies[kind] = statistics.median(values)
        if not copies and records:  # a fusednorm JSON from before the two copies
            copies["fusednorm copy"] = statistics.median(r["copy_gbps"] for r in records)
        if copies:
            best = max(copies, key=copies.get)
            result[dtype] = (copies, copies[best], best)
    return result


def yardstick_section(sticks):
    lines = ["## Yardsticks (device-to-device copies in this run, bytes read + written, GB/s)", "",
             "| dtype | " + " | ".join(("torch copy_", "cuMemcpyDtoD", "copy_kernel")) + " | best |", "|---|---:|---:|---:|---|"]
    for dtype, (copies, best, kind) in sticks.items():
        cells = [f"{copies[k]:,.0f}" if k in copies else "–" for k in ("torch copy_", "cuMemcpyDtoD", "copy_kernel")]
        lines.append(f"| {dtype} | " + " | ".join(cells) + f" | {kind} |")
    lines += ["", "cuMemcpyDtoD and copy_kernel: medians over `fusednorm bench`'s copy measurements of that dtype "
              "(`memcpy_gbps`, `streaming_copy_gbps`); `fraction_of_copy` in its own tables is against the faster "
              "of those two, measured just before each operation.", ""]
    return lines


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
                lines.append(f"| {r['op']} ({label}, N={r['cols']}) | {r['dtype']} | vs contiguous N=4096 | within 0.03 | "
                             f"{r['fraction_of_copy']:.3f} vs {base:.3f} | {'yes' if r['fraction_of_copy'] >= base - 0.03 else 'no'} |")
    ncu = fused.get("decode_ncu")
    for r in fused.get("decode") or []:
        if r["op"] == "rmsnorm" and r["rows"] == 1 and r["cols"] == 4096:
            host = r.get("host_microseconds")
            kernel = f"{ncu['median_microseconds']:.2f} µs kernel (ncu), " if ncu else ""
            met = "yes" if ncu and host is not None and ncu["median_microseconds"] <= 3 and host <= 5 else ""
            lines.append(f"| decode rmsnorm M=1 N=4096 | {r['dtype']} | kernel <= 3 µs, host <= 5 µs | | "
                         f"{kernel}{r['median_seconds'] * 1e6:.1f} µs per call by events, "
                         f"{host if host is None else round(host, 1)} µs host | {met} |")
    if ncu:
        lines += ["", f"Decode kernel time: median of {ncu['launches']} launches by Nsight Compute "
                  f"(`{ncu['command']}`; caches flushed before each launch). The events column of the decode table "
                  "times back-to-back calls, launch gaps included."]
    return lines + [""]


def peer_tables(peer_rows, fused_main, sticks):
    """One table per operation and dtype: FusedNorm and every peer that ran, GB/s (fraction of the best copy)."""
    lines = []
    fused_by_key = {(r["op"], r["dtype"], r["cols"]): r for r in fused_main}
    names = [n for n in PEER_NAMES if any(n in cell for cell in peer_rows.values())]
    for op in OPS:
        for dtype in DTYPES:
            cols = sorted({c for (o, d, c) in peer_rows if o == op and d == dtype})
            if not cols or dtype not in sticks:
                continue
            copy = sticks[dtype][1]
            present = [n for n in names if any(n in peer_rows[(op, dtype, c)] for c in cols)]
            lines += [f"## {op}, {dtype}", "", "| N | FusedNorm | " + " | ".join(present) + " | ratio |",
                      "|---:|---:|" + "---:|" * len(present) + "---:|"]
            for c in cols:
                peers = peer_rows[(op, dtype, c)]
                mine = fused_by_key.get((op, dtype, c))
                my_gbps = op_bytes(op, mine["rows"], c, SIZES[dtype]) / mine["median_seconds"] / 1e9 if mine else None
                best = max(peers.values()) if peers else None
                ratio = f"{my_gbps / best:.2f}x" if my_gbps and best else "–"
                lines.append(f"| {c} | {fmt(my_gbps, copy)} | " + " | ".join(fmt(peers.get(n), copy) for n in present)
                             + f" | {ratio} |")
            lines.append("")
    return lines


def write_report(out_dir, device_name, torch_copies, peer_rows, fused, command, skipped):
    sticks = yardsticks(torch_copies, fused["main"])
    lines = [
        "# FusedNorm benchmarks",
        "",
        "Regenerate (GPU numbers; from the repository root, on the lent GPU machine):",
        "",
        "```",
        command,
        "```",
        "",
        f"Device: {device_name}. Cells are GB/s and, in brackets, the fraction of the best copy of the same dtype",
        "measured in the same run (Yardsticks below). Bytes are the floor for every implementation, as `fusednorm",
        "bench` counts them. Ratio = FusedNorm / best peer (> 1 means FusedNorm is faster). Liger's CuTe DSL RMSNorm",
        "runs for N <= 65536 only; Quack's LayerNorm takes fp32 weight and bias (counted as 16-bit, like the others).",
        "",
    ]
    if skipped:
        lines += ["Peers not measured: " + "; ".join(f"{k} ({v})" for k, v in sorted(skipped.items())) + ".", ""]
    lines += yardstick_section(sticks) + targets_section(fused) + peer_tables(peer_rows, fused["main"], sticks)
    for name, title in (("main", "All FusedNorm operations (fused bytes, as `fusednorm bench` counts them)"),
                        ("decode", "Decode shapes (few rows)"), ("qk", "Per-head QK-norm (rows × 32 heads × 128, (H, D) weight)"),
                        ("strided", "Strided rows (x = every third row of a larger tensor)")):
        rows = fused.get(name) or []
        if not rows:
            continue
        lines += [f"## {title}", "", "| op | dtype | rows | N | kernel µs | host µs/call | GB/s | copy GB/s (kind) | of copy |",
                  "|---|---|---:|---:|---:|---:|---:|---|---:|"]
        for r in rows:
            host = r.get("host_microseconds")
            host_cell = f"{host:,.1f}" if host is not None else "–"
            kind = f" ({r['copy_kind']})" if r.get("copy_kind") else ""
            lines.append(f"| {r['op']} | {r['dtype']} | {r['rows']} | {r['cols']} | {r['median_seconds'] * 1e6:,.1f} | "
                         f"{host_cell} | {r['gbps']:,.0f} | {r['copy_gbps']:,.0f}{kind} | {r['fraction_of_copy']:.3f} |")
        lines.append("")
    with open(os.path.join(out_dir, "BENCHMARKS.md"), "w") as file:
        file.write("\n".join(lines))


def plot(out_dir, torch_copies, peer_rows, fused):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception as error:
        log(f"no plot: {error}")
        return
    dtype = "bfloat16"
    sticks = yardsticks(torch_copies, fused["main"])
    figure, axes = plt.subplots(1, len(OPS), figsize=(6 * len(OPS), 5), sharey=True)
    for axis, op in zip(axes, OPS):
        series = {}
        for (o, d, c), peers in peer_rows.items():
            if o == op and d == dtype:
                for name, gbps in peers.items():
                    series.setdefault(name, []).append((c, gbps))
        for r in fused["main"]:
            if r["op"] == op and r["dtype"] == dtype:
                series.setdefault("FusedNorm", []).append(
                    (r["cols"], op_bytes(op, r["rows"], r["cols"], SIZES[dtype]) / r["median_seconds"] / 1e9))
        for name, points in sorted(series.items()):
            points.sort()
            axis.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=name)
        if dtype in sticks:
            axis.axhline(sticks[dtype][1], color="gray", linestyle="--", label=f"best copy ({sticks[dtype][2]})")
        axis.set_xscale("log", base=2)
        axis.set_xlabel("N (row length)")
        axis.set_title(f"{op}, {dtype}")
        axis.grid(True, alpha=0.3)
    axes[0].set_ylabel("GB/s")
    axes[0].legend()
    figure.tight_layout()
    figure.savefig(os.path.join(out_dir, "benchmarks.svg"))


def save_peers(out_dir, device_name, torch_copies, peer_rows, skipped):
    """The peers' results so far (rewritten after every cell, so a cut-short run keeps what it measured)."""
    with open(os.path.join(out_dir, "peers.json"), "w") as file:
        json.dump({"device": device_name, "torch_copy_gbps": torch_copies, "skipped": skipped,
                   "peers": [{"op": o, "dtype": d, "cols": c, "gbps": v} for (o, d, c), v in peer_rows.items()]},
                  file, indent=1)


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fusednorm", help="path to the fusednorm binary (required unless --report-from)")
    parser.add_argument("--out", required=True, help="folder for BENCHMARKS.md, benchmarks.svg and the JSON")
    parser.add_argument("--quick", action="store_true", help="fewer shapes, for a smoke test")
    parser.add_argument("--ops", default=",".join(OPS), help="operations, comma-separated (default: all)")
    parser.add_argument("--peers", default=",".join(PEER_NAMES), help="peers, comma-separated (default: all that import)")
    parser.add_argument("--command", default="bench/run-gpu.sh", help="the command to print at the top")
    parser.add_argument("--report-from", help="rebuild the report from a finished run's JSON in this folder, timing nothing")
    args = parser.parse_args(argv)
    args.ops = [o for o in args.ops.split(",") if o]
    args.peers = [p for p in args.peers.split(",") if p]
    for value, known, what in ((args.ops, OPS, "--ops"), (args.peers, PEER_NAMES, "--peers")):
        unknown = [v for v in value if v not in known]
        if unknown:
            parser.error(f"{what}: unknown {', '.join(unknown)} (known: {', '.join(known)})")
    if not args.report_from and not args.fusednorm:
        parser.error("--fusednorm is required unless --report-from is given")
    return args


def main():
    args = parse_arguments()
    os.makedirs(args.out, exist_ok=True)
    if args.report_from:
        return report_from(args.report_from, args.out, args.command)
    if torch is None:
        raise SystemExit("PyTorch is needed to time the peers (only --report-from works without it)")
    torch.manual_seed(0)
    timer = Timer()
    cols_list = [4096, 65536] if args.quick else MAIN_COLS
    dtypes = ["bfloat16"] if args.quick else list(DTYPES)
    device_name = torch.cuda.get_device_name(0)

    torch_copies = {dtype: torch_copy_gbps(timer, dtype) for dtype in dtypes}
    log("torch copy_: " + ", ".join(f"{d} {g:,.0f} GB/s" for d, g in torch_copies.items()))
    peers, skipped = load_peers(torch, F, args.peers)
    for name, reason in skipped.items():
        log(f"{name} not measured: {reason}")
    peer_rows = {}
    for op in args.ops:
        for dtype in dtypes:
            for cols in cols_list:
                rows = ELEMENTS // cols
                cell = {}
                for name, operations in peers.items():
                    if op not in operations:
                        continue
                    try:
                        seconds = time_peer(timer, operations[op], op, rows, cols, dtype)
                        cell[name] = op_bytes(op, rows, cols, SIZES[dtype]) / seconds / 1e9
                    except Unsupported as reason:
                        log(f"{name} {op} {dtype} N={cols}: not run: {reason}")
                    except Exception as error:  # noqa: BLE001 -- one failing cell must not end the run
                        log(f"{name} {op} {dtype} N={cols}: {type(error).__name__}: {str(error)[:200]}")
                    torch.cuda.empty_cache()
                peer_rows[(op, dtype, cols)] = cell
                log(f"{op} {dtype} N={cols}: " + ", ".join(f"{k} {v:,.0f}" for k, v in cell.items()))
                save_peers(args.out, device_name, torch_copies, peer_rows, skipped)

    cols_arg = ",".join(map(str, cols_list))
    fused = {
        "main": run_fusednorm(args.fusednorm, args.out, "main",
                              ["--ops", ",".join(OPS), "--dtypes", ",".join(dtypes), "--cols", cols_arg,
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
    write_report(args.out, device_name, torch_copies, peer_rows, fused, args.command, skipped)
    plot(args.out, torch_copies, peer_rows, fused)
    log(open(os.path.join(args.out, "BENCHMARKS.md")).read())


def report_from(folder, out_dir, command):
    with open(os.path.join(folder, "peers.json")) as file:
        saved = json.load(file)
    peer_rows = {(p["op"], p["dtype"], p["cols"]): p["gbps"] for p in saved["peers"]}
    # peers.json before issue 17 had one fp32 torch copy for every dtype.
    torch_copies = saved.get("torch_copy_gbps") or {d: saved["copy_gbps"] for d in DTYPES}
    fused = {}
    for name in ("main", "decode", "qk", "strided"):
        path = os.path.join(folder, f"fusednorm-{name}.json")
        if os.path.exists(path) or name == "main":
            with open(path) as file:
                fused[name] = json.load(file)
    ncu_path = os.path.join(folder, "fusednorm-decode-ncu.json")
    if os.path.exists(ncu_path):
        with open(ncu_path) as file:
            fused["decode_ncu"] = json.load(file)
    write_report(out_dir, saved["device"], torch_copies, peer_rows, fused, command, saved.get("skipped") or {})
    plot(out_dir, torch_copies, peer_rows, fused)


if __name__ == "__main__":
    main()
