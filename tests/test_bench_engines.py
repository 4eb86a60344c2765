"""scripts/bench_engines.py's own promises, without the engines: a wrong engine is reported, not timed.

The engines themselves (the ``bench`` extra) are not needed: these run the checking and timing code
on stand-in engines, one computing what the reference computes and one that is off at one real token.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import torch

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(SCRIPTS))  # it imports scripts/bench.py and scripts/bench_encode.py by name
    try:
        yield importlib.import_module("bench_engines")
    finally:
        sys.path.remove(str(SCRIPTS))


def stand_in(bench, name: str, model: torch.nn.Module, error: float = 0.0):
    """An engine running ``model``; ``error`` added at the first token of the first row (a real token)."""

    def run(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = model(batch["input_ids"]).clone()  # (B, T, H)
        hidden[0, 0] += error
        return hidden

    return bench.Engine(name, lambda batch: batch, run)


def test_only_engines_that_match_the_reference_are_timed(bench):
    torch.manual_seed(0)
    model = torch.nn.Embedding(50, 8)
    lengths = torch.tensor([5, 3])
    workload = bench.Workload("stand-in", [bench.padded(torch.randint(1, 50, (2, 5)), lengths)], flops=1e6)
    engines = {
        bench.REFERENCE: stand_in(bench, bench.REFERENCE, model),
        "same": stand_in(bench, "same", model, error=bench.FP32_TOLERANCE / 10),
        "off": stand_in(bench, "off", model, error=bench.FP32_TOLERANCE * 10),
        "missing": "ImportError: no such engine",
    }
    with torch.inference_mode():
        cells, outputs, peak = bench.run_workload(workload, engines, rounds=3, int8=False)
    assert cells["same"].failed is None and cells["same"].ratio is not None and cells["same"].gemm is not None
    assert "max abs difference" in cells["off"].failed and cells["off"].seconds is None
    assert cells["missing"].failed == "ImportError: no such engine" and "missing" not in outputs
    assert peak > 0


def test_padding_is_not_checked(bench):
    """Engines may leave anything at padding (CTranslate2 does): only real tokens count."""
    model = torch.nn.Embedding(50, 8)
    batch = bench.padded(torch.randint(1, 50, (2, 4)), torch.tensor([4, 2]))
    reference = [model(batch["input_ids"]).detach()]
    garbage = reference[0].clone()
    garbage[1, 2:] = 1e6  # the second row's padding
    assert bench.check_hidden([garbage], reference, [batch], int8=False).failed is None
    garbage[1, 1] += 1.0  # a real token
    assert bench.check_hidden([garbage], reference, [batch], int8=False).failed is not None


def test_engines_take_turns(bench):
    calls: list[str] = []
    runs = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    samples = bench.alternate(runs, rounds=3)
    assert calls == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert all(len(values) == 3 for values in samples.values())
