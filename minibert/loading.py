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

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from minibert.checkpoint import Checkpoint
from minibert.errors import CheckpointError

LEGACY_RENAMES = {"LayerNorm.gamma": "LayerNorm.weight", "LayerNorm.beta": "LayerNorm.bias"}

Status = Literal["loaded", "renamed", "tied", "missing", "mismatched", "unexpected", "ignored"]


@dataclass(frozen=True)
class TensorRecord:
    """Where one tensor's value came from, or why it has none from the checkpoint."""

    status: Status
    model_key: str | None  # None for checkpoint keys the model has no place for
    checkpoint_key: str | None = None  # None for tensors the checkpoint lacks
    file: str | None = None
    rule: str | None = None  # the rename rule that mapped checkpoint_key to model_key
    shape: tuple[int, ...] | None = None  # the checkpoint tensor's shape
    model_shape: tuple[int, ...] | None = None


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "counts": dict(Counter(r.status for r in self.records)),
            "records": [asdict(r) for r in self.records],
        }

    def __str__(self) -> str:
        counts = Counter(r.status for r in self.records)
        order: tuple[Status, ...] = ("loaded", "renamed", "tied", "ignored", "missing", "mismatched", "unexpected")
        lines = [f"load report for {self.source}: " + ", ".join(f"{counts[s]} {s}" for s in order if counts[s])]
        for record in self.records:
            if record.status == "renamed":
                lines.append(f"  renamed     {record.checkpoint_key} -> {record.model_key} ({record.rule})")
            elif record.status == "missing":
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
) -> LoadReport:
    """Decide, for every model and checkpoint key, what loading will do; raise on what it cannot.

    ``model_shapes`` are the model's own tensors (tied aliases excluded), ``tied`` maps each
    alias to the key it shares, ``buffers`` are the model's non-persistent buffer names.
    """
    targets = set(model_shapes) | set(tied) | buffers
    source_of: dict[str, tuple[str, str | None]] = {}  # model key -> (checkpoint key, rule)
    report = LoadReport(str(checkpoint.folder))
    for key in checkpoint.keys():
        match = match_key(key, targets, prefix)
        if match is None:
            report.records.append(
                TensorRecord("unexpected", None, key, checkpoint.file_of(key).name, shape=checkpoint.shape(key))
            )
            continue
        target, rule = match
        if target in source_of:
            raise CheckpointError(
                f"{checkpoint.folder}: checkpoint keys {source_of[target][0]!r} and {key!r} "
                f"both map to model key {target!r}"
            )
        source_of[target] = (key, rule)
    # A tied tensor saved only under its alias name still gives the shared tensor its value.
    for alias, shared in tied.items():
        if alias in source_of and shared not in source_of:
            key, rule = source_of[alias]
            source_of[shared] = (key, f"tied: saved as {alias}" + (f"; {rule}" if rule else ""))
    mismatched = []
    for model_key, model_shape in model_shapes.items():
        if model_key not in source_of:
            report.records.append(TensorRecord("missing", model_key, model_shape=model_shape))
            continue
        key, rule = source_of[model_key]
        shape = checkpoint.shape(key)
        status: Status = "loaded" if rule is None else "renamed"
        if shape != model_shape:
            status = "mismatched"
            mismatched.append(f"{model_key}: checkpoint {shape} vs model {model_shape}")
        report.records.append(
            TensorRecord(status, model_key, key, checkpoint.file_of(key).name, rule, shape, model_shape)
        )
    for alias, shared in tied.items():
        key = source_of.get(alias, (None, None))[0]
        report.records.append(
            TensorRecord(
                "tied",
                alias,
                key,
                key and checkpoint.file_of(key).name,
                f"shares {shared}",
                model_shape=model_shapes[shared],
            )
        )
    for name in sorted(buffers & set(source_of)):
        key = source_of[name][0]
        report.records.append(
            TensorRecord(
                "ignored",
                name,
                key,
                checkpoint.file_of(key).name,
                "non-persistent buffer, recomputed",
                checkpoint.shape(key),
            )
        )
    if mismatched and not ignore_mismatched_sizes:
        raise CheckpointError(
            f"{checkpoint.folder}: {len(mismatched)} tensor(s) do not fit the model:\n  "
            + "\n  ".join(mismatched)
            + "\nPass ignore_mismatched_sizes=True to initialise them instead (e.g. a new classifier), "
            "or load the checkpoint into a matching config."
        )
    if not any(r.status in ("loaded", "renamed") for r in report.records):
        example = next(iter(checkpoint.keys()), "(none)")
        raise CheckpointError(
            f"{checkpoint.folder}: none of its {len(checkpoint.keys())} tensors fits the model "
            f"(checkpoint key {example!r}; model key {next(iter(model_shapes))!r}); "
            "is it a checkpoint of another architecture?"
        )
    return report
