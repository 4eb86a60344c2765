"""From checkpoint keys to model keys: the rename rules, the load plan, and its report.

Because a minibert model's ``state_dict()`` has exactly the keys of its
transformers twin, most keys map to themselves. The exceptions are few and
listed here, each matched exactly:

* legacy names: ``LayerNorm.gamma`` / ``LayerNorm.beta`` (TF-era checkpoints);
* the base-model prefix (``bert.``, ``roberta.``): added when a base checkpoint
  meets a head model, stripped when a head checkpoint meets a base model;
* non-persistent buffers (``embeddings.position_ids``) saved by old versions: ignored;
* tied tensors (the MLM decoder and the word embeddings): one tensor, two names.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from minibert.checkpoint import Checkpoint
from minibert.errors import CheckpointError

LEGACY_RENAMES = {"LayerNorm.gamma": "LayerNorm.weight", "LayerNorm.beta": "LayerNorm.bias"}

Status = Literal["loaded", "renamed", "tied", "missing", "mismatched", "unexpected", "ignored"]


@dataclass
class TensorRecord:
    """Where one tensor's value came from, or why it has none from the checkpoint."""

    status: Status
    model_key: str | None  # None for checkpoint keys the model has no place for
    checkpoint_key: str | None = None  # None for tensors the checkpoint lacks
    file: str | None = None
    rule: str | None = None  # the rename rule that mapped checkpoint_key to model_key
    shape: tuple[int, ...] | None = None  # the checkpoint tensor's shape
    model_shape: tuple[int, ...] | None = None
    dtype: str | None = None  # the checkpoint tensor's dtype
    verified: bool | None = None  # after loading: the model's tensor still holds the file's values


@dataclass
class LoadReport:
    """What ``from_pretrained`` did with every tensor: ``print`` it, or ``to_dict()`` it."""

    source: str
    records: list[TensorRecord] = field(default_factory=list)

    def _keys(self, status: Status, side: str = "model_key") -> list[str]:
        return [getattr(r, side) for r in self.records if r.status == status]

    @property
    def missing(self) -> list[str]:
        """Model keys the checkpoint lacks: initialised with ``_init_weights``."""
        return self._keys("missing")

    @property
    def unexpected(self) -> list[str]:
        """Checkpoint keys the model has no place for: not used."""
        return self._keys("unexpected", "checkpoint_key")

    @property
    def mismatched(self) -> list[str]:
        """Model keys whose checkpoint tensor had another shape: initialised instead."""
        return self._keys("mismatched")

    @property
    def renamed(self) -> list[tuple[str, str]]:
        """(checkpoint key, model key) pairs mapped by a rename or prefix rule."""
        return [(r.checkpoint_key, r.model_key) for r in self.records if r.status == "renamed"]

    @property
    def tied(self) -> list[str]:
        """Model keys that share another key's tensor (the MLM decoder's)."""
        return self._keys("tied")

    @property
    def ignored(self) -> list[str]:
        """Checkpoint keys of buffers the model recomputes (``embeddings.position_ids``)."""
        return self._keys("ignored", "checkpoint_key")

    def loading_info(self) -> dict[str, Any]:
        """transformers' ``output_loading_info`` dict: missing, unexpected and mismatched keys, and errors."""
        return {
            "missing_keys": set(self.missing),
            "unexpected_keys": set(self.unexpected),
            "mismatched_keys": {
                (r.model_key, r.shape, r.model_shape) for r in self.records if r.status == "mismatched"
            },
            "error_msgs": [],
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "counts": dict(Counter(r.status for r in self.records)),
            "records": [asdict(r) for r in self.records],
        }

    def __str__(self) -> str:
        """Counts, the rules that renamed keys, then only the keys that need attention."""
        counts = Counter(r.status for r in self.records)
        order: tuple[Status, ...] = ("loaded", "renamed", "tied", "ignored", "missing", "mismatched", "unexpected")
        lines = [f"load report for {self.source}: " + ", ".join(f"{counts[s]} {s}" for s in order if counts[s])]
        checked = [r.verified for r in self.records if r.verified is not None]
        if checked:
            lines.append(f"  verified    {sum(checked)} of {len(checked)} loaded tensors hold the file's values")
        for rule, count in Counter(r.rule for r in self.records if r.status == "renamed").items():
            lines.append(f"  renamed     {count} key(s) by rule: {rule}")
        for record in self.records:
            if record.status == "missing":
                lines.append(f"  missing     {record.model_key} (initialised)")
            elif record.status == "mismatched":
                lines.append(
                    f"  mismatched  {record.model_key}: checkpoint {record.shape}, "
                    f"model {record.model_shape} (initialised)"
                )
            elif record.status == "unexpected":
                lines.append(f"  unexpected  {record.checkpoint_key} (not used)")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"LoadReport({json.dumps(dict(Counter(r.status for r in self.records)))})"


