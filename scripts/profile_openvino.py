"""Where OpenVINO's bert-base forward spends its time, product by product, next to minibert's: batch-1 latency.

OpenVINO (the fastest float32 engine at batch 1 in docs/engines.md) runs the ONNX export of
transformers' model, as scripts/bench_engines.py builds it, with its per-node profile on
(``PERF_COUNT``): for each node, the kernel it chose (``exec_type``) and its time. minibert runs the
same weights under ``torch.profiler``. The products are put side by side by weight shape (in -> out):
calls per forward, microseconds per call and GFLOP/s, and each side's kernels (minibert multiplies
query, key and value as one 768 -> 2,304 product); the rest of each forward is summed by operator.
bert-base has random weights (``BertConfig()``), the inputs are random ids.

Run: .venv/bin/python scripts/profile_openvino.py [--threads N] [--rounds R] [--shapes 1x16 1x128]
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_encode import cpu_name, padded
from bench_engines import bert_base_folder, export_onnx

import minibert
from minibert.cli import default_checkpoint

# torch.profiler's product operators: (kernel, the position of the input rows and of the bias among the inputs)
PRODUCTS = {
    "mkl::_mkl_linear": ("MKL packed", 0, 3),
    "mkldnn::_linear_pointwise": ("oneDNN packed", 0, 2),
    "aten::addmm": ("F.linear", 1, 0),
}

WALL = "whole forward"  # wall time per forward (without the profiler for minibert): what the operators leave out

# (in, out) -> [calls, milliseconds, kernel] per forward
Products = dict[tuple[int, int], list]


def openvino_profile(
    compiled, unprofiled, inputs: dict[str, torch.Tensor], rounds: int
) -> tuple[Products, dict[str, float]]:
    """OpenVINO's products by weight shape and the rest by node type (``compiled``, profiled), and its whole
    forward (``unprofiled``, the same model compiled without the profile), milliseconds per forward."""
    feed = {i.get_any_name(): inputs[i.get_any_name()].numpy() for i in compiled.inputs}
    plain = unprofiled.create_infer_request()
    for _ in range(2):  # warm-up
        plain.infer(feed)
    start = time.perf_counter()
    for _ in range(rounds):
        plain.infer(feed)
    wall = (time.perf_counter() - start) * 1e3 / rounds
    request = compiled.create_infer_request()
    ops = {op.get_friendly_name(): op for op in compiled.get_runtime_model().get_ops()}
    products: Products = {}
    rest: dict[str, float] = defaultdict(float)
    for _ in range(2):  # warm-up
        request.infer(feed)
    for _ in range(rounds):
        request.infer(feed)
        for node in request.profiling_info:
            ms = node.real_time.total_seconds() * 1e3 / rounds
            if node.node_type != "FullyConnected":
                rest[node.node_type] += ms
                continue
            op = ops[node.node_name]
            k = op.input(0).get_partial_shape()[-1].get_length()
            n = op.output(0).get_partial_shape()[-1].get_length()
            entry = products.setdefault((k, n), [0, 0.0, set()])
            entry[0] += 1 / rounds
            entry[1] += ms
            entry[2].add(node.exec_type)
    return products, {**rest, WALL: wall}


def minibert_profile(model: torch.nn.Module, inputs: dict[str, torch.Tensor], rounds: int) -> tuple[Products, dict]:
    """minibert's products by weight shape (from the input's width and the bias's), and the rest by operator."""
    with torch.inference_mode():
        for _ in range(2):  # the second call packs
            model(**inputs)
        start = time.perf_counter()
        for _ in range(rounds):
            model(**inputs)
        wall = (time.perf_counter() - start) * 1e3 / rounds
        with profile(record_shapes=True) as prof:
            for _ in range(rounds):
                model(**inputs)
    products: Products = {}
    rest: dict[str, float] = defaultdict(float)
    for event in prof.key_averages(group_by_input_shape=True):
        ms = event.self_cpu_time_total / 1e3 / rounds
        if event.key not in PRODUCTS:
            rest[event.key] += ms
            continue
        kernel, rows_at, bias_at = PRODUCTS[event.key]
        if not event.input_shapes[bias_at]:
            raise SystemExit(f"{event.key} without a bias: this profile reads each weight's width from its bias")
        k, n = event.input_shapes[rows_at][-1], event.input_shapes[bias_at][-1]
        entry = products.setdefault((k, n), [0, 0.0, set()])
        entry[0] += event.count / rounds
        entry[1] += ms
        entry[2].add(kernel)
    return products, {**rest, WALL: wall}


