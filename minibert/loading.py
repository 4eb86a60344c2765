"""From checkpoint keys to model keys: the rename rules, the load plan, and its report.

Because a minibert model's ``state_dict()`` has exactly the keys of its
transformers twin, most keys map to themselves. The exceptions are few and
listed here, each matched exactly:

* legacy names: ``LayerNorm.gamma`` / ``LayerNorm.beta`` (TF-era checkpoints);
* the base-model prefix (``bert.``, ``roberta.``): added when a base checkpoint
  meets a head model, stripped when a head checkpoint meets a base model;
* non-persistent buffers (``embeddings.position_ids``) saved by old versions: ignored;
* tied tensors (the MLM decoder and the word embeddings): one tensor, two names;
* an architecture's own older layout (the original code its Hub checkpoints were written by,
  before transformers had it): the class's ``checkpoint_key_rules``, each a ``KeyRule`` that
  renames a key or splits a fused tensor into the model's separate ones, and its
  ``checkpoint_prefixes``, the other names that code gave the encoder in head models.
"""

from __future__ import annotations

import functools
import json
import re
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

import torch
from torch import Tensor

from minibert.checkpoint import FLOAT8_DTYPES, Checkpoint
from minibert.errors import CheckpointError

LEGACY_RENAMES = {"LayerNorm.gamma": "LayerNorm.weight", "LayerNorm.beta": "LayerNorm.bias"}

Status = Literal["loaded", "renamed", "split", "tied", "ignored", "missing", "mismatched", "unexpected"]
# The records whose tensor is read from the checkpoint (a split record reads its block of a fused tensor).
READ_STATUSES: tuple[Status, ...] = ("loaded", "renamed", "split")


@dataclass(frozen=True)
class KeyRule:
    """Another name for model tensors: checkpoint keys matching ``pattern`` -> ``targets``.

    ``pattern`` is a regular expression matched against the whole key (once any base-model prefix
    is taken off); each target is a model key in which ``\\1``, ``\\2``... stand for its groups. One
    target renames. Several split the tensor into that many equal blocks of rows (dim 0), in
    order: ``attn.Wqkv`` (3 * nh * hs, H) -> ``q_proj``, ``k_proj``, ``v_proj``, (nh * hs, H) each.
    ``note`` names the layout, for the load report. E.g. the pattern
    ``encoder\\.layers\\.(\\d+)\\.norm1\\.(weight|bias)`` with the target ``layers.\\1.post_attention_layernorm.\\2``
    maps ``encoder.layers.3.norm1.bias`` to ``layers.3.post_attention_layernorm.bias``.
    """

    pattern: str
    targets: tuple[str, ...]
    note: str

    def apply(self, key: str) -> tuple[str, ...] | None:
        """The model keys ``key`` maps to, or None if the pattern does not match it."""
        match = re.fullmatch(self.pattern, key)
        return None if match is None else tuple(match.expand(target) for target in self.targets)


@dataclass
class TensorRecord:
    """Where one tensor's value came from, or why it has none from the checkpoint."""

    status: Status
    model_key: str | None  # None for checkpoint keys the model has no place for
    checkpoint_key: str | None = None  # None for tensors the checkpoint lacks
    file: str | None = None
    rule: str | None = None  # the rename rule that mapped checkpoint_key to model_key
    part: tuple[int, int] | None = None  # split: block i of n (rows of dim 0) of the checkpoint tensor
    shape: tuple[int, ...] | None = None  # the checkpoint tensor's shape (its block's, for a split)
    model_shape: tuple[int, ...] | None = None
    dtype: str | None = None  # the checkpoint tensor's dtype
    verified: bool | None = None  # after loading: the model's tensor still holds the file's values
    finite: bool | None = None  # after loading: False if the tensor holds NaN or Inf (as the file does)
    note: str | None = None  # where the tensor departs from the index: read from elsewhere, or not read


