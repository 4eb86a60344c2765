"""MPNet computes what transformers computes: every class, config, layout, output field and fine-tuning habit.

The reference is transformers' MPNet, which has only eager attention; its checkpoints are made
here in the five layouts conftest's fixtures make for BERT. Configs differ where MPNet could go
wrong: bucket table sizes (the lookup always uses 32 buckets), pad ids other than 1 (the
embeddings pad with 1 regardless), head counts, activations, an untied decoder, and sequences
long enough to reach the log-spaced and clamped buckets.
"""

import inspect
import json

import pytest
import torch
import transformers
from conftest import LAYOUTS, assert_outputs_close, legacy_state, save_bin
from torch import nn
from transformers.models.mpnet.modeling_mpnet import MPNetEncoder as TheirEncoder

import minibert
from minibert import mpnet
from minibert.bert import Layer
from minibert.config import MPNetConfig, config_class_for

CONFIGS = {
    "mpnet-a": dict(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=160,  # room for sequences past max_distance (128)
        relative_attention_num_buckets=32,
        pad_token_id=1,
    ),
    "mpnet-b": dict(
        vocab_size=80,
        hidden_size=24,
        num_hidden_layers=3,
        num_attention_heads=3,
        intermediate_size=30,
        hidden_act="gelu_new",
        max_position_embeddings=40,
        relative_attention_num_buckets=40,  # rows 32..39 are never looked up
        pad_token_id=3,  # the embeddings still pad with 1
        layer_norm_eps=1e-5,
        tie_word_embeddings=False,
        num_labels=3,
    ),
    "mpnet-c": dict(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=24,
        hidden_act="relu",
        max_position_embeddings=30,
        relative_attention_num_buckets=33,
        pad_token_id=0,
        num_labels=4,
    ),
}
HEADS = [
    "MPNetForMaskedLM",
    "MPNetForSequenceClassification",
    "MPNetForTokenClassification",
    "MPNetForQuestionAnswering",
    "MPNetForMultipleChoice",
]
CLASSES = ["MPNetModel", *HEADS]
CASES = [(c, n) for c in CLASSES for n in CONFIGS]
NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}


def hf_model(class_name: str, config_name: str, seed: int = 0) -> nn.Module:
    """A transformers model with random weights, every tensor non-trivial (biases, LayerNorms, position biases)."""
    torch.manual_seed(seed)
    config = transformers.MPNetConfig(**CONFIGS[config_name])
    if class_name.endswith("QuestionAnswering"):
        config.num_labels = 2
    config._attn_implementation = "eager"  # transformers' MPNet has no other
    model = getattr(transformers, class_name)(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name:
                param.add_(torch.randn_like(param) * 0.1)
            if "relative_attention_bias" in name:  # init std 0.02 would hide a wrong bucket
                param.normal_(0.0, 1.0)
    return model.eval()


def make_inputs(config_name: str, batch: int = 3, length: int = 11, seed: int = 1, choices: int | None = None):
    """Ids with right padding of different lengths per row (one row unpadded).

    Where the config's pad id is not 1, real tokens include id 1: transformers counts positions
    over ids that are not 1, whatever the config says, and so must minibert.
    """
    values = CONFIGS[config_name]
    pad = values["pad_token_id"]
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, length) if choices is None else (batch, choices, length)
    input_ids = torch.randint(0, values["vocab_size"], shape, generator=generator)
    input_ids[input_ids == pad] = pad + 1
    if pad != 1:
        input_ids[..., 3] = 1
    lengths = torch.randint(2, length + 1, shape[:-1], generator=generator)
    lengths.view(-1)[0] = length
    attention_mask = (torch.arange(length) < lengths.unsqueeze(-1)).long()
    input_ids[attention_mask == 0] = pad
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def inputs_for(class_name: str, config_name: str, **kwargs) -> dict[str, torch.Tensor]:
    return make_inputs(config_name, choices=2 if class_name.endswith("MultipleChoice") else None, **kwargs)