def match_key(key: str, targets: set[str], prefix: str) -> tuple[str, str | None] | None:
    """The model key a checkpoint key maps to, and the rule used (None: the same name)."""
    name, rules = key, []
    for old, new in LEGACY_RENAMES.items():
        if key == old or key.endswith("." + old):
            name = key[: -len(old)] + new
            rules.append(f"legacy name {old} -> {new}")
    candidates = [(name, None), (f"{prefix}.{name}", f"added prefix '{prefix}.'")]
    if name.startswith(prefix + "."):
        candidates.append((name[len(prefix) + 1 :], f"stripped prefix '{prefix}.'"))
    for candidate, rule in candidates:
        if candidate in targets:
            all_rules = [*rules, rule] if rule else rules
            return candidate, "; ".join(all_rules) or None
    return None


def plan_load(
    checkpoint: Checkpoint,
    model_shapes: dict[str, tuple[int, ...]],
    tied: dict[str, str],
    buffers: set[str],
    prefix: str,
    *,
    ignore_mismatched_sizes: bool = False,
    strict: bool = True,
) -> LoadReport:
    """Decide, for every model and checkpoint key, what loading will do, without reading any tensor.

    ``model_shapes`` are the model's own tensors (tied aliases excluded), ``tied`` maps each
    alias to the key it shares, ``buffers`` are the model's non-persistent buffer names.
    With ``strict``, raise on what loading cannot do: ambiguous keys, shape mismatches (unless
    ignored) and a checkpoint of which nothing fits.
    """
    report = LoadReport(str(checkpoint.folder))

    def add(status: Status, model_key: str | None, key: str | None, rule: str | None = None) -> None:
        record = TensorRecord(status, model_key, key, rule=rule)
        record.model_shape = model_shapes.get(tied.get(model_key, model_key))
        if key is not None:
            record.file = checkpoint.file_of(key).name
            record.shape = checkpoint.shape(key)
            record.dtype = str(checkpoint.dtype(key)).removeprefix("torch.")
        report.records.append(record)

    targets = set(model_shapes) | set(tied) | buffers
    source_of: dict[str, tuple[str, str | None]] = {}  # model key -> (checkpoint key, rule)
    unexpected: list[tuple[str, str | None]] = []  # reported last, after the model's own keys
    for key in checkpoint.keys():
        match = match_key(key, targets, prefix)
        if match is None:
            unexpected.append((key, None))
        elif match[0] in source_of:
            if strict:
                raise CheckpointError(
                    f"{checkpoint.folder}: checkpoint keys {source_of[match[0]][0]!r} and {key!r} "
                    f"both map to model key {match[0]!r}"
                )
            unexpected.append((key, f"duplicate of {source_of[match[0]][0]}"))
        else:
            source_of[match[0]] = (key, match[1])
    # A tied tensor saved only under its alias name still gives the shared tensor its value.
    for alias, shared in tied.items():
        if alias in source_of and shared not in source_of:
            key, rule = source_of[alias]
            source_of[shared] = (key, f"tied: saved as {alias}" + (f"; {rule}" if rule else ""))
    for model_key, model_shape in model_shapes.items():
        key, rule = source_of.get(model_key, (None, None))
        if key is None:
            add("missing", model_key, None)
        elif checkpoint.shape(key) != model_shape:
            add("mismatched", model_key, key, rule)
        else:
            add("loaded" if rule is None else "renamed", model_key, key, rule)
    for alias, shared in tied.items():
        add("tied", alias, source_of.get(alias, (None, None))[0], f"shares {shared}")
    for name in sorted(buffers & set(source_of)):
        add("ignored", name, source_of[name][0], "non-persistent buffer, recomputed")
    for key, rule in unexpected:
        add("unexpected", None, key, rule)
    if strict:
        _raise_on_unloadable(report, checkpoint, ignore_mismatched_sizes)
    return report


