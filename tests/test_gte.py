"""GTE's own promises: the remote code's spelling, GTE's file layout, rotary positions and NTK scaling.

Parity on every class, config and layout of transformers' own spelling ("gte"), losses, training,
fast paths, loading, saving and surgery run in the shared tests (test_parity.py, test_finetune.py, ...)
on conftest's GTE configs. Here: the remote code's spelling ("new": Alibaba-NLP/new-impl's
config.json, model_type "new", ``rope_theta`` and ``rope_scaling``, and its keys, ``new.`` for the
encoder of head models), built from the same weights key by key from the remote code's module
names (transformers reads the keys: ``test_remote_keys_are_the_layout_transformers_reads``); the
fused tensors of GTE's file layout; lengths past max_position_embeddings and dynamic NTK.

The remote code has no dynamic NTK, so gte-b has no "new" config.
"""

import json
import logging
import re
from pathlib import Path

import pytest
import torch
import transformers
from conftest import GTE_CLASSES as CLASSES
from conftest import GTE_CONFIGS as CONFIGS
from conftest import (
    LAYOUTS,
    assert_outputs_close,
    assert_real_tokens_close,
    fresh,
    hf_model,
    labels_for,
    make_inputs,
    save_bin,
)
from torch import nn
from transformers.models.gte import modeling_gte

import minibert
from minibert import gte
from minibert.checkpoint import save_safetensors
from minibert.config import config_class_for
from minibert.gte import GteConfig
from minibert.rotary import RotaryEmbedding, rotary_frequencies

# The remote code's rope_theta and rope_scaling for the configs it can express.
REMOTE_ROPE = {"gte-a": (1000.0, {"type": "ntk", "factor": 2.0}), "gte-c": (5000.0, None)}
HEADS = CLASSES[1:]
CASES = [(c, n) for c in CLASSES for n in CONFIGS]
SPELLED = [(c, n, s) for c, n in CASES for s in ("gte", "new") if s == "gte" or n in REMOTE_ROPE]
NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
# What a saved config.json never holds: the remote code's fields, older rope keys, minibert's bookkeeping.
NOT_TRANSFORMERS_FIELDS = {
    "auto_map",
    "pack_qkv",
    "rope_scaling",
    "rope_theta",
    "position_embedding_type",
    "renamed_fields",
}


# -- the remote code's spelling, from the same weights ---------------------------------------------


