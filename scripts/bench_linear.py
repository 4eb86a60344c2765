"""How fast the CPU's linear kernels run on bert-base's weights, by number of rows: the evidence for minibert.linear.

bert-base's 72 encoder weights (12 layers of 4 x 768->768, 768->3072, 3072->768) are multiplied in
turn, as a forward does, so that each weight comes from memory rather than from cache. For each
number of rows (tokens in the call) it prints GFLOP/s of ``F.linear``, of oneDNN's packed product
(``PackedLinear``'s), and of MKL's packed product with the weight packed for 16 and for 1,024 rows
(the choice ``torch.compile``'s freezing makes). Runs alternate; the best of the rounds is shown.

Run: .venv/bin/python scripts/bench_linear.py [--threads 1 2] [--dtype float32|bfloat16] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_encode import cpu_name

SHAPES = [(768, 768)] * 4 + [(768, 3072), (3072, 768)]  # (in, out) of one bert-base layer
ROWS = (1, 4, 16, 64, 128, 256, 512, 1024, 2048)


def seconds(run: Callable[[], None], calls: int) -> float:
    run()
    start = time.perf_counter()
    for _ in range(calls):
        run()
    return (time.perf_counter() - start) / calls


def kernels(rows: int, dtype: torch.dtype) -> dict[str, Callable[[], None]]:
    weights = [(torch.randn(n, k, dtype=dtype), torch.randn(n, dtype=dtype)) for _ in range(12) for k, n in SHAPES]
    inputs = {k: torch.randn(rows, k, dtype=dtype) for k in (768, 3072)}
    onednn = [torch.ops.mkldnn._reorder_linear_weight(w, None) for w, _ in weights]
    runs = {
        "F.linear": lambda: [F.linear(inputs[w.shape[1]], w, b) for w, b in weights],
        "oneDNN packed": lambda: [
            torch.ops.mkldnn._linear_pointwise(inputs[w.shape[1]], p, b, "none", [], "")
            for (w, b), p in zip(weights, onednn, strict=True)
        ],
    }
    if dtype == torch.float32:
        for hint in (16, 1024):
            mkl = [torch.ops.mkl._mkl_reorder_linear_weight(w, hint) for w, _ in weights]
            runs[f"MKL packed for {hint}"] = lambda mkl=mkl: [
                torch.ops.mkl._mkl_linear(inputs[w.shape[1]], p, w, b, rows)
                for (w, b), p in zip(weights, mkl, strict=True)
            ]
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    print(f"{cpu_name()} ({torch.backends.cpu.get_cpu_capability()}), torch {torch.__version__}, {args.dtype}")
    for threads in args.threads:
        torch.set_num_threads(threads)
        print(f"\n{threads} thread(s), GFLOP/s (best of {args.rounds} alternated rounds)\n")
        for rows in ROWS:
            runs = kernels(rows, dtype)
            if rows == ROWS[0]:
                print("| rows | " + " | ".join(runs) + " |")
                print("|---|" + "---|" * len(runs))
            flops = 2 * rows * 12 * sum(k * n for k, n in SHAPES)
            calls = max(1, 2048 // (rows * 4))
            best = {name: float("inf") for name in runs}
            for _ in range(args.rounds):
                for name, run in runs.items():
                    best[name] = min(best[name], seconds(run, calls))
            print(f"| {rows} | " + " | ".join(f"{flops / s / 1e9:.0f}" for s in best.values()) + " |")


if __name__ == "__main__":
    main()
