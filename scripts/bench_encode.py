"""Sentence-embedding throughput: minibert's SentenceEncoder against sentence-transformers on the same texts.

    .venv/bin/python scripts/bench_encode.py [--texts 2000] [--repeats 3] [--batch-size 32] [--threads N]

The texts are paragraphs of real prose of mixed lengths, found on this machine: the licences, READMEs
and docs of Python and its installed packages, and of the system (/usr/share/doc). Both libraries
load the same folder (all-MiniLM-L6-v2 by default), run with the same thread count, and are first
checked to give the same vectors (within 1e-5). Each measurement alternates the two, so drift on a
shared machine hits both alike; the report gives medians of wall time and of CPU time (the process's,
steadier when other work shares the cores) and the ratio minibert / sentence-transformers.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import statistics
import sys
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from sentence_transformers import SentenceTransformer

from minibert.cli import default_checkpoint
from minibert.encoders import SentenceEncoder

SOURCES = [Path(sys.prefix) / "lib", Path(sysconfig.get_paths()["stdlib"]), Path("/usr/share/doc")]
SOURCES += [Path("/usr/share/common-licenses")]
PATTERNS = ("*.txt", "*.md", "*.rst", "LICENSE*", "copyright")


TOKENS = (5, 128)  # the embedding texts' token counts, special tokens included


def corpus(count: int, seed: int) -> tuple[list[str], int]:
    """``count`` distinct paragraphs (mostly letters, 3 words or more) drawn from the text files found."""
    files = sorted({path for root in SOURCES if root.is_dir() for p in PATTERNS for path in root.rglob(p)})
    paragraphs: dict[str, None] = {}  # insertion-ordered and distinct
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        for block in re.split(r"\n\s*\n", text):
            paragraph = " ".join(block.split())
            if len(paragraph.split()) >= 3 and sum(c.isalpha() for c in paragraph) > 0.6 * len(paragraph):
                paragraphs[paragraph] = None
    if len(paragraphs) < count:
        sys.exit(f"only {len(paragraphs)} paragraphs found in {', '.join(map(str, SOURCES))}; ask for fewer --texts")
    return random.Random(seed).sample(list(paragraphs), count), len(files)


def embedding_texts(count: int, tokenizer: Any) -> list[str]:
    """``count`` real paragraphs of 5 to 128 tokens (special tokens included), in a fixed random order."""
    texts, _ = corpus(4 * count, seed=0)
    lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]
    chosen = [text for text, n in zip(texts, lengths, strict=True) if TOKENS[0] <= n <= TOKENS[1]][:count]
    if len(chosen) < count:
        sys.exit(f"only {len(chosen)} texts of {TOKENS[0]}-{TOKENS[1]} tokens found; ask for fewer --texts")
    return chosen


def padded(ids: torch.Tensor, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
    """``ids`` (B, T) with everything past each row's length padding."""
    mask = (torch.arange(ids.shape[1]) < lengths[:, None]).long()  # (B, T)
    return {"input_ids": ids * mask, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}


def cpu_name() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown")


def timed(run: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one run."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(default_checkpoint()), help="a sentence-transformers folder")
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    texts, files = corpus(args.texts, args.seed)
    ours = SentenceEncoder(args.checkpoint, device="cpu")
    theirs = SentenceTransformer(args.checkpoint, device="cpu")
    runs = {
        "minibert": lambda: ours.encode(texts, batch_size=args.batch_size),
        "sentence-transformers": lambda: theirs.encode(texts, batch_size=args.batch_size),
    }
    difference = abs(runs["minibert"]() - runs["sentence-transformers"]()).max()  # also warms both up
    if difference > 1e-5:
        sys.exit(f"the embeddings differ by {difference:.2e}: not timing different computations")

    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            samples[name].append(timed(run))
    wall = {name: statistics.median(s[0] for s in runs_) for name, runs_ in samples.items()}
    cpu = {name: statistics.median(s[1] for s in runs_) for name, runs_ in samples.items()}

    tokens = [len(ids) for ids in ours.tokenizer(texts, truncation=True, max_length=ours.max_seq_length)["input_ids"]]
    print(f"cpu          {cpu_name()} ({torch.backends.cpu.get_cpu_capability()}), {args.threads} threads")
    print(f"torch        {torch.__version__}; checkpoint {args.checkpoint}")
    print(
        f"texts        {len(texts)} paragraphs from {files} files, {sum(tokens)} tokens "
        f"(median {statistics.median(tokens)}, longest {max(tokens)} after truncation to {ours.max_seq_length}); "
        f"batch size {args.batch_size}"
    )
    print(f"check        max |minibert - sentence-transformers| = {difference:.2e}")
    print(f"runs         {args.repeats} of each, alternated; medians")
    for name in runs:
        print(
            f"  {name:<22} wall {wall[name]:7.2f} s   cpu {cpu[name]:7.2f} s   {len(texts) / wall[name]:7.1f} texts/s"
        )
    ratio, cpu_ratio = wall["minibert"] / wall["sentence-transformers"], cpu["minibert"] / cpu["sentence-transformers"]
    print(f"ratio        minibert / sentence-transformers: {ratio:.2f}x wall time, {cpu_ratio:.2f}x CPU time")


if __name__ == "__main__":
    main()