@dataclass
class LoadReport:
    """What ``from_pretrained`` did with every tensor: ``print`` it, or ``to_dict()`` it."""

    source: str
    records: list[TensorRecord] = field(default_factory=list)
    # How config.json was read where it is not spelled as transformers spells it (an original code's config).
    config_renames: list[str] = field(default_factory=list)

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
    def nonfinite(self) -> list[str]:
        """Model keys whose loaded tensor holds NaN or Inf values (read as the file holds them)."""
        return [r.model_key for r in self.records if r.finite is False]

    @property
    def split(self) -> list[tuple[str, str]]:
        """(checkpoint key, model key) pairs where the model tensor is a block of a fused checkpoint tensor."""
        return [(r.checkpoint_key, r.model_key) for r in self.records if r.status == "split"]

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
            "config_renames": list(self.config_renames),
            "records": [asdict(r) for r in self.records],
        }

    def __str__(self) -> str:
        """Counts, the rules that renamed keys, then only the keys that need attention."""
        counts = Counter(r.status for r in self.records)
        statuses = ", ".join(f"{counts[s]} {s}" for s in get_args(Status) if counts[s])
        lines = [f"load report for {self.source}: {statuses}"]
        lines += [f"  config      {rename}" for rename in self.config_renames]
        checked = [r.verified for r in self.records if r.verified is not None]
        if checked:
            lines.append(f"  verified    {sum(checked)} of {len(checked)} loaded tensors hold the file's values")
        for status in ("renamed", "split"):
            for rule, count in Counter(r.rule for r in self.records if r.status == status).items():
                lines.append(f"  {status:<11} {count} key(s) by rule: {rule}")
        for record in self.records:
            if record.finite is False:
                lines.append(f"  non-finite  {record.model_key} holds NaN or Inf values, as {record.file} does")
            if record.note is not None:
                lines.append(f"  note        {record.checkpoint_key}: {record.note}")
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


def match_key(
    key: str,
    targets: set[str],
    prefix: str,
    rules: Sequence[KeyRule] = (),
    other_prefixes: Sequence[str] = (),
) -> tuple[tuple[str, ...], str | None] | None:
    """The model key(s) a checkpoint key maps to, and the rules used (None: the same name).

    Tried in order: the key, then the key without the base-model prefix (``prefix``, or one of
    ``other_prefixes``); each under its own name, then through each of ``rules``; each of those as
    it is, then with ``prefix`` added. More than one model key: a split (see ``KeyRule``).
    """
    name, rules_used = key, []
    for old, new in LEGACY_RENAMES.items():
        if key == old or key.endswith("." + old):
            name = key[: -len(old)] + new
            rules_used.append(f"legacy name {old} -> {new}")
    bodies = [(name, None)]
    for stripped in (prefix, *other_prefixes):
        if name.startswith(stripped + "."):
            bodies.append((name[len(stripped) + 1 :], f"stripped prefix '{stripped}.'"))
    for body, stripped_rule in bodies:
        renamings = [((body,), None)] + [(names, rule.note) for rule in rules if (names := rule.apply(body))]
        for names, rename_rule in renamings:
            prefixed = tuple(f"{prefix}.{n}" for n in names)
            for candidates, added_rule in ((names, None), (prefixed, f"added prefix '{prefix}.'")):
                if all(candidate in targets for candidate in candidates):
                    used = [*rules_used, stripped_rule, rename_rule, added_rule]
                    return candidates, "; ".join(rule for rule in used if rule) or None
    return None


