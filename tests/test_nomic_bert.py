"""NomicBERT's own promises: its key spellings, the remote code's config, rotary types, refusals.

Parity on every class, config and layout, losses, training, fast paths, loading, saving and resizing
run in the shared tests (test_parity.py, test_finetune.py, ...) on conftest's NomicBERT configs, from
what transformers' ``save_pretrained`` writes (safetensors: it converts back to the original fused
names under ``nomic_bert.``) and transformers' module names (``state_dict()``, the .bin layouts).
Here every layout in three key spellings: transformers' module names, what ``save_pretrained``
writes, and the original remote code's (``emb_ln``, ``encoder.layers.N.attn.Wqkv``, ``mlp.fc11``,
its head models' ``bert.`` prefix: nomic-ai/contrastors, modeling_hf_nomic_bert.py), with the load
report's account of every key. A remote-code folder (config and keys in that code's spelling) is
built from a native one with the same weights.
"""

import json
import logging
import re

import pytest
import torch
import transformers
from conftest import (
    LAYOUTS,
    assert_outputs_close,
    assert_real_tokens_close,
    hf_model,
    labels_for,
    make_inputs,
    save_bin,
)
from conftest import NOMIC_BERT_CLASSES as CLASSES
from conftest import NOMIC_BERT_CONFIGS as CONFIGS
from safetensors.torch import load_file, save_file
from torch import nn

from minibert import nomic_bert
from minibert.checkpoint import Checkpoint, save_safetensors
from minibert.cli import count_equal_to_file
from minibert.config import config_class_for
from minibert.errors import CheckpointError, ConfigError
from minibert.loading import KeyRule, plan_load
from minibert.nomic_bert import NomicBertConfig

HEADS = CLASSES[1:]
CASES = [(c, n) for c in CLASSES for n in ("nomic-a", "nomic-b")]
# transformers' module names; what transformers' save_pretrained writes; the original remote code's.
SPELLINGS = ["modules", "saved", "original"]


def ours(class_name: str) -> type:
    return getattr(nomic_bert, class_name)


# -- the original remote code's layout, written from transformers' names (independently of minibert's rules) --

ORIGINAL_NAMES = [  # transformers' module -> modeling_hf_nomic_bert.py's (see its remap_bert_state_dict)
    (r"embeddings\.LayerNorm\.", "emb_ln."),
    (r"layers\.(\d+)\.self_attn\.o_proj\.", r"encoder.layers.\1.attn.out_proj."),
    (r"layers\.(\d+)\.mlp\.up_proj\.", r"encoder.layers.\1.mlp.fc11."),
    (r"layers\.(\d+)\.mlp\.gate_proj\.", r"encoder.layers.\1.mlp.fc12."),
    (r"layers\.(\d+)\.mlp\.down_proj\.", r"encoder.layers.\1.mlp.fc2."),
    (r"layers\.(\d+)\.post_attention_layernorm\.", r"encoder.layers.\1.norm1."),
    (r"layers\.(\d+)\.post_mlp_layernorm\.", r"encoder.layers.\1.norm2."),
]


def original_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The remote code's state dict for ``model``'s weights: Wqkv = cat(q, k, v) by rows, its head models'
    encoder under ``bert.``, the decoder's bias its own (no ``cls.predictions.bias``), a tied decoder weight
    left out."""
    state, out = model.state_dict(), {}
    for key, value in state.items():
        prefix = "bert." if key.startswith("nomic_bert.") else ""
        body = key.removeprefix("nomic_bert.")
        if re.fullmatch(r"layers\.\d+\.self_attn\.[kv]_proj\.weight", body):
            continue
        if re.fullmatch(r"layers\.\d+\.self_attn\.q_proj\.weight", body):
            value = torch.cat([state[key.replace("q_proj", name)] for name in ("q_proj", "k_proj", "v_proj")])
            body = body.replace("layers.", "encoder.layers.").replace("self_attn.q_proj", "attn.Wqkv")
        elif body == "cls.predictions.bias" or (
            body == "cls.predictions.decoder.weight" and model.config.tie_word_embeddings
        ):
            continue
        for pattern, replacement in ORIGINAL_NAMES:
            body = re.sub("^" + pattern, replacement, body)
        out[prefix + body] = value
    return out


def saved_state(model: nn.Module, folder) -> dict[str, torch.Tensor]:
    """What transformers' save_pretrained writes for ``model`` (it converts back to the fused original names)."""
    model.save_pretrained(folder)
    return load_file(str(folder / "model.safetensors"))


