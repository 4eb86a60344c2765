"""ModernBERT computes what transformers computes: every class, config, layout, output field and fine-tuning habit.

The reference is transformers' ModernBERT with random weights (biases and norms randomised so they
count), eager attention unless a test says sdpa. Two configs differ where ModernBERT could go wrong:
windows small enough to matter at the test lengths (local_attention 5 and 6: 2 and 3 tokens each
side), custom thetas for each kind of layer, a global layer every 2 or 3, every bias or none, a tied
or untied decoder (without bias), cls or mean pooling, odd widths.

Padding positions: a padding query whose window holds no real key has no defined output
(transformers' eager attention averages every value there, its sdpa returns zeros). minibert's
padded path computes what transformers' eager does, everywhere; other comparisons are at real tokens.
"""

import inspect
import json

import pytest
import torch
import transformers
from conftest import assert_outputs_close, save_bin
from torch import nn
from transformers.masking_utils import create_bidirectional_sliding_window_mask
from transformers.models.modernbert import modeling_modernbert

import minibert
from minibert import modernbert
from minibert.config import config_class_for
from minibert.modernbert import ModernBertConfig

CONFIGS = {
    "modernbert-a": dict(  # every bias, tied decoder, cls pooling, a global layer every 2, 4.x spelling
        vocab_size=99,
        hidden_size=36,
        intermediate_size=37,
        num_hidden_layers=4,
        num_attention_heads=3,
        hidden_activation="gelu_new",
        max_position_embeddings=64,
        local_attention=5,
        global_attn_every_n_layers=2,
        global_rope_theta=1000.0,
        local_rope_theta=50.0,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        cls_token_id=1,
        sep_token_id=2,
        norm_bias=True,
        attention_bias=True,
        mlp_bias=True,
        classifier_bias=True,
        decoder_bias=True,
    ),
    "modernbert-b": dict(  # no bias anywhere, untied decoder, mean pooling, a global layer every 3, 5.x spelling
        vocab_size=80,
        hidden_size=40,
        intermediate_size=27,
        num_hidden_layers=4,
        num_attention_heads=4,
        hidden_activation="silu",
        max_position_embeddings=48,
        local_attention=6,
        global_attn_every_n_layers=3,
        rope_parameters={
            "full_attention": {"rope_type": "default", "rope_theta": 5000.0},
            "sliding_attention": {"rope_type": "default", "rope_theta": 300.0},
        },
        pad_token_id=3,
        bos_token_id=1,
        eos_token_id=2,
        cls_token_id=1,
        sep_token_id=2,
        norm_eps=1e-6,
        decoder_bias=False,
        tie_word_embeddings=False,
        classifier_pooling="mean",
        classifier_activation="relu",
        num_labels=3,
    ),
}
HEADS = [
    "ModernBertForMaskedLM",
    "ModernBertForSequenceClassification",
    "ModernBertForTokenClassification",
    "ModernBertForQuestionAnswering",
    "ModernBertForMultipleChoice",
]
CLASSES = ["ModernBertModel", *HEADS]
CASES = [(c, n) for c in CLASSES for n in CONFIGS]
LAYOUTS = ["safetensors", "sharded-safetensors", "bin", "sharded-bin"]  # no legacy names: no LayerNorm.gamma here
NO_DROPOUT = {"attention_dropout": 0.0, "embedding_dropout": 0.0, "mlp_dropout": 0.0, "classifier_dropout": 0.0}
FLAGS = {"output_hidden_states": True, "output_attentions": True}


def hf_model(class_name: str, config_name: str, attn: str = "eager", seed: int = 0, **changes) -> nn.Module:
    """A transformers model with random weights, every tensor non-trivial (biases and norms too)."""
    torch.manual_seed(seed)
    config = transformers.ModernBertConfig(**{**CONFIGS[config_name], **changes})
    if class_name.endswith("QuestionAnswering"):
        config.num_labels = 2
    config._attn_implementation = attn
    model = getattr(transformers, class_name)(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                param.add_(torch.randn_like(param) * 0.1)
    return model.eval()


def make_inputs(config_name: str, batch: int = 3, length: int = 11, seed: int = 1, choices: int | None = None):
    """Ids with right padding of different lengths per row: one row unpadded, one of 2 tokens."""
    values = CONFIGS[config_name]
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, length) if choices is None else (batch, choices, length)
    input_ids = torch.randint(0, values["vocab_size"], shape, generator=generator)
    input_ids[input_ids == values["pad_token_id"]] = values["pad_token_id"] + 1
    lengths = torch.randint(3, length + 1, shape[:-1], generator=generator)
    lengths.view(-1)[0], lengths.view(-1)[1] = length, 2
    attention_mask = (torch.arange(length) < lengths.unsqueeze(-1)).long()
    input_ids[attention_mask == 0] = values["pad_token_id"]
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def inputs_for(class_name: str, config_name: str, **kwargs) -> dict[str, torch.Tensor]:
    return make_inputs(config_name, choices=2 if class_name.endswith("MultipleChoice") else None, **kwargs)


