"""`minibert inspect` and `minibert verify` work on every architecture: a tiny checkpoint of each passes."""

import pytest
import torch
import transformers
from conftest import FAMILIES, config_names_for

from minibert.cli import main

BASES = [f"{prefix}Model" for _, prefix, _ in FAMILIES.values()]


@pytest.mark.parametrize("class_name", BASES)
def test_verify_passes_and_inspect_reads_every_architecture(class_name, checkpoint_dir, capsys):
    folder = checkpoint_dir(class_name, config_names_for(class_name)[0])
    assert main(["inspect", str(folder)]) == 0
    assert main(["verify", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "PASS: max abs difference" in out and "layer 1" in out


# The modern encoders, from tiny configs made here (ModernBERT runs unpadded: verify compares real tokens).
MODERN = {
    "ModernBertModel": lambda: transformers.ModernBertConfig(
        vocab_size=60,
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=40,
        max_position_embeddings=64,
        local_attention=4,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        cls_token_id=1,
        sep_token_id=2,
    ),
    "DebertaV2Model": lambda: transformers.DebertaV2Config(
        vocab_size=60,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=40,
        max_position_embeddings=64,
        relative_attention=True,
        pos_att_type=["p2c", "c2p"],
        position_buckets=8,
        share_att_key=True,
        norm_rel_ebd="layer_norm",
        position_biased_input=False,
        type_vocab_size=0,
    ),
    "NomicBertModel": lambda: transformers.NomicBertConfig(
        vocab_size=60,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=40,
        max_position_embeddings=64,
    ),
    "GteModel": lambda: transformers.GteConfig(
        vocab_size=60,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=40,
        max_position_embeddings=64,
    ),
}


@pytest.mark.parametrize("class_name", MODERN)
def test_verify_passes_on_the_modern_encoders(class_name, tmp_path, capsys):
    torch.manual_seed(0)
    getattr(transformers, class_name)(MODERN[class_name]()).save_pretrained(tmp_path)
    assert main(["inspect", str(tmp_path)]) == 0
    assert main(["verify", str(tmp_path)]) == 0
    assert "PASS: max abs difference" in capsys.readouterr().out