def write(state: dict[str, torch.Tensor], folder, config, layout: str) -> None:
    """``state`` in one of the five file layouts, with ``config``'s config.json."""
    state = {k: v.detach().clone().contiguous() for k, v in state.items()}
    if layout == "legacy-bin":  # TF-era LayerNorm names and the position_ids buffer old versions saved
        state = {
            k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
            for k, v in state.items()
        }
        prefix = next((p for p in ("nomic_bert.", "bert.") if any(k.startswith(p) for k in state)), "")
        state[f"{prefix}embeddings.position_ids"] = torch.arange(config.max_position_embeddings)[None]
    if layout in ("bin", "sharded-bin", "legacy-bin"):
        save_bin(state, folder, config, shards=3 if layout == "sharded-bin" else 1)
        return
    folder.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(folder)
    if layout == "safetensors":
        save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    else:
        save_safetensors(state, folder, "4KB")
        assert (folder / "model.safetensors.index.json").exists()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, checkpoint_dir):
    """checkpoint(class_name, config_name, layout, spelling) -> a folder holding that checkpoint, made once:
    conftest's where it writes that spelling (save_pretrained's safetensors, state_dict()'s .bin files)."""
    made = {}

    def make(class_name: str, config_name: str, layout: str = "safetensors", spelling: str = "saved"):
        if (spelling == "saved") == layout.endswith("safetensors") and spelling != "original":
            return checkpoint_dir(class_name, config_name, layout)
        key = (class_name, config_name, layout, spelling)
        if key not in made:
            folder = tmp_path_factory.mktemp(f"{class_name}-{config_name}-{layout}-{spelling}")
            model = hf_model(class_name, config_name)  # the reference's weights, a config no loss has set
            states = {"modules": model.state_dict, "original": lambda: original_state(model)}
            state = saved_state(model, tmp_path_factory.mktemp("saved")) if spelling == "saved" else states[spelling]()
            write(state, folder, model.config, layout)
            made[key] = folder
        return made[key]

    return make


def expected_missing(class_name: str, config_name: str, spelling: str) -> set[str]:
    """The original code's decoder has one bias: an untied model's unused ``cls.predictions.bias`` starts at 0."""
    untied = CONFIGS[config_name].get("tie_word_embeddings") is False
    return {"cls.predictions.bias"} if spelling == "original" and untied and class_name.endswith("MaskedLM") else set()


# -- every class, config, layout and key spelling ------------------------------------------------------