def report(shape: str, rows: int, openvino: tuple[Products, dict], ours: tuple[Products, dict]) -> list[str]:
    lines = [f"### bert-base, {shape}", ""]
    heading = "calls x µs (GFLOP/s), kernel"
    lines += [f"| weight (in -> out) | OpenVINO: {heading} | minibert: {heading} |", "|---|---|---|"]
    for k, n in sorted({*openvino[0], *ours[0]}):
        cells = []
        for products, _ in (openvino, ours):
            calls, ms, kernels = products.get((k, n), [0, 0.0, set()])
            us = ms * 1e3 / calls if calls else 0.0
            rate = 2 * rows * k * n / (us * 1e3) if us else 0.0
            cells.append(f"{calls:.0f} x {us:.0f} ({rate:.0f}), {', '.join(sorted(kernels))}" if calls else "-")
        lines.append(f"| {k} -> {n} | {cells[0]} | {cells[1]} |")
    walls = [rest.pop(WALL) for _, rest in (openvino, ours)]
    totals = [sum(ms for _, ms, _ in products.values()) for products, _ in (openvino, ours)]
    rests = [sum(rest.values()) for _, rest in (openvino, ours)]
    lines.append(f"| all products, ms per forward | {totals[0]:.1f} | {totals[1]:.1f} |")
    lines.append(f"| everything else, ms per forward | {rests[0]:.1f} | {rests[1]:.1f} |")
    lines.append(f"| whole forward (wall), ms | {walls[0]:.1f} | {walls[1]:.1f} |")
    for name, (_, rest) in (("OpenVINO", openvino), ("minibert", ours)):
        top = sorted(rest.items(), key=lambda item: -item[1])[:6]
        lines.append("")
        lines.append(f"{name}, the rest's largest: " + ", ".join(f"{op} {ms:.2f} ms" for op, ms in top))
    return [*lines, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--shapes", nargs="+", default=["1x16", "1x128"], metavar="BxL")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import openvino

    print(f"{cpu_name()} ({torch.backends.cpu.get_cpu_capability()}), {args.threads} thread(s), ")
    print(f"torch {torch.__version__}, openvino {openvino.__version__}\n")
    folder = bert_base_folder(default_checkpoint() / "vocab.txt")
    model = minibert.BertModel.from_pretrained(folder, add_pooling_layer=False)  # the export's: hidden states only
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "bert-base.onnx"
        export_onnx(folder, path)
        settings = {"INFERENCE_NUM_THREADS": args.threads, "INFERENCE_PRECISION_HINT": "f32", "PERF_COUNT": True}
        torch.manual_seed(0)
        for shape in args.shapes:
            batch, length = (int(n) for n in shape.split("x"))
            inputs = padded(torch.randint(1000, 30000, (batch, length)), torch.full((batch,), length))
            ours = minibert_profile(model, inputs, args.rounds)  # first: OpenVINO's threads slow PyTorch's
            # Compiled afresh for each shape: after a change of shape OpenVINO's node times no longer add up
            # to its forward's (seen: half of it).
            compiled = openvino.Core().compile_model(str(path), "CPU", settings)
            unprofiled = openvino.Core().compile_model(str(path), "CPU", {**settings, "PERF_COUNT": False})
            theirs = openvino_profile(compiled, unprofiled, inputs, args.rounds)
            del compiled, unprofiled
            gc.collect()
            print("\n".join(report(shape, batch * length, theirs, ours)), flush=True)


if __name__ == "__main__":
    main()
