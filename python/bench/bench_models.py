#!/usr/bin/env python3
"""Issue 16 item 6: one training step and one decode step of small Hugging Face models, with the norms
unpatched (PyTorch eager, the classes' own forward), patched with FusedNorm, and patched with Liger-Kernel's
norm-only patching (rms_norm=True; its RoPE, SwiGLU/GeGLU and loss patches off).

For the GPU machine (PyTorch, transformers; Liger carried as a wheel: see docs/notes/python-package.md).
Each variant runs in its own process (Liger's patching replaces classes module-wide), on the same models
(same seed), timed with CUDA events: the median over --repeats after --warmup steps.

    python3 python/bench/bench_models.py --device cuda --dtype bfloat16 --json bench/results/python-models.json

A training step is forward + cross-entropy loss + backward (no optimizer). A decode step is one token for
each of --batch sequences after a prefill of --length tokens (the cache cropped back by one token after every step).
"""

import argparse
import inspect
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

VARIANTS = ("unpatched", "fusednorm", "liger")
LIGER_FAMILIES = {"llama": "llama", "mistral": "mistral", "qwen2": "qwen2", "qwen3": "qwen3", "gemma": "gemma",
                  "gemma2": "gemma2", "gemma3": "gemma3_text"}


def parse():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", default="llama,qwen3,gemma3,cohere")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float16", "float32"))
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--kv-heads", type=int, default=8)
    parser.add_argument("--head-dim", type=int, default=128)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=1024)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--json", help="write the records here (a JSON list)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one variant in this process
    return parser.parse_args()


def patch(variant, family, built):
    if variant == "fusednorm":
        import fusednorm

        fusednorm.patch_transformers([family])
    elif variant == "liger":
        try:
            from liger_kernel import transformers as liger
        except ImportError as error:
            return f"Liger-Kernel is not importable ({error}); see docs/notes/python-package.md"

        name = LIGER_FAMILIES.get(family)
        if name is None:
            return "Liger has no patching for this family"
        apply = getattr(liger, f"apply_liger_kernel_to_{name}")
        options = {p: False for p, v in inspect.signature(apply).parameters.items() if isinstance(v.default, bool)}
        options["rms_norm"] = True
        if "model" in inspect.signature(apply).parameters:
            options["model"] = built
        apply(**options)
    return None


def timed(torch, device, step, warmup, repeats):
    """Median milliseconds of step() over `repeats` runs (CUDA events on a GPU, wall clock on the CPU)."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            began = time.perf_counter()
            step()
            times.append((time.perf_counter() - began) * 1e3)
    return statistics.median(times)


def run_one(arguments, variant, family):
    import torch
    import tiny_models

    dtype = getattr(torch, arguments.dtype)
    sizes = dict(hidden_size=arguments.hidden, layers=arguments.layers, heads=arguments.heads,
                 kv_heads=arguments.kv_heads, head_dim=arguments.head_dim, vocab=arguments.vocab, attention="sdpa")
    if variant == "liger":  # Liger's class replacement must precede the model's construction
        reason = patch(variant, family, None)
        if reason:
            return {"family": family, "variant": variant, "skipped": reason}
    built = tiny_models.model(family, dtype=dtype, device=arguments.device, **sizes)
    if variant == "fusednorm":
        patch(variant, family, built)
    ids = tiny_models.tokens(arguments.batch, arguments.length, arguments.vocab, arguments.device)

    built.train()

    def train_step():
        built.zero_grad(set_to_none=True)
        built(ids, labels=ids).loss.backward()

    train_ms = timed(torch, arguments.device, train_step, arguments.warmup, arguments.repeats)

    built.eval()
    with torch.no_grad():
        prefill = built(ids, use_cache=True)
        cache = prefill.past_key_values
        token = ids[:, -1:]

        def decode_step():
            built(token, past_key_values=cache, use_cache=True)
            cache.crop(-1)  # back to the prefill's length

        decode_ms = timed(torch, arguments.device, decode_step, arguments.warmup, arguments.repeats)
    record = {
        "family": family, "variant": variant, "dtype": arguments.dtype, "device": arguments.device,
        "hidden": arguments.hidden, "layers": arguments.layers, "batch": arguments.batch, "length": arguments.length,
        "train_step_ms": round(train_ms, 4), "decode_step_ms": round(decode_ms, 4), "repeats": arguments.repeats,
        "torch": torch.__version__,
    }
    if arguments.device == "cuda":
        record["gpu"] = torch.cuda.get_device_name()
    return record


def main():
    arguments = parse()
    if arguments.one:
        variant, family = arguments.one.split(":")
        try:
            record = run_one(arguments, variant, family)
        except Exception as error:  # one variant failing must not hide the others' numbers
            record = {"family": family, "variant": variant, "error": f"{type(error).__name__}: {error}"}
        print("RECORD " + json.dumps(record), flush=True)
        return
    records = []
    for family in arguments.families.split(","):
        for variant in arguments.variants.split(","):
            command = [sys.executable, os.path.abspath(__file__), *sys.argv[1:], "--one", f"{variant}:{family}"]
            result = subprocess.run(command, capture_output=True, text=True)
            lines = [line for line in result.stdout.splitlines() if line.startswith("RECORD ")]
            if lines:
                records.append(json.loads(lines[-1][len("RECORD "):]))
            else:
                records.append({"family": family, "variant": variant,
                                "error": f"exit {result.returncode}: {result.stderr.strip()[-2000:]}"})
            print(json.dumps(records[-1]), flush=True)
    print()
    print(f"{'family':<8} {'variant':<10} {'train ms':>10} {'vs eager':>9} {'decode ms':>10} {'vs eager':>9}")
    for family in arguments.families.split(","):
        base = next((r for r in records if r["family"] == family and r["variant"] == "unpatched" and "train_step_ms" in r), None)
        for r in (r for r in records if r["family"] == family):
            if "train_step_ms" not in r:
                print(f"{family:<8} {r['variant']:<10} {r.get('skipped') or r.get('error', '')[:60]}")
                continue
            train_ratio = base["train_step_ms"] / r["train_step_ms"] if base else float("nan")
            decode_ratio = base["decode_step_ms"] / r["decode_step_ms"] if base else float("nan")
            print(f"{family:<8} {r['variant']:<10} {r['train_step_ms']:>10.3f} {train_ratio:>8.2f}x "
                  f"{r['decode_step_ms']:>10.3f} {decode_ratio:>8.2f}x")
    if arguments.json:
        with open(arguments.json + ".tmp", "w") as handle:
            json.dump(records, handle, indent=1)
        os.replace(arguments.json + ".tmp", arguments.json)


if __name__ == "__main__":
    main()