@pytest.mark.parametrize("spelling", SPELLINGS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("class_name", "config_name"), CASES)
def test_every_output_matches_transformers(class_name, config_name, layout, spelling, checkpoint, reference):
    folder = checkpoint(class_name, config_name, layout, spelling)
    model = ours(class_name).from_pretrained(folder)
    report = model.load_report
    assert set(report.missing) == expected_missing(class_name, config_name, spelling)
    assert report.unexpected == [] and report.mismatched == []
    file_keys = set(Checkpoint(folder).keys())
    assert {r.checkpoint_key for r in report.records if r.checkpoint_key} == file_keys  # every key accounted for
    layers = CONFIGS[config_name]["num_hidden_layers"]
    assert len(report.split) == (0 if spelling == "modules" else 3 * layers)
    assert all(r.verified for r in report.records if r.status in ("loaded", "renamed", "split"))
    if spelling != "modules":
        assert all("attn.Wqkv split in 3" in r.rule for r in report.records if r.status == "split")
    if spelling == "original" and class_name != "NomicBertModel":  # the original code's head models: self.bert
        encoder = [
            r for r in report.records if r.status in ("renamed", "split") and r.model_key.startswith("nomic_bert.")
        ]
        assert len(encoder) == len(model.base_model.state_dict())  # every encoder tensor: renamed or split
        assert all("stripped prefix 'bert.'" in r.rule and "added prefix 'nomic_bert.'" in r.rule for r in encoder)
    theirs = reference(class_name, config_name, "eager")
    inputs = make_inputs(config_name)
    flags = {"output_hidden_states": True, "output_attentions": True}
    with torch.no_grad():
        mine, expected = model(**inputs, **flags), theirs(**inputs, **flags)
    assert len(mine.hidden_states) == layers + 1 and len(mine.attentions) == layers
    assert_outputs_close(mine, expected)


@pytest.mark.parametrize(("class_name", "config_name"), [(c, n) for c in HEADS for n in ("nomic-a", "nomic-b")])
def test_losses_from_the_original_spelling_match_transformers(class_name, config_name, checkpoint, reference):
    """test_parity.py: from transformers' spellings."""
    model = ours(class_name).from_pretrained(checkpoint(class_name, config_name, spelling="original"))
    inputs = make_inputs(config_name)
    labels = labels_for(class_name, config_name, inputs)
    with torch.no_grad():
        mine, expected = model(**inputs, **labels), reference(class_name, config_name)(**inputs, **labels)
    assert mine.loss is not None and torch.isfinite(mine.loss)
    torch.testing.assert_close(mine.loss, expected.loss, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("class_name", "config_name"), CASES)
def test_no_position_table_no_projection_biases_and_heads_head_dim_wide(class_name, config_name, reference):
    """Beyond test_loading.py's equal keys and shapes: what NomicBERT's state dict holds and lacks."""
    theirs = reference(class_name, config_name)
    config = NomicBertConfig.from_dict(theirs.config.to_dict())
    mine = {k: tuple(v.shape) for k, v in ours(class_name)(config).state_dict().items()}
    assert not any("position_embeddings" in key or key.endswith("_proj.bias") for key in mine)  # rotary, no biases
    if config_name == "nomic-b":
        assert mine[f"{'' if class_name == 'NomicBertModel' else 'nomic_bert.'}layers.0.self_attn.q_proj.weight"] == (
            24,
            30,
        )


@pytest.mark.parametrize("spelling", ["original"])  # save_pretrained's: test_parity.py
@pytest.mark.parametrize(("class_name", "config_name"), CASES)
def test_saved_model_loads_in_transformers_with_identical_outputs(
    class_name, config_name, spelling, checkpoint, reference, tmp_path
):
    model = ours(class_name).from_pretrained(checkpoint(class_name, config_name, spelling=spelling))
    model.save_pretrained(tmp_path, max_shard_size="4KB" if config_name == "nomic-a" else "5GB")
    theirs, info = getattr(transformers, class_name).from_pretrained(
        tmp_path, output_loading_info=True, attn_implementation="eager"
    )
    missing = expected_missing(class_name, config_name, spelling)  # saved as initialised: zeros
    assert set(info["missing_keys"]) == set() and not info["unexpected_keys"] and not info["mismatched_keys"]
    inputs = make_inputs(config_name)
    flags = {"output_hidden_states": True, "output_attentions": True}
    with torch.no_grad():
        reloaded = theirs.eval()(**inputs, **flags)
        if not missing:
            assert_outputs_close(reloaded, reference(class_name, config_name, "eager")(**inputs, **flags), atol=0)
        assert_outputs_close(model(**inputs, **flags), reloaded)
    again = ours(class_name).from_pretrained(tmp_path)
    assert not again.load_report.missing and not again.load_report.split  # minibert writes transformers' module names


