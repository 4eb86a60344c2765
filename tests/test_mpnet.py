"""MPNet's own promises: the relative-position buckets and their bias, padding id 1, its calling conventions.

Parity on every class, config and layout, losses, training, loading, saving and surgery run in the
shared tests (test_parity.py, test_finetune.py, ...) on conftest's MPNet configs; the reference is
transformers' MPNet, which has eager attention only.
"""

import copy
import inspect
import json

import pytest
import torch
import transformers
from conftest import MPNET_CLASSES, MPNET_CONFIGS, assert_outputs_close, inputs_for, make_inputs
from torch import nn
from transformers.models.mpnet.modeling_mpnet import MPNetEncoder as TheirEncoder

import minibert
from minibert import mpnet
from minibert.config import config_class_for
from minibert.mpnet import MPNetConfig

# -- the relative-position bias -------------------------------------------------------------


@pytest.mark.parametrize(("num_buckets", "max_distance"), [(32, 128), (16, 20), (64, 256), (33, 50), (8, 8)])
def test_relative_position_bucket_equals_transformers(num_buckets, max_distance):
    relative = torch.arange(-700, 701)[:, None] + torch.tensor([0, 1])[None, :]  # (1401, 2): any shape
    expected = TheirEncoder.relative_position_bucket(relative, num_buckets=num_buckets, max_distance=max_distance)
    assert torch.equal(mpnet.relative_position_bucket(relative, num_buckets, max_distance), expected)


def test_long_sequences_reach_the_far_buckets_and_still_match_transformers(checkpoint_dir, reference):
    """150 tokens: distances past max_distance (128) fall in the last bucket of each half."""
    model = mpnet.MPNetModel.from_pretrained(checkpoint_dir("MPNetModel", "mpnet-a"))
    theirs = reference("MPNetModel", "mpnet-a")
    length = 150
    positions = torch.arange(length)
    used = set(mpnet.relative_position_bucket(positions[None, :] - positions[:, None]).unique().tolist())
    assert used == set(range(32)) - {16}  # every bucket (16 would be a key after the query at distance 0)
    inputs = make_inputs("mpnet-a", batch=2, length=length)
    inputs["attention_mask"][1, 120:] = 0
    with torch.no_grad():
        expected = theirs(**inputs, output_hidden_states=True, output_attentions=True)
        assert_outputs_close(model(**inputs, output_hidden_states=True, output_attentions=True), expected)
        assert_outputs_close(model(**inputs, output_hidden_states=True), theirs(**inputs, output_hidden_states=True))
        model.set_unpadding(True)
        unpadded = model(**inputs).last_hidden_state
    real = inputs["attention_mask"].bool()
    torch.testing.assert_close(unpadded[real], expected.last_hidden_state[real], atol=1e-5, rtol=0)


def test_position_bias_is_computed_once_per_forward_and_shared_by_every_layer(checkpoint_dir):
    """transformers computes it once too (``MPNetEncoder.forward``); the outputs are test_parity's."""
    model = mpnet.MPNetModel.from_pretrained(checkpoint_dir("MPNetModel", "mpnet-b"))  # 3 layers
    lookups, biases = [], []
    model.encoder.relative_attention_bias.register_forward_hook(lambda *_: lookups.append(1))
    for layer in model.encoder.layer:
        layer.attention.attn.register_forward_pre_hook(lambda module, args: biases.append(args[1].bias))
    with torch.no_grad():
        model(**make_inputs("mpnet-b"))
    assert len(lookups) == 1 and len(biases) == 3
    assert all(bias is biases[0] for bias in biases) and biases[0].shape == (3, 3, 11, 11)  # (B, nh, T, T)


