"""How fast the CPU's linear kernels run on bert-base's weights, by number of rows: the evidence for minibert.linear.

bert-base's 72 encoder weights (12 layers of 4 x 768->768, 768->3072, 3072->768) are multiplied in
turn, as a forward does, so that each weight comes from memory rather than from cache. For each
number of rows (tokens in the call) it prints GFLOP/s of ``F.linear``, of oneDNN's packed product
(``PackedLinear``'s), and of MKL's packed product with the weight packed for 16 and for 1,024 rows
(the choice ``torch.compile``'s freezing makes). Runs alternate; the best of the rounds is shown.

``--by-shape`` prints the same per weight shape instead (bert-base's three, and query, key and value
joined in one 768 -> 2,304 weight, as ``JoinedLinear`` multiplies them): the kernels' order is not the
same for every shape (at two threads MKL's is the faster on wide weights, oneDNN's on the others).

``--forward 8x128 ...`` times instead bert-base's whole forward (random weights) at each batch x length,
as minibert chooses and without one of its choices (``--without``): ``mkl``, MKL's product at two
threads (on multiples of 1,024 rows and on wide weights: ``minibert.linear.MKL_BLOCKS_THREADS``);
``wide``, MKL's product on wide weights only (``MKL_WIDE_ROWS``); ``joined``, query, key and value
as one product (``JoinedLinear``); ``fused-gelu``, GELU applied by oneDNN's product on small weights
(``FUSED_GELU_MAX_BYTES``: with ``--model minilm``, all-MiniLM-L6-v2, since bert-base's weights are
larger). It prints medians of alternated rounds, the median of the paired ratios, and the largest
difference between the two outputs.

Run: .venv/bin/python scripts/bench_linear.py [--threads 1 2] [--dtype float32|bfloat16] [--rounds 3]
     [--rows 16 1024 1500] [--by-shape] [--forward 8x128 1x128 --without mkl|wide|joined|fused-gelu]
     [--model bert-base|minilm]
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

from minibert.cli import default_checkpoint

SHAPES = [(768, 768)] * 4 + [(768, 3072), (3072, 768)]  # (in, out) of one bert-base layer
ROWS = (1, 4, 16, 64, 128, 256, 512, 1024, 2048)
BY_SHAPE = [(768, 768), (768, 2304), (768, 3072), (3072, 768)]  # --by-shape: 768 -> 2,304 is JoinedLinear's


def seconds(run: Callable[[], None], calls: int) -> float:
    run()
    start = time.perf_counter()
    for _ in range(calls):
        run()
    return (time.perf_counter() - start) / calls


def kernels(rows: int, dtype: torch.dtype, shapes: list[tuple[int, int]]) -> dict[str, Callable[[], None]]:
    """Each kernel's run over 12 layers of weights of ``shapes`` (in, out), one after the other."""
    weights = [(torch.randn(n, k, dtype=dtype), torch.randn(n, dtype=dtype)) for _ in range(12) for k, n in shapes]
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


def each_alone(joined: object, layers: list[torch.nn.Module], x: torch.Tensor) -> list[torch.Tensor]:
    """A ``JoinedLinear.__call__`` that calls each layer on its own: the joined product turned off."""
    return [layer(x) for layer in layers]