def remote_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A transformers GTE model's weights under the remote code's keys (new-impl's module names).

    NewAttention.qkv_proj stacks q, k, v; NewGatedMLP.up_gate_proj stacks up, then gate.
    """
    state = model.state_dict()
    prefix = "" if model.base_model is model else "gte."
    tied = {"lm_head.decoder.weight"} if model.config.tie_word_embeddings else set()
    renames = {"self_attn.o_proj": "attention.o_proj", "post_attention_layernorm": "attn_ln"}
    renames |= {"post_mlp_layernorm": "mlp_ln", "mlp.down_proj": "mlp.down_proj"}
    remote = {}
    for key, value in state.items():
        if key in tied:
            continue
        body = key.removeprefix(prefix) if prefix and key.startswith(prefix) else key
        lead = "new." if prefix and key.startswith(prefix) else ""
        layer = re.fullmatch(r"layers\.(\d+)\.(self_attn|mlp|post_attention_layernorm|post_mlp_layernorm)\.(.+)", body)
        if layer is None:
            remote[lead + re.sub(r"^lm_head\.layer_norm\.", "lm_head.norm.", body)] = value
            continue
        number, module, rest = layer.groups()
        name, _, param = f"{module}.{rest}".rpartition(".")
        at = f"{prefix}layers.{number}"
        if name == "self_attn.q_proj":
            name, value = "attention.qkv_proj", torch.cat([state[f"{at}.self_attn.{p}_proj.{param}"] for p in "qkv"])
        elif name == "mlp.up_proj":
            name, value = "mlp.up_gate_proj", torch.cat([value, state[f"{at}.mlp.gate_proj.weight"]])
        elif name in ("self_attn.k_proj", "self_attn.v_proj", "mlp.gate_proj"):
            continue
        else:
            name = renames[name]
        remote[f"{lead}encoder.layer.{number}.{name}.{param}"] = value
    return remote


def remote_config(model: nn.Module, config_name: str) -> dict:
    """The model's config.json as the remote code's NewConfig writes it."""
    values = model.config.to_dict()
    del values["rope_parameters"]
    theta, scaling = REMOTE_ROPE[config_name]
    auto = {"AutoConfig": "Alibaba-NLP/new-impl--configuration.NewConfig"}
    values.update(
        model_type="new",
        architectures=[type(model).__name__.replace("Gte", "New")],
        auto_map=auto | {"AutoModel": "Alibaba-NLP/new-impl--modeling.NewModel"},
        rope_theta=theta,
        rope_scaling=scaling,
        position_embedding_type="rope",
        layer_norm_type="layer_norm",
        pack_qkv=True,
        unpad_inputs=False,
        use_memory_efficient_attention=False,
        logn_attention_scale=False,
        logn_attention_clip1=False,
    )
    return values


class ConfigFile(dict):
    """A config.json to write as it is, where conftest's save_bin expects a transformers config."""

    def save_pretrained(self, folder: Path) -> None:
        (Path(folder) / "config.json").write_text(json.dumps(self))


def legacy_names(state: dict[str, torch.Tensor], prefix: str, max_positions: int) -> dict[str, torch.Tensor]:
    """TF-era names (LayerNorm.gamma/beta), and the position_ids buffer old transformers versions saved."""
    legacy = {re.sub(r"LayerNorm\.weight$", "LayerNorm.gamma", k): v for k, v in state.items()}
    legacy = {re.sub(r"LayerNorm\.bias$", "LayerNorm.beta", k): v for k, v in legacy.items()}
    return legacy | {f"{prefix}embeddings.position_ids": torch.arange(max_positions)[None]}


def write_remote(model: nn.Module, folder: Path, layout: str, config_name: str) -> None:
    """``model``'s checkpoint in the remote code's spelling, in ``layout``."""
    state, config = remote_state(model), ConfigFile(remote_config(model, config_name))
    prefix = "" if model.base_model is model else "new."
    if layout.endswith("safetensors"):
        config.save_pretrained(folder)
        save_safetensors(state, folder, "4KB" if layout.startswith("sharded") else "5GB")
    elif layout == "legacy-bin":
        save_bin(legacy_names(state, prefix, model.config.max_position_embeddings), folder, config)
    else:
        save_bin(state, folder, config, shards=3 if layout == "sharded-bin" else 1)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, checkpoint_dir):
    """checkpoint(class_name, config_name, layout, spelling) -> a folder holding that checkpoint, made once:
    conftest's (transformers' files) for "gte", the remote code's for "new"."""
    made: dict[tuple[str, str, str], Path] = {}

    def make(class_name: str, config_name: str, layout: str = "safetensors", spelling: str = "gte") -> Path:
        if spelling == "gte":
            return checkpoint_dir(class_name, config_name, layout)
        key = (class_name, config_name, layout)
        if key not in made:
            folder = tmp_path_factory.mktemp(f"{class_name}-{config_name}-{layout}-new")
            write_remote(hf_model(class_name, config_name), folder, layout, config_name)  # a config no loss has set
            made[key] = folder
        return made[key]

    return make