def test_pruned_heads_read_their_own_rows_of_the_bias_on_the_unpadded_path(checkpoint_dir, reference):
    """transformers 4.x, which could prune, crashed here: its bias kept every head. Compared with the unpruned
    transformers model whose ``o`` ignores the pruned heads (padded: test_finetune's pruning tests)."""
    model = mpnet.MPNetModel.from_pretrained(checkpoint_dir("MPNetModel", "mpnet-a"))  # 4 heads of size 8
    model.prune_heads({0: [1, 3], 1: [0, 1, 2]})
    theirs = copy.deepcopy(reference("MPNetModel", "mpnet-a"))
    with torch.no_grad():
        theirs.encoder.layer[0].attention.attn.o.weight[:, 8:16] = 0
        theirs.encoder.layer[0].attention.attn.o.weight[:, 24:] = 0
        theirs.encoder.layer[1].attention.attn.o.weight[:, :24] = 0
        inputs = make_inputs("mpnet-a", batch=4, length=13)
        expected = theirs(**inputs).last_hidden_state
        model.set_unpadding(True)
        fast = model(**inputs).last_hidden_state
    real = inputs["attention_mask"].bool()
    torch.testing.assert_close(fast[real], expected[real], atol=1e-5, rtol=0)


# -- padding id 1 ---------------------------------------------------------------------------


@pytest.mark.parametrize("config_name", ["mpnet-b", "mpnet-c"])  # pad ids 3 and 0
def test_embeddings_pad_with_id_1_whatever_pad_token_id_says(config_name, reference):
    """Row 1 of both tables is the padding row, and positions skip id 1: every shared parity test's batch
    holds a real token 1 (make_inputs), which a model padding with pad_token_id would count."""
    model = mpnet.MPNetModel(MPNetConfig(**MPNET_CONFIGS[config_name]))
    theirs = reference("MPNetModel", config_name)
    for table in ("word_embeddings", "position_embeddings"):
        ours_table, their_table = getattr(model.embeddings, table), getattr(theirs.embeddings, table)
        assert ours_table.padding_idx == their_table.padding_idx == 1 != MPNET_CONFIGS[config_name]["pad_token_id"]
    inputs = make_inputs(config_name)
    assert (inputs["input_ids"][inputs["attention_mask"] == 1] == 1).any()


# -- calling conventions: no token types, output flags by position ------------------------------


@pytest.mark.parametrize("class_name", MPNET_CLASSES)
def test_forward_takes_transformers_inputs_in_transformers_order(class_name):
    """The output flags too: transformers' MPNet names them in its signature, where they can be passed by position."""
    theirs = inspect.signature(getattr(transformers, class_name).forward).parameters
    mine = inspect.signature(getattr(mpnet, class_name).forward).parameters
    assert [n for n, p in mine.items() if p.kind is not p.VAR_KEYWORD] == [
        n for n, p in theirs.items() if p.kind is not p.VAR_KEYWORD
    ]
    assert "token_type_ids" not in mine


def test_token_type_ids_are_dropped_as_transformers_drops_them_and_other_extras_refused(checkpoint_dir, reference):
    model = mpnet.MPNetForSequenceClassification.from_pretrained(
        checkpoint_dir("MPNetForSequenceClassification", "mpnet-a")
    )
    theirs = reference("MPNetForSequenceClassification", "mpnet-a")
    inputs = make_inputs("mpnet-a")
    types = torch.randint(0, 2, inputs["input_ids"].shape)
    with torch.no_grad():
        expected = theirs(**inputs).logits
        torch.testing.assert_close(theirs(**inputs, token_type_ids=types).logits, expected, atol=0, rtol=0)
        torch.testing.assert_close(model(**inputs, token_type_ids=types).logits, expected, atol=1e-5, rtol=0)
        with pytest.raises(TypeError, match="unexpected keyword argument 'attention_masks'"):
            model(inputs["input_ids"], attention_masks=inputs["attention_mask"])
        with pytest.raises(ValueError, match="head_mask is not supported"):
            model(**inputs, head_mask=torch.ones(2, 4))
        with pytest.raises(TypeError, match="pass return_dict by keyword"):
            model(inputs["input_ids"], inputs["attention_mask"], None, None, None, None, None, False)


