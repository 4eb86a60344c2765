"""minibert against transformers on a bert-base-sized checkpoint, side by side in one run.

The checkpoint has random weights (made here, no download). Each measurement alternates the
two libraries so that drift on a shared machine hits both alike, and reports medians and the
ratio minibert / transformers (lower is better). Results go to docs/benchmark.md and
docs/benchmark.png.

Run: make bench   (or: .venv/bin/python scripts/bench.py [--quick])
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

DOCS = Path(__file__).resolve().parents[1] / "docs"
LIBRARIES = ("minibert", "transformers")

# Code run in fresh processes: import, load, first logits. {lib} is minibert or transformers.
IMPORT = "import {lib}; from {lib} import BertModel"
LOAD = """
import os, resource, sys, time, torch
{import_}
resident = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
start = time.perf_counter()
model = BertModel.from_pretrained(sys.argv[1])
seconds = time.perf_counter() - start
with torch.inference_mode():  # touch every weight: lazily mapped files count once read
    model(torch.ones(1, 8, dtype=torch.long))
print(seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - resident)
"""
COLD = """
import sys, torch
{import_}
model = BertModel.from_pretrained(sys.argv[1]).eval()
with torch.inference_mode():
    model(torch.ones(1, 128, dtype=torch.long))
"""


def run_python(code: str, *args: str) -> tuple[float, str]:
    """Wall time of a fresh interpreter running ``code``, and what it printed."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    return time.perf_counter() - start, result.stdout


def alternate(measure: Callable[[str], float], repeats: int) -> dict[str, float]:
    """Median of ``measure(lib)`` for both libraries, taken in turns."""
    samples: dict[str, list[float]] = {lib: [] for lib in LIBRARIES}
    for _ in range(repeats):
        for lib in LIBRARIES:
            samples[lib].append(measure(lib))
    return {lib: statistics.median(values) for lib, values in samples.items()}


