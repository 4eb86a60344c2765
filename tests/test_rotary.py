"""Rotary position embeddings equal transformers' for every rope type minibert supports."""

import pytest
import torch
import transformers
from transformers.models.gte import modeling_gte
from transformers.models.modernbert import modeling_modernbert

from minibert.rotary import RotaryEmbedding, apply_rotary, rotary_frequencies


def gte_config(rope: dict) -> transformers.GteConfig:
    return transformers.GteConfig(
        hidden_size=48, num_attention_heads=4, max_position_embeddings=32, rope_parameters=rope
    )


@pytest.mark.parametrize(
    "rope",
    [
        {"rope_type": "default", "rope_theta": 10000.0},
        {"rope_type": "default", "rope_theta": 160000.0},
        {"rope_type": "linear", "rope_theta": 500.0, "factor": 4.0},
        {"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0},
    ],
)
@pytest.mark.parametrize("length", [7, 32, 75])  # below, at and beyond the trained length (dynamic NTK stretches)
def test_rotation_matches_transformers(rope, length):
    config = gte_config(rope)
    theirs = modeling_gte.GteRotaryEmbedding(config)
    ours = RotaryEmbedding(12, rope["rope_theta"], rope["rope_type"], rope.get("factor", 1.0), 32)
    generator = torch.Generator().manual_seed(0)
    q = torch.randn(2, 4, length, 12, generator=generator)
    positions = torch.arange(length).expand(2, length)
    cos, sin = theirs(q, positions)
    expected, _ = modeling_gte.apply_rotary_pos_emb(q, q, cos, sin)
    torch.testing.assert_close(apply_rotary(q, *ours(positions, q.dtype)), expected, atol=1e-6, rtol=0)


def test_float32_rotation_of_bf16_matches_modernbert():
    config = transformers.ModernBertConfig(hidden_size=32, num_attention_heads=2, global_rope_theta=160000.0)
    theirs = modeling_modernbert.ModernBertRotaryEmbedding(config)
    q = torch.randn(1, 2, 9, 16).bfloat16()
    positions = torch.arange(9)[None]
    cos, sin = theirs(q, positions, "full_attention")
    expected, _ = modeling_modernbert.apply_rotary_pos_emb(q, q, cos, sin)
    ours = RotaryEmbedding(16, 160000.0)
    assert torch.equal(apply_rotary(q, *ours(positions, q.dtype), in_float32=True), expected)


def test_frequencies_fall_from_one_to_one_over_theta_and_unknown_scalings_are_refused():
    torch.testing.assert_close(rotary_frequencies(4, 100.0), torch.tensor([1.0, 0.1]))
    with pytest.raises(ValueError, match="rope scaling 'yarn' is not supported"):
        RotaryEmbedding(8, 10000.0, "yarn")