def plan_load(
    checkpoint: Checkpoint,
    model_shapes: dict[str, tuple[int, ...]],
    tied: dict[str, str],
    buffers: set[str],
    prefix: str,
    *,
    rules: Sequence[KeyRule] = (),
    other_prefixes: Sequence[str] = (),
    ignore_mismatched_sizes: bool = False,
    strict: bool = True,
) -> LoadReport:
    """Decide, for every model and checkpoint key, what loading will do, without reading any tensor.

    ``model_shapes`` are the model's own tensors (tied aliases excluded), ``tied`` maps each
    alias to the key it shares, ``buffers`` are the model's non-persistent buffer names;
    ``rules`` and ``other_prefixes`` are the architecture's older layout (see ``match_key``).
    With ``strict``, raise on what loading cannot do: ambiguous keys, shape mismatches (unless
    ignored) and a checkpoint of which nothing fits.
    """
    report = LoadReport(str(checkpoint.folder))

    def add(
        status: Status,
        model_key: str | None,
        key: str | None,
        rule: str | None = None,
        part: tuple[int, int] | None = None,
    ) -> None:
        record = TensorRecord(status, model_key, key, rule=rule, part=part)
        record.model_shape = model_shapes.get(tied.get(model_key, model_key))
        if key is not None:
            record.file = checkpoint.file_of(key).name
            record.shape = block_shape(checkpoint.shape(key), part)
            record.dtype = checkpoint.dtype_name(key)
            record.note = checkpoint.notes.get(key)
        report.records.append(record)

    targets = set(model_shapes) | set(tied) | buffers
    # model key -> (checkpoint key, rule, part): part (i, n) where the key is split
    source_of: dict[str, tuple[str, str | None, tuple[int, int] | None]] = {}
    unexpected: list[tuple[str, str | None]] = []  # reported last, after the model's own keys
    for key in checkpoint.keys():
        match = match_key(key, targets, prefix, rules, other_prefixes)
        if match is None:
            unexpected.append((key, None))
            continue
        model_keys, rule = match
        taken = next((model_key for model_key in model_keys if model_key in source_of), None)
        if taken is not None:
            if strict:
                raise CheckpointError(
                    f"{checkpoint.folder}: checkpoint keys {source_of[taken][0]!r} and {key!r} "
                    f"both map to model key {taken!r}"
                )
            unexpected.append((key, f"duplicate of {source_of[taken][0]}"))
            continue
        for i, model_key in enumerate(model_keys):
            source_of[model_key] = (key, rule, (i, len(model_keys)) if len(model_keys) > 1 else None)
    # A tied tensor saved only under its alias name still gives the shared tensor its value.
    for alias, shared in tied.items():
        if alias in source_of and shared not in source_of:
            key, rule, part = source_of[alias]
            source_of[shared] = (key, f"tied: saved as {alias}" + (f"; {rule}" if rule else ""), part)
    for model_key, model_shape in model_shapes.items():
        key, rule, part = source_of.get(model_key, (None, None, None))
        if key is None:
            add("missing", model_key, None)
        elif block_shape(checkpoint.shape(key), part) != model_shape:
            add("mismatched", model_key, key, rule, part)
        else:
            add("split" if part else "loaded" if rule is None else "renamed", model_key, key, rule, part)
    for alias, shared in tied.items():
        add("tied", alias, source_of.get(alias, (None, None, None))[0], f"shares {shared}")
    for name in sorted(buffers & set(source_of)):
        add("ignored", name, source_of[name][0], "non-persistent buffer, recomputed")
    for key, rule in unexpected:
        add("unexpected", None, key, rule)
    # Model tensors in shard files the index does not name (an older save's): never read, but said so.
    for key, path in checkpoint.unread.items():
        match = match_key(key, targets, prefix, rules, other_prefixes)
        if match is not None:
            note = f"in {path.name}, which {checkpoint.index.name} does not name: not read"
            report.records.append(TensorRecord("ignored", match[0][0], key, file=path.name, note=note))
    departures = [r for r in report.records if r.note is not None]
    if departures:
        warnings.warn(
            f"{checkpoint.index}: the shards do not match the index: "
            + "; ".join(f"{r.checkpoint_key}: {r.note}" for r in departures),
            stacklevel=3,
        )
    if strict:
        _raise_on_unloadable(report, checkpoint, ignore_mismatched_sizes)
    return report