def labels_for(class_name: str, inputs: dict[str, torch.Tensor], config_name: str) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    ids = inputs["input_ids"]
    batch, length = ids.shape[0], ids.shape[-1]
    values = CONFIGS[config_name]
    if class_name.endswith("MaskedLM"):
        labels = torch.randint(0, values["vocab_size"], (batch, length), generator=generator)
        return {"labels": labels.masked_fill(torch.rand(batch, length, generator=generator) < 0.6, -100)}
    if class_name.endswith("SequenceClassification"):
        return {"labels": torch.randint(0, values.get("num_labels", 2), (batch,), generator=generator)}
    if class_name.endswith("TokenClassification"):
        labels = torch.randint(0, values.get("num_labels", 2), (batch, length), generator=generator)
        return {"labels": labels.masked_fill(inputs["attention_mask"] == 0, -100)}
    if class_name.endswith("QuestionAnswering"):  # one position out of range: clamped and ignored
        return {"start_positions": torch.tensor([1, 3, length + 5]), "end_positions": torch.tensor([2, length + 5, 4])}
    return {"labels": torch.randint(0, ids.shape[1], (batch,), generator=generator)}


def ours(class_name: str) -> type[minibert.PreTrainedModel]:
    return getattr(mpnet, class_name)


@pytest.fixture(scope="module")
def reference():
    """reference(class_name, config_name) -> the transformers model the checkpoints were saved from."""
    made: dict[tuple[str, str], nn.Module] = {}

    def get(class_name: str, config_name: str) -> nn.Module:
        if (class_name, config_name) not in made:
            made[class_name, config_name] = hf_model(class_name, config_name)
        return made[class_name, config_name]

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
            state = dict(model.state_dict())
            if layout == "safetensors":
                model.save_pretrained(folder)
            elif layout == "sharded-safetensors":
                model.save_pretrained(folder, max_shard_size="4KB")
                assert (folder / "model.safetensors.index.json").exists()
            elif layout in ("bin", "sharded-bin"):
                save_bin(state, folder, model.config, shards=3 if layout == "sharded-bin" else 1)
            else:  # legacy-bin: LayerNorm.gamma/beta, and the position_ids buffer, under the head's prefix
                old = legacy_state(state, model.config.max_position_embeddings)
                if class_name != "MPNetModel":
                    old["mpnet.embeddings.position_ids"] = old.pop("embeddings.position_ids")
                save_bin(old, folder, model.config)
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


# -- the relative-position bias -------------------------------------------------------------


@pytest.mark.parametrize(("num_buckets", "max_distance"), [(32, 128), (16, 20), (64, 256), (33, 50), (8, 8)])
def test_relative_position_bucket_equals_transformers(num_buckets, max_distance):
    relative = torch.arange(-700, 701)[:, None] + torch.tensor([0, 1])[None, :]  # (1401, 2): any shape
    expected = TheirEncoder.relative_position_bucket(relative, num_buckets=num_buckets, max_distance=max_distance)
    assert torch.equal(mpnet.relative_position_bucket(relative, num_buckets, max_distance), expected)


def test_long_sequences_reach_the_far_buckets_and_still_match_transformers(checkpoint, reference):
    """150 tokens: distances past max_distance (128) fall in the last bucket of each half."""
    folder = checkpoint("MPNetModel", "mpnet-a")
    model = mpnet.MPNetModel.from_pretrained(folder)
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


def test_position_bias_is_computed_once_per_forward_and_shared_by_every_layer(checkpoint):
    model = mpnet.MPNetModel.from_pretrained(checkpoint("MPNetModel", "mpnet-b"))  # 3 layers
    lookups, biases = [], []
    model.encoder.relative_attention_bias.register_forward_hook(lambda *_: lookups.append(1))
    for layer in model.encoder.layer:
        layer.attention.attn.register_forward_pre_hook(lambda module, args: biases.append(args[1].bias))
    with torch.no_grad():
        model(**make_inputs("mpnet-b"))
    assert len(lookups) == 1 and len(biases) == 3
    assert all(bias is biases[0] for bias in biases) and biases[0].shape == (3, 3, 11, 11)  # (B, nh, T, T)