@pytest.mark.parametrize("spelling", ["modules", "original"])  # save_pretrained's: test_parity.py
@pytest.mark.parametrize("head", HEADS)
def test_base_checkpoint_loads_into_head_and_back(head, spelling, checkpoint, reference):
    """Missing and unexpected keys are what transformers reports; the encoder is the checkpoint's either way."""
    base_folder, head_folder = (
        checkpoint("NomicBertModel", "nomic-b", spelling=spelling),
        checkpoint(head, "nomic-b", spelling=spelling),
    )
    into_head = ours(head).from_pretrained(base_folder)
    _, expected = getattr(transformers, head).from_pretrained(
        checkpoint("NomicBertModel", "nomic-b"), output_loading_info=True
    )
    assert set(into_head.load_report.missing) == set(expected["missing_keys"])
    assert all(
        "added prefix 'nomic_bert.'" in r.rule
        for r in into_head.load_report.records
        if r.status in ("renamed", "split")
    )
    into_base = nomic_bert.NomicBertModel.from_pretrained(head_folder)
    assert into_base.load_report.missing == []
    head_keys = {
        k
        for k in Checkpoint(head_folder).keys()
        if k.removeprefix("nomic_bert.").removeprefix("bert.").startswith(("cls.", "classifier.", "pooler."))
    }
    assert set(into_base.load_report.unexpected) == head_keys  # the base model has no pooler by default
    inputs = make_inputs("nomic-b")
    with torch.no_grad():
        base = reference("NomicBertModel", "nomic-b")(**inputs).last_hidden_state
        assert_real_tokens_close(into_head.base_model(**inputs).last_hidden_state, base, inputs["attention_mask"])
        encoder = reference(head, "nomic-b").base_model(**inputs).last_hidden_state
        assert_real_tokens_close(into_base(**inputs).last_hidden_state, encoder, inputs["attention_mask"])


def test_positions_and_lengths_past_max_position_embeddings_match_transformers(checkpoint, reference):
    """Spread position_ids (they move the rotation), inputs_embeds with token types, and inputs longer than
    max_position_embeddings (no table: transformers takes any length, and so does minibert). The other
    optional inputs: test_parity.py."""
    model = nomic_bert.NomicBertModel.from_pretrained(checkpoint("NomicBertModel", "nomic-b"))
    theirs = reference("NomicBertModel", "nomic-b")
    inputs = make_inputs("nomic-b")
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    embeds = theirs.embeddings.word_embeddings(ids).detach()
    long = torch.randint(6, 120, (2, 57))  # max_position_embeddings is 40
    with torch.no_grad():
        for kwargs in (
            {"input_ids": ids, "position_ids": torch.arange(ids.shape[1])[None] * 2},
            {"inputs_embeds": embeds, "attention_mask": mask, "token_type_ids": inputs["token_type_ids"]},
            {"input_ids": long},
            {"input_ids": long, "position_ids": torch.arange(57)[None] + 100},
        ):
            assert_outputs_close(
                model(**kwargs, output_hidden_states=True), theirs(**kwargs, output_hidden_states=True)
            )


@pytest.mark.parametrize(
    "rope",
    [
        {"rope_type": "default", "rope_theta": 10000.0},
        {"rope_type": "linear", "rope_theta": 300.0, "factor": 3.0},
        {"rope_type": "dynamic", "rope_theta": 80.0, "factor": 2.0},
    ],
)
@pytest.mark.parametrize("length", [64, 90])  # at and past max_position_embeddings, where dynamic NTK stretches
def test_rope_types_match_transformers(rope, length, tmp_path):
    theirs = hf_model("NomicBertModel", "nomic-a", rope_parameters=rope)  # fresh: its dynamic cache is empty
    theirs.save_pretrained(tmp_path)
    model = nomic_bert.NomicBertModel.from_pretrained(tmp_path)
    assert model.config.rope_parameters == rope
    inputs = make_inputs("nomic-a", length=length)
    with torch.no_grad():
        assert_outputs_close(model(**inputs, output_hidden_states=True), theirs(**inputs, output_hidden_states=True))