def block_shape(shape: tuple[int, ...], part: tuple[int, int] | None) -> tuple[int, ...]:
    """The shape of one of ``part``'s n blocks of rows of a tensor of ``shape`` (``shape`` itself if n does not
    divide its rows, which then fits no model tensor): ``(96, 32), (0, 3) -> (32, 32)``."""
    if part is None or not shape or shape[0] % part[1]:
        return shape
    return (shape[0] // part[1], *shape[1:])


def read_tensor(checkpoint: Checkpoint, record: TensorRecord) -> Tensor:
    """The value ``record`` loads: its checkpoint tensor, or for a split its block of rows, as a tensor of its own."""
    tensor = checkpoint.get(record.checkpoint_key)
    if record.part is None:
        return tensor
    index, count = record.part
    return tensor.chunk(count)[index].clone()  # a copy: the view would keep the whole fused tensor alive


def _raise_on_unloadable(report: LoadReport, checkpoint: Checkpoint, ignore_mismatched_sizes: bool) -> None:
    mismatched = [r for r in report.records if r.status == "mismatched"]
    if mismatched and not ignore_mismatched_sizes:
        raise CheckpointError(
            f"{checkpoint.folder}: {len(mismatched)} tensor(s) do not fit the model:\n  "
            + "\n  ".join(f"{r.model_key}: checkpoint {r.shape} vs model {r.model_shape}" for r in mismatched)
            + "\nPass ignore_mismatched_sizes=True to initialise them instead (e.g. a new classifier), "
            "or load the checkpoint into a matching config."
        )
    not_float = [r for r in report.records if r.status in READ_STATUSES and not _is_float(r.dtype)]
    if not_float:
        raise CheckpointError(
            f"{checkpoint.folder}: tensors that should hold weights are not floating point: "
            + ", ".join(f"{r.checkpoint_key} ({r.dtype}, in {r.file})" for r in not_float)
        )
    float8 = {str(dtype).removeprefix("torch.") for dtype in FLOAT8_DTYPES}
    quantised = [r for r in report.records if r.status in READ_STATUSES and r.dtype in float8]
    if quantised:
        raise CheckpointError(
            f"{checkpoint.folder}: weights stored in 8-bit floats: "
            + ", ".join(f"{r.checkpoint_key} ({r.dtype}, in {r.file})" for r in quantised)
            + "; a quantised checkpoint keeps scales beside them, and minibert does not dequantise: "
            "load the checkpoint's float32, float16 or bfloat16 version"
        )
    if not any(r.status in READ_STATUSES for r in report.records):
        example = next(iter(checkpoint.keys()), "(none)")
        expected = next((r.model_key for r in report.records if r.status == "missing"), "(none)")
        raise CheckpointError(
            f"{checkpoint.folder}: none of its {len(checkpoint.keys())} tensors fits the model "
            f"(checkpoint key {example!r}; model key {expected!r}); "
            "is it a checkpoint of another architecture?"
        )


def _is_float(dtype: str | None) -> bool:
    torch_dtype = getattr(torch, dtype or "", None)
    return isinstance(torch_dtype, torch.dtype) and torch_dtype.is_floating_point


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
            record.verified = same_bits(actual[probe_indices(actual.numel(), actual.device)], expected)
            if not record.verified:
                failed.append(f"{record.model_key} (from {record.file}: {record.checkpoint_key})")
    if failed:
        raise CheckpointError(
            f"{report.source}: after loading, these tensors no longer hold the file's values: " + ", ".join(failed)
        )


def same_bits(a: Tensor, b: Tensor) -> bool:
    """Equal value for value, bit for bit: a NaN read from the file equals itself (for ``torch.equal``, never)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.is_floating_point or a.dtype.is_complex:
        bits = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}.get(a.element_size())
        if bits is not None:
            return torch.equal(a.view(bits), b.view(bits))
    return torch.equal(a, b)


def all_finite(tensor: Tensor) -> bool:
    """No NaN and no Inf in ``tensor``, with no copy.

    A NaN or an Inf makes the sum non-finite, so a finite sum (one fast pass) settles it; a sum
    that overflowed is then checked exactly, by min and max (both NaN if any value is).
    """
    if tensor.numel() == 0 or not tensor.is_floating_point():
        return True
    tensor = tensor.detach()
    if bool(torch.isfinite(tensor.sum())):
        return True
    low, high = torch.aminmax(tensor)
    return bool(torch.isfinite(low) & torch.isfinite(high))
