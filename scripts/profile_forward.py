"""Where a forward pass spends its time: minibert and transformers, operator by operator, on the same batch.

Both run under ``torch.profiler`` (CPU operators, self time) on two workloads: all-MiniLM-L6-v2 on 32
real texts of mixed lengths padded to the longest (the embedding batch), and a bert-base-sized model
with random weights on a full 8 x 128 batch. Operators are grouped (matrix products, attention,
LayerNorm, GELU, copies and reshapes, the rest) and the table gives each group's milliseconds per
forward and its share. The text goes to stdout, for docs/performance.md.

Run: .venv/bin/python scripts/profile_forward.py [--threads N] [--rounds R]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_encode import corpus, cpu_name

GROUPS = {  # operator name -> group; the first group whose words appear in the name wins
    "matrix products": ("addmm", "aten::mm", "bmm", "linear", "matmul", "baddbmm"),
    "attention": ("scaled_dot_product", "_flash_attention", "softmax"),
    "LayerNorm": ("layer_norm",),
    "GELU": ("gelu",),
    "copies and reshapes": (
        "copy_",
        "index",
        "new_zeros",
        "zeros",
        "cat",
        "contiguous",
        "clone",
        "empty",
        "masked_fill",
        "nonzero",
    ),
}


def group_of(name: str) -> str:
    return next((group for group, words in GROUPS.items() if any(w in name for w in words)), "the rest")


def profile_groups(model: torch.nn.Module, inputs: dict[str, torch.Tensor], rounds: int) -> dict[str, float]:
    """Milliseconds of self CPU time per forward, by group (outermost operators only: no double counting)."""
    with torch.inference_mode():
        for _ in range(2):  # warm-up: PackedLinear packs its weight on a layer's second call
            model(**inputs)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(rounds):
                model(**inputs)
    totals: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        if event.key.startswith(("aten::", "mkl::", "mkldnn::")) or "attention" in event.key:
            totals[group_of(event.key)] += event.self_cpu_time_total / 1000 / rounds
    return dict(totals)


def table(title: str, results: dict[str, dict[str, float]]) -> list[str]:
    names = list(results)
    lines = [f"### {title}", "", "| group | " + " | ".join(f"{n} (ms, share)" for n in names) + " |"]
    lines.append("|---|" + "---|" * len(names))
    for group in [*GROUPS, "the rest"]:
        cells = []
        for name in names:
            total = sum(results[name].values())
            value = results[name].get(group, 0.0)
            cells.append(f"{value:.1f} ({value / total:.0%})")
        lines.append(f"| {group} | " + " | ".join(cells) + " |")
    lines.append("| total | " + " | ".join(f"{sum(r.values()):.1f}" for r in results.values()) + " |")
    return [*lines, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import transformers

    import minibert
    from minibert.cli import default_checkpoint

    transformers.utils.logging.set_verbosity_error()
    isa = torch.backends.cpu.get_cpu_capability()
    print(f"{cpu_name()} ({isa}), {args.threads} thread(s), torch {torch.__version__}")
    print()
    folder = str(default_checkpoint())
    tokenizer = minibert.AutoTokenizer.from_pretrained(folder)
    texts, _ = corpus(32, 0)
    batch = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    inputs = {name: batch[name] for name in ("input_ids", "attention_mask", "token_type_ids")}
    real = int(inputs["attention_mask"].sum())
    models = {
        "minibert": minibert.BertModel.from_pretrained(folder),
        "transformers": transformers.BertModel.from_pretrained(folder).eval(),
    }
    results = {name: profile_groups(model, inputs, args.rounds) for name, model in models.items()}
    title = f"all-MiniLM-L6-v2, 32 real texts padded to {inputs['input_ids'].shape[1]} ({real} real tokens)"
    print("\n".join(table(title, results)))

    with tempfile.TemporaryDirectory() as path:
        torch.manual_seed(0)
        transformers.BertModel(transformers.BertConfig()).save_pretrained(path)
        models = {
            "minibert": minibert.BertModel.from_pretrained(path),
            "transformers": transformers.BertModel.from_pretrained(path).eval(),
        }
    inputs = {"input_ids": torch.randint(1000, 30000, (8, 128)), "attention_mask": torch.ones(8, 128, dtype=torch.long)}
    results = {name: profile_groups(model, inputs, max(1, args.rounds // 2)) for name, model in models.items()}
    print("\n".join(table("bert-base, full batch 8 x 128", results)))


if __name__ == "__main__":
    main()