# -- precision and surgery (the unpadded path, training, resizing: the shared tests) ---------------


@pytest.mark.parametrize("class_name", ["NomicBertModel", "NomicBertForMaskedLM"])
def test_bf16_weights_stay_near_transformers(class_name, checkpoint, reference):
    """bf16 keeps 8 bits of mantissa; rotation in the model's dtype, as transformers does."""
    folder = checkpoint(class_name, "nomic-a")
    model = ours(class_name).from_pretrained(folder, dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    theirs_bf16 = getattr(transformers, class_name).from_pretrained(folder, dtype=torch.bfloat16).eval()
    inputs = make_inputs("nomic-a")
    field = "logits" if class_name.endswith("MaskedLM") else "last_hidden_state"
    with torch.no_grad():
        mine = getattr(model(**inputs), field)
        expected, expected_bf16 = (
            getattr(reference(class_name, "nomic-a")(**inputs), field),
            getattr(theirs_bf16(**inputs), field),
        )
    assert mine.dtype == torch.bfloat16
    real = inputs["attention_mask"].bool()
    torch.testing.assert_close(mine[real].float(), expected[real], atol=0.1, rtol=0.05)
    torch.testing.assert_close(mine[real].float(), expected_bf16[real].float(), atol=0.05, rtol=0.02)


def test_heads_cannot_be_pruned_and_say_so(checkpoint):
    model = nomic_bert.NomicBertModel.from_pretrained(checkpoint("NomicBertModel", "nomic-a"))
    with pytest.raises(ConfigError, match="NomicBERT's heads cannot be pruned"):
        model.prune_heads({0: [1]})
    with pytest.raises(ConfigError, match="pruned_heads"):
        NomicBertConfig(**CONFIGS["nomic-a"], pruned_heads={0: [1]})


# -- the original remote code: config spelling and key layout ---------------------------------------


REMOTE_ARCHITECTURES = {"NomicBertForMaskedLM": "NomicBertForPreTraining"}


def remote_config(class_name: str) -> dict:
    """nomic-r's config.json as the remote code's save_pretrained writes it (a GPT2Config: every field)."""
    values = CONFIGS["nomic-r"]
    return {
        "model_type": "nomic_bert",
        "architectures": [REMOTE_ARCHITECTURES.get(class_name, class_name)],
        "auto_map": {"AutoConfig": "nomic-ai/nomic-bert-2048--configuration_hf_nomic_bert.NomicBertConfig"},
        "vocab_size": 100,  # padded to a multiple of 64 by the remote code: 128
        "pad_vocab_size_multiple": 64,
        "n_embd": values["hidden_size"],
        "n_head": values["num_attention_heads"],
        "n_layer": values["num_hidden_layers"],
        "n_inner": 200,  # its gated MLP rounds the width up to a multiple of 256
        "n_positions": values["max_position_embeddings"],
        "activation_function": "swiglu",
        "rotary_emb_base": values["rope_parameters"]["rope_theta"],
        "rotary_emb_fraction": 1.0,
        "rotary_emb_interleaved": False,
        "rotary_emb_scale_base": None,
        "rotary_scaling_factor": None,
        "max_trained_positions": 2048,
        "qkv_proj_bias": False,
        "mlp_fc1_bias": False,
        "mlp_fc2_bias": False,
        "prenorm": False,
        "parallel_block": False,
        "parallel_block_tied_norm": False,
        "use_rms_norm": False,
        "causal": False,
        "layer_norm_epsilon": 1e-12,
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
        "type_vocab_size": values["type_vocab_size"],
        "initializer_range": 0.02,
        "tie_word_embeddings": True,
        "fused_bias_fc": True,
        "fused_dropout_add_ln": True,
        "use_flash_attn": True,
        "use_xentropy": True,
        "dense_seq_output": True,
        "summary_type": "cls_index",
        "use_cache": True,
    }


def native_remote_model(class_name: str) -> nn.Module:
    """nomic-r in transformers, with the MLM head's biases at zero: the remote code's head has none (mlp_fc1_bias)."""
    model = hf_model(class_name, "nomic-r", seed=4, attn="eager")
    if class_name.endswith("MaskedLM"):
        with torch.no_grad():
            model.cls.predictions.bias.zero_()
            model.cls.predictions.transform.dense.bias.zero_()
    return model


@pytest.mark.parametrize("layout", ["safetensors", "sharded-bin"])
@pytest.mark.parametrize("class_name", CLASSES)
def test_remote_code_folder_gives_the_native_outputs_and_reports_every_mapping(class_name, layout, tmp_path, caplog):
    theirs = native_remote_model(class_name)
    state = original_state(theirs)
    if class_name.endswith("MaskedLM"):  # no biases in the remote head
        del state["cls.predictions.decoder.bias"], state["cls.predictions.transform.dense.bias"]
    write(state, tmp_path / "remote", theirs.config, layout)
    remote = remote_config(class_name)
    (tmp_path / "remote" / "config.json").write_text(json.dumps(remote))
    with caplog.at_level(logging.INFO, logger="minibert.rotary"):
        model = ours(class_name).from_pretrained(tmp_path / "remote")
    config = model.config
    native = NomicBertConfig.from_dict(theirs.config.to_dict(), architectures=[class_name], classifier_dropout=0.0)
    assert config.replace(extra={}) == native.replace(extra={})
    report = model.load_report
    renames = "\n".join(report.config_renames)
    consumed = (
        set(remote)
        - set(config.extra)
        - {"model_type", "architectures", "type_vocab_size", "initializer_range", "tie_word_embeddings"}
    )
    for key in consumed:  # every remote-code field read is listed, with what it became
        assert key in renames, key
    assert "fc12 the gated gate_proj" in renames and "intermediate_size 256" in renames and "-> 128" in renames
    assert all(f"NomicBertConfig: {line}" in caplog.text for line in report.config_renames)
    assert "  config      n_embd 32 -> hidden_size" in str(report)
    assert report.to_dict()["config_renames"] == report.config_renames  # what `minibert inspect --json` prints
    assert "auto_map" not in config.extra and "n_embd" not in config.to_dict()
    assert set(config.extra) == {
        "fused_bias_fc",
        "fused_dropout_add_ln",
        "use_flash_attn",
        "use_xentropy",
        "dense_seq_output",
        "summary_type",
        "use_cache",
        "max_trained_positions",
        "parallel_block_tied_norm",
    }
    head_biases = {"cls.predictions.bias", "cls.predictions.transform.dense.bias"}
    assert set(report.missing) == (head_biases if class_name.endswith("MaskedLM") else set())
    assert report.unexpected == [] and len(report.split) == 3 * 2
    assert {r.checkpoint_key for r in report.records if r.checkpoint_key} == set(Checkpoint(tmp_path / "remote").keys())
    equal, compared = count_equal_to_file(model, report)  # what `minibert verify` prints: split blocks included
    assert equal == compared == sum(r.status in ("loaded", "renamed", "split") for r in report.records)
    inputs = make_inputs("nomic-r")
    flags = {"output_hidden_states": True, "output_attentions": True}
    with torch.no_grad():
        assert_outputs_close(model(**inputs, **flags), theirs(**inputs, **flags))
    model.save_pretrained(tmp_path / "saved")
    written = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert not {"n_embd", "auto_map", "rotary_emb_base", "renamed_fields"} & set(written)
    reloaded, info = getattr(transformers, class_name).from_pretrained(
        tmp_path / "saved", output_loading_info=True, attn_implementation="eager"
    )
    assert not info["missing_keys"] and not info["unexpected_keys"]
    with torch.no_grad():
        assert_outputs_close(reloaded.eval()(**inputs, **flags), theirs(**inputs, **flags))


def test_remote_code_config_of_the_hub_models_reads_as_transformers_defaults():
    """The remote code's field values of nomic-embed-text-v1.5 (n_positions 8192, rotary base 1000)."""
    values = {
        **remote_config("NomicBertModel"),
        "vocab_size": 30528,
        "n_embd": 768,
        "n_head": 12,
        "n_layer": 12,
        "n_inner": 3072,
        "n_positions": 8192,
        "rotary_emb_base": 1000,
    }
    config = config_class_for(values).from_dict(values)
    theirs = transformers.NomicBertConfig()
    for name in (
        "vocab_size",
        "hidden_size",
        "num_attention_heads",
        "num_hidden_layers",
        "intermediate_size",
        "hidden_act",
        "layer_norm_eps",
        "pad_token_id",
        "rope_parameters",
        "head_dim",
        "type_vocab_size",
    ):
        assert getattr(config, name) == getattr(theirs, name), name
    assert config.max_position_embeddings == 8192


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"prenorm": True}, "prenorm=True is not supported"),
        ({"causal": True}, "causal=True is not supported"),
        ({"rotary_emb_fraction": 0.5}, "rotary_emb_fraction=0.5 is not supported"),
        ({"rotary_emb_fraction": 0.0}, "a learned position table"),
        ({"rotary_emb_interleaved": True}, "rotary_emb_interleaved=True"),
        ({"rotary_emb_scale_base": 512}, "xPos"),
        ({"rotary_scaling_factor": 2.0}, "rotary_scaling_factor=2.0 is not supported"),
        ({"qkv_proj_bias": True}, "qkv_proj_bias=True"),
        ({"mlp_fc1_bias": True}, "mlp_fc1_bias=True"),
        ({"mlp_fc2_bias": True}, "mlp_fc2_bias=True"),
        ({"use_rms_norm": True}, "RMSNorm"),
        ({"parallel_block": True}, "parallel_block=True"),
        ({"activation_function": "gelu"}, "activation_function 'gelu' is not supported"),
        ({"activation_function": "glu"}, "activation_function 'glu'"),
        ({"num_heads_kv": 1}, "num_heads_kv=1"),
        ({"n_head": 2, "num_attention_heads": 4}, "n_head 2 and num_attention_heads 4 disagree"),
    ],
)
def test_remote_code_values_minibert_cannot_honour_are_config_errors(change, message):
    values = {**remote_config("NomicBertModel"), **change}
    with pytest.raises(ConfigError, match=re.escape(message)):
        NomicBertConfig.from_dict(values)