def _raise_on_unloadable(report: LoadReport, checkpoint: Checkpoint, ignore_mismatched_sizes: bool) -> None:
    mismatched = [r for r in report.records if r.status == "mismatched"]
    if mismatched and not ignore_mismatched_sizes:
        raise CheckpointError(
            f"{checkpoint.folder}: {len(mismatched)} tensor(s) do not fit the model:\n  "
            + "\n  ".join(f"{r.model_key}: checkpoint {r.shape} vs model {r.model_shape}" for r in mismatched)
            + "\nPass ignore_mismatched_sizes=True to initialise them instead (e.g. a new classifier), "
            "or load the checkpoint into a matching config."
        )
    not_float = [r for r in report.records if r.status in ("loaded", "renamed") and not _is_float(r.dtype)]
    if not_float:
        raise CheckpointError(
            f"{checkpoint.folder}: tensors that should hold weights are not floating point: "
            + ", ".join(f"{r.checkpoint_key} ({r.dtype}, in {r.file})" for r in not_float)
        )
    if not any(r.status in ("loaded", "renamed") for r in report.records):
        example = next(iter(checkpoint.keys()), "(none)")
        expected = next((r.model_key for r in report.records if r.status == "missing"), "(none)")
        raise CheckpointError(
            f"{checkpoint.folder}: none of its {len(checkpoint.keys())} tensors fits the model "
            f"(checkpoint key {example!r}; model key {expected!r}); "
            "is it a checkpoint of another architecture?"
        )


def _is_float(dtype: str | None) -> bool:
    return dtype is not None and getattr(torch, dtype).is_floating_point


PROBE_SIZE = 128


def probe(tensor: Tensor) -> Tensor:
    """Up to PROBE_SIZE values spread evenly over ``tensor`` (first and last included), copied."""
    flat = tensor.detach().reshape(-1)
    return flat[probe_indices(flat.numel(), flat.device)]


@functools.cache
def probe_indices(numel: int, device: torch.device) -> Tensor:
    steps = min(PROBE_SIZE, numel)
    # Integer arithmetic: float spacing would round past the last index of large tensors.
    return torch.arange(steps, device=device) * (numel - 1) // max(steps - 1, 1)


def check_probes(report: LoadReport, state: dict[str, Tensor], probes: dict[str, Tensor]) -> None:
    """Mark each loaded record verified if the model's tensor still holds the probed file values.

    This catches a tensor that landed under the wrong name, or was overwritten after it was
    read (by initialisation or tying). It compares a sample, so it costs next to nothing.
    """
    failed = []
    for record in report.records:
        if record.model_key in probes:
            expected = probes[record.model_key]
            actual = state[record.model_key].detach().reshape(-1)
            record.verified = torch.equal(actual[probe_indices(actual.numel(), actual.device)], expected)
            if not record.verified:
                failed.append(f"{record.model_key} (from {record.file}: {record.checkpoint_key})")
    if failed:
        raise CheckpointError(
            f"{report.source}: after loading, these tensors no longer hold the file's values: " + ", ".join(failed)
        )