# -- the remote code's checkpoints, GTE's file layout ---------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("class_name", "config_name", "spelling"), [c for c in SPELLED if c[2] == "new"])
def test_every_output_matches_transformers(class_name, config_name, spelling, layout, checkpoint, reference):
    """The remote code's checkpoints in every layout (transformers' own: test_parity.py)."""
    model = getattr(gte, class_name).from_pretrained(checkpoint(class_name, config_name, layout, spelling))
    report = model.load_report
    assert report.missing == [] and report.mismatched == []
    prefix = "" if class_name == "GteModel" else "gte."
    if layout == "legacy-bin":  # transformers has no position_ids buffer in GTE either: unexpected there too
        assert report.unexpected == [f"{prefix.replace('gte', spelling)}embeddings.position_ids"]
        assert any(r.rule and "legacy name LayerNorm.gamma" in r.rule for r in report.records)
    else:
        assert report.unexpected == []
    if spelling == "new" or layout.endswith("safetensors"):  # GTE's file layout: fused tensors split
        assert len(report.split) == 8 * CONFIGS[config_name]["num_hidden_layers"]  # q, k, v (weight, bias), up, gate
        assert all("GTE's file layout" in r.rule for r in report.records if r.status == "split")
    if spelling == "new" and prefix:
        assert any("stripped prefix 'new.'" in r.rule for r in report.records if r.rule)
        assert (
            model.config.model_type == "gte" and model.config.rope_parameters == CONFIGS[config_name]["rope_parameters"]
        )
    inputs = make_inputs(config_name)
    flags = {"output_hidden_states": True, "output_attentions": True}
    with torch.no_grad():
        mine, expected = model(**inputs, **flags), reference(class_name, config_name)(**inputs, **flags)
    assert mine.keys() == list(expected.keys())
    assert_outputs_close(mine, expected)
    assert len(mine.attentions) == CONFIGS[config_name]["num_hidden_layers"]


@pytest.mark.parametrize("layout", ["safetensors", "sharded-safetensors"])
@pytest.mark.parametrize(("class_name", "config_name"), CASES)
def test_transformers_files_are_split_from_gte_file_layout(class_name, config_name, layout, checkpoint_dir):
    """transformers' save_pretrained writes GTE's file layout (fused qkv_proj, up_gate_proj): loading splits them."""
    report = getattr(gte, class_name).from_pretrained(checkpoint_dir(class_name, config_name, layout)).load_report
    assert len(report.split) == 8 * CONFIGS[config_name]["num_hidden_layers"]  # q, k, v (weight, bias), up, gate
    assert all("GTE's file layout" in r.rule for r in report.records if r.status == "split")


@pytest.mark.parametrize("class_name", CLASSES)
@pytest.mark.parametrize("config_name", list(REMOTE_ROPE))
def test_remote_keys_are_the_layout_transformers_reads(class_name, config_name, reference, tmp_path):
    """The test's remote-code keys, under a 'gte' config.json, load into transformers as the same weights."""
    theirs = reference(class_name, config_name)
    theirs.config.save_pretrained(tmp_path)
    save_safetensors(remote_state(theirs), tmp_path, "5GB")
    again, info = getattr(transformers, class_name).from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    expected = theirs.state_dict()
    assert all(torch.equal(value, expected[key]) for key, value in again.state_dict().items())
    inputs = make_inputs(config_name)
    with torch.no_grad():
        assert_outputs_close(fresh(again.eval())(**inputs), theirs(**inputs))


@pytest.mark.parametrize(("class_name", "config_name"), CASES)
def test_token_type_table_only_where_configured_and_no_position_table(class_name, config_name, reference):
    """Beyond test_loading.py's equal keys and shapes: what GTE's state dict holds and lacks."""
    theirs = reference(class_name, config_name)
    config = GteConfig.from_dict(theirs.config.to_dict())
    mine = {k: tuple(v.shape) for k, v in getattr(gte, class_name)(config).state_dict().items()}
    assert any("token_type" in key for key in mine) == (CONFIGS[config_name]["type_vocab_size"] > 0)
    assert not any("position_embeddings" in key or "inv_freq" in key for key in mine)