def test_remote_code_defaults_apply_where_its_config_leaves_a_field_out():
    """Absent, a field means the remote code's default, which is often another model: refused, not guessed."""
    values = remote_config("NomicBertModel")
    del values["rotary_emb_fraction"]  # default 0.0: learned absolute positions
    with pytest.raises(ConfigError, match="rotary_emb_fraction=0.0"):
        NomicBertConfig.from_dict(values)
    values = {k: v for k, v in remote_config("NomicBertModel").items() if k not in ("layer_norm_epsilon", "n_inner")}
    config = NomicBertConfig.from_dict(values)
    assert config.layer_norm_eps == 1e-5  # GPT2Config's default
    assert config.intermediate_size == 256  # int(8 * 32 / 3) = 85, rounded up to 256


# -- the loader's rules -----------------------------------------------------------------------


def test_a_checkpoint_with_both_spellings_of_a_tensor_is_refused(checkpoint, tmp_path):
    state = original_state(hf_model("NomicBertModel", "nomic-a"))
    state["layers.0.self_attn.k_proj.weight"] = state["encoder.layers.0.attn.Wqkv.weight"][:32].clone()
    write(state, tmp_path, transformers.NomicBertConfig(**CONFIGS["nomic-a"]), "safetensors")
    with pytest.raises(CheckpointError, match="both map to model key 'layers.0.self_attn.k_proj.weight'"):
        nomic_bert.NomicBertModel.from_pretrained(tmp_path)