def forward_seconds(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> float:
    with torch.inference_mode():
        start = time.perf_counter()
        model(**inputs)
        return time.perf_counter() - start


def matmul_peak(dtype: torch.dtype) -> float:
    """This machine's matrix-multiply throughput (FLOP/s) on a bert-base feed-forward product."""
    x, weight = torch.randn(1024, 768, dtype=dtype), torch.randn(3072, 768, dtype=dtype)
    torch.nn.functional.linear(x, weight)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        torch.nn.functional.linear(x, weight)
        best = min(best, time.perf_counter() - start)
    return 2 * 1024 * 768 * 3072 / best


def forward_flops(config, batch: int, length: int) -> float:
    """Multiply-adds x 2 of a BERT forward: projections, feed-forward and attention scores."""
    hidden, inner, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    per_token = layers * (2 * 4 * hidden * hidden + 2 * 2 * hidden * inner + 2 * 2 * length * hidden)
    return batch * length * per_token


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, no 32x128 bf16")
    args = parser.parse_args()
    repeats = 3 if args.quick else 5

    import transformers

    import minibert

    transformers.utils.logging.disable_progress_bar()
    torch.manual_seed(0)
    config = minibert.BertConfig()
    rows: list[tuple[str, float, float, str]] = []  # (what, minibert, transformers, unit)

    with tempfile.TemporaryDirectory() as folder:
        minibert.BertModel(config).save_pretrained(folder)
        size = sum(p.stat().st_size for p in Path(folder).glob("*.safetensors"))

        imports = alternate(lambda lib: run_python(IMPORT.format(lib=lib))[0], repeats)
        rows.append(("python + import (s)", imports["minibert"], imports["transformers"], "s"))
        loads = {lib: [] for lib in LIBRARIES}
        for _ in range(repeats):
            for lib in LIBRARIES:
                out = run_python(LOAD.format(import_=IMPORT.format(lib=lib)), folder)[1].split()
                loads[lib].append((float(out[0]), float(out[1])))
        for index, label in ((0, "from_pretrained (s)"), (1, "peak RSS growth (load + forward) / checkpoint")):
            ours, theirs = (statistics.median(s[index] for s in loads[lib]) for lib in LIBRARIES)
            scale = size if index else 1
            rows.append((label, ours / scale, theirs / scale, "x" if index else "s"))
        colds = alternate(lambda lib: run_python(COLD.format(import_=IMPORT.format(lib=lib)), folder)[0], repeats)
        rows.append(("cold start to first logits (s)", colds["minibert"], colds["transformers"], "s"))

        models = {
            "minibert": minibert.BertModel.from_pretrained(folder),
            "transformers": transformers.BertModel.from_pretrained(folder).eval(),
        }
    peaks = {dtype: matmul_peak(dtype) for dtype in (torch.float32, torch.bfloat16)}
    efficiency: dict[str, float] = {}
    for dtype in (torch.float32, torch.bfloat16):
        for model in models.values():
            model.to(dtype)
        name = str(dtype).removeprefix("torch.")
        for batch in (1, 8, 32):
            if dtype == torch.bfloat16 and batch == 32 and args.quick:
                continue
            inputs = {"input_ids": torch.randint(1000, 30000, (batch, 128)), "attention_mask": torch.ones(batch, 128)}
            for model in models.values():  # warm-up; minibert packs its weights on the second call
                forward_seconds(model, inputs)
                forward_seconds(model, inputs)
            # bf16 without native support (AVX2-only CPUs) is slow for both: fewer repeats.
            turns = repeats if dtype == torch.float32 else min(repeats, 3)
            times = alternate(lambda lib, i=inputs: forward_seconds(models[lib], i), turns)
            rows.append((f"forward {batch}x128 {name} (s)", times["minibert"], times["transformers"], "s"))
            if dtype == torch.bfloat16:  # bf16 weights, float32 products: set_float32_matmuls
                models["minibert"].set_float32_matmuls(True)
                fast = statistics.median(forward_seconds(models["minibert"], inputs) for _ in range(turns))
                models["minibert"].set_float32_matmuls(False)
                rows.append((f"forward {batch}x128 {name}, float32 matmuls (s)", fast, times["transformers"], "s"))
            if batch == 8:
                flops = forward_flops(config, batch, 128)
                efficiency[name] = flops / times["minibert"] / peaks[dtype]
                efficiency[f"{name} transformers"] = flops / times["transformers"] / peaks[dtype]

    # A padded batch: 32 sequences of 16 to 128 tokens; minibert's default path unpads it by itself.
    for model in models.values():
        model.float()
    generator = torch.Generator().manual_seed(0)
    lengths = torch.randint(16, 129, (32,), generator=generator)
    mask = (torch.arange(128) < lengths[:, None]).long()
    padded = {"input_ids": torch.randint(1000, 30000, (32, 128), generator=generator) * mask, "attention_mask": mask}
    times = alternate(lambda lib: forward_seconds(models[lib], padded), repeats)
    real = int(lengths.sum())
    rows.append(("padded 32 x U(16,128) fp32 (s)", times["minibert"], times["transformers"], "s"))
    rows.append(("  real tokens per second", real / times["minibert"], real / times["transformers"], "tok/s"))

    write_results(rows, efficiency, peaks, size, real)


def write_results(rows, efficiency, peaks, size, real) -> None:
    machine = (
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    lines = [
        "# minibert vs transformers",
        "",
        f"bert-base (random weights, {size / 1e6:.0f} MB safetensors); {machine}; "
        f"`make bench` on {time.strftime('%Y-%m-%d')}. Medians, the two libraries alternating.",
        "",
        "| measurement | minibert | transformers | minibert / transformers |",
        "|---|---|---|---|",
    ]
    for what, ours, theirs, unit in rows:
        fmt = ".0f" if unit == "tok/s" else ".3f"
        ratio = f"{ours / theirs:.2f}" if theirs else "-"
        lines.append(f"| {what} | {ours:{fmt}} | {theirs:{fmt}} | {ratio} |")
    lines += [
        "",
        f"Matrix-multiply peak measured here: fp32 {peaks[torch.float32] / 1e9:.0f} GFLOP/s, "
        f"bf16 {peaks[torch.bfloat16] / 1e9:.0f} GFLOP/s.",
        "Fraction of that peak reached by the 8x128 forward: "
        + ", ".join(f"{name} {value:.0%}" for name, value in efficiency.items()),
        f"The padded batch holds {real} real tokens of 4096; minibert's default path runs it unpadded.",
    ]
    DOCS.mkdir(exist_ok=True)
    (DOCS / "benchmark.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (DOCS / "benchmark.json").write_text(json.dumps([list(r) for r in rows], indent=1) + "\n", encoding="utf-8")
    print("\n".join(lines))
    plot(rows)


def plot(rows) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [(what, ours / theirs) for what, ours, theirs, unit in rows if unit != "tok/s" and theirs]
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(shown) + 1))
    labels = [what.removesuffix(" (s)") for what, _ in shown]
    ratios = [ratio for _, ratio in shown]
    ax.barh(labels, ratios, color=["tab:green" if r < 1 else "tab:red" for r in ratios])
    ax.axvline(1.0, color="black", linewidth=1)
    ax.invert_yaxis()
    ax.set_xlabel("minibert / transformers (lower is better)")
    for y, ratio in enumerate(ratios):
        ax.text(ratio, y, f" {ratio:.2f}", va="center")
    fig.tight_layout()
    fig.savefig(DOCS / "benchmark.png", dpi=120)


if __name__ == "__main__":
    main()