@pytest.mark.parametrize(("class_name", "config_name", "spelling"), SPELLED)
def test_saved_model_loads_in_transformers_with_identical_outputs(
    class_name, config_name, spelling, checkpoint, reference, tmp_path
):
    """Saved in transformers' spelling whichever it was read from: model_type gte, rope_parameters, state-dict keys.
    (test_parity.py compares outputs of checkpoints read in transformers' spelling.)"""
    model = getattr(gte, class_name).from_pretrained(checkpoint(class_name, config_name, "safetensors", spelling))
    model.save_pretrained(tmp_path, max_shard_size="4KB" if config_name == "gte-a" else "5GB")
    values = json.loads((tmp_path / "config.json").read_text())
    assert values["model_type"] == "gte" and values["rope_parameters"] == CONFIGS[config_name]["rope_parameters"]
    assert not NOT_TRANSFORMERS_FIELDS & values.keys()
    assert values["architectures"] == [class_name]
    theirs, info = getattr(transformers, class_name).from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    inputs, flags = make_inputs(config_name), {"output_hidden_states": True}
    with torch.no_grad():
        if spelling == "new":
            reloaded = fresh(theirs.eval())(**inputs, **flags)
            assert_outputs_close(reloaded, reference(class_name, config_name)(**inputs, **flags), atol=0)
            assert_outputs_close(model(**inputs, **flags), reloaded)
    again = getattr(gte, class_name).from_pretrained(tmp_path)
    assert again.load_report.renamed == [] and again.load_report.split == [] and not again.load_report.missing


@pytest.mark.parametrize("spelling", ["new"])  # transformers' spelling: test_parity.py
@pytest.mark.parametrize("head", HEADS)
def test_base_checkpoint_loads_into_head_and_back(head, spelling, checkpoint, reference):
    """Missing and unexpected keys are transformers' (read from the 'gte' files), the encoder the checkpoint's."""
    base_folder, head_folder = (checkpoint(c, "gte-a", "safetensors", spelling) for c in ("GteModel", head))
    into_head = getattr(gte, head).from_pretrained(base_folder)
    _, info = getattr(transformers, head).from_pretrained(checkpoint("GteModel", "gte-a"), output_loading_info=True)
    report = into_head.load_report
    tied_to_missing = {alias for alias, shared in into_head.tied_weights().items() if shared in report.missing}
    assert set(report.missing) | tied_to_missing == set(info["missing_keys"])
    assert report.missing
    into_base = gte.GteModel.from_pretrained(head_folder)
    _, info = transformers.GteModel.from_pretrained(checkpoint(head, "gte-a"), output_loading_info=True)
    assert into_base.load_report.missing == [] and not info["missing_keys"]
    # The report names the file's keys; transformers names them as converted.
    unexpected = {re.sub(r"^new\.", "gte.", key) for key in into_base.load_report.unexpected}
    assert {key.replace("lm_head.norm.", "lm_head.layer_norm.") for key in unexpected} == info["unexpected_keys"]
    inputs = make_inputs("gte-a")
    with torch.no_grad():
        expected = reference("GteModel", "gte-a")(**inputs).last_hidden_state
        assert_real_tokens_close(into_head.base_model(**inputs).last_hidden_state, expected, inputs["attention_mask"])
        expected = reference(head, "gte-a").base_model(**inputs).last_hidden_state
        assert_real_tokens_close(into_base(**inputs).last_hidden_state, expected, inputs["attention_mask"])


# -- the remote code's config -----------------------------------------------------------------