def forward_with_and_without(shape: str, rounds: int, without: str, model_name: str) -> None:
    """A model's forward as minibert chooses its kernels, and without the choice ``without``."""
    batch, length = (int(n) for n in shape.split("x"))
    torch.manual_seed(0)
    if model_name == "minilm":
        model = minibert.BertModel.from_pretrained(default_checkpoint(), add_pooling_layer=False)
    else:
        model = minibert.BertModel(minibert.BertConfig(), add_pooling_layer=False).eval()
    ids = torch.randint(1000, 20000, (batch, length))
    if without == "joined":  # each layer called on its own
        owner, name = linear.JoinedLinear, "__call__"
        changed: object = each_alone
    else:
        names = {"mkl": "MKL_BLOCKS_THREADS", "wide": "MKL_WIDE_ROWS", "fused-gelu": "FUSED_GELU_MAX_BYTES"}
        owner, name = linear, names[without]
        changed = {"mkl": 0, "wide": sys.maxsize, "fused-gelu": 0}[without]
    settings = {"as chosen": vars(owner)[name], "without": changed}
    times: dict[str, list[float]] = {key: [] for key in settings}
    with torch.inference_mode():
        outputs = {}
        for key in [*settings] * 2:  # each layer packs on its second call
            setattr(owner, name, settings[key])
            outputs[key] = model(input_ids=ids).last_hidden_state
        for round_ in range(rounds):
            for key in reversed(settings) if round_ % 2 else settings:
                setattr(owner, name, settings[key])
                start = time.perf_counter()
                model(input_ids=ids)
                times[key].append(time.perf_counter() - start)
    setattr(owner, name, settings["as chosen"])
    ratio = statistics.median(a / b for a, b in zip(times["as chosen"], times["without"], strict=True))
    difference = float((outputs["as chosen"] - outputs["without"]).abs().max())
    print(
        f"| {shape} | {statistics.median(times['as chosen']) * 1e3:.0f} ms "
        f"| {statistics.median(times['without']) * 1e3:.0f} ms | {ratio:.3f} | {difference:.1e} |"
    )


def best_rates(runs: dict[str, Callable[[], None]], flops: float, rows: int, rounds: int) -> list[str]:
    """GFLOP/s of each run, the best of ``rounds`` alternated rounds."""
    calls = max(1, 2048 // (rows * 4))
    best = {name: float("inf") for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            best[name] = min(best[name], seconds(run, calls))
    return [f"{flops / s / 1e9:.0f}" for s in best.values()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, nargs="+", default=list(ROWS), help="row counts of the kernel table")
    parser.add_argument("--by-shape", action="store_true", help="float32 GFLOP/s per weight shape instead")
    parser.add_argument("--forward", nargs="+", metavar="BxL", help="time bert-base's forward instead")
    parser.add_argument("--without", choices=("mkl", "wide", "joined", "fused-gelu"), default="mkl", help="see above")
    parser.add_argument("--model", choices=("bert-base", "minilm"), default="bert-base", help="for --forward")
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    print(f"{cpu_name()} ({torch.backends.cpu.get_cpu_capability()}), torch {torch.__version__}, {args.dtype}")
    for threads in args.threads:
        torch.set_num_threads(threads)
        if args.forward:
            print(f"\n{args.model} forward, {threads} thread(s), {args.rounds} alternated rounds\n")
            print(f"| batch x length | as chosen | without {args.without} | paired ratio | max difference |")
            print("|---|---|---|---|---|")
            for shape in args.forward:
                forward_with_and_without(shape, args.rounds, args.without, args.model)
            continue
        print(f"\n{threads} thread(s), GFLOP/s (best of {args.rounds} alternated rounds)\n")
        layer = sum(k * n for k, n in SHAPES)  # each shape as many times as fills bert-base's weights: streamed
        tables = [(f"{k} -> {n}", [(k, n)] * (layer // (k * n))) for k, n in BY_SHAPE] if args.by_shape else []
        tables = tables or [("all", SHAPES)]
        for rows in args.rows:
            for name, shapes in tables:
                runs = kernels(rows, dtype, shapes)
                if rows == args.rows[0] and name == tables[0][0]:
                    print("| rows | weights (in -> out) | " + " | ".join(runs) + " |")
                    print("|---|---|" + "---|" * len(runs))
                flops = 2 * rows * 12 * sum(k * n for k, n in shapes)
                print(f"| {rows} | {name} | " + " | ".join(best_rates(runs, flops, rows, args.rounds)) + " |")


if __name__ == "__main__":
    main()
