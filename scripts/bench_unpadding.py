"""Where unpadding stops paying: the padded and unpadded layouts on batches of a given fraction of real tokens.

For each model size (MiniLM-sized and bert-base-sized, random weights, no download) and each
fraction of real tokens, a batch of B rows padded to T (one row full, the others of equal length)
runs with ``set_unpadding(False)`` and ``set_unpadding(True)`` in alternated rounds; the median of
the paired ratios unpadded / padded is printed (below 1: unpadding is faster). The fraction where
the ratio crosses 1 is what ``minibert.bert.UNPADDED_BELOW`` is set from.

Run: .venv/bin/python scripts/bench_unpadding.py [--rounds 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import minibert

SIZES = {
    "MiniLM-L6 (384 x 6)": (
        dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536),
        32,
    ),
    "bert-base (768 x 12)": (dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12), 8),
}
FRACTIONS = (0.5, 0.8, 0.9, 0.95, 0.98)


def batch_of(fraction: float, batch: int, length: int) -> dict[str, torch.Tensor]:
    """``batch`` rows padded to ``length``: the first full, the others as long as ``fraction`` of real tokens asks."""
    rest = round((fraction * batch * length - length) / (batch - 1))
    lengths = torch.tensor([length] + [max(1, rest)] * (batch - 1))
    mask = (torch.arange(length) < lengths[:, None]).long()  # (B, T)
    return {"input_ids": torch.randint(1000, 30000, (batch, length)) * mask, "attention_mask": mask}


def seconds(model: minibert.BertModel, inputs: dict[str, torch.Tensor]) -> float:
    with torch.inference_mode():
        start = time.perf_counter()
        model(**inputs)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--length", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"{torch.get_num_threads()} thread(s), torch {torch.__version__}; ratio unpadded / padded (paired medians)")
    for name, (sizes, batch) in SIZES.items():
        model = minibert.BertModel(minibert.BertConfig(**sizes)).eval()
        for fraction in FRACTIONS:
            inputs = batch_of(fraction, batch, args.length)
            real = float(inputs["attention_mask"].float().mean())
            ratios = []
            for _ in range(args.rounds):
                times = {}
                for unpad in (False, True):
                    model.set_unpadding(unpad)
                    times[unpad] = seconds(model, inputs)
                ratios.append(times[True] / times[False])
            print(f"{name}  {batch}x{args.length}  real {real:.2f}  ratio {statistics.median(ratios):.3f}", flush=True)


if __name__ == "__main__":
    main()
