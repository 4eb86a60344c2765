"""What ``torch.compile`` buys minibert on the CPU: its warm-up, its steady speed against eager, its disk cache.

minibert's default inference path is eager and "unpads" padded batches (it runs the real tokens
only, with data-dependent shapes) and multiplies with packed MKL/oneDNN weights; under
``torch.compile`` it keeps the padded layout and plain ``F.linear``, and inductor generates and
compiles C++ for the whole forward. Whether that is worth offering as an opt-in depends on three
figures measured here, at one thread under ``torch.inference_mode()``:

- warm-up: the first call's time (trace and compile), and the first calls at new shapes
  (``dynamic=None``: the second shape recompiles with dynamic sizes, later ones should not),
  each variant in a fresh process with an empty ``TORCHINDUCTOR_CACHE_DIR`` (in one process,
  dynamo's dynamic-shape decisions and inductor's caches would carry from one compile to the next);
- steady state: all-MiniLM-L6-v2 on 8 batches of 32 real texts (``bench_encode.corpus``), sorted
  by length and cut into batches as ``SentenceEncoder.encode`` does, each padded to its longest
  (max_length 128), plus one unsorted batch; and bert-base (random weights) on 8 x 128 and 1 x 16.
  Eager (the default), eager padded (``set_unpadding(False)``, the layout compile runs), compiled,
  and compiled with inductor's ``freezing`` (weights folded in as constants and prepacked), in
  alternating rounds, medians; outputs checked against eager at real tokens;
- the cache: the same warm-up in a second fresh process sharing the first one's cache directory,
  to see what inductor's FX graph cache and AOTAutograd cache save it.

Run: .venv/bin/python scripts/bench_compile.py [--rounds R] [--batches B] [--no-freezing]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
if "--warmup-only" not in sys.argv:  # the main process compiles cold; a warm-up child inherits its parent's dir
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench_compile_cold_")

import torch
import torch._dynamo.utils

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_encode import corpus, cpu_name

import minibert
from minibert.cli import default_checkpoint

Inputs = dict[str, torch.Tensor]
KEYS = ("input_ids", "attention_mask", "token_type_ids")


def minilm_batches(folder: str, count: int, size: int) -> tuple[list[Inputs], Inputs]:
    """``count`` length-sorted batches of ``size`` real texts (distinct padded lengths), and one unsorted batch."""
    tokenizer = minibert.AutoTokenizer.from_pretrained(folder)
    texts, _ = corpus(count * size * 2, 0)
    lengths = tokenizer(texts, truncation=True, max_length=128)["input_ids"]
    ordered = [text for _, text in sorted(zip(map(len, lengths), texts, strict=True))]
    chunks = [ordered[i : i + size] for i in range(0, len(ordered), size)]
    picks = [chunks[round(i * (len(chunks) - 1) / (count - 1))] for i in range(count)] if count > 1 else chunks[-1:]

    def encode(chunk: list[str]) -> Inputs:
        batch = tokenizer(chunk, padding=True, truncation=True, max_length=128, return_tensors="pt")
        return {key: batch[key] for key in KEYS}

    return [encode(chunk) for chunk in picks], encode(texts[:size])


def describe(inputs: Inputs) -> str:
    rows, columns = inputs["input_ids"].shape
    real = int(inputs["attention_mask"].sum())
    return f"{rows} x {columns:<3} ({real / (rows * columns):4.0%} real)"


def graphs() -> int:
    """Graphs dynamo has compiled so far in this process (a new one at a new shape is a recompile)."""
    return int(torch._dynamo.utils.counters["stats"]["unique_graphs"])


def seconds(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def compiled(model: torch.nn.Module, freezing: bool) -> Callable[..., object]:
    """``torch.compile(model)``, the default recipe; ``freezing`` adds inductor's CPU-inference option."""
    return torch.compile(model, options={"freezing": True} if freezing else None)


def first_calls(run: Callable[..., object], batches: list[Inputs]) -> list[tuple[float, int]]:
    """Seconds of the first call at each shape, and graphs compiled by it."""
    results = []
    for inputs in batches:
        before = graphs()
        results.append((seconds(lambda inputs=inputs: run(**inputs)), graphs() - before))
    return results