def test_a_fused_tensor_that_does_not_split_evenly_is_mismatched():
    checkpoint = Checkpoint.from_state_dict({"fused.weight": torch.zeros(10, 4), "other.weight": torch.zeros(2, 4)})
    rule = KeyRule(r"fused\.weight", ("a.weight", "b.weight", "c.weight"), "test: fused split in 3")
    shapes = {"a.weight": (3, 4), "b.weight": (3, 4), "c.weight": (3, 4), "other.weight": (2, 4)}
    report = plan_load(checkpoint, shapes, {}, set(), "enc", rules=(rule,), strict=False)
    assert report.mismatched == ["a.weight", "b.weight", "c.weight"]
    assert {r.shape for r in report.records if r.status == "mismatched"} == {(10, 4)}
    even = plan_load(
        Checkpoint.from_state_dict({"fused.weight": torch.zeros(9, 4)}),
        shapes,
        {},
        set(),
        "enc",
        rules=(rule,),
        strict=False,
    )
    assert even.split == [("fused.weight", k) for k in ("a.weight", "b.weight", "c.weight")]
    assert [r.part for r in even.records if r.status == "split"] == [(0, 3), (1, 3), (2, 3)]
    assert "split       3 key(s) by rule: test: fused split in 3" in str(even)


# -- the config -----------------------------------------------------------------------------