# -- every class, config and checkpoint layout ---------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("class_name", "config_name"), CASES)
def test_every_output_matches_transformers(class_name, config_name, layout, checkpoint, reference):
    model = ours(class_name).from_pretrained(checkpoint(class_name, config_name, layout))
    report = model.load_report
    assert report.missing == [] and report.unexpected == [] and report.mismatched == []
    if layout == "legacy-bin":
        assert any(r.rule and "LayerNorm.gamma" in r.rule for r in report.records)
        assert report.ignored == [f"{'' if class_name == 'MPNetModel' else 'mpnet.'}embeddings.position_ids"]
    theirs = reference(class_name, config_name)
    inputs = inputs_for(class_name, config_name)
    flags = {"output_hidden_states": True, "output_attentions": True}
    with torch.no_grad():
        assert_outputs_close(model(**inputs, **flags), theirs(**inputs, **flags))


@pytest.mark.parametrize(("class_name", "config_name"), CASES)
def test_sdpa_and_eager_match_transformers_eager(class_name, config_name, checkpoint, reference):
    model = ours(class_name).from_pretrained(checkpoint(class_name, config_name))
    theirs = reference(class_name, config_name)
    inputs = inputs_for(class_name, config_name, seed=7)
    with torch.no_grad():
        sdpa = model(**inputs, output_hidden_states=True)
        assert_outputs_close(sdpa, theirs(**inputs, output_hidden_states=True))
        model.set_attn_implementation("eager")
        mine = model(**inputs, output_hidden_states=True, output_attentions=True)
        assert_outputs_close(mine, theirs(**inputs, output_hidden_states=True, output_attentions=True))
    assert_outputs_close(mine, sdpa)
    assert len(mine.attentions) == CONFIGS[config_name]["num_hidden_layers"]


@pytest.mark.parametrize(("class_name", "config_name"), [(c, n) for c in HEADS for n in CONFIGS])
def test_losses_match_transformers(class_name, config_name, checkpoint, reference):
    model = ours(class_name).from_pretrained(checkpoint(class_name, config_name))
    inputs = inputs_for(class_name, config_name)
    labels = labels_for(class_name, inputs, config_name)
    with torch.no_grad():
        mine, expected = model(**inputs, **labels), reference(class_name, config_name)(**inputs, **labels)
    assert mine.loss is not None and torch.isfinite(mine.loss)
    torch.testing.assert_close(mine.loss, expected.loss, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("class_name", "config_name"), CASES)
