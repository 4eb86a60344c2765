"""DistilBERT's own promises: its sinusoidal positions, its config names, and the token types it has not.

Parity on every class, config and layout, losses, training, loading, saving and surgery run in the
shared tests (test_parity.py, test_finetune.py, ...) on conftest's DistilBERT configs.
"""

import json

import pytest
import torch
import transformers
from conftest import DISTILBERT_CLASSES, DISTILBERT_CONFIGS, assert_outputs_close, hf_model, make_inputs
from safetensors.torch import load_file, save_file
from torch import nn
from transformers.models.distilbert.modeling_distilbert import create_sinusoidal_embeddings

import minibert
from minibert import distilbert
from minibert.config import config_class_for
from minibert.distilbert import DistilBertConfig

# -- no pooler, no token types ---------------------------------------------------------------


def test_distilbert_has_no_pooler_and_no_token_types_as_in_transformers(reference):
    config = DistilBertConfig(**DISTILBERT_CONFIGS["distilbert-c"])
    with pytest.raises(minibert.ConfigError, match="DistilBERT has no pooler"):
        distilbert.DistilBertModel(config, add_pooling_layer=True)
    model = distilbert.DistilBertModel(config)
    theirs = reference("DistilBertModel", "distilbert-c")
    assert model.pooler is None and not hasattr(theirs, "pooler")
    assert model.embeddings.token_type_embeddings is None and not hasattr(theirs.embeddings, "token_type_embeddings")
    assert model.encoder is model.transformer


def test_segment_token_types_are_refused_where_transformers_ignores_them(checkpoint_dir, reference):
    inputs = make_inputs("distilbert-a")
    types = torch.ones_like(inputs["input_ids"])
    theirs = reference("DistilBertForSequenceClassification", "distilbert-a")
    with torch.no_grad():  # transformers: silently the same output, the segments lost
        torch.testing.assert_close(theirs(**inputs, token_type_ids=types).logits, theirs(**inputs).logits)
    for class_name in ("DistilBertModel", "DistilBertForSequenceClassification"):
        ours = getattr(distilbert, class_name).from_pretrained(checkpoint_dir(class_name, "distilbert-a"))
        with pytest.raises(ValueError, match="DistilBERT has no token types.*return_token_type_ids=False"):
            ours(**inputs, token_type_ids=types)
        with torch.no_grad():  # all-zero types (a BERT tokenizer's, one text each) say nothing: accepted, as None
            zeros = torch.zeros_like(types)
            mine = ours(**inputs, token_type_ids=zeros)
            assert_outputs_close(mine, reference(class_name, "distilbert-a")(**inputs, token_type_ids=zeros))
            assert_outputs_close(mine, ours(**inputs, token_type_ids=None), atol=0)


# -- positions: sinusoidal or learned ------------------------------------------------------------


@pytest.mark.parametrize(("rows", "dim"), [(40, 21), (32, 16), (512, 768)])
def test_sinusoidal_table_is_transformers_bit_for_bit(rows, dim):
    expected = create_sinusoidal_embeddings(rows, dim, torch.empty(rows, dim))
    assert torch.equal(distilbert.sinusoidal_table(rows, dim), expected)


@pytest.mark.parametrize("config_name", DISTILBERT_CONFIGS)
def test_a_new_model_starts_as_transformers_starts_it(config_name):
    """Same rule as transformers' _init_weights: normal(0, initializer_range), zero biases and padding row,
    LayerNorms 1/0, and the sinusoidal table where the config asks for one (equal to transformers' bit for bit)."""
    values = {**DISTILBERT_CONFIGS[config_name], "initializer_range": 0.5}  # far from torch's own inits
    theirs = transformers.DistilBertForMaskedLM(transformers.DistilBertConfig(**values))
    ours = distilbert.DistilBertForMaskedLM(DistilBertConfig(**values))
    sinusoidal = values.get("sinusoidal_pos_embds", False)
    positions = ours.distilbert.embeddings.position_embeddings
    assert type(positions) is (distilbert.SinusoidalPositions if sinusoidal else nn.Embedding)  # else learned
    expected = theirs.state_dict()
    for name, tensor in ours.state_dict().items():
        reference_tensor = expected[name]
        if name.endswith("position_embeddings.weight") and sinusoidal:
            assert torch.equal(tensor, reference_tensor), name
            assert ours.get_parameter(name).requires_grad  # trained like any weight, as in transformers 5
        elif torch.all(reference_tensor == reference_tensor.flatten()[0]):  # zeros and ones
            assert torch.equal(tensor, reference_tensor), name
        else:
            assert 0.8 < tensor.std().item() / reference_tensor.std().item() < 1.25, name
    assert not ours.distilbert.embeddings.word_embeddings.weight[values["pad_token_id"]].any()


