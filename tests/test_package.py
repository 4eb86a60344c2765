"""What users of the package rely on before any model runs."""

import subprocess
import sys

import transformers
from conftest import CLASSES

import minibert


def test_import_does_not_import_transformers_or_the_hub_client():
    code = "import sys, minibert; print(sorted(m for m in ('transformers', 'huggingface_hub') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_public_names_are_importable_with_transformers_names():
    for name in minibert.__all__:
        assert getattr(minibert, name) is not None, name
    auto = [
        f"AutoModel{head}"
        for head in (
            "",
            "ForMaskedLM",
            "ForPreTraining",
            "ForSequenceClassification",
            "ForTokenClassification",
            "ForQuestionAnswering",
            "ForMultipleChoice",
        )
    ]
    for name in [*CLASSES, *auto, "AutoConfig", "BertConfig", "RobertaConfig", "AlbertConfig"]:
        assert name in minibert.__all__ and getattr(transformers, name).__name__ == name, name


def test_outputs_index_like_transformers_outputs():
    config = minibert.BertConfig(
        vocab_size=20,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=16,
    )
    import torch

    outputs = minibert.BertModel(config).eval()(torch.tensor([[1, 2, 3]]))
    assert outputs[0] is outputs.last_hidden_state and outputs[1] is outputs.pooler_output
    assert outputs["pooler_output"] is outputs.pooler_output and len(outputs.to_tuple()) == 2
