"""Peak memory of one training step of a bert-base-sized model, with and without gradient checkpointing.

    .venv/bin/python scripts/memory_checkpointing.py [--batch 4] [--length 256]

Peak resident memory is a high-water mark of the whole process, so each measurement runs in a
fresh subprocess: build a randomly initialised BertForSequenceClassification (bert-base shapes,
dropout on, train mode), note the resident memory, run one forward + backward + SGD step, read the
peak. "step" is peak minus the memory before the step: gradients (the size of the weights, the
same in both runs) plus what autograd keeps for backward, plus temporaries. "activations"
subtracts the gradients. Timings on a busy machine are indicative only.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

MIB = 2**20


def resident_bytes() -> int:
    """Current resident memory of this process (Linux)."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize()


def measure(checkpointing: bool, batch: int, length: int) -> dict[str, float]:
    """One training step in this process; returns memory in MiB and the step time in seconds."""
    import torch

    import minibert

    torch.manual_seed(0)
    model = minibert.BertForSequenceClassification(minibert.BertConfig()).train()  # bert-base defaults
    if checkpointing:
        model.gradient_checkpointing_enable()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    input_ids = torch.randint(1000, 30000, (batch, length))  # (B, T)
    labels = torch.randint(0, 2, (batch,))  # (B,)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    before = resident_bytes()
    started = time.perf_counter()
    model(input_ids, labels=labels).loss.backward()
    optimizer.step()
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # ru_maxrss is in KiB on Linux
    return {
        "weights": weights / MIB,
        "before": before / MIB,
        "peak": peak / MIB,
        "step": (peak - before) / MIB,
        "activations": (peak - before - weights) / MIB,  # gradients are as large as the weights
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--child", choices=["off", "on"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child == "on", args.batch, args.length)))
        return

    print(f"bert-base shapes, batch {args.batch} x {args.length} tokens, one training step per fresh process")
    results = {}
    for mode in ("off", "on"):
        command = [sys.executable, __file__, "--child", mode, "--batch", str(args.batch), "--length", str(args.length)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results[mode] = json.loads(output.strip().splitlines()[-1])
    print(f"weights {results['off']['weights']:.0f} MiB; memory in MiB")
    print(f"{'checkpointing':<15}{'before':>8}{'peak':>8}{'step':>8}{'activations':>13}{'seconds':>9}")
    for mode, row in results.items():
        print(
            f"{mode:<15}{row['before']:>8.0f}{row['peak']:>8.0f}{row['step']:>8.0f}"
            f"{row['activations']:>13.0f}{row['seconds']:>9.1f}"
        )
    off, on = results["off"], results["on"]
    print(
        f"checkpointing saves {off['peak'] - on['peak']:.0f} MiB of peak memory "
        f"({1 - on['activations'] / off['activations']:.0%} of the activations) "
        f"for {on['seconds'] / off['seconds'] - 1:+.0%} step time"
    )


if __name__ == "__main__":
    main()