@pytest.mark.parametrize("class_name", ["MPNetModel", "MPNetForQuestionAnswering", "MPNetForMultipleChoice"])
def test_positional_flags_and_return_dict_false_give_transformers_tuple(class_name, checkpoint_dir, reference):
    folder = checkpoint_dir(class_name, "mpnet-c")
    model = getattr(mpnet, class_name).from_pretrained(folder, output_attentions=True)
    theirs = reference(class_name, "mpnet-c")
    inputs = inputs_for(class_name, "mpnet-c")
    # input_ids, attention_mask, position_ids, inputs_embeds, [span positions,] output_attentions, output_hidden_states
    middle = (None,) if class_name.endswith("MultipleChoice") else (None, None) if "Answering" in class_name else ()
    args = (inputs["input_ids"], inputs["attention_mask"], None, None, *middle, True, True)
    with torch.no_grad():
        mine, expected = model(*args, return_dict=False), theirs(*args, return_dict=False)
        assert model(*args[:-2], False, False).attentions is None  # a flag passed by position overrides the config
    assert isinstance(mine, tuple) and len(mine) == len(expected)
    for a, b in zip(mine, expected, strict=True):
        for x, y in zip(a, b, strict=True) if isinstance(a, tuple) else [(a, b)]:
            torch.testing.assert_close(x, y, atol=1e-5, rtol=0)


# -- the config -----------------------------------------------------------------------------


def test_config_has_transformers_fields_and_defaults_and_round_trips(checkpoint_dir):
    theirs = transformers.MPNetConfig().to_dict()
    mine = MPNetConfig().to_dict()
    shared = {k for k in theirs if k in mine and k not in ("architectures", "id2label", "label2id")}
    assert {"relative_attention_num_buckets", "pad_token_id", "vocab_size", "layer_norm_eps"} <= shared
    assert {k: mine[k] for k in shared} == {k: theirs[k] for k in shared}
    folder = checkpoint_dir("MPNetForSequenceClassification", "mpnet-b")
    values = json.loads((folder / "config.json").read_text())
    config = config_class_for(values).from_dict(values)
    assert isinstance(config, MPNetConfig) and config.relative_attention_num_buckets == 40 and config.num_labels == 3
    again = transformers.MPNetConfig.from_dict(config.to_dict())
    assert again.relative_attention_num_buckets == 40 and again.pad_token_id == 3


def test_config_refuses_a_bucket_table_smaller_than_the_lookup():
    """transformers builds such a table, then fails on the first forward: it looks up 32 buckets."""
    values = dict(vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8)
    theirs = transformers.MPNetModel(transformers.MPNetConfig(**values, relative_attention_num_buckets=16))
    with pytest.raises(IndexError, match="index out of range"):
        theirs(torch.tensor([[0, 5, 6, 2]]))
    with pytest.raises(minibert.ConfigError, match="relative_attention_num_buckets must be an integer >= 32, got 16"):
        MPNetConfig(**values, relative_attention_num_buckets=16)
    with pytest.raises(minibert.ConfigError, match="positions count from 2"):
        MPNetConfig(max_position_embeddings=2)


def test_heads_read_hidden_dropout_not_classifier_dropout_as_transformers_does():
    config = MPNetConfig(**MPNET_CONFIGS["mpnet-c"], hidden_dropout_prob=0.3, classifier_dropout=0.7)
    model = mpnet.MPNetForSequenceClassification(config)
    assert {m.p for m in model.classifier.modules() if isinstance(m, nn.Dropout)} == {0.3}
    theirs = transformers.MPNetForSequenceClassification(transformers.MPNetConfig.from_dict(config.to_dict()))
    assert {m.p for m in theirs.classifier.modules() if isinstance(m, nn.Dropout)} == {0.3}