def labels_for(class_name: str, inputs: dict[str, torch.Tensor], config_name: str) -> dict[str, torch.Tensor]:
    """Labels as collators make them: -100 at padding; span positions with one out of range."""
    generator = torch.Generator().manual_seed(3)
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    batch, length = ids.shape[0], ids.shape[-1]
    values = CONFIGS[config_name]
    if class_name.endswith("MaskedLM"):
        labels = torch.randint(0, values["vocab_size"], (batch, length), generator=generator)
        return {
            "labels": labels.masked_fill((torch.rand(batch, length, generator=generator) < 0.5) | (mask == 0), -100)
        }
    if class_name.endswith("SequenceClassification"):
        return {"labels": torch.randint(0, values.get("num_labels", 2), (batch,), generator=generator)}
    if class_name.endswith("TokenClassification"):
        labels = torch.randint(0, values.get("num_labels", 2), (batch, length), generator=generator)
        return {"labels": labels.masked_fill(mask == 0, -100)}
    if class_name.endswith("QuestionAnswering"):
        return {"start_positions": torch.tensor([1, 3, length + 5]), "end_positions": torch.tensor([2, length + 5, 4])}
    return {"labels": torch.randint(0, ids.shape[1], (batch,), generator=generator)}


def real_of(inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    mask = inputs["attention_mask"]
    return mask.reshape(-1, mask.shape[-1]).bool()  # (B [* C], T)


def at_real_tokens(outputs, real: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every tensor of ``outputs``; per-token ones at real tokens only (attentions: real query rows)."""
    fields = {}
    for name, value in outputs.items():
        for i, tensor in enumerate(value if isinstance(value, tuple) else (value,)):
            if name == "attentions":
                tensor = tensor.transpose(1, 2)[real]  # (N, nh, T)
            elif tensor.dim() >= 2 and tuple(tensor.shape[:2]) == tuple(real.shape):
                tensor = tensor[real]
            fields[f"{name}[{i}]" if isinstance(value, tuple) else name] = tensor
    return fields


def assert_close_at_real_tokens(mine, theirs, real: torch.Tensor, atol: float = 1e-5) -> None:
    mine, theirs = at_real_tokens(mine, real), at_real_tokens(theirs, real)
    assert mine.keys() == theirs.keys()
    for name, value in theirs.items():
        torch.testing.assert_close(mine[name], value, atol=atol, rtol=0, msg=lambda m, n=name: f"{n}: {m}")


def ours(class_name: str) -> type[minibert.PreTrainedModel]:
    return getattr(modernbert, class_name)


@pytest.fixture(scope="module")
def reference():
    """reference(class_name, config_name, attn="eager") -> the transformers model (eager: the checkpoints')."""
    made: dict[tuple[str, str, str], nn.Module] = {}

    def get(class_name: str, config_name: str, attn: str = "eager") -> nn.Module:
        if (class_name, config_name, attn) not in made:
            made[class_name, config_name, attn] = hf_model(class_name, config_name, attn)
        return made[class_name, config_name, attn]

    return get


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, reference):
    """checkpoint(class_name, config_name, layout) -> a folder holding that checkpoint, made once."""
    made = {}

    def make(class_name: str, config_name: str, layout: str = "safetensors"):
        key = (class_name, config_name, layout)
        if key not in made:
            folder = tmp_path_factory.mktemp(f"{class_name}-{config_name}-{layout}")
            model = reference(class_name, config_name)
            if layout == "safetensors":
                model.save_pretrained(folder)
            elif layout == "sharded-safetensors":
                model.save_pretrained(folder, max_shard_size="4KB")
                assert (folder / "model.safetensors.index.json").exists()
            else:
                save_bin(dict(model.state_dict()), folder, model.config, shards=3 if layout == "sharded-bin" else 1)
            made[key] = folder
        return made[key]

    return make


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread; on a busy machine, several threads wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def layer_inputs(model: nn.Module) -> list[torch.Size]:
    """The shapes the first layer is called with, from now on: (N, H) unpadded, (B, T, H) padded."""
    shapes = []
    model.base_model.layers[0].register_forward_pre_hook(lambda module, args: shapes.append(args[0].shape))
    return shapes


# -- the sliding window -----------------------------------------------------------------------


@pytest.mark.parametrize("local_attention", [1, 4, 5, 6, 128])
@pytest.mark.parametrize("length", [1, 7, 13])
def test_sliding_window_mask_is_transformers(local_attention, length):
    config = transformers.ModernBertConfig(hidden_size=16, num_attention_heads=2, local_attention=local_attention)
    config._attn_implementation = "sdpa"
    embeds = torch.zeros(1, length, 16)
    theirs = create_bidirectional_sliding_window_mask(
        config=config, inputs_embeds=embeds, attention_mask=torch.ones(1, length), allow_is_bidirectional_skip=False
    )[0, 0]
    assert torch.equal(modernbert.sliding_window_mask(length, local_attention // 2), theirs)


def test_sliding_window_mask_reads_as_its_docstring_says():
    expected = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 1], [0, 0, 1, 1]], dtype=torch.bool)
    assert torch.equal(modernbert.sliding_window_mask(4, 1), expected)


def test_the_mask_is_built_once_per_forward_and_read_by_layer_type(checkpoint):
    """Global layers read the padding bias and the global rotation, sliding ones the window bias and the local one."""
    model = modernbert.ModernBertModel.from_pretrained(checkpoint("ModernBertModel", "modernbert-a"))
    seen = []
    for layer in model.layers:
        layer.attn.register_forward_pre_hook(lambda module, args: seen.append((module.layer_type, args[1])))
    with torch.no_grad():
        model(**make_inputs("modernbert-a"))
    assert [kind for kind, _ in seen] == ["full_attention", "sliding_attention"] * 2  # every 2nd layer global
    mask = seen[0][1]
    assert all(m is mask for _, m in seen)
    assert mask.bias.shape == (3, 1, 1, 11) and mask.window_bias.shape == (3, 1, 11, 11)
    assert not torch.equal(mask.rotary[0], mask.window_rotary[0])  # thetas 1000 and 50
    window = modernbert.sliding_window_mask(11, 2)
    assert torch.equal(mask.window_bias[0, 0] == 0, window)  # row 0 has no padding: the window alone


# -- every class, config and checkpoint layout ---------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("class_name", "config_name"), CASES)
def test_every_output_matches_transformers(class_name, config_name, layout, checkpoint, reference):
    """Unpadded (the default) at real tokens; padded, every position, bit for bit or nearly."""
    model = ours(class_name).from_pretrained(checkpoint(class_name, config_name, layout))
    report = model.load_report
    assert report.missing == [] and report.unexpected == [] and report.mismatched == []
    assert model.base_model.unpad
    theirs = reference(class_name, config_name)
    inputs = inputs_for(class_name, config_name)
    with torch.no_grad():
        expected = theirs(**inputs, **FLAGS)
        assert_close_at_real_tokens(model(**inputs, **FLAGS), expected, real_of(inputs))
        model.set_unpadding(False)
        assert_outputs_close(model(**inputs, **FLAGS), expected)


@pytest.mark.parametrize(("class_name", "config_name"), CASES)
def test_sdpa_and_eager_match_transformers_sdpa_and_eager(class_name, config_name, checkpoint, reference):
    model = ours(class_name).from_pretrained(checkpoint(class_name, config_name))
    inputs = inputs_for(class_name, config_name, seed=7)
    real = real_of(inputs)
    with torch.no_grad():
        sdpa = model(**inputs, output_hidden_states=True)
        assert_close_at_real_tokens(
            sdpa, reference(class_name, config_name, "sdpa")(**inputs, output_hidden_states=True), real
        )
        model.set_attn_implementation("eager")
        eager = model(**inputs, output_hidden_states=True)
        assert_close_at_real_tokens(
            eager, reference(class_name, config_name)(**inputs, output_hidden_states=True), real
        )
    assert_close_at_real_tokens(eager, sdpa, real)


@pytest.mark.parametrize(("class_name", "config_name"), [(c, n) for c in HEADS for n in CONFIGS])
def test_losses_match_transformers(class_name, config_name, checkpoint, reference):
    """On the default (unpadded) path: the span loss runs padded by itself, the others need not."""
    model = ours(class_name).from_pretrained(checkpoint(class_name, config_name))
    inputs = inputs_for(class_name, config_name)
    labels = labels_for(class_name, inputs, config_name)
    shapes = layer_inputs(model)
    with torch.no_grad():
        mine, expected = model(**inputs, **labels), reference(class_name, config_name)(**inputs, **labels)
    assert mine.loss is not None and torch.isfinite(mine.loss)
    torch.testing.assert_close(mine.loss, expected.loss, atol=1e-5, rtol=0)
    assert len(shapes[0]) == (3 if class_name.endswith("QuestionAnswering") else 2)  # padded (B, T, H) or (N, H)
    assert model.base_model.unpad  # back to the default after the padded call


# -- the unpadded path, the default ------------------------------------------------------------------


@pytest.mark.parametrize(("class_name", "config_name"), CASES)
def test_unpadded_path_is_the_default_and_gives_the_padded_outputs_at_real_tokens(class_name, config_name, checkpoint):
    """(N, H) rows between attention blocks; windows and rotations counted within each sequence."""
    model = ours(class_name).from_pretrained(checkpoint(class_name, config_name))
    assert ours(class_name)(model.config).base_model.unpad  # built unpadded too, not only loaded
    inputs = inputs_for(class_name, config_name, batch=4, length=13)
    shapes = layer_inputs(model)
    with torch.no_grad():  # no attention maps: their rows at padding queries are computed on the padded path only
        fast = model(**inputs, output_hidden_states=True)
        model.set_unpadding(False)
        padded = model(**inputs, output_hidden_states=True)
    real = real_of(inputs)
    assert len(shapes[0]) == 2 and shapes[0][0] == real.sum() and len(shapes[1]) == 3
    assert_close_at_real_tokens(fast, padded, real)
    assert fast.hidden_states[-1][~real].abs().max() == 0  # padding rows are zeros on this path, after final_norm too


def test_heads_whose_outputs_read_padding_run_that_call_padded(checkpoint, reference):
    """transformers' values read at padding positions need them computed: a label at padding, the first position
    of a left-padded sentence (cls pooling). Calls that read none stay unpadded."""
    cases = [
        ("ModernBertForMaskedLM", "modernbert-a", "labels at padding"),
        ("ModernBertForTokenClassification", "modernbert-b", "labels at padding"),
        ("ModernBertForSequenceClassification", "modernbert-a", "left padding"),
    ]
    for class_name, config_name, case in cases:
        model = ours(class_name).from_pretrained(checkpoint(class_name, config_name))
        theirs = reference(class_name, config_name)
        inputs = make_inputs(config_name)
        if case == "left padding":
            inputs = {name: x.flip(1) for name, x in inputs.items()}
        else:
            inputs["labels"] = inputs["input_ids"] % 3  # labels at padding too, not -100
        shapes = layer_inputs(model)
        with torch.no_grad():
            assert_outputs_close(model(**inputs), theirs(**inputs))
            model(**{**inputs, "labels": None})
        assert [len(s) for s in shapes] == [3, 3 if case == "left padding" else 2], class_name
        assert model.base_model.unpad


# -- keys, saving, loading ----------------------------------------------------------------------


@pytest.mark.parametrize(("class_name", "config_name"), CASES)
def test_state_dict_keys_and_shapes_are_transformers(class_name, config_name, reference):
    theirs = reference(class_name, config_name)
    config = ModernBertConfig.from_dict(theirs.config.to_dict())
    mine = {k: tuple(v.shape) for k, v in ours(class_name)(config).state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert mine == theirs
    prefix = "" if class_name == "ModernBertModel" else "model."
    assert f"{prefix}layers.1.attn_norm.weight" in mine and f"{prefix}layers.0.attn_norm.weight" not in mine
    assert (f"{prefix}final_norm.bias" in mine) == CONFIGS[config_name].get("norm_bias", False)


@pytest.mark.parametrize(("class_name", "config_name"), CASES)
def test_saved_model_loads_in_transformers_with_identical_outputs(
    class_name, config_name, checkpoint, reference, tmp_path
):
    model = ours(class_name).from_pretrained(checkpoint(class_name, config_name))
    model.save_pretrained(tmp_path, max_shard_size="4KB" if config_name == "modernbert-a" else "5GB")
    theirs, info = getattr(transformers, class_name).from_pretrained(
        tmp_path, output_loading_info=True, attn_implementation="eager"
    )
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert theirs.config.layer_types == reference(class_name, config_name).config.layer_types
    assert theirs.config.rope_parameters == reference(class_name, config_name).config.rope_parameters
    inputs = inputs_for(class_name, config_name)
    with torch.no_grad():
        reloaded = theirs.eval()(**inputs, **FLAGS)
        assert_outputs_close(reloaded, reference(class_name, config_name)(**inputs, **FLAGS), atol=0)  # same weights
        model.set_unpadding(False)
        assert_outputs_close(model(**inputs, **FLAGS), reloaded)


@pytest.mark.parametrize("head", HEADS)
def test_base_checkpoint_loads_into_head_and_back(head, checkpoint, reference):
    """Missing and unexpected keys are transformers', and the encoder is the checkpoint's either way."""
    base_folder, head_folder = checkpoint("ModernBertModel", "modernbert-b"), checkpoint(head, "modernbert-b")
    spans = {"num_labels": 2} if head.endswith("QuestionAnswering") else {}  # the base config has 3 labels
    into_head = ours(head).from_pretrained(base_folder, **spans)
    _, info = getattr(transformers, head).from_pretrained(base_folder, output_loading_info=True, **spans)
    assert set(into_head.load_report.missing) == set(info["missing_keys"])
    assert all(k.startswith(("head.", "classifier.", "decoder.")) for k in into_head.load_report.missing)
    into_base = modernbert.ModernBertModel.from_pretrained(head_folder)
    _, info = transformers.ModernBertModel.from_pretrained(head_folder, output_loading_info=True)
    assert set(into_base.load_report.unexpected) == set(info["unexpected_keys"])
    inputs = make_inputs("modernbert-b")
    with torch.no_grad():
        expected = reference("ModernBertModel", "modernbert-b")(**inputs).last_hidden_state
        encoded = into_head.base_model(**inputs).last_hidden_state
        again = into_base(**inputs).last_hidden_state
        head_encoder = reference(head, "modernbert-b").model(**inputs).last_hidden_state
    real = inputs["attention_mask"].bool()
    torch.testing.assert_close(encoded[real], expected[real], atol=1e-5, rtol=0)
    torch.testing.assert_close(again[real], head_encoder[real], atol=1e-5, rtol=0)


# -- the config ------------------------------------------------------------------------------


def four_x_config(values: dict) -> dict:
    """A transformers 4.x config.json of the same model: no layer_types, no rope_parameters, the old keys."""
    old = {k: v for k, v in values.items() if k not in ("layer_types", "rope_parameters")}
    rope = values["rope_parameters"]
    old.update(
        global_rope_theta=rope["full_attention"]["rope_theta"], local_rope_theta=rope["sliding_attention"]["rope_theta"]
    )
    old.update(position_embedding_type="absolute", reference_compile=True, repad_logits_with_grad=False)
    return old


@pytest.mark.parametrize("config_name", CONFIGS)
def test_4x_config_spelling_gives_the_same_model(config_name, checkpoint, reference, tmp_path):
    folder = checkpoint("ModernBertForMaskedLM", config_name)
    values = json.loads((folder / "config.json").read_text())
    old = four_x_config(values)
    assert old["global_attn_every_n_layers"] == CONFIGS[config_name]["global_attn_every_n_layers"]
    for name in ("model.safetensors", "config.json"):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    (tmp_path / "config.json").write_text(json.dumps(old))
    mine_old, mine_new = ModernBertConfig.from_dict(old), ModernBertConfig.from_dict(values)
    assert mine_old.layer_types == mine_new.layer_types == reference("ModernBertModel", config_name).config.layer_types
    assert mine_old.rope_parameters == mine_new.rope_parameters
    assert mine_old.extra["position_embedding_type"] == "absolute" and "global_rope_theta" not in mine_old.extra
    theirs_old = transformers.ModernBertForMaskedLM.from_pretrained(tmp_path, attn_implementation="eager").eval()
    assert theirs_old.config.rope_parameters == mine_old.rope_parameters
    model = modernbert.ModernBertForMaskedLM.from_pretrained(tmp_path)
    inputs = make_inputs(config_name)
    with torch.no_grad():
        expected = reference("ModernBertForMaskedLM", config_name)(**inputs, **FLAGS)
        assert_outputs_close(theirs_old(**inputs, **FLAGS), expected, atol=0)
        assert_close_at_real_tokens(model(**inputs, **FLAGS), expected, real_of(inputs))


def test_4x_spelling_as_overrides_and_rope_scaling_read_as_transformers_reads_them():
    kwargs = {
        "global_attn_every_n_layers": 2,
        "global_rope_theta": 77.0,
        "rope_scaling": {"rope_type": "linear", "factor": 2.0},
    }
    base = {"num_hidden_layers": 5, "hidden_size": 16, "num_attention_heads": 2}
    theirs = transformers.ModernBertConfig(**base, **kwargs)
    mine = ModernBertConfig.from_dict(base, **kwargs)
    assert mine.layer_types == theirs.layer_types == ["full_attention", "sliding_attention"] * 2 + ["full_attention"]
    assert mine.rope_parameters == theirs.rope_parameters
    assert mine.rope_parameters["full_attention"] == {"rope_type": "linear", "factor": 2.0, "rope_theta": 77.0}
    assert (
        ModernBertConfig.from_dict({"num_hidden_layers": 4}).layer_types
        == transformers.ModernBertConfig(num_hidden_layers=4).layer_types
    )  # every third layer global, without any of the keys


def test_config_has_transformers_fields_and_defaults_and_round_trips(checkpoint):
    theirs = transformers.ModernBertConfig().to_dict()
    mine = ModernBertConfig().to_dict()
    assert not {"hidden_act", "layer_norm_eps", "type_vocab_size", "hidden_dropout_prob"} & mine.keys()
    shared = {k for k in theirs if k in mine and k not in ("architectures", "id2label", "label2id")}
    assert {
        "layer_types",
        "rope_parameters",
        "local_attention",
        "norm_eps",
        "hidden_activation",
        "decoder_bias",
    } <= shared
    assert {k: mine[k] for k in shared} == {k: theirs[k] for k in shared}
    assert ModernBertConfig().sliding_window == transformers.ModernBertConfig().sliding_window == 64
    folder = checkpoint("ModernBertForSequenceClassification", "modernbert-b")
    values = json.loads((folder / "config.json").read_text())
    config = config_class_for(values).from_dict(values)
    assert isinstance(config, ModernBertConfig) and config.num_labels == 3 and config.classifier_pooling == "mean"
    again = transformers.ModernBertConfig.from_dict(config.to_dict())
    assert again.layer_types == config.layer_types and again.rope_parameters == config.rope_parameters
    assert (again.local_attention, again.decoder_bias, again.hidden_activation) == (6, False, "silu")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"hidden_size": 30, "num_attention_heads": 2}, "must be even: rotary"),
        ({"num_hidden_layers": 2, "layer_types": ["full_attention"]}, "layer_types has 1 entries"),
        ({"num_hidden_layers": 1, "layer_types": ["global"]}, "layer_types must list"),
        ({"rope_parameters": {"full_attention": {"rope_type": "yarn", "factor": 2.0}}}, "rope_type 'yarn' is not"),
        ({"rope_parameters": {"sliding_attention": {"rope_type": "linear"}}}, "needs a positive factor"),
        ({"classifier_pooling": "max"}, "classifier_pooling must be 'cls' or 'mean'"),
        ({"hidden_activation": "gelu_foo"}, "unknown hidden_activation"),
        ({"local_attention": 0}, "local_attention must be a positive integer"),
        ({"global_attn_every_n_layers": 0}, "global_attn_every_n_layers must be a positive integer"),
        ({"pruned_heads": {0: [1]}}, "cannot be pruned"),
    ],
)
def test_config_errors_name_the_field(values, message):
    with pytest.raises(minibert.ConfigError, match=message):
        ModernBertConfig.from_dict(values)


