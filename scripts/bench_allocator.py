"""What minibert.allocator's process settings buy: forwards with and without one, each in processes of its own.

``--setting memory-reuse`` (the default): keeping freed memory, on as minibert sets it at a model's
first call, off with ``minibert.set_memory_reuse(False)`` before that call. ``--setting huge-pages``:
large tensors in huge pages, on as importing minibert asks, off with ``THP_MEM_ALLOC_ENABLE=0`` in
the environment. Each setting is the whole process's and cannot be undone in it (glibc's own raising
of its mmap threshold, PyTorch's reading of its switch), so each measurement runs in a fresh Python
process, on and off alternating round by round. Each process times a workload's calls after two
warm-up calls and reports the median, the minor page faults per call (fresh pages the kernel had to
zero) and the process's resident memory at the end (each figure: on / off).

Workloads: bert-base (``BertConfig()``, random weights) on 8 x 128 tokens, on 32 texts of 16-128
tokens padded to the longest, and on 1 x 16; all-MiniLM-L6-v2 ``SentenceEncoder.encode`` of 1,000
real texts, batch 32.

Run: .venv/bin/python scripts/bench_allocator.py [--setting huge-pages] [--threads 1] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_encode import cpu_name, embedding_texts, padded

import minibert
from minibert.allocator import HUGE_PAGES_SWITCH, huge_pages
from minibert.cli import default_checkpoint

SETTINGS = ("memory-reuse", "huge-pages")

WORKLOADS = ("bert-base 8x128", "bert-base 32 x 16-128 padded", "bert-base 1x16", "MiniLM encode 1000 texts")
CALLS = {"bert-base 8x128": 5, "bert-base 32 x 16-128 padded": 5, "bert-base 1x16": 30, "MiniLM encode 1000 texts": 3}


def workload(name: str) -> Callable[[], object]:
    """One call of the workload ``name``, its model made and its inputs ready."""
    if name.startswith("MiniLM"):
        encoder = minibert.SentenceEncoder(default_checkpoint(), device="cpu")
        texts = embedding_texts(1000, encoder.tokenizer)
        return lambda: encoder.encode(texts, batch_size=32)
    torch.manual_seed(0)
    model = minibert.BertModel(minibert.BertConfig()).eval()
    generator = torch.Generator().manual_seed(0)
    if name.endswith("8x128"):
        ids, lengths = torch.randint(1000, 30000, (8, 128), generator=generator), torch.full((8,), 128)
    elif name.endswith("1x16"):
        ids, lengths = torch.randint(1000, 30000, (1, 16), generator=generator), torch.full((1,), 16)
    else:
        lengths = torch.randint(16, 129, (32,), generator=generator)
        ids = torch.randint(1000, 30000, (32, int(lengths.max())), generator=generator)
    inputs = padded(ids, lengths)

    def forward() -> None:
        with torch.inference_mode():
            model(**inputs)

    return forward


def child(name: str, setting: str, on: bool, threads: int) -> None:
    """Time ``name`` in this process and print its figures as JSON."""
    torch.set_num_threads(threads)
    if setting == "memory-reuse" and not on:
        minibert.set_memory_reuse(False)
    if setting == "huge-pages" and huge_pages() != on:
        raise SystemExit(f"huge pages are {'off' if on else 'on'} in a process meant to have them {on}")
    run = workload(name)
    run()
    run()
    seconds: list[float] = []
    faults: list[int] = []
    for _ in range(CALLS[name]):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    rss = int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize()
    print(json.dumps({"seconds": statistics.median(seconds), "faults": statistics.median(faults), "rss": rss}))


def measure(name: str, setting: str, on: bool, threads: int) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", name, "--setting", setting, "--threads", str(threads)]
    environment = dict(os.environ)  # memory-reuse: the huge pages as the caller's environment has them
    if setting == "huge-pages":
        environment[HUGE_PAGES_SWITCH] = "1" if on else "0"
    done = subprocess.run(
        [*command, *([] if on else ["--off"])], capture_output=True, text=True, check=True, env=environment
    )
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setting", choices=SETTINGS, default="memory-reuse")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workloads", nargs="+", choices=WORKLOADS, default=list(WORKLOADS))
    parser.add_argument("--child", choices=WORKLOADS, help=argparse.SUPPRESS)
    parser.add_argument("--off", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.setting, not args.off, args.threads)
        return
    capability = torch.backends.cpu.get_cpu_capability()
    print(f"{cpu_name()} ({capability}), torch {torch.__version__}, {args.threads} thread(s)")
    print(f"{args.setting}: median of {args.rounds} rounds, on and off alternating, each in a fresh process\n")
    print("| workload | on (default) | off | ratio | page faults per call | RSS MiB |")
    print("|---|---|---|---|---|---|")
    for name in args.workloads:
        runs: dict[bool, list[dict[str, float]]] = {True: [], False: []}
        for turn in range(args.rounds):
            for on in (True, False) if turn % 2 == 0 else (False, True):
                runs[on].append(measure(name, args.setting, on, args.threads))
        ratio = statistics.median(a["seconds"] / b["seconds"] for a, b in zip(runs[True], runs[False], strict=True))
        ms = [statistics.median(run["seconds"] for run in runs[on]) * 1e3 for on in (True, False)]
        faults = [statistics.median(run["faults"] for run in runs[on]) for on in (True, False)]
        rss = [statistics.median(run["rss"] for run in runs[on]) / 2**20 for on in (True, False)]
        print(
            f"| {name} | {ms[0]:.1f} ms | {ms[1]:.1f} ms | {ratio:.2f} | {faults[0]:.0f} / {faults[1]:.0f} "
            f"| {rss[0]:.0f} / {rss[1]:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