def original_ntk_cos_sin(dim: int, base: float, max_positions: int, factor: float, length: int):
    """cos, sin of positions 0..length-1 as the remote code computes them, re-written from its source.

    new-impl modeling.py, ``NTKScalingRotaryEmbedding``: ``__init__`` builds the cos/sin cache for
    ``max_position_embeddings * scaling_factor`` positions; as that is beyond
    ``max_position_embeddings``, ``_set_cos_sin_cache`` takes ``base * scaling_factor`` and divides
    the frequencies by ``scaling_factor ** (2 / dim)`` (the paper's eq. 6). ``forward`` rebuilds the
    cache, the same way, for inputs longer than it.
    """
    cached = max(max_positions * factor, length)
    inv_freq = 1.0 / ((base * factor) ** (torch.arange(0, dim, 2).float() / dim))
    inv_freq = inv_freq / factor ** (2 / dim)
    t = torch.arange(cached, dtype=torch.float32)
    freqs = torch.einsum("i,j->ij", t, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos()[:length], emb.sin()[:length]


def test_remote_ntk_is_transformers_linear_rope_exactly():
    """Hand-checked: theta 100, factor 4, dim 4: theta 400, frequencies [1, 1/20] / 4 ** (1/2) = [0.5, 0.025]."""
    new = {"model_type": "new", "hidden_size": 8, "num_attention_heads": 2, "rope_theta": 100.0}
    config = GteConfig.from_dict({**new, "rope_scaling": {"type": "ntk", "factor": 4.0}})
    rope = config.rope_parameters
    assert rope == {"rope_type": "linear", "rope_theta": 400.0, "factor": 2.0}
    assert torch.equal(rotary_frequencies(4, rope["rope_theta"], "linear", rope["factor"]), torch.tensor([0.5, 0.025]))
    for dim, base, factor, max_positions, length in [
        (4, 100.0, 4.0, 16, 9),
        (12, 1000.0, 2.0, 64, 150),  # beyond max_position_embeddings * factor: the remote code rebuilds its cache
        (64, 500000, 2.0, 8192, 300),  # gte-base-en-v1.5's
        (64, 160000, 2.0, 8192, 40),  # gte-large-en-v1.5's
        (10, 10000.0, 1.5, 24, 30),
    ]:
        values = {**new, "hidden_size": 2 * dim, "rope_theta": base, "max_position_embeddings": max_positions}
        config = GteConfig.from_dict({**values, "rope_scaling": {"type": "ntk", "factor": factor}})
        rope = config.rope_parameters
        positions = torch.arange(length)[None]
        ours = RotaryEmbedding(dim, rope["rope_theta"], rope["rope_type"], rope["factor"], max_positions)
        cos, sin = ours(positions, torch.float32)
        expected_cos, expected_sin = original_ntk_cos_sin(dim, base, max_positions, factor, length)
        assert torch.equal(cos[0], expected_cos) and torch.equal(sin[0], expected_sin)  # the same float operations
        hf = transformers.GteConfig(
            hidden_size=2 * dim, num_attention_heads=2, max_position_embeddings=max_positions, rope_parameters=rope
        )
        theirs_cos, theirs_sin = modeling_gte.GteRotaryEmbedding(hf)(torch.zeros(1), positions)
        assert torch.equal(cos, theirs_cos) and torch.equal(sin, theirs_sin)


def test_remote_config_reads_as_transformers_config_and_logs_each_change(checkpoint, caplog):
    folder = checkpoint("GteForSequenceClassification", "gte-a", "safetensors", "new")
    values = json.loads((folder / "config.json").read_text())
    assert values["model_type"] == "new" and values["rope_scaling"] == {"type": "ntk", "factor": 2.0}
    with caplog.at_level(logging.INFO, logger="minibert.rotary"):
        config = config_class_for(values).from_dict(values)
    assert type(config) is GteConfig and config.model_type == "gte"
    native = GteConfig.from_dict(hf_model("GteForSequenceClassification", "gte-a").config.to_dict())
    unsaid = {"architectures": None, "dtype": None}  # what the file says and a new transformers config does not
    assert config.to_dict() | unsaid == native.to_dict() | unsaid
    assert config.architectures == ["GteForSequenceClassification"]
    for name in ("model_type", "pack_qkv", "unpad_inputs", "auto_map", "rope_theta", "architectures"):
        line = next(line for line in config.renamed_fields if line.startswith(name))
        assert f"GteConfig: {line}" in caplog.text
    report = gte.GteForSequenceClassification.from_pretrained(folder).load_report
    assert report.config_renames == list(config.renamed_fields) and "config      rope_theta" in str(report)
    assert not {"auto_map", "pack_qkv", "layer_norm_type", "logn_attention_clip1"} & config.extra.keys()
    defaults = GteConfig.from_dict({"model_type": "new"})  # NewConfig's defaults, not GteConfig's
    assert (defaults.vocab_size, defaults.max_position_embeddings, defaults.pad_token_id) == (30528, 2048, None)
    assert defaults.rope_parameters == {"rope_type": "default", "rope_theta": 10000.0}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rope_scaling": {"type": "ntk", "factor": 2.0, "mixed_b": 0.5}}, "mixed NTK"),
        ({"rope_scaling": {"type": "dynamic", "factor": 2.0}}, "unknown to the remote code"),
        ({"rope_scaling": {"type": "ntk", "factor": 0.5}}, "factor must be a number >= 1"),
        ({"position_embedding_type": "absolute"}, "position_embedding_type='absolute' is not supported"),
        ({"layer_norm_type": "rms_norm"}, "layer_norm_type='rms_norm' is not supported"),
        ({"logn_attention_scale": True}, "logn_attention_scale=True is not supported"),
    ],
)
def test_remote_code_options_transformers_lacks_are_refused(change, message):
    with pytest.raises(minibert.ConfigError, match=message):
        GteConfig.from_dict({"model_type": "new", "hidden_size": 32, "num_attention_heads": 2, **change})


