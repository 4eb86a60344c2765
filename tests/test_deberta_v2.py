"""DeBERTa-v2 and v3's own promises: relative positions and buckets, the two masked-LM heads, DeBERTa's
losses, positional flags, pruning and resizing, the config and the tokenizer.

Parity on every class, config and layout, losses, training, fast paths, loading and saving run in the
shared tests (test_parity.py, test_finetune.py, ...) on conftest's DeBERTa configs, which differ where
DeBERTa could go wrong:

* ``deberta-v3``: as microsoft/deberta-v3-*: log-bucketed positions (8 buckets, so sequences of 11
  reach the log-spaced ones, and longer ones the clamped ones), shared position projections,
  normalised relative embeddings, ``"p2c|c2p"`` as the Hub writes it, no absolute positions, no
  token types, v3's masked-LM head;
* ``deberta-v2``: the convolution after the first layer (grouped, GELU), narrower embeddings
  projected up, separate position projections, no buckets, ``max_relative_positions`` -1, token
  types, the legacy masked-LM head, a pad id other than 0, three labels, a tanh pooler.

The reference is transformers' DeBERTa-v2 (eager attention, the only one it has).
"""

import inspect
import json
import logging

import pytest
import torch
import transformers
from conftest import DEBERTA_CLASSES as CLASSES
from conftest import DEBERTA_CONFIGS as CONFIGS
from conftest import assert_outputs_close, assert_real_tokens_close, hf_model, inputs_for, make_inputs
from tokenizer_data import CORPUS, sentencepiece_model
from transformers.models.deberta_v2 import modeling_deberta_v2 as theirs_module

import minibert
from minibert import deberta_v2
from minibert.config import config_class_for
from minibert.deberta_v2 import DebertaV2Config
from minibert.tokenization import AutoTokenizer, DebertaV2Tokenizer, TokenizerError

CASES = [(c, n) for c in CLASSES for n in CONFIGS]