def test_heads_cannot_be_pruned_as_in_transformers(checkpoint):
    model = modernbert.ModernBertModel.from_pretrained(checkpoint("ModernBertModel", "modernbert-a"))
    with pytest.raises(minibert.ConfigError, match="cannot be pruned"):
        model.prune_heads({0: [1]})
    assert not hasattr(transformers.ModernBertModel, "prune_heads")


def test_generic_names_are_refused_as_overrides_and_kept_from_files():
    with pytest.raises(
        minibert.ConfigError, match=r"hidden_act is not a field of ModernBertConfig \(set hidden_activation\)"
    ):
        ModernBertConfig.from_dict({}, hidden_act="relu")
    config = ModernBertConfig.from_dict({"layer_norm_eps": 0.5, "hidden_act": "relu"})
    assert config.layer_norm_eps == config.norm_eps == 1e-5 and config.hidden_act == "gelu"
    assert config.to_dict()["layer_norm_eps"] == 0.5  # written back as the file had it, and unused as there


# -- inputs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("class_name", CLASSES)
def test_forward_names_transformers_inputs(class_name):
    """Trainer keeps only the dataset columns forward names, and exports pass inputs by position."""

    def names(cls: type) -> list[str]:
        parameters = inspect.signature(cls.forward).parameters.items()
        left_out = {"output_hidden_states", "output_attentions"}
        return [name for name, p in parameters if p.kind is not p.VAR_KEYWORD and name not in left_out]

    assert names(ours(class_name)) == names(getattr(transformers, class_name))


