"""Shared fixtures: tiny random checkpoints made by transformers itself, in every layout minibert reads.

Tests never touch the network: HF_HUB_OFFLINE is set before huggingface_hub is imported.
"""

import json
import os
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import pytest
import torch
import transformers

import minibert

transformers.utils.logging.disable_progress_bar()

# Tiny configs that differ where the code could go wrong: widths, head counts, activations,
# token types, padding ids, LayerNorm eps, untied decoders.
BERT_CONFIGS = {
    "bert-a": dict(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=64,
        type_vocab_size=2,
        pad_token_id=0,
    ),
    "bert-b": dict(
        vocab_size=120,
        hidden_size=48,
        num_hidden_layers=3,
        num_attention_heads=3,
        intermediate_size=64,
        hidden_act="gelu_new",
        max_position_embeddings=40,
        type_vocab_size=3,
        pad_token_id=5,
        layer_norm_eps=1e-5,
    ),
    "bert-c": dict(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=24,
        hidden_act="relu",
        max_position_embeddings=32,
        type_vocab_size=1,
        pad_token_id=3,
        tie_word_embeddings=False,
        num_labels=3,
    ),
}
ROBERTA_CONFIGS = {
    "roberta-a": dict(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=40,
        type_vocab_size=1,
        pad_token_id=1,
    ),
    "roberta-b": dict(
        vocab_size=80,
        hidden_size=24,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=48,
        hidden_act="silu",
        max_position_embeddings=30,
        type_vocab_size=2,
        pad_token_id=4,
        layer_norm_eps=1e-5,
        num_labels=4,
    ),
}
# ALBERT: narrower embeddings, and layers shared across depth in every arrangement:
# one group, several groups of several layers, and groups that do not divide the depth.
ALBERT_CONFIGS = {
    "albert-a": dict(
        vocab_size=99,
        embedding_size=16,
        hidden_size=32,
        num_hidden_layers=3,
        num_hidden_groups=1,
        inner_group_num=1,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=64,
        type_vocab_size=2,
        pad_token_id=0,
    ),
    "albert-b": dict(
        vocab_size=80,
        embedding_size=8,
        hidden_size=24,
        num_hidden_layers=4,
        num_hidden_groups=2,
        inner_group_num=2,
        num_attention_heads=2,
        intermediate_size=30,
        hidden_act="gelu",
        max_position_embeddings=40,
        type_vocab_size=3,
        pad_token_id=2,
        layer_norm_eps=1e-5,
        num_labels=3,
    ),
    "albert-c": dict(
        vocab_size=64,
        embedding_size=16,
        hidden_size=16,
        num_hidden_layers=5,
        num_hidden_groups=3,
        inner_group_num=1,
        num_attention_heads=2,
        intermediate_size=24,
        hidden_act="relu",
        max_position_embeddings=32,
        type_vocab_size=1,
        pad_token_id=3,
        tie_word_embeddings=False,
    ),
}
# XLM-RoBERTa and CamemBERT are RoBERTa's model under their own model_type: one config each.
XLM_ROBERTA_CONFIGS = {
    "xlm-roberta-a": dict(
        vocab_size=70,
        hidden_size=24,
        num_hidden_layers=2,
        num_attention_heads=3,
        intermediate_size=30,
        max_position_embeddings=36,
        type_vocab_size=1,
        pad_token_id=1,
    ),
}
CAMEMBERT_CONFIGS = {
    "camembert-a": dict(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=40,
        hidden_act="gelu_new",
        max_position_embeddings=30,
        type_vocab_size=2,
        pad_token_id=3,
        tie_word_embeddings=False,
    ),
}
CONFIGS = {**BERT_CONFIGS, **ROBERTA_CONFIGS, **ALBERT_CONFIGS, **XLM_ROBERTA_CONFIGS, **CAMEMBERT_CONFIGS}

