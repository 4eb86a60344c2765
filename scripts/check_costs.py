"""What minibert's safety checks cost on a bert-base-sized model (random weights, no download).

- the probe check after loading (a sample of each loaded tensor compared with the file's values).
  safetensors tensors are read lazily, so the probe pays for reading the sampled pages now,
  which the first forward would read anyway: "load + first forward" is the fair comparison;
- the input checks at the top of ``forward`` (ids, token types and positions in range, shapes);
- the question ``PreTrainedModel.__call__`` asks before each forward: do the outputs read padding?

Each is timed with and without, alternating, and the medians are printed.
Run: .venv/bin/python scripts/check_costs.py
"""

import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any
from unittest import mock

import torch

import minibert
from minibert import bert, pretrained


def median_seconds(run: Callable[[], object], context: Callable[[], AbstractContextManager], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        with context():
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def compare(label: str, run: Callable[[], object], without: Callable[[], AbstractContextManager], repeats: int) -> None:
    run()  # warm up
    with_checks, without_checks = [], []
    for _ in range(repeats):  # alternate, so drift on a shared machine hits both alike
        with_checks.append(median_seconds(run, nullcontext, 1))
        without_checks.append(median_seconds(run, without, 1))
    a, b = statistics.median(with_checks), statistics.median(without_checks)
    cost = f"{(a - b) * 1e3:+7.2f} ms ({(a - b) / b:+.1%})"
    print(f"{label:<40} with {a * 1e3:8.2f} ms   without {b * 1e3:8.2f} ms   cost {cost}")


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(2)
    config = minibert.BertConfig()  # bert-base: 12 layers, hidden 768
    with tempfile.TemporaryDirectory() as folder:
        minibert.BertModel(config).save_pretrained(folder)
        compare(
            "from_pretrained (bert-base, 440 MB)",
            lambda: minibert.BertModel.from_pretrained(folder),
            lambda: mock.patch.multiple(pretrained, probe=lambda t: None, check_probes=lambda *a: None),
            repeats=7,
        )
        compare(
            "from_pretrained + first forward 1x128",
            lambda: minibert.BertModel.from_pretrained(folder)(torch.ones(1, 128, dtype=torch.long)),
            lambda: mock.patch.multiple(pretrained, probe=lambda t: None, check_probes=lambda *a: None),
            repeats=7,
        )
        model = minibert.BertModel.from_pretrained(folder)
    ids = torch.randint(1000, 30000, (8, 128))
    mask = torch.ones_like(ids)
    mask[4:, 96:] = 0
    types = torch.zeros_like(ids)

    def forward() -> None:
        with torch.inference_mode():
            model(ids, attention_mask=mask, token_type_ids=types)

    def unchecked(*inputs: Any, **settings: Any) -> tuple[Any, Any, Any]:
        """What ``check_inputs`` returns for int64 inputs: ids, token types and positions as given."""
        _, input_ids, _, token_type_ids, position_ids = inputs[:5]
        return input_ids, token_type_ids, position_ids

    compare(
        "forward 8x128 fp32 (input checks)",
        forward,
        lambda: mock.patch.object(bert, "check_inputs", unchecked),
        repeats=9,
    )
    calls = 2000
    start = time.perf_counter()
    for _ in range(calls):
        bert.check_inputs(config, ids, mask, types, None, None, 0, config.hidden_size)
    print(f"{'check_inputs alone, 8x128':<40} {(time.perf_counter() - start) / calls * 1e6:.1f} us per call")
    named = {"attention_mask": mask, "token_type_ids": types}
    start = time.perf_counter()
    for _ in range(calls):  # what PreTrainedModel.__call__ asks before each forward: padded or not
        with model.padded(model.reads_padding(pretrained.named_inputs(type(model), (ids,), named))):
            pass
    print(f"{'padding question alone, 8x128':<40} {(time.perf_counter() - start) / calls * 1e6:.1f} us per call")


if __name__ == "__main__":
    main()