def test_state_dict_keys_and_shapes_are_transformers(class_name, config_name, reference):
    theirs = reference(class_name, config_name)
    config = MPNetConfig.from_dict(theirs.config.to_dict())
    mine = {k: tuple(v.shape) for k, v in ours(class_name)(config).state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert mine == theirs
    assert not any("token_type" in key for key in mine)


@pytest.mark.parametrize(("class_name", "config_name"), CASES)
def test_saved_model_loads_in_transformers_with_identical_outputs(
    class_name, config_name, checkpoint, reference, tmp_path
):
    model = ours(class_name).from_pretrained(checkpoint(class_name, config_name))
    model.save_pretrained(tmp_path, max_shard_size="4KB" if config_name == "mpnet-a" else "5GB")
    theirs, info = getattr(transformers, class_name).from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    inputs = inputs_for(class_name, config_name)
    flags = {"output_hidden_states": True, "output_attentions": True}
    with torch.no_grad():
        reloaded = theirs.eval()(**inputs, **flags)
        assert_outputs_close(reloaded, reference(class_name, config_name)(**inputs, **flags), atol=0)  # same weights
        assert_outputs_close(model(**inputs, **flags), reloaded)


@pytest.mark.parametrize("head", HEADS)
def test_base_checkpoint_loads_into_head_and_back(head, checkpoint, reference):
    """Missing and unexpected keys are transformers', and the encoder is the checkpoint's either way."""
    base_folder, head_folder = checkpoint("MPNetModel", "mpnet-b"), checkpoint(head, "mpnet-b")
    spans = {"num_labels": 2} if head.endswith("QuestionAnswering") else {}  # the base config has 3 labels
    into_head = ours(head).from_pretrained(base_folder, **spans)
    _, info = getattr(transformers, head).from_pretrained(base_folder, output_loading_info=True, **spans)
    report = into_head.load_report
    tied_to_missing = {alias for alias, shared in into_head.tied_weights().items() if shared in report.missing}
    assert set(report.missing) | tied_to_missing == set(info["missing_keys"])
    assert set(report.unexpected) == set(info["unexpected_keys"])
    assert report.missing and not any(key.startswith("mpnet.") for key in report.missing)
    into_base = mpnet.MPNetModel.from_pretrained(head_folder)
    _, info = transformers.MPNetModel.from_pretrained(head_folder, output_loading_info=True)
    assert set(into_base.load_report.missing) == set(info["missing_keys"])
    assert set(into_base.load_report.unexpected) == set(info["unexpected_keys"])
    inputs = make_inputs("mpnet-b")
    with torch.no_grad():
        expected = reference("MPNetModel", "mpnet-b")(**inputs).last_hidden_state
        torch.testing.assert_close(into_head.base_model(**inputs).last_hidden_state, expected, atol=1e-5, rtol=0)
        expected = reference(head, "mpnet-b").base_model(**inputs).last_hidden_state
        torch.testing.assert_close(into_base(**inputs).last_hidden_state, expected, atol=1e-5, rtol=0)


# -- calling conventions ----------------------------------------------------------------------


@pytest.mark.parametrize("class_name", CLASSES)
def test_forward_takes_transformers_inputs_in_transformers_order(class_name):
    theirs = inspect.signature(getattr(transformers, class_name).forward).parameters
    mine = inspect.signature(ours(class_name).forward).parameters
    assert [n for n, p in mine.items() if p.kind is not p.VAR_KEYWORD] == [
        n for n, p in theirs.items() if p.kind is not p.VAR_KEYWORD
    ]
    assert "token_type_ids" not in mine


def test_token_type_ids_are_dropped_as_transformers_drops_them_and_other_extras_refused(checkpoint, reference):
    model = mpnet.MPNetForSequenceClassification.from_pretrained(
        checkpoint("MPNetForSequenceClassification", "mpnet-a")
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
def test_positional_flags_and_return_dict_false_give_transformers_tuple(class_name, checkpoint, reference):
    model = ours(class_name).from_pretrained(checkpoint(class_name, "mpnet-c"))
    theirs = reference(class_name, "mpnet-c")
    inputs = inputs_for(class_name, "mpnet-c")
    # input_ids, attention_mask, position_ids, inputs_embeds, [span positions,] output_attentions, output_hidden_states
    middle = (None,) if class_name.endswith("MultipleChoice") else (None, None) if "Answering" in class_name else ()
    args = (inputs["input_ids"], inputs["attention_mask"], None, None, *middle, True, True)
    with torch.no_grad():
        mine, expected = model(*args, return_dict=False), theirs(*args, return_dict=False)
    assert isinstance(mine, tuple) and len(mine) == len(expected)
    for a, b in zip(mine, expected, strict=True):
        for x, y in zip(a, b, strict=True) if isinstance(a, tuple) else [(a, b)]:
            torch.testing.assert_close(x, y, atol=1e-5, rtol=0)


def test_optional_inputs_default_as_in_transformers(checkpoint, reference):
    """No mask, explicit position_ids, inputs_embeds (positions from 2), left padding."""
    model = mpnet.MPNetModel.from_pretrained(checkpoint("MPNetModel", "mpnet-b"))
    theirs = reference("MPNetModel", "mpnet-b")
    inputs = make_inputs("mpnet-b")
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    embeds = theirs.embeddings.word_embeddings(ids).detach()
    left = {"input_ids": ids.flip(1), "attention_mask": mask.flip(1)}
    with torch.no_grad():
        for kwargs in (
            {"input_ids": ids},
            {"input_ids": ids, "position_ids": torch.arange(ids.shape[1]).flip(0).expand_as(ids) + 2},
            {"inputs_embeds": embeds, "attention_mask": mask},
            left,
        ):
            assert_outputs_close(model(**kwargs), theirs(**kwargs))


def test_output_flags_from_from_pretrained_are_the_defaults(checkpoint):
    folder = checkpoint("MPNetForTokenClassification", "mpnet-a")
    flags = {"output_hidden_states": True, "output_attentions": True}
    model = mpnet.MPNetForTokenClassification.from_pretrained(folder, **flags)
    theirs = transformers.MPNetForTokenClassification.from_pretrained(folder, **flags).eval()
    inputs = make_inputs("mpnet-a")
    with torch.no_grad():
        mine = model(**inputs)
        assert mine.keys() == list(theirs(**inputs).keys()) == ["logits", "hidden_states", "attentions"]
        assert_outputs_close(mine, theirs(**inputs))
        assert model(**inputs, output_attentions=False).attentions is None


# -- fast paths and precision -----------------------------------------------------------------


@pytest.mark.parametrize(("class_name", "config_name"), [(c, n) for c in CLASSES for n in ("mpnet-a", "mpnet-b")])
def test_unpadded_path_matches_transformers_at_real_tokens(class_name, config_name, checkpoint, reference):
    """(N, H) rows between attention blocks; attention itself in (B, T) with the (B, nh, T, T) bias."""
    model = ours(class_name).from_pretrained(checkpoint(class_name, config_name))
    inputs = inputs_for(class_name, config_name, batch=4, length=13)
    assert (inputs["attention_mask"] == 0).any()
    with torch.no_grad():
        padded = model(**inputs, output_hidden_states=True)
        expected = reference(class_name, config_name)(**inputs, output_hidden_states=True)
        model.set_unpadding(True)
        fast = model(**inputs, output_hidden_states=True)
    real = inputs["attention_mask"].reshape(-1, inputs["attention_mask"].shape[-1]).bool()  # (B [* C], T)

    def at_real_tokens(outputs) -> dict[str, torch.Tensor]:
        fields = {name: value for name, value in vars(outputs).items() if isinstance(value, torch.Tensor)}
        fields.update({f"hidden_states[{i}]": h for i, h in enumerate(outputs.hidden_states)})
        return {k: v[real] if tuple(v.shape[:2]) == tuple(real.shape) else v for k, v in fields.items()}

    mine = at_real_tokens(fast)
    assert fast.hidden_states[-1][~real].abs().max() == 0  # padding rows are zeros on this path
    for reference_outputs in (padded, expected):
        for name, value in at_real_tokens(reference_outputs).items():
            torch.testing.assert_close(mine[name], value, atol=1e-5, rtol=0, msg=name)


@pytest.mark.parametrize("class_name", ["MPNetForMaskedLM", "MPNetForSequenceClassification"])
def test_bf16_weights_stay_near_transformers(class_name, checkpoint, reference):
    """bf16 keeps 8 bits of mantissa: activations of size ~1 carry errors of ~1e-2."""
    model = ours(class_name).from_pretrained(checkpoint(class_name, "mpnet-a"), dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    theirs = reference(class_name, "mpnet-a")
    inputs = make_inputs("mpnet-a")
    with torch.no_grad():
        logits = model(**inputs).logits
        theirs_bf16 = getattr(transformers, class_name).from_pretrained(
            checkpoint(class_name, "mpnet-a"), dtype=torch.bfloat16
        )
        expected, expected_bf16 = theirs(**inputs).logits, theirs_bf16.eval()(**inputs).logits
    assert logits.dtype == torch.bfloat16
    real = inputs["attention_mask"].bool() if logits.dim() == 3 else slice(None)
    torch.testing.assert_close(logits[real].float(), expected[real], atol=0.1, rtol=0.05)
    torch.testing.assert_close(logits[real].float(), expected_bf16[real].float(), atol=0.1, rtol=0.05)


# -- training -------------------------------------------------------------------------------


def training_step_gradients(model: nn.Module, class_name: str, config_name: str) -> dict[str, torch.Tensor | None]:
    inputs = inputs_for(class_name, config_name)
    model(**inputs, **labels_for(class_name, inputs, config_name)).loss.backward()
    return {name: param.grad for name, param in model.named_parameters(remove_duplicate=False)}


def theirs_for_training(class_name: str, config_name: str) -> nn.Module:
    model = hf_model(class_name, config_name).train()
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    return model


def assert_same_gradients(mine: dict, expected: dict) -> None:
    assert mine.keys() == expected.keys()
    for name, grad in expected.items():
        if grad is None:
            assert mine[name] is None, name
        else:
            torch.testing.assert_close(mine[name], grad, atol=1e-5, rtol=1e-4, msg=lambda m, n=name: f"{n}: {m}")
    assert "mpnet.encoder.relative_attention_bias.weight" in mine
    assert sum(g is not None and bool(g.any()) for g in mine.values()) > len(mine) // 2


@pytest.mark.parametrize(("class_name", "config_name"), [(c, "mpnet-b") for c in HEADS] + [(HEADS[0], "mpnet-a")])
def test_training_gradients_match_transformers(class_name, config_name, checkpoint):
    model = ours(class_name).from_pretrained(checkpoint(class_name, config_name), **NO_DROPOUT).train()
    expected = training_step_gradients(theirs_for_training(class_name, config_name), class_name, config_name)
    assert_same_gradients(training_step_gradients(model, class_name, config_name), expected)


@pytest.mark.parametrize("use_reentrant", [True, False])
def test_gradient_checkpointing_recomputes_layers_with_transformers_gradients(use_reentrant, checkpoint):
    """transformers' MPNet cannot checkpoint; minibert can, and its position bias still gets every layer's gradient."""
    class_name, config_name = "MPNetForSequenceClassification", "mpnet-b"  # 3 layers share the bias
    model = ours(class_name).from_pretrained(checkpoint(class_name, config_name), **NO_DROPOUT).train()
    runs = []
    for module in model.modules():
        if isinstance(module, Layer):
            module.register_forward_pre_hook(lambda *_: runs.append(1))
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": use_reentrant})
    expected = training_step_gradients(theirs_for_training(class_name, config_name), class_name, config_name)
    assert_same_gradients(training_step_gradients(model, class_name, config_name), expected)
    assert len(runs) == 2 * 3  # each layer once forward, once again in backward


# -- changing a pretrained model ----------------------------------------------------------------


PRUNE_CASES = [
    ("MPNetModel", "mpnet-a", {0: [1, 3], 1: [2]}, {0: [0, 3]}),
    ("MPNetForSequenceClassification", "mpnet-b", {2: [0, 2]}, {"1": [1]}),
    ("MPNetForMaskedLM", "mpnet-a", {1: [0, 1, 2]}, {1: [3]}),  # every head of a layer
]


@pytest.mark.parametrize(("class_name", "config_name", "first", "second"), PRUNE_CASES)
def test_pruned_heads_contribute_nothing_and_keep_their_position_bias(
    class_name, config_name, first, second, checkpoint, tmp_path
):
    """Compared with the unpruned transformers model whose ``o`` ignores the pruned heads.

    The kept heads read their own rows of the shared position bias (transformers 4.x, which could
    prune, crashed here: its bias kept every head).
    """
    model = ours(class_name).from_pretrained(checkpoint(class_name, config_name))
    model.prune_heads(first)
    model.prune_heads(second)
    gone: dict[int, set[int]] = {}
    for layer, heads in [*first.items(), *second.items()]:
        gone.setdefault(int(layer), set()).update(heads)
    assert model.config.pruned_heads == {layer: sorted(heads) for layer, heads in sorted(gone.items())}
    theirs = hf_model(class_name, config_name)
    prefix = "" if class_name == "MPNetModel" else "mpnet."
    heads, size = CONFIGS[config_name]["num_attention_heads"], CONFIGS[config_name]["hidden_size"]
    with torch.no_grad():
        for layer, pruned in gone.items():
            kept = torch.ones(heads, size // heads, dtype=torch.bool)
            kept[sorted(pruned)] = False
            kept = kept.flatten()  # (nh * hs,): the features of the heads that stay
            attn = f"{prefix}encoder.layer.{layer}.attention.attn"
            torch.testing.assert_close(
                model.get_submodule(f"{attn}.q").weight, theirs.get_submodule(f"{attn}.q").weight[kept]
            )
            theirs.get_submodule(f"{attn}.o").weight[:, ~kept] = 0
        inputs = inputs_for(class_name, config_name)
        expected = theirs(**inputs, output_hidden_states=True)
        assert_outputs_close(model(**inputs, output_hidden_states=True), expected)
        model.set_unpadding(True)  # the kept heads' bias rows, in the (B, T) layout attention runs in
        fast = model(**inputs, output_hidden_states=True).hidden_states[-1]
        model.set_unpadding(False)
    real = inputs["attention_mask"].bool()
    torch.testing.assert_close(fast[real], expected.hidden_states[-1][real], atol=1e-5, rtol=0)
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["pruned_heads"] == {
        str(layer): sorted(heads) for layer, heads in sorted(gone.items())
    }
    again = ours(class_name).from_pretrained(tmp_path)
    assert not again.load_report.missing and not again.load_report.mismatched and not again.load_report.unexpected
    with torch.no_grad():
        assert_outputs_close(again(**inputs), model(**inputs), atol=0)


@pytest.mark.parametrize(("config_name", "grow"), [("mpnet-a", 13), ("mpnet-b", -20), ("mpnet-c", 1)])
def test_resized_vocabulary_matches_transformers_and_round_trips(config_name, grow, checkpoint, tmp_path):
    folder = checkpoint("MPNetForMaskedLM", config_name)
    model = mpnet.MPNetForMaskedLM.from_pretrained(folder)
    theirs = transformers.MPNetForMaskedLM.from_pretrained(folder).eval()
    size = model.config.vocab_size + grow
    returned = model.resize_token_embeddings(size)
    theirs.resize_token_embeddings(size, mean_resizing=False)
    kept = min(size, CONFIGS[config_name]["vocab_size"])
    assert returned is model.get_input_embeddings() and returned.num_embeddings == model.config.vocab_size == size
    assert returned.padding_idx == theirs.get_input_embeddings().padding_idx == 1
    decoder = model.get_output_embeddings()
    assert decoder.weight.shape == (size, CONFIGS[config_name]["hidden_size"]) and model.lm_head.bias.shape == (size,)
    assert (decoder.weight is returned.weight) == model.config.tie_word_embeddings
    torch.testing.assert_close(returned.weight[:kept], theirs.get_input_embeddings().weight[:kept], atol=0, rtol=0)
    torch.testing.assert_close(decoder.bias, theirs.get_output_embeddings().bias, atol=0, rtol=0)
    inputs = make_inputs(config_name)
    inputs["input_ids"] %= kept
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).logits[..., :kept], theirs(**inputs).logits[..., :kept])
    model.save_pretrained(tmp_path)
    reloaded, info = transformers.MPNetForMaskedLM.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    inputs["input_ids"][:, 1] = size - 1
    with torch.no_grad():
        expected = model(**inputs).logits
        torch.testing.assert_close(reloaded.eval()(**inputs).logits, expected, atol=1e-5, rtol=0)
        torch.testing.assert_close(
            mpnet.MPNetForMaskedLM.from_pretrained(tmp_path)(**inputs).logits, expected, atol=0, rtol=0
        )


# -- the config -----------------------------------------------------------------------------


def test_config_has_transformers_fields_and_defaults_and_round_trips(checkpoint):
    theirs = transformers.MPNetConfig().to_dict()
    mine = MPNetConfig().to_dict()
    shared = {k for k in theirs if k in mine and k not in ("architectures", "id2label", "label2id")}
    assert {"relative_attention_num_buckets", "pad_token_id", "vocab_size", "layer_norm_eps"} <= shared
    assert {k: mine[k] for k in shared} == {k: theirs[k] for k in shared}
    folder = checkpoint("MPNetForSequenceClassification", "mpnet-b")
    values = json.loads((folder / "config.json").read_text())
    config = config_class_for(values).from_dict(values)
    assert isinstance(config, MPNetConfig) and config.relative_attention_num_buckets == 40 and config.num_labels == 3
    again = transformers.MPNetConfig.from_dict(config.to_dict())
    assert again.relative_attention_num_buckets == 40 and again.pad_token_id == 3


def test_config_refuses_a_bucket_table_smaller_than_the_lookup():
    with pytest.raises(minibert.ConfigError, match="relative_attention_num_buckets must be an integer >= 32, got 16"):
        MPNetConfig(relative_attention_num_buckets=16)
    with pytest.raises(minibert.ConfigError, match="positions count from 2"):
        MPNetConfig(max_position_embeddings=2)


def test_heads_read_hidden_dropout_not_classifier_dropout_as_transformers_does():
    config = MPNetConfig(**CONFIGS["mpnet-c"], hidden_dropout_prob=0.3, classifier_dropout=0.7)
    model = mpnet.MPNetForSequenceClassification(config)
    assert {m.p for m in model.classifier.modules() if isinstance(m, nn.Dropout)} == {0.3}
    theirs = transformers.MPNetForSequenceClassification(transformers.MPNetConfig.from_dict(config.to_dict()))
    assert {m.p for m in theirs.classifier.modules() if isinstance(m, nn.Dropout)} == {0.3}