def test_remote_code_activation_other_than_gelu_warns_for_the_masked_lm_head():
    with pytest.warns(UserWarning, match="masked-LM head applies it"):
        GteConfig.from_dict({"model_type": "new", "hidden_size": 32, "num_attention_heads": 2, "hidden_act": "silu"})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"rope_parameters": {"rope_type": "ntk", "factor": 2.0}}, "rope_type 'ntk' is the remote code's"),
        ({"rope_scaling": {"type": "ntk", "factor": 2.0}, "rope_theta": 10.0}, "rope_type 'ntk' is the remote"),
        ({"rope_parameters": {"rope_type": "yarn", "factor": 2.0}}, "rope_type 'yarn' is not supported"),
        ({"rope_parameters": {"rope_type": "dynamic"}}, "needs a positive factor"),
        ({"rope_parameters": {"rope_type": "linear", "factor": 2.0, "partial_rotary_factor": 0.5}}, "partial_rotary"),
        ({"hidden_size": 30, "num_attention_heads": 2}, "head size .* must be even"),
    ],
)
def test_gte_config_refuses_what_transformers_gte_cannot_compute(values, message):
    with pytest.raises(minibert.ConfigError, match=message):
        GteConfig.from_dict({"model_type": "gte", "hidden_size": 32, "num_attention_heads": 2, **values})


def test_config_has_transformers_fields_and_defaults_and_reads_older_rope_keys():
    theirs, mine = transformers.GteConfig().to_dict(), GteConfig().to_dict()
    shared = {k for k in theirs if k in mine and k not in ("architectures", "id2label", "label2id")}
    assert {"rope_parameters", "vocab_size", "max_position_embeddings", "pad_token_id", "type_vocab_size"} <= shared
    assert {k: mine[k] for k in shared} == {k: theirs[k] for k in shared}
    assert "position_embedding_type" not in mine
    older = {"model_type": "gte", "rope_theta": 500.0, "rope_scaling": {"type": "dynamic", "factor": 2.0}}
    expected = transformers.GteConfig.from_dict(older).rope_parameters
    rope = GteConfig.from_dict(older).rope_parameters
    assert rope == {"rope_type": "dynamic", "rope_theta": 500.0, "factor": 2.0}
    assert rope == {k: v for k, v in expected.items() if k != "type"}  # transformers keeps the older "type" too


# -- calling conventions ----------------------------------------------------------------------


def test_remote_code_class_names_are_aliases():
    """The remote code's architectures (NewModel, ...) name minibert's GTE classes (inputs: test_conventions.py)."""
    for class_name in CLASSES:
        assert getattr(gte, class_name.replace("Gte", "New")) is getattr(gte, class_name)


def test_remote_code_folder_loads_through_auto_classes(checkpoint, reference):
    folder = checkpoint("GteForMaskedLM", "gte-a", "safetensors", "new")
    assert type(minibert.AutoConfig.from_pretrained(folder)) is GteConfig
    if "gte" not in minibert.auto.ARCHITECTURES:
        pytest.skip("GTE is not registered in minibert.auto yet")
    model = minibert.AutoModelForMaskedLM.from_pretrained(folder)
    assert type(model) is gte.GteForMaskedLM and type(minibert.AutoModel.from_pretrained(folder)) is gte.GteModel
    inputs = make_inputs("gte-a")
    with torch.no_grad():
        assert_outputs_close(model(**inputs), reference("GteForMaskedLM", "gte-a")(**inputs))


