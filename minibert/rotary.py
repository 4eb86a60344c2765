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

import torch
from torch import Tensor, nn

SCALINGS = ("default", "linear", "dynamic")


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