def test_checkpoint_values_replace_the_sinusoidal_table_and_a_missing_one_starts_from_it(tmp_path):
    """transformers loads a sinusoidal table from the file (trained or not) and computes it only where it is missing."""
    theirs = hf_model("DistilBertModel", "distilbert-b")
    with torch.no_grad():
        theirs.embeddings.position_embeddings.weight.add_(1.0)
    theirs.save_pretrained(tmp_path)
    ours = distilbert.DistilBertModel.from_pretrained(tmp_path)
    weight = ours.embeddings.position_embeddings.weight
    assert torch.equal(weight, theirs.embeddings.position_embeddings.weight)
    inputs = make_inputs("distilbert-b")
    with torch.no_grad():
        assert_outputs_close(ours(**inputs), theirs(**inputs))
    state = load_file(tmp_path / "model.safetensors")
    del state["embeddings.position_embeddings.weight"]
    save_file(state, tmp_path / "model.safetensors", metadata={"format": "pt"})
    ours = distilbert.DistilBertModel.from_pretrained(tmp_path)
    again, info = transformers.DistilBertModel.from_pretrained(tmp_path, output_loading_info=True)
    assert ours.load_report.missing == list(info["missing_keys"]) == ["embeddings.position_embeddings.weight"]
    assert torch.equal(ours.embeddings.position_embeddings.weight, again.embeddings.position_embeddings.weight)
    assert torch.equal(ours.embeddings.position_embeddings.weight, distilbert.sinusoidal_table(40, 21))


# -- DistilBERT's names: the config, its dropouts -------------------------------------------------


def test_train_mode_turns_every_dropout_on(checkpoint_dir):
    """Each of DistilBERT's dropout fields reaches the modules transformers builds with it, module for module."""
    for class_name in DISTILBERT_CLASSES[1:]:  # the heads
        ours = getattr(distilbert, class_name).from_pretrained(checkpoint_dir(class_name, "distilbert-b"))
        theirs = hf_model(class_name, "distilbert-b")
        # Attention dropout is a module in transformers, a probability that attend() reads here.
        mine = {n: m.p for n, m in ours.named_modules() if isinstance(m, nn.Dropout)}
        mine |= {f"{n}.dropout": m.dropout_prob for n, m in ours.named_modules() if hasattr(m, "dropout_prob")}
        assert mine == {n: m.p for n, m in theirs.named_modules() if isinstance(m, nn.Dropout)}
        ours.train()
        inputs = make_inputs("distilbert-b", choices=2 if class_name.endswith("MultipleChoice") else None)
        torch.manual_seed(0)
        first = ours(**inputs)[0]
        assert not torch.equal(first, ours(**inputs)[0])


DISTILBERT_FIELDS = (
    "vocab_size",
    "max_position_embeddings",
    "sinusoidal_pos_embds",
    "n_layers",
    "n_heads",
    "dim",
    "hidden_dim",
    "dropout",
    "attention_dropout",
    "activation",
    "initializer_range",
    "qa_dropout",
    "seq_classif_dropout",
    "pad_token_id",
    "eos_token_id",
    "bos_token_id",
    "tie_word_embeddings",
)
GENERIC_FIELDS = {*DistilBertConfig.GENERIC_NAMES, *DistilBertConfig.FIXED}


def test_config_has_transformers_fields_and_defaults():
    theirs, ours = transformers.DistilBertConfig(), DistilBertConfig()
    for name in DISTILBERT_FIELDS:
        assert getattr(ours, name) == getattr(theirs, name), name
    for generic, own in transformers.DistilBertConfig.attribute_map.items():  # hidden_size -> dim, ...
        assert getattr(ours, generic) == getattr(ours, own) == getattr(theirs, generic), generic
    assert (ours.intermediate_size, ours.hidden_act, ours.layer_norm_eps, ours.type_vocab_size) == (
        3072,
        "gelu",
        1e-12,
        1,
    )
    assert ours.head_dropout == ours.dropout  # the token classifier's