@pytest.mark.parametrize(
    "name", ["token_type_ids", "sliding_window_mask", "indices", "cu_seqlens", "max_seqlen", "batch_size", "seq_len"]
)
def test_inputs_transformers_ignores_are_refused_by_name(name, checkpoint, reference):
    model = modernbert.ModernBertForMaskedLM.from_pretrained(checkpoint("ModernBertForMaskedLM", "modernbert-a"))
    inputs = make_inputs("modernbert-a")
    value = torch.zeros_like(inputs["input_ids"])
    with torch.no_grad():
        reference("ModernBertForMaskedLM", "modernbert-a")(**inputs, **{name: value})  # transformers drops it
        with pytest.raises(ValueError, match=f"{name} is not supported: "):
            model(**inputs, **{name: value})
        with pytest.raises(ValueError, match=f"{name} is not supported: "):
            model.base_model(**inputs, **{name: value})
        model(**inputs, **{name: None})  # absent, as None


def test_attention_masks_prepared_by_layer_type_are_refused(checkpoint):
    model = modernbert.ModernBertModel.from_pretrained(checkpoint("ModernBertModel", "modernbert-a"))
    inputs = make_inputs("modernbert-a")
    with pytest.raises(ValueError, match="masks prepared by layer type are not supported"):
        model(inputs["input_ids"], attention_mask={"full_attention": None, "sliding_attention": None})


