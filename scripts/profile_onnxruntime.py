"""Where ONNX Runtime's forward pass spends its time, next to minibert's and transformers', on the same batch.

ONNX Runtime runs the export of transformers' model after its BERT graph optimiser (fused Attention,
SkipLayerNormalization, BiasGelu, EmbedLayerNormalization: the fastest float32 engine in
docs/engines.md), with its own profiler on (``SessionOptions.enable_profiling``): each node's kernel
time, summed by operator type. minibert and transformers run under ``torch.profiler`` as in
scripts/profile_forward.py. The operator types are put in the same groups (matrix products,
attention, LayerNorm, GELU, copies and reshapes, the rest), so the tables show which parts of the
forward pass ONNX Runtime does faster, and by how much. The workloads are profile_forward.py's:
all-MiniLM-L6-v2 on 32 real texts padded to the longest, and bert-base with random weights on a full
8 x 128 batch. The text goes to stdout.

Run: .venv/bin/python scripts/profile_onnxruntime.py [--threads N] [--rounds R]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_encode import corpus, cpu_name
from bench_engines import INPUTS, bert_base_folder, export_onnx, optimize
from profile_forward import GROUPS, profile_groups, table

ORT_GROUPS = {  # ONNX Runtime operator type -> group of profile_forward.GROUPS
    **dict.fromkeys(("MatMul", "Gemm", "FusedMatMul", "MatMulNBits"), "matrix products"),
    **dict.fromkeys(("Attention", "MultiHeadAttention", "Softmax"), "attention"),
    **dict.fromkeys(
        ("LayerNormalization", "SkipLayerNormalization", "EmbedLayerNormalization", "SimplifiedLayerNormalization"),
        "LayerNorm",
    ),
    **dict.fromkeys(("Gelu", "BiasGelu", "FastGelu"), "GELU"),
    **dict.fromkeys(
        (
            "Reshape",
            "Transpose",
            "Concat",
            "Gather",
            "Unsqueeze",
            "Squeeze",
            "Slice",
            "Cast",
            "Shape",
            "Expand",
            "Where",
        ),
        "copies and reshapes",
    ),
}
assert set(ORT_GROUPS.values()) <= set(GROUPS), "the groups must be profile_forward's"
ORT = "ONNX Runtime (optimised)"


def onnx_model(folder: Path, scratch: Path) -> Path:
    """transformers' model from ``folder``, exported and optimised as scripts/bench_engines.py does."""
    import transformers
    from onnxruntime.transformers.optimizer import optimize_model

    raw, optimised = scratch / f"{folder.name}.onnx", scratch / f"{folder.name}-optimised.onnx"
    notes: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        export_onnx(folder, raw)
        optimize(optimize_model, raw, optimised, transformers.AutoConfig.from_pretrained(folder), notes)
        logging.disable(logging.NOTSET)
    print("\n".join(notes))
    return optimised


def profile_ort(
    path: Path, inputs: dict[str, torch.Tensor], rounds: int, threads: int
) -> tuple[dict[str, float], float]:
    """Milliseconds of kernel time per forward by operator type, and of a whole run (the warm-up left out)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.enable_profiling = True
    options.profile_file_prefix = str(path.parent / "ort_profile")
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {i.name: inputs[i.name].numpy().astype(np.int64) for i in session.get_inputs()}
    for _ in range(1 + rounds):  # the first is the warm-up
        session.run(None, feed)
    events = json.loads(Path(session.end_profiling()).read_text())
    runs = sorted(
        (e["ts"], e["ts"] + e["dur"]) for e in events if e.get("cat") == "Session" and e["name"] == "model_run"
    )
    assert len(runs) == 1 + rounds, f"{len(runs)} model_run events for {1 + rounds} runs"
    timed = runs[1:]
    totals: dict[str, float] = defaultdict(float)
    for event in events:
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
            continue  # the fences around each kernel, and session events
        if any(start <= event["ts"] <= end for start, end in timed):
            totals[event["args"]["op_name"]] += event["dur"] / 1000 / rounds
    return dict(totals), sum(end - start for start, end in timed) / 1000 / rounds


def by_group(op_types: dict[str, float]) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for op, ms in op_types.items():
        totals[ORT_GROUPS.get(op, "the rest")] += ms
    return dict(totals)


def top_ops(op_types: dict[str, float], count: int = 10) -> list[str]:
    total = sum(op_types.values())
    lines = ["| ONNX Runtime operator | group | ms | share |", "|---|---|---|---|"]
    for op, ms in sorted(op_types.items(), key=lambda item: -item[1])[:count]:
        lines.append(f"| {op} | {ORT_GROUPS.get(op, 'the rest')} | {ms:.1f} | {ms / total:.0%} |")
    return [*lines, ""]


def workload(
    title: str, folder: Path, inputs: dict[str, torch.Tensor], rounds: int, threads: int, scratch: Path
) -> None:
    import transformers

    import minibert

    models = {
        "minibert": minibert.BertModel.from_pretrained(folder),
        "transformers": transformers.BertModel.from_pretrained(folder).eval(),
    }
    results = {name: profile_groups(model, inputs, rounds) for name, model in models.items()}
    del models
    op_types, run_ms = profile_ort(onnx_model(folder, scratch), inputs, rounds, threads)
    results[ORT] = by_group(op_types)
    print("\n".join(table(title, results)))
    print(f"ONNX Runtime's whole run (its model_run events): {run_ms:.1f} ms per forward.")
    print()
    print("\n".join(top_ops(op_types)), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import onnxruntime
    import transformers

    import minibert
    from minibert.cli import default_checkpoint

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    isa = torch.backends.cpu.get_cpu_capability()
    versions = f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}"
    print(f"{cpu_name()} ({isa}), {args.threads} thread(s), {versions}")
    print()
    folder = default_checkpoint()
    tokenizer = minibert.AutoTokenizer.from_pretrained(str(folder))
    texts, _ = corpus(32, 0)
    batch = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    inputs = {name: batch[name] for name in INPUTS}
    real = int(inputs["attention_mask"].sum())
    with tempfile.TemporaryDirectory() as scratch:
        title = f"all-MiniLM-L6-v2, 32 real texts padded to {inputs['input_ids'].shape[1]} ({real} real tokens)"
        workload(title, folder, inputs, args.rounds, args.threads, Path(scratch))
        torch.manual_seed(0)
        ids = torch.randint(1000, 30000, (8, 128))
        inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}
        base = bert_base_folder(folder / "vocab.txt")
        workload("bert-base, full batch 8 x 128", base, inputs, max(1, args.rounds // 2), args.threads, Path(scratch))
    print("ONNX Runtime's fused operators do more than their group's name says: EmbedLayerNormalization")
    print("(LayerNorm) also does the embedding lookups and sum, and the mask index; Attention also does the")
    print("query, key and value projections (a quarter of the weights' FLOPs); SkipLayerNormalization also")
    print("adds the residual and the previous product's bias; BiasGelu adds the bias of the product before it.")


if __name__ == "__main__":
    main()