def without_token_types(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """conftest's batch for a config without a token-type table holds ids anyway (transformers ignores them)."""
    return {name: value for name, value in inputs.items() if name != "token_type_ids"}


def ours(class_name: str) -> type[minibert.PreTrainedModel]:
    return getattr(deberta_v2, class_name)


# -- relative positions ---------------------------------------------------------------------


@pytest.mark.parametrize(("buckets", "max_position"), [(256, 512), (8, 24), (8, 64), (7, 30), (32, 17)])
def test_log_buckets_equal_transformers(buckets, max_position):
    relative = torch.arange(-700, 701)[:, None] + torch.tensor([0, 1])[None, :]  # (1401, 2): any shape
    expected = theirs_module.make_log_bucket_position(relative, buckets, max_position)
    assert torch.equal(deberta_v2.make_log_bucket_position(relative, buckets, max_position), expected)
    length = 50
    tensor = torch.zeros(1, length, 4)
    expected = theirs_module.build_relative_position(tensor, tensor, buckets, max_position)  # (1, T, T)
    assert torch.equal(
        deberta_v2.build_relative_position(length, buckets, max_position, torch.device("cpu")), expected[0]
    )
    unbucketed = theirs_module.build_relative_position(tensor, tensor)[0]  # (T, T): query - key
    assert torch.equal(deberta_v2.build_relative_position(length, -1, max_position, torch.device("cpu")), unbucketed)


def test_long_sequences_reach_the_clamped_buckets_and_still_match_transformers(checkpoint_dir, reference):
    """60 tokens with 8 buckets over 24 positions: distances past 23 fall beyond the table and are clamped."""
    folder = checkpoint_dir("DebertaV2Model", "deberta-v3")
    model = deberta_v2.DebertaV2Model.from_pretrained(folder)
    theirs = reference("DebertaV2Model", "deberta-v3")
    length = 60
    span = 8
    buckets = deberta_v2.build_relative_position(length, span, 24, torch.device("cpu"))
    assert (buckets + span).max() > 2 * span - 1  # rows past the table's last: clamped
    inputs = make_inputs("deberta-v3", batch=2, length=length)
    inputs["attention_mask"][1, 41:] = 0
    with torch.no_grad():
        expected = theirs(**inputs, output_hidden_states=True, output_attentions=True)
        assert_outputs_close(model(**inputs, output_hidden_states=True, output_attentions=True), expected)
        assert_outputs_close(model(**inputs, output_hidden_states=True), theirs(**inputs, output_hidden_states=True))
        model.set_unpadding(True)
        unpadded = model(**inputs).last_hidden_state
    real = inputs["attention_mask"].bool()
    torch.testing.assert_close(unpadded[real], expected.last_hidden_state[real], atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "changes",
    [
        {"pos_att_type": ["c2p"]},  # one term: scores divided by sqrt(2 hs)
        {"pos_att_type": "p2c", "share_att_key": False},  # pos_query_proj alone
        {"relative_attention": False},  # the "p2c|c2p" terms still count in the scale, as in transformers
        {"norm_rel_ebd": "none", "position_buckets": -1, "max_relative_positions": 6},  # clamped, unbucketed
        {"position_biased_input": True, "type_vocab_size": 1, "max_relative_positions": -1},
    ],
)
def test_config_variants_match_transformers(changes):
    theirs = hf_model("DebertaV2Model", "deberta-v3", **changes)
    config = DebertaV2Config.from_dict(theirs.config.to_dict())
    model = deberta_v2.DebertaV2Model.from_pretrained(None, config=config, state_dict=dict(theirs.state_dict()))
    assert not model.load_report.missing and not model.load_report.unexpected
    inputs = without_token_types(make_inputs("deberta-v3", length=17))  # type_vocab_size 1 in one variant
    flags = {"output_hidden_states": True, "output_attentions": True}
    with torch.no_grad():
        assert_outputs_close(model(**inputs, **flags), theirs(**inputs, **flags))
        model.set_attn_implementation("eager")
        assert_outputs_close(model(**inputs, output_hidden_states=True), theirs(**inputs, output_hidden_states=True))


# The config.json of microsoft/deberta-v3-base and microsoft/deberta-v2-xlarge.
HUB_CONFIGS = {
    "deberta-v3-base": {
        "model_type": "deberta-v2",
        "attention_probs_dropout_prob": 0.1,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": 768,
        "initializer_range": 0.02,
        "intermediate_size": 3072,
        "max_position_embeddings": 512,
        "relative_attention": True,
        "position_buckets": 256,
        "norm_rel_ebd": "layer_norm",
        "share_att_key": True,
        "pos_att_type": "p2c|c2p",
        "layer_norm_eps": 1e-7,
        "max_relative_positions": -1,
        "position_biased_input": False,
        "num_attention_heads": 12,
        "num_hidden_layers": 12,
        "type_vocab_size": 0,
        "vocab_size": 128100,
    },
    "deberta-v2-xlarge": {
        "model_type": "deberta-v2",
        "attention_head_size": 64,
        "attention_probs_dropout_prob": 0.1,
        "conv_act": "gelu",
        "conv_kernel_size": 3,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": 1536,
        "initializer_range": 0.02,
        "intermediate_size": 6144,
        "layer_norm_eps": 1e-7,
        "max_position_embeddings": 512,
        "max_relative_positions": -1,
        "norm_rel_ebd": "layer_norm",
        "num_attention_heads": 24,
        "num_hidden_layers": 24,
        "pooler_dropout": 0,
        "pooler_hidden_act": "gelu",
        "pooler_hidden_size": 1536,
        "pos_att_type": "p2c|c2p",
        "position_biased_input": False,
        "position_buckets": 256,
        "relative_attention": True,
        "share_att_key": True,
        "type_vocab_size": 0,
        "vocab_size": 128100,
    },
}


@pytest.mark.parametrize("hub_config", HUB_CONFIGS)
@pytest.mark.parametrize("class_name", ["DebertaV2ForMaskedLM", "DebertaV2ForSequenceClassification"])
def test_hub_configs_build_transformers_keys_and_shapes(hub_config, class_name):
    """Built on the meta device: full-size shapes, no memory."""
    values = HUB_CONFIGS[hub_config]
    with torch.device("meta"):
        theirs = getattr(transformers, class_name)(transformers.DebertaV2Config.from_dict(values))
        mine = ours(class_name)(DebertaV2Config.from_dict(values))
    assert {k: v.shape for k, v in mine.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}


# -- DeBERTa's sequence loss, keys, outputs ------------------------------------------------------


@pytest.mark.parametrize(
    ("num_labels", "problem_type", "labels"),
    [
        (3, None, torch.tensor([2, -1, 0])),  # negative labels are left out, not an error
        (3, None, torch.tensor([-1, -100, -1])),  # none left: a loss of 0
        (3, None, torch.tensor([[0.2, 0.5, 0.3], [1.0, 0.0, 0.0], [0.0, 0.1, 0.9]])),  # soft targets, not BCE
        (1, None, torch.tensor([0.5, -1.25, 2.0])),  # regression: logits come back as (B,)
        (3, "multi_label_classification", torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [1.0, 1.0, 0.0]])),
        (1, "regression", torch.tensor([0.5, -1.25, 2.0])),
        (3, "single_label_classification", torch.tensor([2, 1, 0])),
    ],
)
def test_sequence_loss_is_debertas_own_without_a_problem_type(num_labels, problem_type, labels):
    theirs = hf_model("DebertaV2ForSequenceClassification", "deberta-v2", num_labels=num_labels)
    theirs.config.problem_type = problem_type
    values = theirs.config.to_dict()
    model = deberta_v2.DebertaV2ForSequenceClassification.from_pretrained(
        None, config=DebertaV2Config.from_dict(values), state_dict=dict(theirs.state_dict())
    )
    inputs = make_inputs("deberta-v2")
    with torch.no_grad():
        mine, expected = model(**inputs, labels=labels), theirs(**inputs, labels=labels)
    assert mine.logits.shape == expected.logits.shape
    torch.testing.assert_close(mine.logits, expected.logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(mine.loss, expected.loss, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("class_name", "config_name"), CASES)
def test_each_config_builds_its_own_modules(class_name, config_name, reference):
    """Beyond test_loading.py's equal keys and shapes: which of DeBERTa's optional modules each config has."""
    theirs = reference(class_name, config_name)
    config = DebertaV2Config.from_dict(theirs.config.to_dict())
    mine = {k: tuple(v.shape) for k, v in ours(class_name)(config).state_dict().items()}
    v3 = config_name == "deberta-v3"
    assert any("pos_key_proj" in key for key in mine) != v3 and any("encoder.conv." in key for key in mine) != v3
    assert any("token_type_embeddings" in key for key in mine) != v3
    assert any("embed_proj" in key for key in mine) != v3


# -- the two masked-LM head layouts ---------------------------------------------------------------


@pytest.mark.parametrize(("config_name", "said"), [("deberta-v3", None), ("deberta-v3", True), ("deberta-v2", False)])
def test_masked_lm_head_is_the_one_the_checkpoint_holds(config_name, said, checkpoint_dir, reference, tmp_path, caplog):
    """config.json without ``legacy`` (as microsoft/deberta-v3-* ship it) or with the wrong one: the keys decide.

    transformers builds the head the config names and initialises it at random; minibert loads the
    checkpoint's, says so in a log line, and saves the choice for transformers to read.
    """
    folder = checkpoint_dir("DebertaV2ForMaskedLM", config_name)
    for name in folder.iterdir():
        (tmp_path / name.name).write_bytes(name.read_bytes())
    values = json.loads((folder / "config.json").read_text())
    values.pop("legacy")
    if said is not None:
        values["legacy"] = said
    (tmp_path / "config.json").write_text(json.dumps(values))
    with caplog.at_level(logging.INFO, logger="minibert.deberta_v2"):
        model = deberta_v2.DebertaV2ForMaskedLM.from_pretrained(tmp_path)
    holds = "cls.predictions." if config_name == "deberta-v2" else "lm_predictions.lm_head."
    assert f"masked-LM head {holds}* (legacy={config_name == 'deberta-v2'}), the checkpoint's" in caplog.text
    assert model.config.legacy == (config_name == "deberta-v2")
    assert not model.load_report.missing and not model.load_report.unexpected
    _, info = transformers.DebertaV2ForMaskedLM.from_pretrained(tmp_path, output_loading_info=True)
    assert info["missing_keys"] and all(key.startswith(("cls.", "lm_predictions.")) for key in info["missing_keys"])
    expected = reference("DebertaV2ForMaskedLM", config_name)
    inputs = make_inputs(config_name)
    with torch.no_grad():
        assert_outputs_close(model(**inputs), expected(**inputs))
    model.save_pretrained(tmp_path / "saved")
    theirs, info = transformers.DebertaV2ForMaskedLM.from_pretrained(tmp_path / "saved", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    with torch.no_grad():
        assert_outputs_close(theirs.eval()(**inputs), expected(**inputs), atol=0)


def test_a_checkpoint_without_a_head_keeps_the_configs_layout(checkpoint_dir, caplog):
    with caplog.at_level(logging.INFO, logger="minibert.deberta_v2"):
        model = deberta_v2.DebertaV2ForMaskedLM.from_pretrained(checkpoint_dir("DebertaV2Model", "deberta-v3"))
    assert "holds neither: the config's choice" in caplog.text
    assert not model.config.legacy and model.get_output_embeddings() is None
    assert {key.rpartition(".")[0] for key in model.load_report.missing} == {
        "lm_predictions.lm_head",
        "lm_predictions.lm_head.dense",
        "lm_predictions.lm_head.LayerNorm",
    }


def test_v3_head_needs_hidden_size_embeddings():
    config = DebertaV2Config(**{**CONFIGS["deberta-v2"], "legacy": False})
    with pytest.raises(minibert.ConfigError, match="needs embedding_size"):
        deberta_v2.DebertaV2ForMaskedLM(config)


# -- calling conventions ----------------------------------------------------------------------


@pytest.mark.parametrize("class_name", CLASSES)
def test_forward_takes_transformers_inputs_in_transformers_order(class_name):
    theirs = inspect.signature(getattr(transformers, class_name).forward).parameters
    mine = inspect.signature(ours(class_name).forward).parameters
    assert list(mine) == [n for n, p in theirs.items() if p.kind is not p.VAR_KEYWORD]


@pytest.mark.parametrize(
    "class_name", ["DebertaV2Model", "DebertaV2ForQuestionAnswering", "DebertaV2ForMultipleChoice"]
)
def test_positional_flags_and_return_dict_false_give_transformers_tuple(class_name, checkpoint_dir, reference):
    model = ours(class_name).from_pretrained(checkpoint_dir(class_name, "deberta-v2"))
    theirs = reference(class_name, "deberta-v2")
    inputs = inputs_for(class_name, "deberta-v2")
    # input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, [labels or span positions,] flags
    middle = (None,) if class_name.endswith("MultipleChoice") else (None, None) if "Answering" in class_name else ()
    args = (inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"], None, None, *middle, True, True)
    with torch.no_grad():
        mine, expected = model(*args, return_dict=False), theirs(*args, return_dict=False)
    assert isinstance(mine, tuple) and len(mine) == len(expected)
    for a, b in zip(mine, expected, strict=True):
        for x, y in zip(a, b, strict=True) if isinstance(a, tuple) else [(a, b)]:
            torch.testing.assert_close(x, y, atol=1e-5, rtol=0)
    with pytest.raises(TypeError, match="pass return_dict by keyword"):
        model(*args, False)


def test_token_type_ids_without_a_table_are_ignored_as_transformers_ignores_them(checkpoint_dir, reference):
    """DeBERTa-v3's tokenizer returns token types (1 for a second text); its model has no table for them."""
    model = deberta_v2.DebertaV2ForSequenceClassification.from_pretrained(
        checkpoint_dir("DebertaV2ForSequenceClassification", "deberta-v3")
    )
    theirs = reference("DebertaV2ForSequenceClassification", "deberta-v3")
    inputs = without_token_types(make_inputs("deberta-v3"))
    types = torch.randint(0, 2, inputs["input_ids"].shape)
    with torch.no_grad():
        expected = theirs(**inputs).logits
        torch.testing.assert_close(theirs(**inputs, token_type_ids=types).logits, expected, atol=0, rtol=0)
        torch.testing.assert_close(model(**inputs, token_type_ids=types).logits, expected, atol=1e-5, rtol=0)
        with pytest.raises(TypeError, match="unexpected keyword argument 'attention_masks'"):
            model(inputs["input_ids"], attention_masks=inputs["attention_mask"])
        with pytest.raises(ValueError, match="head_mask is not supported"):
            model(**inputs, head_mask=torch.ones(2, 4))


def test_output_flags_from_from_pretrained_are_the_defaults(checkpoint_dir):
    folder = checkpoint_dir("DebertaV2ForTokenClassification", "deberta-v3")
    flags = {"output_hidden_states": True, "output_attentions": True}
    model = deberta_v2.DebertaV2ForTokenClassification.from_pretrained(folder, **flags)
    theirs = transformers.DebertaV2ForTokenClassification.from_pretrained(folder, **flags).eval()
    inputs = make_inputs("deberta-v3")
    with torch.no_grad():
        mine = model(**inputs)
        assert mine.keys() == list(theirs(**inputs).keys()) == ["logits", "hidden_states", "attentions"]
        assert_outputs_close(mine, theirs(**inputs))
        assert model(**inputs, output_attentions=False).attentions is None


# -- changing a pretrained model ----------------------------------------------------------------


@pytest.mark.parametrize(("config_name", "grow"), [("deberta-v2", 13), ("deberta-v2", -20)])
def test_resized_legacy_vocabulary_matches_transformers_and_round_trips(config_name, grow, checkpoint_dir, tmp_path):
    folder = checkpoint_dir("DebertaV2ForMaskedLM", config_name)
    model = deberta_v2.DebertaV2ForMaskedLM.from_pretrained(folder)
    theirs = transformers.DebertaV2ForMaskedLM.from_pretrained(folder).eval()
    size = model.config.vocab_size + grow
    returned = model.resize_token_embeddings(size)
    theirs.resize_token_embeddings(size, mean_resizing=False)
    kept = min(size, CONFIGS[config_name]["vocab_size"])
    assert returned is model.get_input_embeddings() and returned.num_embeddings == model.config.vocab_size == size
    decoder = model.get_output_embeddings()
    assert decoder.weight is returned.weight and model.cls.predictions.bias.shape == (size,)
    torch.testing.assert_close(decoder.bias, theirs.get_output_embeddings().bias, atol=0, rtol=0)
    inputs = make_inputs(config_name)
    inputs["input_ids"] %= kept
    with torch.no_grad():
        mask = inputs["attention_mask"]
        assert_real_tokens_close(model(**inputs).logits[..., :kept], theirs(**inputs).logits[..., :kept], mask, 1e-5)
    model.save_pretrained(tmp_path)
    reloaded, info = transformers.DebertaV2ForMaskedLM.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    inputs["input_ids"][:, 1] = size - 1
    with torch.no_grad():
        mask = inputs["attention_mask"]
        assert_real_tokens_close(reloaded.eval()(**inputs).logits, model(**inputs).logits, mask)


@pytest.mark.parametrize("grow", [13, -20])
def test_resized_v3_vocabulary_keeps_the_old_scores_and_round_trips(grow, checkpoint_dir, reference, tmp_path):
    """v3's head has no decoder: its bias follows the vocabulary (transformers' resize breaks this head)."""
    model = deberta_v2.DebertaV2ForMaskedLM.from_pretrained(checkpoint_dir("DebertaV2ForMaskedLM", "deberta-v3"))
    size = model.config.vocab_size + grow
    kept = min(size, CONFIGS["deberta-v3"]["vocab_size"])
    bias = model.lm_predictions.lm_head.bias.detach().clone()
    model.resize_token_embeddings(size)
    head_bias = model.lm_predictions.lm_head.bias
    assert head_bias.shape == (size,) and torch.equal(head_bias[:kept], bias[:kept])
    assert not head_bias[kept:].any()
    inputs = make_inputs("deberta-v3")
    inputs["input_ids"] %= kept
    with torch.no_grad():
        logits = model(**inputs).logits
        expected = reference("DebertaV2ForMaskedLM", "deberta-v3")(**inputs).logits
    assert logits.shape[-1] == size
    assert_real_tokens_close(logits[..., :kept], expected[..., :kept], inputs["attention_mask"])
    model.save_pretrained(tmp_path)
    reloaded, info = transformers.DebertaV2ForMaskedLM.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    inputs["input_ids"][:, 1] = size - 1
    with torch.no_grad():
        mask = inputs["attention_mask"]
        assert_real_tokens_close(reloaded.eval()(**inputs).logits, model(**inputs).logits, mask)


@pytest.mark.parametrize(
    ("class_name", "config_name", "heads"),
    [
        ("DebertaV2Model", "deberta-v3", {0: [1, 3], 1: [2]}),
        ("DebertaV2ForSequenceClassification", "deberta-v2", {2: [0]}),
    ],
)
def test_pruned_heads_contribute_nothing(class_name, config_name, heads, checkpoint_dir):
    """Compared with the unpruned transformers model whose output projection ignores the pruned heads:
    the kept heads keep their own position projections (separate ones in deberta-v2, shared in deberta-v3)."""
    model = ours(class_name).from_pretrained(checkpoint_dir(class_name, config_name))
    model.prune_heads(heads)
    theirs = hf_model(class_name, config_name)
    prefix = "" if class_name == "DebertaV2Model" else "deberta."
    count, size = CONFIGS[config_name]["num_attention_heads"], CONFIGS[config_name]["hidden_size"]
    with torch.no_grad():
        for layer, pruned in heads.items():
            kept = torch.ones(count, size // count, dtype=torch.bool)
            kept[pruned] = False
            theirs.get_submodule(f"{prefix}encoder.layer.{layer}.attention.output.dense").weight[:, ~kept.flatten()] = 0
        inputs = inputs_for(class_name, config_name)
        assert_outputs_close(model(**inputs, output_hidden_states=True), theirs(**inputs, output_hidden_states=True))


# -- the config -----------------------------------------------------------------------------


def test_config_has_transformers_fields_and_defaults_and_round_trips(checkpoint_dir):
    theirs = transformers.DebertaV2Config().to_dict()
    mine = DebertaV2Config().to_dict()
    shared = {k for k in theirs if k in mine and k not in ("architectures", "id2label", "label2id")}
    assert {"pos_att_type", "max_relative_positions", "pooler_hidden_size", "legacy", "type_vocab_size"} <= shared
    assert {k: mine[k] for k in shared} == {k: theirs[k] for k in shared}
    folder = checkpoint_dir("DebertaV2ForSequenceClassification", "deberta-v3")
    values = json.loads((folder / "config.json").read_text())
    config = config_class_for(values).from_dict({**values, "pos_att_type": "P2C | c2p"})
    assert isinstance(config, DebertaV2Config) and config.pos_att_type == ["p2c", "c2p"]
    assert config.type_vocab_size == 0 and config.relative_span == 8
    again = transformers.DebertaV2Config.from_dict(config.to_dict())
    for name in ("share_att_key", "position_buckets", "norm_rel_ebd", "pos_att_type", "legacy", "embedding_size"):
        assert getattr(again, name) == getattr(config, name), name


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"pos_att_type": "p2c|p2p"}, "pos_att_type must list the terms"),
        ({"norm_rel_ebd": "batch_norm"}, "norm_rel_ebd must be"),
        ({"conv_kernel_size": 2}, "conv_kernel_size must be 0"),
        ({"conv_kernel_size": 3, "conv_groups": 5}, "conv_groups"),
        ({"pooler_hidden_size": 16}, "pooler_hidden_size"),
        ({"relative_attention": True, "position_buckets": 64, "max_relative_positions": 30}, "position_buckets 64"),
        ({"type_vocab_size": -1}, "type_vocab_size"),
        ({"attention_head_size": 4}, "attention_head_size 4 is not supported"),
        ({"conv_act": "nope"}, "unknown conv_act"),
    ],
)
def test_config_refuses_what_transformers_would_fail_on_or_ignore(changes, message):
    with pytest.raises(minibert.ConfigError, match=message):
        DebertaV2Config.from_dict({"hidden_size": 32, "num_attention_heads": 4, **changes})