@pytest.mark.parametrize("config_name", DISTILBERT_CONFIGS)
def test_config_json_uses_distilbert_names_and_transformers_reads_it_identically(config_name, tmp_path):
    theirs = transformers.DistilBertConfig(**DISTILBERT_CONFIGS[config_name])
    config = DistilBertConfig.from_dict(theirs.to_dict())
    assert config_class_for(theirs.to_dict()) is DistilBertConfig
    distilbert.DistilBertModel(config).save_pretrained(tmp_path)
    written = json.loads((tmp_path / "config.json").read_text())
    assert written["model_type"] == "distilbert" and not GENERIC_FIELDS & written.keys()
    again = transformers.AutoConfig.from_pretrained(tmp_path)
    assert type(again) is transformers.DistilBertConfig
    for name in (*DISTILBERT_FIELDS, "num_labels", "id2label", "label2id", "problem_type"):
        assert getattr(again, name) == getattr(theirs, name), name
    assert DistilBertConfig.from_json_file(tmp_path / "config.json").replace(
        architectures=None, extra={}
    ) == config.replace(extra={})


def test_config_reads_transformers_aliases_and_keeps_generic_keys_it_does_not_use(tmp_path):
    """hidden_size, num_attention_heads and num_hidden_layers name DistilBERT's fields, in a file or an override;
    other generic names mean nothing to DistilBERT (transformers keeps and ignores them too)."""
    values = {"model_type": "distilbert", "hidden_size": 24, "num_attention_heads": 3, "n_layers": 1}
    values |= {"vocab_size": 50, "layer_norm_eps": 1e-5, "hidden_act": "relu"}
    theirs = transformers.DistilBertConfig.from_dict(values)
    ours = DistilBertConfig.from_dict(values)
    assert (ours.dim, ours.n_heads, ours.n_layers) == (theirs.dim, theirs.n_heads, theirs.n_layers) == (24, 3, 1)
    assert ours.extra == {"layer_norm_eps": 1e-5, "hidden_act": "relu"}
    assert ours.layer_norm_eps == 1e-12 and ours.hidden_act == ours.activation == "gelu"
    assert ours.to_dict()["layer_norm_eps"] == 1e-5  # a round trip loses nothing
    (tmp_path / "config.json").write_text(json.dumps(values))
    assert DistilBertConfig.from_pretrained(tmp_path, num_hidden_layers=2).n_layers == 2
    with pytest.raises(
        minibert.ConfigError, match=r"hidden_dropout_prob is not a field of DistilBertConfig \(set dropout\)"
    ):
        DistilBertConfig.from_pretrained(tmp_path, hidden_dropout_prob=0.0)
    with pytest.raises(minibert.ConfigError, match=r"layer_norm_eps .* \(fixed at 1e-12\)"):
        DistilBertConfig.from_pretrained(tmp_path, layer_norm_eps=1e-5)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"dim": 30, "n_heads": 4}, r"n_heads \(4\) must divide dim \(30\)"),
        ({"n_layers": 0}, "n_layers must be a positive integer"),
        ({"activation": "nope"}, "unknown activation 'nope'"),
        ({"seq_classif_dropout": 1.5}, r"seq_classif_dropout must be a probability"),
        ({"sinusoidal_pos_embds": "yes"}, "sinusoidal_pos_embds must be true or false"),
    ],
)
def test_config_errors_name_distilbert_fields(values, message):
    with pytest.raises(minibert.ConfigError, match=message):
        DistilBertConfig(**values)


def test_layer_norm_eps_in_a_file_changes_nothing_as_in_transformers(tmp_path):
    theirs = hf_model("DistilBertForTokenClassification", "distilbert-c")
    theirs.config.layer_norm_eps = 1e-2  # transformers' DistilBERT hard-codes 1e-12 and ignores it
    theirs.save_pretrained(tmp_path)
    ours = distilbert.DistilBertForTokenClassification.from_pretrained(tmp_path)
    assert ours.config.extra["layer_norm_eps"] == 1e-2
    inputs = make_inputs("distilbert-c")
    with torch.no_grad():
        assert_outputs_close(ours(**inputs), theirs(**inputs))