def test_optional_inputs_default_as_in_transformers(checkpoint, reference):
    """No mask, explicit position_ids, inputs_embeds, left padding (positions still count from the first row)."""
    model = modernbert.ModernBertModel.from_pretrained(checkpoint("ModernBertModel", "modernbert-b"))
    theirs = reference("ModernBertModel", "modernbert-b")
    inputs = make_inputs("modernbert-b")
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    embeds = theirs.embeddings.tok_embeddings(ids).detach()
    shifted = (torch.arange(ids.shape[1]) + 3).expand_as(ids)
    with torch.no_grad():
        for kwargs in (
            {"input_ids": ids},
            {"input_ids": ids, "attention_mask": mask, "position_ids": shifted},
            {"inputs_embeds": embeds, "attention_mask": mask},
            {"input_ids": ids.flip(1), "attention_mask": mask.flip(1)},
        ):
            real = kwargs["attention_mask"].bool() if "attention_mask" in kwargs else torch.ones_like(ids).bool()
            assert_close_at_real_tokens(model(**kwargs), theirs(**kwargs), real)


def test_span_head_takes_inputs_embeds_by_keyword_as_transformers_does(checkpoint, reference):
    model = modernbert.ModernBertForQuestionAnswering.from_pretrained(
        checkpoint("ModernBertForQuestionAnswering", "modernbert-a")
    )
    theirs = reference("ModernBertForQuestionAnswering", "modernbert-a")
    inputs = make_inputs("modernbert-a")
    embeds = theirs.model.embeddings.tok_embeddings(inputs["input_ids"]).detach()
    with torch.no_grad():
        expected = theirs(attention_mask=inputs["attention_mask"], inputs_embeds=embeds)
        assert_close_at_real_tokens(
            model(attention_mask=inputs["attention_mask"], inputs_embeds=embeds), expected, real_of(inputs)
        )