def test_classifier_dropouts_are_debertas():
    config = DebertaV2Config(**CONFIGS["deberta-v2"], hidden_dropout_prob=0.3, classifier_dropout=0.7, cls_dropout=0.2)
    for class_name, dropout in (("DebertaV2ForSequenceClassification", 0.2), ("DebertaV2ForTokenClassification", 0.3)):
        mine = ours(class_name)(config)
        theirs = getattr(transformers, class_name)(transformers.DebertaV2Config.from_dict(config.to_dict()))
        assert mine.dropout.p == theirs.dropout.p == dropout


# -- the tokenizer ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer_folders(tmp_path_factory):
    """spm.model with DeBERTa-v3's special pieces ([PAD] [CLS] [SEP] [UNK]; no [MASK]) in three layouts."""
    root = tmp_path_factory.mktemp("deberta-tokenizers")
    pieces = {"pad_piece": "[PAD]", "bos_piece": "[CLS]", "eos_piece": "[SEP]", "unk_piece": "[UNK]"}
    model = sentencepiece_model(pad_id=0, bos_id=1, eos_id=2, unk_id=3, **pieces)
    with_symbols = sentencepiece_model(pad_id=0, bos_id=1, eos_id=2, unk_id=3, user_defined_symbols="<br>", **pieces)
    layouts = {
        # microsoft/deberta-v3-*: no tokenizer_class, config.json's model_type names the class
        "deberta-v3": (model, {"do_lower_case": False, "vocab_type": "spm"}),
        "deberta-lower-first": (
            with_symbols,
            {"tokenizer_class": "DebertaV2Tokenizer", "do_lower_case": True, "add_prefix_space": False},
        ),
    }
    folders = {}
    for name, (data, config) in layouts.items():
        folder = folders[name] = root / name
        folder.mkdir()
        (folder / "spm.model").write_bytes(data)
        (folder / "tokenizer_config.json").write_text(json.dumps(config))
        (folder / "config.json").write_text(json.dumps({"model_type": "deberta-v2"}))
    # tokenizer.json as transformers writes it, from the first folder
    transformers.AutoTokenizer.from_pretrained(folders["deberta-v3"]).save_pretrained(root / "deberta-json")
    folders["deberta-json"] = root / "deberta-json"
    return folders