def test_config_has_transformers_fields_and_defaults_and_round_trips(checkpoint):
    theirs = transformers.NomicBertConfig().to_dict()
    mine = NomicBertConfig().to_dict()
    shared = {k for k in theirs if k in mine and k not in ("architectures", "id2label", "label2id")}
    assert {"rope_parameters", "head_dim", "hidden_act", "vocab_size", "max_position_embeddings"} <= shared
    assert {k: mine[k] for k in shared} == {k: theirs[k] for k in shared}
    assert "position_embedding_type" not in mine and "renamed_fields" not in mine
    values = json.loads((checkpoint("NomicBertForSequenceClassification", "nomic-b") / "config.json").read_text())
    config = config_class_for(values).from_dict(values)
    assert isinstance(config, NomicBertConfig) and config.head_dim == 6 and config.num_labels == 3
    assert config.renamed_fields == ()
    again = transformers.NomicBertConfig.from_dict(config.to_dict())
    assert again.head_dim == 6 and again.rope_parameters == {"rope_type": "default", "rope_theta": 50.0}


def test_config_reads_a_top_level_rope_theta_as_transformers_does():
    theirs = transformers.NomicBertConfig(rope_theta=321.0)
    config = NomicBertConfig.from_dict({"rope_theta": 321.0})
    assert config.rope_parameters == theirs.rope_parameters == {"rope_type": "default", "rope_theta": 321.0}
    assert config.renamed_fields and "rope_theta 321.0" in config.renamed_fields[0]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"head_dim": 7}, "head_dim must be even"),
        ({"head_dim": 0}, "head_dim must be a positive integer"),
        ({"pad_token_id": None}, "pad_token_id must be an integer"),
        ({"rope_parameters": {"rope_type": "yarn", "rope_theta": 10.0}}, "rope_type 'yarn' is not supported"),
        ({"rope_parameters": {"rope_type": "linear", "rope_theta": 10.0}}, "needs a positive factor"),
        ({"rope_parameters": {"rope_theta": -1.0}}, "rope_theta must be a positive number"),
        ({"rope_parameters": {"rope_theta": 10.0, "partial_rotary_factor": 0.5}}, "partial_rotary_factor 0.5"),
        ({"hidden_size": 30, "num_attention_heads": 4, "vocab_size": 3, "pad_token_id": 5}, "outside the vocabulary"),
    ],
)
def test_config_refuses_what_transformers_nomic_bert_cannot_compute(values, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        NomicBertConfig(**values)