def test_token_types_are_ignored_without_a_table_and_checked_with_one(checkpoint, reference):
    inputs = make_inputs("gte-a")
    without = {k: v for k, v in inputs.items() if k != "token_type_ids"}
    model = gte.GteModel.from_pretrained(checkpoint("GteModel", "gte-a"))
    with torch.no_grad():
        expected = reference("GteModel", "gte-a")(**without).last_hidden_state
        torch.testing.assert_close(
            model(**inputs).last_hidden_state, model(**without).last_hidden_state, atol=0, rtol=0
        )
        assert_real_tokens_close(model(**inputs).last_hidden_state, expected, inputs["attention_mask"])
    typed = gte.GteModel.from_pretrained(checkpoint("GteModel", "gte-b"))
    ids = make_inputs("gte-b")["input_ids"]
    with pytest.raises(ValueError, match=r"token_type_ids holds 3, outside \[0, 3\) \(type_vocab_size=3\)"):
        typed(ids, token_type_ids=torch.full_like(ids, 3))


def test_lengths_past_max_position_embeddings_and_optional_inputs_match_transformers(checkpoint, reference):
    """No position table: 40 tokens past max_position_embeddings 8 (dynamic NTK stretching), given positions,
    embeddings instead of ids, no mask."""
    model = gte.GteModel.from_pretrained(checkpoint("GteModel", "gte-b"))
    inputs = make_inputs("gte-b", length=40)
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    embeds = reference("GteModel", "gte-b").embeddings.word_embeddings(ids).detach()
    for kwargs in (
        inputs,
        {"input_ids": ids, "position_ids": torch.arange(40).flip(0).expand_as(ids) + 3},
        {"inputs_embeds": embeds, "attention_mask": mask},
        {"input_ids": ids},
    ):
        with torch.no_grad():
            assert_outputs_close(model(**kwargs), reference("GteModel", "gte-b")(**kwargs))


def test_dynamic_ntk_follows_each_batch(checkpoint, reference):
    """transformers keeps a long batch's frequencies for a later, shorter batch (still past max_position_embeddings);
    minibert computes every batch's own, as a new transformers model does."""
    model = gte.GteModel.from_pretrained(checkpoint("GteModel", "gte-b"))
    long, short = torch.arange(30)[None], torch.arange(12)[None]
    theirs = reference("GteModel", "gte-b").rotary_emb
    theirs(torch.zeros(1), long)
    stale = theirs(torch.zeros(1), short)
    new = fresh(reference("GteModel", "gte-b")).rotary_emb(torch.zeros(1), short)
    model.rotary_emb(long, torch.float32)
    mine = model.rotary_emb(short, torch.float32)
    assert (stale[0] - new[0]).abs().max() > 0.01
    assert torch.equal(mine[0], new[0]) and torch.equal(mine[1], new[1])
    inputs = make_inputs("gte-b", length=12)
    with torch.no_grad():
        model(**make_inputs("gte-b", length=30))
        assert_outputs_close(model(**inputs), reference("GteModel", "gte-b")(**inputs))


# -- training (gradients against transformers: test_finetune.py) -----------------------------------


@pytest.mark.parametrize("recompute", [None, True, False])  # no checkpointing; reentrant; not reentrant
def test_every_parameter_gets_a_gradient_and_checkpointed_layers_run_again(recompute, checkpoint_dir):
    """The rotation, computed once outside the layers, must not cut any layer's gradient (reentrant too)."""
    class_name, config_name = "GteForSequenceClassification", "gte-b"
    model = getattr(gte, class_name).from_pretrained(checkpoint_dir(class_name, config_name), **NO_DROPOUT).train()
    runs = []
    for layer in model.base_model.layers:
        layer.register_forward_pre_hook(lambda *_: runs.append(1))
    if recompute is not None:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": recompute})
    inputs = make_inputs(config_name)
    model(**inputs, **labels_for(class_name, config_name, inputs)).loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    layers = CONFIGS[config_name]["num_hidden_layers"]
    assert len(runs) == layers * (1 if recompute is None else 2)  # checkpointed layers run again in backward