@pytest.mark.parametrize("kind", ["deberta-v3", "deberta-lower-first", "deberta-json"])
def test_tokenizer_ids_equal_transformers(kind, tokenizer_folders):
    folder = tokenizer_folders[kind]
    mine, theirs = AutoTokenizer.from_pretrained(folder), transformers.AutoTokenizer.from_pretrained(folder)
    assert isinstance(mine, DebertaV2Tokenizer) and type(theirs).__name__ == "DebertaV2Tokenizer"
    assert (mine.mask_token_id, len(mine)) == (theirs.mask_token_id, len(theirs))  # [MASK] added after the pieces
    for text in CORPUS:
        assert mine(text) == dict(theirs(text)), text
        ids = theirs(text)["input_ids"]
        assert mine.decode(ids) == theirs.decode(ids), text
        assert mine.decode(ids, skip_special_tokens=True) == theirs.decode(ids, skip_special_tokens=True), text
    for first, second in zip(CORPUS, CORPUS[1:] + CORPUS[:1], strict=True):
        assert mine(first, second) == dict(theirs(first, second)), (first, second)
    batch, other = CORPUS[:8], CORPUS[8:16]
    assert mine(batch, other, padding=True) == dict(theirs(batch, other, padding=True))
    assert mine(batch, padding="max_length", max_length=20) == dict(theirs(batch, padding="max_length", max_length=20))