BERT_CLASSES = [
    "BertModel",
    "BertForMaskedLM",
    "BertForPreTraining",
    "BertForNextSentencePrediction",
    "BertForSequenceClassification",
    "BertForTokenClassification",
    "BertForQuestionAnswering",
    "BertForMultipleChoice",
]
ROBERTA_CLASSES = [
    "RobertaModel",
    "RobertaForMaskedLM",
    "RobertaForSequenceClassification",
    "RobertaForTokenClassification",
    "RobertaForQuestionAnswering",
    "RobertaForMultipleChoice",
]
ALBERT_CLASSES = [
    "AlbertModel",
    "AlbertForMaskedLM",
    "AlbertForPreTraining",
    "AlbertForSequenceClassification",
    "AlbertForTokenClassification",
    "AlbertForQuestionAnswering",
    "AlbertForMultipleChoice",
]
XLM_ROBERTA_CLASSES = [name.replace("Roberta", "XLMRoberta") for name in ROBERTA_CLASSES]
CAMEMBERT_CLASSES = [name.replace("Roberta", "Camembert") for name in ROBERTA_CLASSES]
CLASSES = BERT_CLASSES + ROBERTA_CLASSES + ALBERT_CLASSES + XLM_ROBERTA_CLASSES + CAMEMBERT_CLASSES
# family -> (configs, class-name prefix, transformers config class)
FAMILIES = {
    "bert": (BERT_CONFIGS, "Bert", transformers.BertConfig),
    "roberta": (ROBERTA_CONFIGS, "Roberta", transformers.RobertaConfig),
    "albert": (ALBERT_CONFIGS, "Albert", transformers.AlbertConfig),
    "xlm-roberta": (XLM_ROBERTA_CONFIGS, "XLMRoberta", transformers.XLMRobertaConfig),
    "camembert": (CAMEMBERT_CONFIGS, "Camembert", transformers.CamembertConfig),
}


def family_of(name: str) -> str:
    """The family ('bert', 'xlm-roberta', ...) of a class name or a config name."""
    return next(f for f, (_, prefix, _) in FAMILIES.items() if name.startswith((f + "-", prefix)))


def base_class_of(class_name: str) -> str:
    """The base model class of a head class: 'BertModel' for 'BertForMaskedLM'."""
    return FAMILIES[family_of(class_name)][1] + "Model"


def task_of(class_name: str) -> str:
    """What a class does: 'ForMaskedLM' for 'BertForMaskedLM', 'Model' for a base model."""
    return class_name.removeprefix(FAMILIES[family_of(class_name)][1])


def config_names_for(class_name: str) -> list[str]:
    return list(FAMILIES[family_of(class_name)][0])


def hf_config(config_name: str) -> transformers.PretrainedConfig:
    return FAMILIES[family_of(config_name)][2](**CONFIGS[config_name])


def hf_model(class_name: str, config_name: str, seed: int = 0, attn: str = "sdpa") -> torch.nn.Module:
    """A transformers model with random weights, every tensor non-trivial (biases and LayerNorms too)."""
    torch.manual_seed(seed)
    config = hf_config(config_name)
    if class_name.endswith(("QuestionAnswering", "AlbertForPreTraining")):
        config.num_labels = 2  # a start and an end score per token; in order or swapped
    config._attn_implementation = attn
    model = getattr(transformers, class_name)(config)
    with torch.no_grad():  # transformers inits biases to 0 and LayerNorms to 1/0: randomise so they count
        for name, param in model.named_parameters():
            if name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name:
                param.add_(torch.randn_like(param) * 0.1)
    return model.eval()


def make_inputs(
    config_name: str, batch: int = 3, length: int = 11, seed: int = 1, choices: int | None = None
) -> dict[str, torch.Tensor]:
    """Ids with right padding of different lengths per row, and token types where the config has them."""
    values = CONFIGS[config_name]
    pad = values["pad_token_id"]
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, length) if choices is None else (batch, choices, length)
    input_ids = torch.randint(0, values["vocab_size"], shape, generator=generator)
    input_ids[input_ids == pad] = pad + 1
    lengths = torch.randint(2, length + 1, shape[:-1], generator=generator)
    lengths.view(-1)[0] = length  # one row without padding
    attention_mask = (torch.arange(length) < lengths.unsqueeze(-1)).long()
    input_ids[attention_mask == 0] = pad
    token_type_ids = torch.zeros_like(input_ids)
    if values["type_vocab_size"] > 1:
        token_type_ids = torch.randint(0, values["type_vocab_size"], shape, generator=generator)
        token_type_ids[attention_mask == 0] = 0
    return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}


def inputs_for(class_name: str, config_name: str, **kwargs) -> dict[str, torch.Tensor]:
    choices = 2 if class_name.endswith("MultipleChoice") else None
    return make_inputs(config_name, choices=choices, **kwargs)


