"""int8 against float32, and against torch.ao's dynamic int8: speed and, next to it, what it costs in accuracy.

    .venv/bin/python scripts/bench_int8.py [--texts 500] [--rounds 5] [--threads 1] [--no-bert-base]

Speed, in alternated rounds (each round runs every variant once, so drift on a shared machine hits
all alike), as medians and as medians of the paired ratios to float32 and to torch.ao:
  * single layers, MiniLM-sized (384 -> 384, 384 -> 1536, 1536 -> 384) and bert-base-sized
    (768 -> 768, 768 -> 3072, 3072 -> 768), on 32 x 64 and 8 x 128 rows: ``nn.Linear``,
    ``torch.ao.quantization.quantize_dynamic`` and ``minibert.quantization.Int8Linear``, each with its
    relative error against float64;
  * whole models: the real all-MiniLM-L6-v2 on batches of 32 real texts, and a bert-base-sized model
    (random weights) on 32 sequences of U(16, 128) tokens padded to the longest.
Accuracy, on the real all-MiniLM-L6-v2 (``SentenceEncoder``) over ``--texts`` real paragraphs
(``corpus()`` of scripts/bench_encode.py): mean and minimum cosine of each variant's sentence embeddings
to float32's, and retrieval: for queries made of the first half of 50 of the texts, the overlap of
the top-10 documents (among all the texts) with float32's top 10, and how often the source is first.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import minibert
from minibert.cli import default_checkpoint
from minibert.encoders import SentenceEncoder
from minibert.quantization import Int8Linear, quantize

sys.path.insert(0, str(Path(__file__).parent))
from bench_encode import corpus, cpu_name

warnings.filterwarnings("ignore", message=".*deprecated.*")  # torch.ao's, at every call
LAYERS = [(384, 384), (384, 1536), (1536, 384), (768, 768), (768, 3072), (3072, 768)]
ROWS = {"32x64": 32 * 64, "8x128": 8 * 128}
# Layers kept in float32 by the accuracy variants (patterns of quantize's skip).
BLOCKS = "encoder.layer.*"
VARIANTS = {
    "int8 (minibert)": (),
    "  ... FFN output in fp32": (f"{BLOCKS}.output.dense",),
    "  ... FFN input in fp32": (f"{BLOCKS}.intermediate.dense",),
    "  ... query, key in fp32": (f"{BLOCKS}.attention.self.query", f"{BLOCKS}.attention.self.key"),
    "  ... attention in fp32": tuple(
        f"{BLOCKS}.attention.{name}" for name in ("self.query", "self.key", "self.value", "output.dense")
    ),
}


def torch_ao(model: nn.Module, per_channel: bool = False) -> nn.Module:
    """``quantize_dynamic`` on a copy: per-tensor weights by default, per-channel ones if asked."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    spec = {nn.Linear: per_channel_dynamic_qconfig} if per_channel else {nn.Linear}
    return quantize_dynamic(copy.deepcopy(model), spec, dtype=torch.qint8)