def steady(runs: dict[str, Callable[..., object]], batches: list[Inputs], rounds: int) -> dict[str, list[float]]:
    """Median seconds per batch, for each run; runs alternate within each round so drift hits all alike."""
    samples: dict[str, list[list[float]]] = {name: [[] for _ in batches] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            for i, inputs in enumerate(batches):
                samples[name][i].append(seconds(lambda run=run, inputs=inputs: run(**inputs)))
    return {name: [statistics.median(s) for s in per_batch] for name, per_batch in samples.items()}


def largest_difference(run: Callable[..., object], eager: torch.nn.Module, batches: list[Inputs]) -> float:
    """Max |run - eager| of last_hidden_state over real tokens, across the batches."""
    worst = 0.0
    for inputs in batches:
        real = inputs["attention_mask"].bool()
        ours, reference = run(**inputs).last_hidden_state, eager(**inputs).last_hidden_state
        worst = max(worst, float((ours[real] - reference[real]).abs().max()))
    return worst


def warmup_only(folder: str, freezing: bool, count: int) -> None:
    """The child process: load, compile, time the first call at each shape; print JSON."""
    batches, unsorted = minilm_batches(folder, count, 32)
    model = minibert.BertModel.from_pretrained(folder)
    run = compiled(model, freezing)
    with torch.inference_mode():
        first = first_calls(run, [*batches, unsorted])
    counters = torch._dynamo.utils.counters
    cache = {key: int(value) for group in ("inductor", "aot_autograd") for key, value in counters[group].items()}
    print(json.dumps({"first": first, "cache": {key: n for key, n in sorted(cache.items()) if "cache" in key}}))


def warmups(folder: str, freezing: bool, count: int) -> list[dict]:
    """The warm-up in two fresh processes sharing one new cache directory: cold, then from the disk cache."""
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_compile_cache_") as cache:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
        command = [sys.executable, __file__, "--warmup-only", "--checkpoint", folder, "--batches", str(count)]
        command += [] if freezing else ["--no-freezing"]
        for _ in range(2):
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(default_checkpoint()), help="the MiniLM (BERT) folder")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=8, help="MiniLM batches of distinct lengths")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-freezing", dest="freezing", action="store_false", help="skip the freezing variant")
    parser.add_argument("--warmup-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.warmup_only:
        warmup_only(args.checkpoint, args.freezing, args.batches)
        return

    import transformers

    transformers.utils.logging.set_verbosity_error()
    print(f"cpu     {cpu_name()} ({torch.backends.cpu.get_cpu_capability()}), {args.threads} thread(s)")
    print(f"torch   {torch.__version__}; {args.rounds} rounds, alternated, medians; torch.inference_mode()")
    variants = ["compiled", "compiled+freezing"] if args.freezing else ["compiled"]

    # 1. all-MiniLM-L6-v2: warm-ups in fresh processes (cold cache, then the same cache again), steady state here
    batches, unsorted = minilm_batches(args.checkpoint, args.batches, 32)
    every = [*batches, unsorted]
    warm = {name: warmups(args.checkpoint, name.endswith("freezing"), args.batches) for name in variants}
    eager = minibert.BertModel.from_pretrained(args.checkpoint)
    padded = minibert.BertModel.from_pretrained(args.checkpoint)
    padded.set_unpadding(False)
    runs: dict[str, Callable[..., object]] = {"eager": eager, "eager padded": padded}
    with torch.inference_mode():
        for name in variants:  # separate instances: no state shared with eager (packed weights, guards)
            runs[name] = compiled(minibert.BertModel.from_pretrained(args.checkpoint), name.endswith("freezing"))
            first_calls(runs[name], every)  # warm-up, untimed: measured cold in the child processes
        differences = {name: largest_difference(runs[name], eager, every) for name in runs}
        times = steady(runs, every, args.rounds)

    print()
    print(f"## all-MiniLM-L6-v2, {len(batches)} length-sorted batches of 32 real texts + 1 unsorted")
    print()
    print("First call at each shape, in this order, in a fresh process with an empty inductor cache")
    print("(seconds; graphs compiled by the call), then steady-state ms per batch:")
    print()
    names = [f"{n} first call" for n in variants] + [f"{n} ms" for n in runs]
    print("| batch | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for i, inputs in enumerate(every):
        label = describe(inputs) + (" unsorted" if i == len(batches) else "")
        cells = [f"{warm[n][0]['first'][i][0]:.2f} s (+{warm[n][0]['first'][i][1]})" for n in variants]
        cells += [f"{times[n][i] * 1000:.0f}" for n in runs]
        print(f"| {label} | " + " | ".join(cells) + " |")
    totals = {name: sum(t[: len(batches)]) for name, t in times.items()}
    cold = {name: sum(t for t, _ in warm[name][0]["first"][: len(batches)]) for name in variants}
    cells = [f"{cold[n]:.1f} s" for n in variants] + [f"{totals[n] * 1000:.0f}" for n in runs]
    print(f"| sum of the {len(batches)} sorted | " + " | ".join(cells) + " |")
    print()
    for name in runs:
        ratio = totals[name] / totals["eager"]
        print(f"- {name:<18} {ratio:.2f}x eager's time (sorted batches); max |diff| vs eager {differences[name]:.1e}")
    for name in variants:
        overhead = cold[name] - totals[name]
        saved = totals["eager"] - totals[name]
        pays = f"pays back after ~{overhead / saved * len(batches):.0f} batches" if saved > 0 else "never pays back"
        print(f"- {name:<18} cold warm-up costs {overhead:.1f} s more than steady calls; {pays}")

    print()
    print("## warm-up again in a second fresh process, same TORCHINDUCTOR_CACHE_DIR (inductor's disk caches)")
    print()
    for name in variants:
        for i, result in enumerate(warm[name], 1):
            first = result["first"]
            total = sum(t for t, _ in first[: len(batches)])
            hits = ", ".join(f"{k} {v}" for k, v in result["cache"].items()) or "no cache counters"
            print(
                f"- {name}, process {i}: first shape {first[0][0]:.2f} s, second shape {first[1][0]:.2f} s, "
                f"all {len(batches)} sorted {total:.1f} s; {hits}"
            )

    # 2. bert-base, random weights: steady state only (compiles here reuse MiniLM's dynamic-shape decisions)
    with tempfile.TemporaryDirectory() as path:
        torch.manual_seed(0)
        transformers.BertModel(transformers.BertConfig()).save_pretrained(path)
        eager = minibert.BertModel.from_pretrained(path)
        base_runs: dict[str, Callable[..., object]] = {"eager": eager}
        for name in variants:
            base_runs[name] = compiled(minibert.BertModel.from_pretrained(path), name.endswith("freezing"))
    generator = torch.Generator().manual_seed(0)
    shapes = {"8 x 128": (8, 128), "1 x 16": (1, 16)}
    base_batches = [
        {
            "input_ids": torch.randint(1000, 30000, shape, generator=generator),
            "attention_mask": torch.ones(shape, dtype=torch.long),
        }
        for shape in shapes.values()
    ]
    with torch.inference_mode():
        for name in variants:
            first_calls(base_runs[name], base_batches)
        base_diff = {name: largest_difference(base_runs[name], eager, base_batches) for name in variants}
        base_times = steady(base_runs, base_batches, args.rounds)
    print()
    print("## bert-base (random weights), full batches: steady-state ms per batch")
    print()
    print("| batch | eager ms | " + " | ".join(f"{n} ms" for n in variants) + " |")
    print("|---|---|" + "---|" * len(variants))
    for i, label in enumerate(shapes):
        cells = [f"{base_times['eager'][i] * 1000:.1f}"]
        cells += [f"{base_times[n][i] * 1000:.1f} ({base_times[n][i] / base_times['eager'][i]:.2f}x)" for n in variants]
        print(f"| {label} | " + " | ".join(cells) + " |")
    print()
    for name in variants:
        print(f"- {name:<18} max |diff| vs eager {base_diff[name]:.1e}")
    breaks = sum(torch._dynamo.utils.counters["graph_break"].values())
    print(f"- graph breaks in this process: {breaks}")


if __name__ == "__main__":
    main()
