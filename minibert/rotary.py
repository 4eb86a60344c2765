"""Rotary position embeddings (RoPE): positions as rotations of query and key features.

Instead of adding a position vector to the embeddings, rotary attention rotates each query
and key before their dot product: feature ``i`` of the first half and feature ``i`` of the
second half of a head form a pair, rotated by the angle ``position * frequency_i``, with
frequencies falling geometrically from 1 to ``1 / theta``. The dot product of a rotated query
and key then depends on their positions only through their distance.

The encoders that use it (ModernBERT, NomicBERT, GTE) differ in ``theta`` (per layer type, in
ModernBERT), in how far a trained model is stretched to longer inputs (``scaling``), and in
whether the rotation runs in float32; this module serves them all. Nothing here is a weight:
the tables are computed in the forward pass, from the positions, and never saved.
Mirrors transformers/modeling_rope_utils.py (default, linear and dynamic NTK rope types) and
the ``rotate_half`` / ``apply_rotary_pos_emb`` functions of the models that use them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import torch
from torch import Tensor, nn

from minibert.config import EncoderConfig
from minibert.errors import ConfigError

logger = logging.getLogger(__name__)

SCALINGS = ("default", "linear", "dynamic")  # transformers' rope types that minibert computes


@dataclass(frozen=True)
class RotaryConfig(EncoderConfig):
    """What the rotary encoders' configs share (GTE, NomicBERT): ``rope_parameters`` and other spellings.

    Positions are rotary, with no position table: ``rope_parameters`` says how queries and keys
    turn (``rope_type`` "default", "linear" or "dynamic" NTK, ``rope_theta``, ``factor``; see
    below), and inputs of any length are taken, as in transformers. A subclass
    reads its remote code's spelling of ``config.json`` in ``from_other_spelling``.
    """

    default_theta: ClassVar[float] = 10000.0
    rope_types: ClassVar[tuple[str, ...]] = SCALINGS

    rope_parameters: dict[str, Any] | None = None  # None: {"rope_type": "default", "rope_theta": default_theta}

    def __post_init__(self) -> None:
        if self.rope_parameters is None or isinstance(self.rope_parameters, dict):
            # transformers' standardize_rope_params: "type" is rope_type's older name; theta has a default.
            rope = dict(self.rope_parameters or {})
            rope.setdefault("rope_type", rope.pop("type", "default"))
            rope.setdefault("rope_theta", self.default_theta)
            object.__setattr__(self, "rope_parameters", rope)
        super().__post_init__()

    def _validate_rope(self) -> None:
        rope = self.rope_parameters
        if not isinstance(rope, dict):
            raise ConfigError(f"rope_parameters must be a mapping, got {rope!r}")
        kind, theta, factor = rope["rope_type"], rope["rope_theta"], rope.get("factor")
        if kind not in self.rope_types:
            raise ConfigError(
                f"rope_parameters: rope_type {kind!r} is not supported; minibert's {type(self).__name__} supports "
                f"{', '.join(self.rope_types)}"
            )
        if not (isinstance(theta, int | float) and not isinstance(theta, bool) and theta > 0):
            raise ConfigError(f"rope_parameters: rope_theta must be a positive number, got {theta!r}")
        if kind != "default" and not (isinstance(factor, int | float) and not isinstance(factor, bool) and factor > 0):
            raise ConfigError(f"rope_parameters: rope_type {kind!r} needs a positive factor, got {factor!r}")
        if rope.get("partial_rotary_factor", 1.0) != 1.0:
            raise ConfigError(
                f"rope_parameters: partial_rotary_factor {rope['partial_rotary_factor']!r} is not supported: "
                "every feature of a head is turned, as in transformers"
            )

    @classmethod
    def from_other_spelling(cls, values: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """A remote code's ``config.json`` in transformers' spelling, and a line per field read another way."""
        return values, []

    @classmethod
    def from_dict(cls, values: dict[str, Any], **overrides: Any) -> Self:
        """As EncoderConfig's, once other spellings are read as transformers reads them.

        * a remote code's config: ``from_other_spelling``;
        * top-level ``rope_theta`` and ``rope_scaling`` (configs from before ``rope_parameters``)
          become ``rope_parameters``, as transformers' ``convert_rope_params_to_dict`` reads them;
        * ``position_embedding_type``, which these models never read (they are rotary whatever the
          field says), is kept in ``extra`` as it was.

        Each such reading is logged (logging.INFO) and listed in ``renamed_fields``, which the load report prints.
        """
        values, renamed = cls.from_other_spelling(dict(values))
        scaling, theta = values.pop("rope_scaling", None), values.pop("rope_theta", None)
        if scaling or theta is not None:
            rope = dict(scaling or values.get("rope_parameters") or {})
            if theta is not None:
                rope.setdefault("rope_theta", theta)
            renamed.append(f"rope_theta {theta!r}, rope_scaling {scaling!r} -> rope_parameters {rope!r}")
            values["rope_parameters"] = rope
        for line in renamed:
            logger.info("%s: %s", cls.__name__, line)
        kept = {name: values.pop(name) for name in ("position_embedding_type", "renamed_fields") if name in values}
        config = super().from_dict(values, **overrides)
        if not (kept or renamed):
            return config
        return config.replace(extra={**config.extra, **kept}, renamed_fields=tuple(renamed))

    def to_dict(self) -> dict[str, Any]:
        """No ``position_embedding_type`` (these models are rotary), unless the file had one."""
        values = {k: v for k, v in super().to_dict().items() if k != "position_embedding_type"}
        return {**values, **{k: v for k, v in self.extra.items() if k == "position_embedding_type"}}


def rotary_frequencies(
    dim: int,
    theta: float,
    scaling: str = "default",
    factor: float = 1.0,
    max_positions: int | None = None,
    length: int | None = None,
) -> Tensor:
    """The ``dim / 2`` rotation frequencies: ``theta ** (-2i / dim)``, stretched as ``scaling`` says.

    * ``"linear"``: positions divided by ``factor`` (``_compute_linear_scaling_rope_parameters``);
    * ``"dynamic"`` (NTK): for inputs longer than ``max_positions``, a larger ``theta``,
      ``theta * (factor * length / max_positions - (factor - 1)) ** (dim / (dim - 2))``; shorter
      inputs keep the trained frequencies (``_compute_dynamic_ntk_parameters``).

    E.g. ``dim=4, theta=100`` -> ``[1.0, 0.1]``.
    """
    if scaling not in SCALINGS:
        raise ValueError(f"rope scaling {scaling!r} is not supported; minibert supports {', '.join(SCALINGS)}")
    if scaling == "dynamic" and max_positions is not None and length is not None and length > max_positions:
        stretch = torch.tensor(factor * length, dtype=torch.float32) / max_positions - (factor - 1)
        theta = theta * stretch ** (dim / (dim - 2))  # in float32, as transformers computes it
    frequencies = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))  # (dim / 2,)
    return frequencies / factor if scaling == "linear" else frequencies


class RotaryEmbedding(nn.Module):
    """cos and sin of each position's rotation angles, for ``apply_rotary`` (``*RotaryEmbedding`` in transformers)."""

    def __init__(
        self,
        dim: int,
        theta: float,
        scaling: str = "default",
        factor: float = 1.0,
        max_positions: int | None = None,
    ) -> None:
        super().__init__()
        rotary_frequencies(dim, theta, scaling, factor)  # refuses an unknown scaling now, not at the first forward
        self.dim, self.theta, self.scaling, self.factor, self.max_positions = dim, theta, scaling, factor, max_positions

    def forward(self, position_ids: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """``position_ids`` (B, T) or (T,) -> cos, sin of shape (B, T, dim) or (T, dim), in ``dtype``."""
        length = int(position_ids.max()) + 1 if self.scaling == "dynamic" else None
        frequencies = rotary_frequencies(self.dim, self.theta, self.scaling, self.factor, self.max_positions, length)
        angles = position_ids[..., None].float() * frequencies.to(position_ids.device)  # (..., T, dim / 2)
        angles = torch.cat((angles, angles), dim=-1)  # (..., T, dim): both halves of a pair turn alike
        return angles.cos().to(dtype), angles.sin().to(dtype)


def rotate_half(x: Tensor) -> Tensor:
    """(x1, x2) -> (-x2, x1) over the two halves of the last dimension: a quarter turn of every pair."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor, in_float32: bool = False) -> Tensor:
    """Rotate queries or keys ``x`` (B, nh, T, hs) by the angles of ``cos``, ``sin`` (B, T, hs) or (T, hs).

    ``in_float32`` rotates in float32 and casts back, as ModernBERT does; NomicBERT and GTE
    rotate in the model's dtype (the same in fp32, not quite in bf16).
    """
    cos, sin = cos.unsqueeze(-3), sin.unsqueeze(-3)  # (B, 1, T, hs): the same rotation for every head
    if in_float32:
        return (x.float() * cos + rotate_half(x.float()) * sin).to(x.dtype)
    return x * cos + rotate_half(x) * sin