def assert_outputs_close(ours, theirs, atol: float = 1e-5) -> None:
    """Every tensor field transformers returns is matched by minibert's, within atol."""
    compared = 0
    for name in (
        "last_hidden_state",
        "pooler_output",
        "logits",
        "prediction_logits",
        "seq_relationship_logits",
        "start_logits",
        "end_logits",
        "loss",
    ):
        expected = getattr(theirs, name, None)
        if expected is None:
            continue
        actual = getattr(ours, name)
        assert actual is not None, f"minibert returned no {name}"
        assert actual.shape == expected.shape, f"{name}: shape {actual.shape} vs {expected.shape}"
        torch.testing.assert_close(actual, expected, atol=atol, rtol=0, msg=lambda m, n=name: f"{n}: {m}")
        compared += 1
    for name in ("hidden_states", "attentions"):
        expected = getattr(theirs, name, None)
        if expected:
            actual = getattr(ours, name)
            assert len(actual) == len(expected), f"{name}: {len(actual)} vs {len(expected)}"
            for i, (a, b) in enumerate(zip(actual, expected, strict=True)):
                torch.testing.assert_close(a, b, atol=atol, rtol=0, msg=lambda m, n=name, i=i: f"{n}[{i}]: {m}")
            compared += 1
    assert compared, "nothing was compared"


def save_bin(
    state: dict[str, torch.Tensor], folder: Path, config: transformers.PretrainedConfig, shards: int = 1
) -> Path:
    """A pytorch_model.bin checkpoint (or shards and an index), as transformers 4.x wrote them."""
    folder.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(folder)
    state = {k: v.detach().clone().contiguous() for k, v in state.items()}
    if shards == 1:
        torch.save(state, folder / "pytorch_model.bin")
        return folder
    keys = list(state)
    weight_map = {}
    for number in range(shards):
        name = f"pytorch_model-{number + 1:05d}-of-{shards:05d}.bin"
        part = keys[number::shards]
        torch.save({k: state[k] for k in part}, folder / name)
        weight_map.update(dict.fromkeys(part, name))
    index = {"metadata": {"total_size": 0}, "weight_map": weight_map}
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    return folder


def legacy_state(state: dict[str, torch.Tensor], max_positions: int) -> dict[str, torch.Tensor]:
    """TF-era names: LayerNorm.gamma/beta, plus the position_ids buffer old versions saved."""
    renamed = {}
    for key, value in state.items():
        key = key.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        renamed[key] = value
    prefix = next((p for p in ("bert.", "roberta.", "albert.") if any(k.startswith(p) for k in state)), "")
    renamed[f"{prefix}embeddings.position_ids"] = torch.arange(max_positions).unsqueeze(0)
    return renamed


LAYOUTS = ["safetensors", "sharded-safetensors", "bin", "sharded-bin", "legacy-bin"]


@pytest.fixture(scope="session")
def checkpoint_dir(tmp_path_factory):
    """checkpoint_dir(class_name, config_name, layout) -> a folder holding that checkpoint, made once."""
    made: dict[tuple[str, str, str], Path] = {}

    def make(class_name: str, config_name: str, layout: str = "safetensors") -> Path:
        key = (class_name, config_name, layout)
        if key not in made:
            folder = tmp_path_factory.mktemp(f"{class_name}-{config_name}-{layout}")
            model = hf_model(class_name, config_name)
            state = {k: v for k, v in model.state_dict().items()}
            if layout == "safetensors":
                model.save_pretrained(folder)
            elif layout == "sharded-safetensors":
                model.save_pretrained(folder, max_shard_size="4KB")
                assert (folder / "model.safetensors.index.json").exists()
            elif layout == "bin":
                save_bin(state, folder, model.config)
            elif layout == "sharded-bin":
                save_bin(state, folder, model.config, shards=3)
            elif layout == "legacy-bin":
                save_bin(legacy_state(state, model.config.max_position_embeddings), folder, model.config)
            else:
                raise ValueError(layout)
            made[key] = folder
        return made[key]

    return make


@pytest.fixture(scope="session")
def tokenizer_folders(tmp_path_factory) -> dict[str, Path]:
    """Tokenizer folders by name (minilm, wordpiece, bpe, unigram and variants): see tokenizer_data.py."""
    from tokenizer_data import make_tokenizer_folders

    return make_tokenizer_folders(tmp_path_factory.mktemp("tokenizers"))


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    from minibert.cli import default_checkpoint

    return default_checkpoint()


def ours_class(class_name: str) -> type[minibert.PreTrainedModel]:
    return getattr(minibert, class_name)


@pytest.fixture(scope="session")
def reference():
    """reference(class_name, config_name, attn="sdpa") -> the transformers model the checkpoints were saved from."""
    made: dict[tuple[str, str, str], torch.nn.Module] = {}

    def get(class_name: str, config_name: str, attn: str = "sdpa") -> torch.nn.Module:
        key = (class_name, config_name, attn)
        if key not in made:
            made[key] = hf_model(class_name, config_name, attn=attn)
        return made[key]

    return get