def alternate(runs: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Seconds of each run, ``rounds`` times, the runs alternated within each round (after one warm-up each)."""
    for run in runs.values():
        run()
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)
    return seconds


def ratio(seconds: dict[str, list[float]], name: str, base: str) -> float:
    """The median of the paired (same-round) ratios ``name / base``."""
    return statistics.median(a / b for a, b in zip(seconds[name], seconds[base], strict=True))


def print_speeds(title: str, seconds: dict[str, list[float]]) -> None:
    print(f"\n{title}")
    for name, times in seconds.items():
        versus = f"{ratio(seconds, name, 'fp32'):5.2f}x fp32  {ratio(seconds, name, 'torch.ao int8'):5.2f}x torch.ao"
        print(f"  {name:<16} {statistics.median(times) * 1e3:9.1f} ms  {versus}")


def bench_layers(rounds: int) -> None:
    print("\nsingle layers: median time, paired ratios, max |error| / max |y| against float64")
    for rows_name, rows in ROWS.items():
        for k, n in LAYERS:
            torch.manual_seed(0)
            linear = nn.Linear(k, n).eval()
            x = torch.randn(rows, k)
            exact = F.linear(x.double(), linear.weight.double(), linear.bias.double())  # (M, N)
            layers = {"fp32": linear, "torch.ao int8": torch_ao(nn.Sequential(linear)), "int8": Int8Linear(linear)}
            with torch.inference_mode():
                errors = {name: (layer(x) - exact).abs().max() / exact.abs().max() for name, layer in layers.items()}
                seconds = alternate({name: lambda layer=layer, x=x: layer(x) for name, layer in layers.items()}, rounds)
            line = "  ".join(
                f"{name} {statistics.median(seconds[name]) * 1e3:6.2f} ms ({ratio(seconds, name, 'fp32'):4.2f}x, "
                f"err {errors[name]:.1e})"
                for name in layers
            )
            versus = ratio(seconds, "int8", "torch.ao int8")
            print(f"  {rows_name:>6} {k:>4} -> {n:<4}  {line}   int8/torch.ao {versus:4.2f}x")


def model_variants(model: nn.Module) -> dict[str, nn.Module]:
    return {"fp32": model, "torch.ao int8": torch_ao(model), "int8": quantize(copy.deepcopy(model))}


def bench_models(encoder: SentenceEncoder, texts: list[str], rounds: int, bert_base: bool) -> None:
    batches = [
        encoder.tokenizer(texts[i : i + 32], padding=True, truncation=True, max_length=128, return_tensors="pt")
        for i in range(0, 128, 32)
    ]
    models = model_variants(encoder.model)
    with torch.inference_mode():

        def minilm(model: nn.Module) -> None:
            for batch in batches:
                model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])

        seconds = alternate({name: lambda m=m: minilm(m) for name, m in models.items()}, rounds)
    tokens = sum(int(b["attention_mask"].sum()) for b in batches)
    padded = sum(b["attention_mask"].numel() for b in batches)
    title = f"all-MiniLM-L6-v2, 4 batches of 32 real texts ({tokens} tokens, {tokens / padded:.0%} of padded positions)"
    print_speeds(title, seconds)
    if not bert_base:
        return
    torch.manual_seed(0)
    model = minibert.BertModel(minibert.BertConfig()).eval()
    lengths = torch.randint(16, 129, (32,))
    mask = (torch.arange(int(lengths.max())) < lengths[:, None]).long()  # (32, T)
    ids = torch.randint(1000, 30000, mask.shape) * mask
    models = model_variants(model)
    with torch.inference_mode():
        seconds = alternate(
            {name: lambda m=m: m(input_ids=ids, attention_mask=mask) for name, m in models.items()}, max(3, rounds // 2)
        )
    print_speeds(f"bert-base (random weights), 32 x U(16, 128) padded to {mask.shape[1]}", seconds)


def top10(queries: torch.Tensor, documents: torch.Tensor) -> torch.Tensor:
    return (F.normalize(queries, dim=-1) @ F.normalize(documents, dim=-1).T).topk(10, dim=-1).indices  # (Q, 10)


def bench_accuracy(encoder: SentenceEncoder, texts: list[str]) -> None:
    queries = [" ".join(text.split()[: max(3, len(text.split()) // 2)]) for text in texts[:50]]
    fp32 = encoder.model

    def embed(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        encoder.model = model
        out = (
            encoder.encode(texts, batch_size=32, convert_to_tensor=True),
            encoder.encode(queries, convert_to_tensor=True),
        )
        encoder.model = fp32
        return out

    reference, reference_queries = embed(fp32)
    best = top10(reference_queries, reference)
    variants = {name: quantize(copy.deepcopy(fp32), skip=skip) for name, skip in VARIANTS.items()}
    variants |= {"torch.ao int8": torch_ao(fp32), "torch.ao per-channel": torch_ao(fp32, per_channel=True)}
    print(f"\naccuracy: all-MiniLM-L6-v2 sentence embeddings of {len(texts)} texts against float32's")
    print(f"  {'':<28} {'mean cos':>9} {'min cos':>9} {'top-10 overlap':>15} {'source first':>13}")
    print(f"  {'fp32':<28} {1:9.5f} {1:9.5f} {1:15.3f} {(best[:, 0] == torch.arange(50)).float().mean():13.2f}")
    for name, model in variants.items():
        documents, found = embed(model)
        cosine = F.cosine_similarity(documents, reference)
        ranked = top10(found, documents)
        overlap = statistics.mean(
            len(set(a.tolist()) & set(b.tolist())) / 10 for a, b in zip(ranked, best, strict=True)
        )
        first = (ranked[:, 0] == torch.arange(50)).float().mean()
        print(f"  {name:<28} {cosine.mean():9.5f} {cosine.min():9.5f} {overlap:15.3f} {first:13.2f}")


def isa() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    flags = next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), [])
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
    return " ".join(flag for flag in wanted if flag in flags) or "none of AVX2, AVX-512, VNNI, AMX"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(default_checkpoint()), help="a sentence-transformers folder")
    parser.add_argument("--texts", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-bert-base", dest="bert_base", action="store_false", help="skip the bert-base model")
    parser.add_argument("--no-layers", dest="layers", action="store_false", help="skip the single-layer timings")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"cpu       {cpu_name()}; ISA {isa()} (torch dispatch: {torch.backends.cpu.get_cpu_capability()})")
    print(f"torch     {torch.__version__}, {args.threads} thread(s); rounds {args.rounds}, alternated; medians")
    texts, _ = corpus(args.texts, args.seed)
    encoder = SentenceEncoder(args.checkpoint, device="cpu")
    if args.layers:
        bench_layers(args.rounds)
    bench_models(encoder, texts, args.rounds, args.bert_base)
    bench_accuracy(encoder, texts)


if __name__ == "__main__":
    main()
