"""Every architecture minibert loads, against its transformers twin, on one padded workload.

Each architecture gets a base-sized checkpoint with random weights (hidden 768, 12 heads, made
here with transformers, no download; 6 layers to keep the run short) and the same batch: 32
sequences of U(16, 128) tokens padded to the longest, the shape of an embedding or classification
batch. Both libraries run their default inference path (minibert's unpads the batch by itself).
Before timing, the outputs are compared at the real tokens; the two libraries then alternate,
round by round, and the table gives medians and the ratio minibert / transformers (lower is
faster). Results go to docs/architectures.md.

Run: .venv/bin/python scripts/bench_architectures.py [--quick] [--threads N] [--only bert,gte]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_encode import cpu_name

DOCS = Path(__file__).resolve().parents[1] / "docs"
BASE = {"hidden_size": 768, "num_attention_heads": 12, "intermediate_size": 3072, "num_hidden_layers": 6}

# model_type -> (transformers config class, fields on top of BASE); the vocabulary is kept at
# BERT's size everywhere: it changes the embedding lookup only, not the time of a forward.
ARCHITECTURES: dict[str, tuple[str, dict]] = {
    "bert": ("BertConfig", {}),
    "roberta": ("RobertaConfig", {}),
    "xlm-roberta": ("XLMRobertaConfig", {"vocab_size": 30522}),
    "albert": ("AlbertConfig", {"embedding_size": 128}),
    "distilbert": ("DistilBertConfig", {"dim": 768, "n_heads": 12, "hidden_dim": 3072, "n_layers": 6}),
    "electra": ("ElectraConfig", {"embedding_size": 768}),
    "mpnet": ("MPNetConfig", {}),
    "deberta-v2": (  # v3's layout: relative positions only, log buckets, shared keys
        "DebertaV2Config",
        {
            "relative_attention": True,
            "position_buckets": 256,
            "pos_att_type": ["p2c", "c2p"],
            "norm_rel_ebd": "layer_norm",
            "share_att_key": True,
            "max_relative_positions": -1,
            "position_biased_input": False,
        },
    ),
    "modernbert": ("ModernBertConfig", {"intermediate_size": 1152, "vocab_size": 30522, "pad_token_id": 0}),
    "nomic_bert": ("NomicBertConfig", {"vocab_size": 30522}),
    "gte": ("GteConfig", {"vocab_size": 30522}),
}


def make_inputs(vocab_size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """32 rows of U(16, 128) real tokens, padded on the right to the longest."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(16, 129, (32,), generator=generator)  # (B,)
    mask = (torch.arange(int(lengths.max())) < lengths[:, None]).long()  # (B, T)
    ids = torch.randint(5, min(vocab_size, 30000), mask.shape, generator=generator) * mask  # (B, T)
    return {"input_ids": ids, "attention_mask": mask}


def forward_seconds(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> float:
    with torch.inference_mode():
        start = time.perf_counter()
        model(**inputs)
        return time.perf_counter() - start


def real_token_difference(ours: torch.nn.Module, theirs: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> float:
    """Largest |minibert - transformers| of last_hidden_state over the real tokens."""
    with torch.inference_mode():
        a, b = ours(**inputs).last_hidden_state, theirs(**inputs).last_hidden_state  # (B, T, H)
    real = inputs["attention_mask"].bool()  # (B, T)
    return float((a[real] - b[real]).abs().max())


def measure(model_type: str, repeats: int) -> tuple[float, float, float, int, float]:
    """(minibert s, transformers s, max real-token difference, real tokens, median ratio) for one architecture."""
    import transformers

    import minibert

    config_class, fields = ARCHITECTURES[model_type]
    config = getattr(transformers, config_class)(**{**BASE, **fields})
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        transformers.AutoModel.from_config(config).save_pretrained(folder)
        ours = minibert.AutoModel.from_pretrained(folder)
        theirs = transformers.AutoModel.from_pretrained(folder).eval()
    inputs = make_inputs(config.vocab_size)
    difference = real_token_difference(ours, theirs, inputs)  # also the warm-up
    samples: dict[str, list[float]] = {"minibert": [], "transformers": []}
    for _ in range(repeats):
        samples["minibert"].append(forward_seconds(ours, inputs))
        samples["transformers"].append(forward_seconds(theirs, inputs))
    ratios = [a / b for a, b in zip(samples["minibert"], samples["transformers"], strict=True)]
    ours_s, theirs_s = (statistics.median(s) for s in samples.values())
    return ours_s, theirs_s, difference, int(inputs["attention_mask"].sum()), statistics.median(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds instead of 7")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--only", default="", help="comma-separated model types (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import transformers

    transformers.utils.logging.set_verbosity_error()
    chosen = [t for t in args.only.split(",") if t] or list(ARCHITECTURES)
    unknown = sorted(set(chosen) - set(ARCHITECTURES))
    if unknown:
        sys.exit(f"--only: unknown model types {unknown}; known: {', '.join(ARCHITECTURES)}")

    lines = [
        "# Every architecture against transformers",
        "",
        f"{cpu_name()} ({torch.backends.cpu.get_cpu_capability()}), {args.threads} threads, torch {torch.__version__}, "
        f"transformers {transformers.__version__}; `scripts/bench_architectures.py` on {time.strftime('%Y-%m-%d')}.",
        "Random base-sized weights (hidden 768, 12 heads, 6 layers); 32 sequences of U(16, 128) tokens padded "
        "to the longest; fp32, each library's default path. Medians of alternated rounds.",
        "",
        "| model_type | minibert (s) | transformers (s) | minibert / transformers | max diff at real tokens |",
        "|---|---|---|---|---|",
    ]
    for model_type in chosen:
        ours, theirs, difference, real, ratio = measure(model_type, 3 if args.quick else 7)
        lines.append(f"| {model_type} | {ours:.3f} | {theirs:.3f} | {ratio:.2f} | {difference:.1e} |")
        print(lines[-1], flush=True)
    lines.append("")
    lines.append(f"The ratio is the median of the per-round ratios; each batch holds {real} real tokens of 32 x 128.")
    DOCS.mkdir(exist_ok=True)
    (DOCS / "architectures.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