def test_multiple_choice_cls_reads_the_first_real_token_of_left_padded_choices(checkpoint, reference):
    model = modernbert.ModernBertForMultipleChoice.from_pretrained(
        checkpoint("ModernBertForMultipleChoice", "modernbert-a")
    )
    inputs = {name: x.flip(-1) for name, x in make_inputs("modernbert-a", choices=2).items()}
    with torch.no_grad():
        assert_outputs_close(model(**inputs), reference("ModernBertForMultipleChoice", "modernbert-a")(**inputs))


def test_return_dict_false_and_positional_inputs_follow_transformers(checkpoint, reference):
    model = modernbert.ModernBertForTokenClassification.from_pretrained(
        checkpoint("ModernBertForTokenClassification", "modernbert-a")
    )
    inputs = make_inputs("modernbert-a")
    args = (inputs["input_ids"], inputs["attention_mask"])
    model.set_unpadding(False)
    with torch.no_grad():
        mine = model(*args, return_dict=False, output_hidden_states=True)
        expected = reference("ModernBertForTokenClassification", "modernbert-a")(
            *args, return_dict=False, output_hidden_states=True
        )
    assert isinstance(mine, tuple) and len(mine) == len(expected) == 2
    torch.testing.assert_close(mine[0], expected[0], atol=1e-5, rtol=0)
    for a, b in zip(mine[1], expected[1], strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


# -- positions: rotary scalings, lengths beyond the trained one -------------------------------------


@pytest.mark.parametrize(
    "rope",
    [
        {"full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 500.0}},
        {"sliding_attention": {"rope_type": "dynamic", "factor": 3.0, "rope_theta": 40.0}},
    ],
)
def test_rope_scalings_and_inputs_longer_than_max_position_embeddings_match_transformers(rope, tmp_path):
    """Positions index no table: transformers runs past max_position_embeddings (64), where dynamic NTK stretches."""
    theirs = hf_model("ModernBertModel", "modernbert-a", rope_parameters=rope)
    theirs.save_pretrained(tmp_path)
    model = modernbert.ModernBertModel.from_pretrained(tmp_path)
    assert model.config.rope_parameters == theirs.config.rope_parameters
    for length in (20, 90):
        inputs = make_inputs("modernbert-a", batch=2, length=length)
        with torch.no_grad():
            assert_close_at_real_tokens(model(**inputs), theirs(**inputs), real_of(inputs))


@pytest.mark.parametrize("class_name", ["ModernBertForMaskedLM", "ModernBertForSequenceClassification"])
def test_bf16_weights_stay_near_transformers(class_name, checkpoint, reference):
    """bf16 keeps 8 bits of mantissa; queries and keys are rotated in float32 there as here."""
    folder = checkpoint(class_name, "modernbert-a")
    model = ours(class_name).from_pretrained(folder, dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    inputs = make_inputs("modernbert-a")
    with torch.no_grad():
        logits = model(**inputs).logits
        theirs_bf16 = getattr(transformers, class_name).from_pretrained(folder, dtype=torch.bfloat16).eval()
        expected, expected_bf16 = reference(class_name, "modernbert-a")(**inputs).logits, theirs_bf16(**inputs).logits
    assert logits.dtype == torch.bfloat16
    real = inputs["attention_mask"].bool() if logits.dim() == 3 else slice(None)
    torch.testing.assert_close(logits[real].float(), expected[real], atol=0.1, rtol=0.05)
    torch.testing.assert_close(logits[real].float(), expected_bf16[real].float(), atol=0.1, rtol=0.05)


def test_bf16_queries_and_keys_are_rotated_in_float32_as_transformers_rotates_them(checkpoint, monkeypatch):
    """Bit for bit: cos and sin rounded to bf16, the rotation itself in float32, cast back."""
    folder = checkpoint("ModernBertModel", "modernbert-a")
    model = modernbert.ModernBertModel.from_pretrained(folder, dtype=torch.bfloat16)
    rotary = transformers.ModernBertModel.from_pretrained(folder, dtype=torch.bfloat16).rotary_emb
    projected, attended = [], []
    for layer in model.layers[:2]:  # a global layer, then a sliding-window one
        layer.attn.Wqkv.register_forward_hook(lambda module, args, output: projected.append(output))
    attend = modernbert.attend
    monkeypatch.setattr(modernbert, "attend", lambda q, k, *args: attended.append((q, k)) or attend(q, k, *args))
    model.set_unpadding(False)
    with torch.no_grad():
        model(**make_inputs("modernbert-a"))
    positions = torch.arange(11)[None]
    for qkv, (q, k), kind in zip(projected, attended[:2], ["full_attention", "sliding_attention"], strict=True):
        q_in, k_in, _ = qkv.view(3, 11, 3, 3, 12).unbind(dim=-3)  # (B, T, nh, hs) each
        cos, sin = rotary(qkv, positions, kind)
        expected = modeling_modernbert.apply_rotary_pos_emb(q_in.transpose(1, 2), k_in.transpose(1, 2), cos, sin)
        assert q.dtype == torch.bfloat16 and torch.equal(q, expected[0]) and torch.equal(k, expected[1])


def test_sparse_prediction_scores_only_the_labelled_tokens(tmp_path):
    theirs = hf_model("ModernBertForMaskedLM", "modernbert-b", sparse_prediction=True)
    theirs.save_pretrained(tmp_path)
    model = modernbert.ModernBertForMaskedLM.from_pretrained(tmp_path)
    inputs = make_inputs("modernbert-b")
    labels = labels_for("ModernBertForMaskedLM", inputs, "modernbert-b")
    with torch.no_grad():
        mine, expected = model(**inputs, **labels), theirs(**inputs, **labels)
    assert mine.logits.shape == expected.logits.shape == ((labels["labels"] != -100).sum(), 80)
    assert_outputs_close(mine, expected)


# -- training -------------------------------------------------------------------------------


def training_step_gradients(model: nn.Module, class_name: str, config_name: str) -> dict[str, torch.Tensor | None]:
    inputs = inputs_for(class_name, config_name)
    model(**inputs, **labels_for(class_name, inputs, config_name)).loss.backward()
    return {name: param.grad for name, param in model.named_parameters(remove_duplicate=False)}


def assert_same_gradients(mine: dict, expected: dict) -> None:
    assert mine.keys() == expected.keys()
    for name, grad in expected.items():
        if grad is None:
            assert mine[name] is None, name
        else:
            torch.testing.assert_close(mine[name], grad, atol=1e-5, rtol=1e-4, msg=lambda m, n=name: f"{n}: {m}")
    assert sum(g is not None and bool(g.any()) for g in mine.values()) > len(mine) // 2


@pytest.mark.parametrize(
    ("class_name", "config_name"),
    [("ModernBertForMaskedLM", "modernbert-a"), ("ModernBertForSequenceClassification", "modernbert-b")],
)
def test_training_gradients_match_transformers(class_name, config_name, checkpoint):
    """Unpadded (the default), in train mode, every dropout at 0."""
    model = ours(class_name).from_pretrained(checkpoint(class_name, config_name), **NO_DROPOUT).train()
    theirs = hf_model(class_name, config_name, **NO_DROPOUT).train()
    assert_same_gradients(
        training_step_gradients(model, class_name, config_name),
        training_step_gradients(theirs, class_name, config_name),
    )


@pytest.mark.parametrize("use_reentrant", [True, False])
def test_gradient_checkpointing_recomputes_layers_with_transformers_gradients(use_reentrant, checkpoint):
    class_name, config_name = "ModernBertForTokenClassification", "modernbert-a"
    model = ours(class_name).from_pretrained(checkpoint(class_name, config_name), **NO_DROPOUT).train()
    runs = []
    for layer in model.model.layers:
        layer.register_forward_pre_hook(lambda *_: runs.append(1))
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": use_reentrant})
    assert model.is_gradient_checkpointing
    theirs = hf_model(class_name, config_name, **NO_DROPOUT).train()
    theirs.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": use_reentrant})
    expected = training_step_gradients(theirs, class_name, config_name)
    assert_same_gradients(training_step_gradients(model, class_name, config_name), expected)
    assert len(runs) == 2 * 4  # each layer once forward, once again in backward


@pytest.mark.parametrize(("config_name", "grow"), [("modernbert-a", 13), ("modernbert-b", -20)])
def test_resized_vocabulary_matches_transformers_and_round_trips(config_name, grow, checkpoint, tmp_path):
    """Tied (a) and untied without a decoder bias (b)."""
    folder = checkpoint("ModernBertForMaskedLM", config_name)
    model = modernbert.ModernBertForMaskedLM.from_pretrained(folder)
    theirs = transformers.ModernBertForMaskedLM.from_pretrained(folder, attn_implementation="eager").eval()
    size = model.config.vocab_size + grow
    returned = model.resize_token_embeddings(size)
    theirs.resize_token_embeddings(size, mean_resizing=False)
    kept = min(size, CONFIGS[config_name]["vocab_size"])
    assert returned is model.get_input_embeddings() is model.model.embeddings.tok_embeddings
    assert returned.num_embeddings == model.config.vocab_size == size
    decoder = model.get_output_embeddings()
    assert decoder is model.decoder and decoder.weight.shape == (size, CONFIGS[config_name]["hidden_size"])
    assert (decoder.weight is returned.weight) == model.config.tie_word_embeddings
    assert (decoder.bias is None) == (not CONFIGS[config_name]["decoder_bias"])
    torch.testing.assert_close(returned.weight[:kept], theirs.get_input_embeddings().weight[:kept], atol=0, rtol=0)
    inputs = make_inputs(config_name)
    inputs["input_ids"] %= kept
    real = inputs["attention_mask"].bool()
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).logits[real][:, :kept], theirs(**inputs).logits[real][:, :kept])
    model.save_pretrained(tmp_path)
    reloaded, info = transformers.ModernBertForMaskedLM.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    inputs["input_ids"][:, 1] = size - 1
    with torch.no_grad():
        expected = model(**inputs).logits
        torch.testing.assert_close(reloaded.eval()(**inputs).logits[real], expected[real], atol=1e-5, rtol=0)
        again = modernbert.ModernBertForMaskedLM.from_pretrained(tmp_path)
        torch.testing.assert_close(again(**inputs).logits, expected, atol=0, rtol=0)


@pytest.mark.parametrize("class_name", ["ModernBertForMaskedLM", "ModernBertForSequenceClassification"])
def test_a_new_model_starts_as_transformers_starts_it(class_name):
    """Truncated normal weights, each role's std: compared tensor by tensor with transformers' own init."""
    values = {
        **CONFIGS["modernbert-a"],
        "hidden_size": 96,
        "intermediate_size": 160,
        "vocab_size": 400,
        "num_labels": 20,
    }
    torch.manual_seed(0)
    theirs = getattr(transformers, class_name)(transformers.ModernBertConfig(**values))
    mine = ours(class_name)(ModernBertConfig.from_dict(theirs.config.to_dict()))
    expected = theirs.state_dict()
    assert mine.state_dict().keys() == expected.keys()
    for name, tensor in mine.state_dict().items():
        reference = expected[name]
        if name.endswith("bias") or "norm" in name:  # exactly 0, or 1
            assert torch.equal(tensor, reference), name
            continue
        assert reference.numel() >= 1920, name  # enough values for the statistics below
        assert 0.9 < tensor.std() / reference.std() < 1.1, name
        assert 0.9 < tensor.abs().max() / reference.abs().max() < 1.05, name  # truncated where transformers truncates
