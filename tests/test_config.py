"""Configs read config.json as transformers does, keep what they do not use, and refuse nonsense."""

import dataclasses
import json

import pytest
import torch
import transformers
from transformers.activations import ACT2FN

import minibert
from minibert.activations import ACTIVATIONS
from minibert.config import EncoderConfig


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (minibert.BertConfig, transformers.BertConfig),
        (minibert.RobertaConfig, transformers.RobertaConfig),
        (minibert.AlbertConfig, transformers.AlbertConfig),
    ],
)
def test_defaults_equal_transformers(ours, theirs):
    reference = theirs()
    for field in dataclasses.fields(ours):
        if field.name in ("extra", "position_embedding_type") or not hasattr(reference, field.name):
            continue
        assert getattr(ours(), field.name) == getattr(reference, field.name), field.name


def test_reads_config_json_keeps_unknown_keys_and_writes_them_back(tmp_path):
    values = transformers.BertConfig(
        hidden_size=64, num_attention_heads=4, id2label={0: "neg", 1: "pos", 2: "mid"}, my_custom_key=[1, 2]
    ).to_dict()
    (tmp_path / "config.json").write_text(json.dumps(values))
    config = minibert.BertConfig.from_pretrained(tmp_path)
    assert config.hidden_size == 64 and config.num_labels == 3
    assert config.id2label == {0: "neg", 1: "pos", 2: "mid"} and config.label2id["mid"] == 2
    assert config.extra["my_custom_key"] == [1, 2]
    written = config.to_dict()
    assert written["my_custom_key"] == [1, 2] and written["model_type"] == "bert"
    reread = transformers.BertConfig.from_dict(written)
    for key in ("hidden_size", "num_attention_heads", "id2label", "my_custom_key"):
        assert getattr(reread, key) == getattr(transformers.BertConfig.from_dict(values), key), key
    assert minibert.BertConfig.from_dict(written) == config


def test_num_labels_override_replaces_the_label_names():
    config = minibert.BertConfig.from_dict({"id2label": {"0": "a", "1": "b"}}, num_labels=4)
    assert config.num_labels == 4 and config.id2label == {i: f"LABEL_{i}" for i in range(4)}


def test_auto_config_dispatches_on_model_type(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "roberta", "vocab_size": 10}))
    config = minibert.AutoConfig.from_pretrained(tmp_path)
    assert type(config) is minibert.RobertaConfig and config.vocab_size == 10 and config.pad_token_id == 1


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"hidden_size": 30, "num_attention_heads": 4}, "num_attention_heads"),
        ({"hidden_act": "gelu_wrong"}, "hidden_act"),
        ({"num_hidden_layers": 0}, "num_hidden_layers"),
        ({"vocab_size": "30522"}, "vocab_size"),
        ({"hidden_dropout_prob": 1.5}, "hidden_dropout_prob"),
        ({"pad_token_id": 40000}, "pad_token_id"),
        ({"position_embedding_type": "relative_key"}, "position_embedding_type"),
        ({"is_decoder": True}, "is_decoder"),
        ({"num_labels": 3, "id2label": {0: "a"}}, "id2label"),
        ({"problem_type": "ranking"}, "problem_type"),
    ],
)
def test_invalid_values_raise_config_error_naming_the_field(changes, named):
    with pytest.raises(minibert.ConfigError, match=named):
        minibert.BertConfig(**changes)


@pytest.mark.parametrize("field", ["embedding_size", "num_hidden_groups", "inner_group_num"])
def test_albert_sizes_must_be_positive(field):
    with pytest.raises(minibert.ConfigError, match=field):
        minibert.AlbertConfig(**{field: 0})


def test_roberta_needs_room_after_its_padding_offset():
    with pytest.raises(minibert.ConfigError, match="max_position_embeddings"):
        minibert.RobertaConfig(max_position_embeddings=2, pad_token_id=1)


def test_unknown_override_is_an_error_not_ignored():
    with pytest.raises(minibert.ConfigError, match="num_lables"):
        minibert.BertConfig.from_dict({}, num_lables=3)


@pytest.mark.parametrize("problem", ["not json", "[1, 2]"])
def test_unreadable_config_json_names_the_file(tmp_path, problem):
    (tmp_path / "config.json").write_text(problem)
    with pytest.raises(minibert.ConfigError, match=r"config\.json"):
        minibert.AutoConfig.from_pretrained(tmp_path)


def test_unsupported_model_type_is_named(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(minibert.ConfigError, match="gpt2"):
        minibert.AutoConfig.from_pretrained(tmp_path)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activations_match_transformers(name):
    x = torch.linspace(-6, 6, 1001)
    torch.testing.assert_close(ACTIVATIONS[name](x), ACT2FN[name](x), atol=1e-6, rtol=0)


def test_configs_are_frozen_data():
    config = minibert.BertConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.hidden_size = 8
    assert config.replace(hidden_size=24, num_attention_heads=4).hidden_size == 24
    assert issubclass(minibert.RobertaConfig, EncoderConfig)
