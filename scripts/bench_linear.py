"""How fast the CPU's linear kernels run on bert-base's weights, by number of rows: the evidence for minibert.linear.

bert-base's 72 encoder weights (12 layers of 4 x 768->768, 768->3072, 3072->768) are multiplied in
turn, as a forward does, so that each weight comes from memory rather than from cache. For each
number of rows (tokens in the call) it prints GFLOP/s of ``F.linear``, of oneDNN's packed product
(``PackedLinear``'s), and of MKL's packed product with the weight packed for 16 and for 1,024 rows
(the choice ``torch.compile``'s freezing makes). Runs alternate; the best of the rounds is shown.

``--forward 8x128 ...`` times instead bert-base's whole forward (random weights) at each batch x length,
with and without ``PackedLinear``'s use of MKL's product on multiples of 1,024 rows at two threads
(``minibert.linear.MKL_BLOCKS_THREADS`` set to 2 and to 0 in turn, so the rest runs ``F.linear``):
medians and the median of the paired ratios, and the largest difference between the two outputs.

Run: .venv/bin/python scripts/bench_linear.py [--threads 1 2] [--dtype float32|bfloat16] [--rounds 3]
     [--rows 16 1024 1500] [--forward 8x128 4x256]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

import minibert
from minibert import linear

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


def forward_with_and_without_mkl_blocks(shape: str, rounds: int) -> None:
    """bert-base's forward at two threads, MKL's product on multiples of 1,024 rows or ``F.linear`` there."""
    batch, length = (int(n) for n in shape.split("x"))
    torch.manual_seed(0)
    model = minibert.BertModel(minibert.BertConfig()).eval()
    ids = torch.randint(1000, 20000, (batch, length))
    times: dict[int, list[float]] = {2: [], 0: []}
    with torch.inference_mode():
        outputs = {}
        for setting in (2, 0, 2, 0):  # each layer packs on its second call
            linear.MKL_BLOCKS_THREADS = setting
            outputs[setting] = model(input_ids=ids).last_hidden_state
        for round_ in range(rounds):
            for setting in (2, 0) if round_ % 2 else (0, 2):
                linear.MKL_BLOCKS_THREADS = setting
                start = time.perf_counter()
                model(input_ids=ids)
                times[setting].append(time.perf_counter() - start)
    linear.MKL_BLOCKS_THREADS = 2
    ratio = statistics.median(a / b for a, b in zip(times[2], times[0], strict=True))
    difference = float((outputs[2] - outputs[0]).abs().max())
    print(
        f"| {shape} | {statistics.median(times[2]) * 1e3:.0f} ms | {statistics.median(times[0]) * 1e3:.0f} ms "
        f"| {ratio:.3f} | {difference:.1e} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, nargs="+", default=list(ROWS), help="row counts of the kernel table")
    parser.add_argument("--forward", nargs="+", metavar="BxL", help="time bert-base's forward at 2 threads instead")
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    print(f"{cpu_name()} ({torch.backends.cpu.get_cpu_capability()}), torch {torch.__version__}, {args.dtype}")
    if args.forward:
        torch.set_num_threads(linear.MKL_BLOCKS_THREADS)
        print(f"\nbert-base forward, {linear.MKL_BLOCKS_THREADS} threads, {args.rounds} alternated rounds\n")
        print("| batch x length | MKL on multiples of 1,024 rows | F.linear there | paired ratio | max difference |")
        print("|---|---|---|---|---|")
        for shape in args.forward:
            forward_with_and_without_mkl_blocks(shape, args.rounds)
        return
    for threads in args.threads:
        torch.set_num_threads(threads)
        print(f"\n{threads} thread(s), GFLOP/s (best of {args.rounds} alternated rounds)\n")
        for rows in args.rows:
            runs = kernels(rows, dtype)
            if rows == args.rows[0]:
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