def test_tokenizer_refuses_punctuation_splitting(tokenizer_folders, tmp_path):
    folder = tokenizer_folders["deberta-v3"]
    (tmp_path / "spm.model").write_bytes((folder / "spm.model").read_bytes())
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"split_by_punct": True}))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "deberta-v2"}))
    with pytest.raises(TokenizerError, match="split_by_punct=True"):
        AutoTokenizer.from_pretrained(tmp_path)


def test_tokenizer_output_runs_the_model_as_transformers_does(tokenizer_folders, checkpoint_dir, reference):
    """Text pairs, token types and all: what an NLI fine-tuning step feeds the classifier."""
    folder = tokenizer_folders["deberta-v3"]
    mine, theirs = AutoTokenizer.from_pretrained(folder), transformers.AutoTokenizer.from_pretrained(folder)
    model = deberta_v2.DebertaV2ForSequenceClassification.from_pretrained(
        checkpoint_dir("DebertaV2ForSequenceClassification", "deberta-v3")
    )
    premises, hypotheses = CORPUS[:4], CORPUS[4:8]
    encoded = mine(premises, hypotheses, padding=True, truncation=True, max_length=24, return_tensors="pt")
    expected = theirs(premises, hypotheses, padding=True, truncation=True, max_length=24, return_tensors="pt")
    assert encoded["token_type_ids"].any()
    encoded["input_ids"] %= CONFIGS["deberta-v3"]["vocab_size"]
    expected["input_ids"] %= CONFIGS["deberta-v3"]["vocab_size"]
    with torch.no_grad():
        logits = model(**encoded).logits
        torch.testing.assert_close(
            logits, reference("DebertaV2ForSequenceClassification", "deberta-v3")(**expected).logits
        )
