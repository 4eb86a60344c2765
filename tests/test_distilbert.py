"""DistilBERT computes what transformers computes: every class, config and checkpoint layout, and every habit.

The checkpoints are tiny random transformers models (biases and LayerNorms randomised so that
they count), saved in every layout minibert reads; every comparison is against transformers.
"""

import copy
import inspect
import json

import pytest
import torch
import transformers
from conftest import LAYOUTS, assert_outputs_close, legacy_state, save_bin
from safetensors.torch import load_file, save_file
from torch import nn

import minibert
from minibert import distilbert
from minibert.config import DistilBertConfig, config_class_for
from minibert.pretrained import REFUSED_INPUTS

# Sizes that differ where the code could go wrong: head sizes 9, 7 and 8 (odd widths too), gelu,
# relu and gelu_new, pad ids 0, 4 and 3; learned positions (-a), sinusoidal ones (-b, -c); an
# untied vocabulary projector (-b).
CONFIGS = {
    "distil-a": dict(
        vocab_size=99,
        dim=36,
        n_layers=2,
        n_heads=4,
        hidden_dim=37,
        max_position_embeddings=64,
        pad_token_id=0,
    ),
    "distil-b": dict(
        vocab_size=80,
        dim=21,
        n_layers=3,
        n_heads=3,
        hidden_dim=30,
        activation="relu",
        max_position_embeddings=40,
        pad_token_id=4,
        sinusoidal_pos_embds=True,
        tie_word_embeddings=False,
        num_labels=3,
    ),
    "distil-c": dict(
        vocab_size=61,
        dim=16,
        n_layers=1,
        n_heads=2,
        hidden_dim=22,
        activation="gelu_new",
        max_position_embeddings=32,
        pad_token_id=3,
        sinusoidal_pos_embds=True,
        num_labels=4,
    ),
}
CLASSES = [
    "DistilBertModel",
    "DistilBertForMaskedLM",
    "DistilBertForSequenceClassification",
    "DistilBertForTokenClassification",
    "DistilBertForQuestionAnswering",
    "DistilBertForMultipleChoice",
]
HEADS = CLASSES[1:]
CASES = [(c, n) for c in CLASSES for n in CONFIGS]
HEAD_CASES = [(c, n) for c in HEADS for n in CONFIGS]
NO_DROPOUT = {"dropout": 0.0, "attention_dropout": 0.0, "qa_dropout": 0.0, "seq_classif_dropout": 0.0}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread; on a busy machine, several threads wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def ours_class(class_name: str) -> type[minibert.PreTrainedModel]:
    return getattr(distilbert, class_name)


def hf_model(class_name: str, config_name: str, attn: str = "sdpa", **overrides) -> nn.Module:
    """A transformers model with random weights, every tensor non-trivial (as conftest.hf_model builds them)."""
    torch.manual_seed(0)
    config = transformers.DistilBertConfig(**{**CONFIGS[config_name], **overrides})
    if class_name.endswith("QuestionAnswering"):
        config.num_labels = 2  # a start and an end score per token
    config._attn_implementation = attn
    model = getattr(transformers, class_name)(config)
    with torch.no_grad():  # transformers inits biases to 0 and LayerNorms to 1/0: randomise so they count
        for name, param in model.named_parameters():
            if name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name:
                param.add_(torch.randn_like(param) * 0.1)
    return model.eval()


def distil_legacy_state(state: dict[str, torch.Tensor], max_positions: int) -> dict[str, torch.Tensor]:
    """conftest.legacy_state (LayerNorm.gamma/beta, a saved position_ids buffer) under DistilBERT's prefix."""
    renamed = {k: v for k, v in legacy_state(state, max_positions).items() if not k.endswith("position_ids")}
    prefix = "distilbert." if any(k.startswith("distilbert.") for k in state) else ""
    renamed[f"{prefix}embeddings.position_ids"] = torch.arange(max_positions).unsqueeze(0)
    return renamed


@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory):
    """checkpoint_dir(class_name, config_name, layout) -> a folder holding that checkpoint, made once."""
    made = {}

    def make(class_name: str, config_name: str, layout: str = "safetensors"):
        key = (class_name, config_name, layout)
        if key not in made:
            folder = tmp_path_factory.mktemp(f"{class_name}-{config_name}-{layout}")
            model = hf_model(class_name, config_name)
            state = dict(model.state_dict())
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
                legacy = distil_legacy_state(state, model.config.max_position_embeddings)
                assert any(k.endswith("LayerNorm.gamma") for k in legacy)
                save_bin(legacy, folder, model.config)
            else:
                raise ValueError(layout)
            made[key] = folder
        return made[key]

    return make


@pytest.fixture(scope="module")
def reference():
    """reference(class_name, config_name, attn="sdpa") -> the transformers model the checkpoints were saved from."""
    made = {}

    def get(class_name: str, config_name: str, attn: str = "sdpa") -> nn.Module:
        if (class_name, config_name, attn) not in made:
            made[class_name, config_name, attn] = hf_model(class_name, config_name, attn)
        return made[class_name, config_name, attn]

    return get


def make_inputs(class_name: str, config_name: str, batch: int = 3, length: int = 11, seed: int = 1) -> dict:
    """Ids with right padding of different lengths per row (one row without): no token types in DistilBERT."""
    values = CONFIGS[config_name]
    pad = values["pad_token_id"]
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, 2, length) if class_name.endswith("MultipleChoice") else (batch, length)
    input_ids = torch.randint(0, values["vocab_size"], shape, generator=generator)
    input_ids[input_ids == pad] = pad + 1
    lengths = torch.randint(2, length + 1, shape[:-1], generator=generator)
    lengths.view(-1)[0] = length
    attention_mask = (torch.arange(length) < lengths.unsqueeze(-1)).long()
    input_ids[attention_mask == 0] = pad
    assert (attention_mask == 0).any()
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def labels_for(class_name: str, config_name: str, inputs: dict) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    batch, length = ids.shape[0], ids.shape[-1]
    num_labels = CONFIGS[config_name].get("num_labels", 2)
    if class_name == "DistilBertForMaskedLM":
        labels = torch.randint(0, CONFIGS[config_name]["vocab_size"], (batch, length), generator=generator)
        unmasked = (torch.rand(batch, length, generator=generator) < 0.6) | (mask == 0)  # as real batches: not padding
        return {"labels": labels.masked_fill(unmasked, -100)}
    if class_name == "DistilBertForSequenceClassification":
        return {"labels": torch.randint(0, num_labels, (batch,), generator=generator)}
    if class_name == "DistilBertForTokenClassification":
        labels = torch.randint(0, num_labels, (batch, length), generator=generator)
        return {"labels": labels.masked_fill(mask == 0, -100)}
    if class_name == "DistilBertForQuestionAnswering":  # the out-of-range positions are clamped and ignored
        return {
            "start_positions": torch.tensor([1, 3, length + 5, 0][:batch]),
            "end_positions": torch.tensor([2, length + 5, 4, 1][:batch]),
        }
    if class_name == "DistilBertForMultipleChoice":
        return {"labels": torch.randint(0, ids.shape[1], (batch,), generator=generator)}
    raise AssertionError(class_name)


# -- the modules and their keys ------------------------------------------------------------------


@pytest.mark.parametrize(("class_name", "config_name"), CASES)
def test_state_dict_equals_transformers_key_for_key(class_name, config_name, reference):
    theirs = reference(class_name, config_name)
    config = DistilBertConfig.from_dict(theirs.config.to_dict())
    ours = ours_class(class_name)(config)
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [
        (k, v.shape) for k, v in theirs.state_dict().items()
    ]
    assert ours.base_model_prefix == theirs.base_model_prefix == "distilbert"
    if class_name.endswith("MaskedLM"):  # the projector's weight only, not its bias
        assert ours.tied_weights() == (theirs._tied_weights_keys if config.tie_word_embeddings else {})
    layer_norms = [m for m in ours.modules() if isinstance(m, nn.LayerNorm)]
    assert layer_norms and all(m.eps == 1e-12 for m in layer_norms)


def test_distilbert_has_no_pooler_and_no_token_types():
    with pytest.raises(minibert.ConfigError, match="DistilBERT has no pooler"):
        distilbert.DistilBertModel(DistilBertConfig(**CONFIGS["distil-c"]), add_pooling_layer=True)
    model = distilbert.DistilBertModel(DistilBertConfig(**CONFIGS["distil-c"]))
    assert model.embeddings.token_type_embeddings is None and model.pooler is None
    assert model.encoder is model.transformer


# -- outputs, in every layout ------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("class_name", "config_name"), CASES)
def test_every_output_matches_transformers(class_name, config_name, layout, checkpoint_dir, reference):
    ours = ours_class(class_name).from_pretrained(checkpoint_dir(class_name, config_name, layout))
    report = ours.load_report
    assert report.missing == [] and report.unexpected == [] and report.mismatched == []
    if layout == "legacy-bin":
        assert report.renamed and report.ignored  # LayerNorm.gamma/beta, and the saved position_ids buffer
    theirs = reference(class_name, config_name)
    inputs = make_inputs(class_name, config_name)
    with torch.no_grad():
        mine, expected = ours(**inputs, output_hidden_states=True), theirs(**inputs, output_hidden_states=True)
    assert mine.keys() == list(expected.keys())
    assert_outputs_close(mine, expected)


@pytest.mark.parametrize(("class_name", "config_name"), CASES)
def test_attentions_match_transformers_eager_and_sdpa_agrees(class_name, config_name, checkpoint_dir, reference):
    ours = ours_class(class_name).from_pretrained(checkpoint_dir(class_name, config_name))
    theirs = reference(class_name, config_name, attn="eager")
    inputs = make_inputs(class_name, config_name)
    flags = {"output_attentions": True, "output_hidden_states": True}
    with torch.no_grad():
        mine = ours(**inputs, **flags)
        assert_outputs_close(mine, theirs(**inputs, **flags))
        sdpa = ours(**inputs, output_hidden_states=True)
        ours.set_attn_implementation("eager")
        assert_outputs_close(ours(**inputs, output_hidden_states=True), sdpa)
    assert len(mine.attentions) == CONFIGS[config_name]["n_layers"] == len(mine.hidden_states) - 1


@pytest.mark.parametrize("config_name", ["distil-a", "distil-b"])
def test_optional_inputs_default_as_in_transformers(config_name, checkpoint_dir, reference):
    """No mask, explicit position_ids, inputs_embeds instead of ids; for multiple choice too."""
    for class_name in ("DistilBertModel", "DistilBertForMultipleChoice"):
        ours = ours_class(class_name).from_pretrained(checkpoint_dir(class_name, config_name))
        theirs = reference(class_name, config_name)
        inputs = make_inputs(class_name, config_name)
        ids = inputs["input_ids"]
        embeds = theirs.base_model.embeddings.word_embeddings(ids).detach()
        positions = torch.arange(ids.shape[-1]).flip(0) + 2  # (T,): every sequence the same
        with torch.no_grad():
            for kwargs in (
                {"input_ids": ids},
                {"input_ids": ids, "attention_mask": inputs["attention_mask"], "position_ids": positions},
                {"inputs_embeds": embeds, "attention_mask": inputs["attention_mask"]},
            ):
                assert_outputs_close(ours(**kwargs), theirs(**kwargs))


def test_segment_token_types_are_refused_where_transformers_ignores_them(checkpoint_dir, reference):
    inputs = make_inputs("DistilBertForSequenceClassification", "distil-a")
    types = torch.ones_like(inputs["input_ids"])
    theirs = reference("DistilBertForSequenceClassification", "distil-a")
    with torch.no_grad():  # transformers: silently the same output, the segments lost
        torch.testing.assert_close(theirs(**inputs, token_type_ids=types).logits, theirs(**inputs).logits)
    for class_name in ("DistilBertModel", "DistilBertForSequenceClassification"):
        ours = ours_class(class_name).from_pretrained(checkpoint_dir(class_name, "distil-a"))
        with pytest.raises(ValueError, match="DistilBERT has no token types.*return_token_type_ids=False"):
            ours(**inputs, token_type_ids=types)
        with torch.no_grad():  # None and all-zero types (a BERT tokenizer's, one text each) say nothing: accepted
            for nothing in (None, torch.zeros_like(types)):
                assert_outputs_close(ours(**inputs, token_type_ids=nothing), ours(**inputs), atol=0)


@pytest.mark.parametrize(("class_name", "config_name"), HEAD_CASES)
def test_losses_match_transformers(class_name, config_name, checkpoint_dir, reference):
    ours = ours_class(class_name).from_pretrained(checkpoint_dir(class_name, config_name))
    theirs = reference(class_name, config_name)
    inputs = make_inputs(class_name, config_name)
    labels = labels_for(class_name, config_name, inputs)
    with torch.no_grad():
        mine, expected = ours(**inputs, **labels), theirs(**inputs, **labels)
    assert mine.loss is not None and torch.isfinite(mine.loss)
    assert_outputs_close(mine, expected)


@pytest.mark.parametrize(("num_labels", "problem_type"), [(1, "regression"), (3, "multi_label_classification")])
def test_regression_and_multi_label_losses_match_transformers(num_labels, problem_type, tmp_path):
    theirs = hf_model("DistilBertForSequenceClassification", "distil-a", num_labels=num_labels)
    theirs.config.problem_type = problem_type
    theirs.save_pretrained(tmp_path)
    ours = distilbert.DistilBertForSequenceClassification.from_pretrained(tmp_path)
    assert ours.config.problem_type == problem_type
    inputs = make_inputs("DistilBertForSequenceClassification", "distil-a")
    labels = torch.rand(3, num_labels).round() if num_labels > 1 else torch.randn(3)
    with torch.no_grad():
        torch.testing.assert_close(
            ours(**inputs, labels=labels).loss, theirs(**inputs, labels=labels).loss, atol=1e-6, rtol=0
        )


def test_return_dict_false_returns_transformers_tuple(checkpoint_dir, reference):
    ours = distilbert.DistilBertForMaskedLM.from_pretrained(checkpoint_dir("DistilBertForMaskedLM", "distil-b"))
    theirs = reference("DistilBertForMaskedLM", "distil-b")
    inputs = make_inputs("DistilBertForMaskedLM", "distil-b")
    with torch.no_grad():
        mine = ours(**inputs, return_dict=False, output_hidden_states=True)
        expected = theirs(**inputs, return_dict=False, output_hidden_states=True)
    assert isinstance(mine, tuple) and len(mine) == len(expected) == 2
    torch.testing.assert_close(mine[0], expected[0], atol=1e-5, rtol=0)
    for a, b in zip(mine[1], expected[1], strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


# -- training ----------------------------------------------------------------------------------

TRAINING_CASES = [
    ("DistilBertForSequenceClassification", "distil-a", False, False),
    ("DistilBertForSequenceClassification", "distil-b", True, False),
    ("DistilBertForMaskedLM", "distil-b", False, True),
    ("DistilBertForQuestionAnswering", "distil-c", True, False),
    ("DistilBertForMultipleChoice", "distil-a", True, True),
    ("DistilBertForTokenClassification", "distil-c", False, False),
]


@pytest.mark.parametrize(("class_name", "config_name", "checkpointing", "unpad"), TRAINING_CASES)
def test_training_loss_and_every_gradient_match_transformers(
    class_name, config_name, checkpointing, unpad, checkpoint_dir
):
    ours = ours_class(class_name).from_pretrained(checkpoint_dir(class_name, config_name), **NO_DROPOUT).train()
    ours.set_unpadding(unpad)
    runs = []
    if checkpointing:
        ours.gradient_checkpointing_enable()
        for module in ours.modules():
            if isinstance(module, distilbert.TransformerBlock):
                module.register_forward_pre_hook(lambda *_: runs.append(1))
    theirs = hf_model(class_name, config_name).train()
    for module in theirs.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0  # transformers' attention reads its dropout module's p too
    inputs = make_inputs(class_name, config_name)
    labels = labels_for(class_name, config_name, inputs)
    mine, expected = ours(**inputs, **labels).loss, theirs(**inputs, **labels).loss
    torch.testing.assert_close(mine, expected, atol=1e-5, rtol=0)
    mine.backward()
    expected.backward()
    grads = {name: p.grad for name, p in ours.named_parameters(remove_duplicate=False)}
    their_grads = {name: p.grad for name, p in theirs.named_parameters(remove_duplicate=False)}
    assert grads.keys() == their_grads.keys()
    for name, grad in their_grads.items():
        if grad is None:
            assert grads[name] is None, name
        else:
            torch.testing.assert_close(grads[name], grad, atol=1e-5, rtol=1e-4, msg=lambda m, n=name: f"{n}: {m}")
    assert sum(g is not None and bool(g.any()) for g in grads.values()) > len(grads) // 2
    if checkpointing:
        assert len(runs) == 2 * CONFIGS[config_name]["n_layers"]  # each block again in backward


def test_train_mode_turns_every_dropout_on(checkpoint_dir):
    """The config's dropouts are the ones transformers builds, module for module."""
    for class_name in HEADS:
        ours = ours_class(class_name).from_pretrained(checkpoint_dir(class_name, "distil-b"))
        theirs = hf_model(class_name, "distil-b")
        # Attention dropout is a module in transformers, a probability that attend() reads here.
        mine = {n: m.p for n, m in ours.named_modules() if isinstance(m, nn.Dropout)}
        mine |= {f"{n}.dropout": m.dropout_prob for n, m in ours.named_modules() if hasattr(m, "dropout_prob")}
        assert mine == {n: m.p for n, m in theirs.named_modules() if isinstance(m, nn.Dropout)}
        ours.train()
        inputs = make_inputs(class_name, "distil-b")
        torch.manual_seed(0)
        first = ours(**inputs)[0]
        assert not torch.equal(first, ours(**inputs)[0])


# -- the fast path, saving, loading across heads -----------------------------------------------


@pytest.mark.parametrize(("class_name", "config_name"), CASES)
def test_unpadded_path_matches_transformers_at_real_tokens(class_name, config_name, checkpoint_dir, reference):
    ours = ours_class(class_name).from_pretrained(checkpoint_dir(class_name, config_name))
    inputs = make_inputs(class_name, config_name, batch=4, length=13)
    # Not span labels: the span softmax runs over padding positions too, which the unpadded path leaves at zero.
    labelled = class_name not in ("DistilBertModel", "DistilBertForQuestionAnswering")
    labels = labels_for(class_name, config_name, inputs) if labelled else {}
    with torch.no_grad():
        padded = ours(**inputs, **labels, output_hidden_states=True)
        theirs = reference(class_name, config_name)(**inputs, **labels, output_hidden_states=True)
        ours.set_unpadding(True)
        fast = ours(**inputs, **labels, output_hidden_states=True)
    keep = inputs["attention_mask"].reshape(-1, inputs["attention_mask"].shape[-1]).bool()  # (B [* C], T)

    def at_real_tokens(outputs) -> dict[str, torch.Tensor]:
        fields = {name: value for name, value in outputs.items() if isinstance(value, torch.Tensor)}
        fields.update({f"hidden_states[{i}]": h for i, h in enumerate(outputs.hidden_states)})
        return {n: v[keep] if tuple(v.shape[:2]) == tuple(keep.shape) else v for n, v in fields.items()}

    mine = at_real_tokens(fast)
    for expected in (at_real_tokens(padded), at_real_tokens(theirs)):
        assert mine.keys() == expected.keys()
        for name, value in expected.items():
            torch.testing.assert_close(mine[name], value, atol=1e-5, rtol=0, msg=lambda m, n=name: f"{n}: {m}")
    assert torch.all(fast.hidden_states[-1].reshape(keep.numel(), -1)[~keep.flatten()] == 0)  # padding skipped


@pytest.mark.parametrize(("class_name", "config_name"), CASES)
def test_saved_model_loads_in_transformers_with_identical_outputs(class_name, config_name, checkpoint_dir, tmp_path):
    ours = ours_class(class_name).from_pretrained(checkpoint_dir(class_name, config_name))
    shard = "4KB" if config_name == "distil-a" else "5GB"  # sharded too, for some
    ours.save_pretrained(tmp_path, max_shard_size=shard)
    theirs, info = getattr(transformers, class_name).from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    inputs = make_inputs(class_name, config_name)
    with torch.no_grad():
        assert_outputs_close(
            ours(**inputs, output_hidden_states=True), theirs.eval()(**inputs, output_hidden_states=True), atol=1e-6
        )


@pytest.mark.parametrize("config_name", ["distil-a", "distil-b"])
@pytest.mark.parametrize("head", HEADS)
def test_base_checkpoint_loads_into_head_model(head, config_name, checkpoint_dir, reference):
    """The encoder is the checkpoint's, only the head is new, and the report says so as transformers does."""
    folder = checkpoint_dir("DistilBertModel", config_name)
    spans = {"num_labels": 2} if head == "DistilBertForQuestionAnswering" else {}  # a start and an end
    ours = ours_class(head).from_pretrained(folder, **spans)
    _, info = getattr(transformers, head).from_pretrained(folder, output_loading_info=True, **spans)
    report = ours.load_report
    tied_to_missing = {alias for alias, shared in ours.tied_weights().items() if shared in report.missing}
    assert set(report.missing) | tied_to_missing == set(info["missing_keys"])
    assert set(report.unexpected) == set(info["unexpected_keys"]) == set()
    assert report.missing and all(not k.startswith("distilbert.") for k in report.missing)
    assert all("added prefix 'distilbert.'" in r.rule for r in report.records if r.status == "renamed")
    inputs = make_inputs("DistilBertModel", config_name)
    with torch.no_grad():
        mine, theirs = ours.base_model(**inputs), reference("DistilBertModel", config_name)(**inputs)
    torch.testing.assert_close(mine.last_hidden_state, theirs.last_hidden_state, atol=1e-5, rtol=0)


@pytest.mark.parametrize("config_name", ["distil-a", "distil-b"])
@pytest.mark.parametrize("head", HEADS)
def test_head_checkpoint_loads_into_base_model(head, config_name, checkpoint_dir, reference):
    folder = checkpoint_dir(head, config_name)
    ours = distilbert.DistilBertModel.from_pretrained(folder)
    _, info = transformers.DistilBertModel.from_pretrained(folder, output_loading_info=True)
    assert set(ours.load_report.missing) == set(info["missing_keys"]) == set()
    assert set(ours.load_report.unexpected) == set(info["unexpected_keys"])
    inputs = make_inputs("DistilBertModel", config_name)
    with torch.no_grad():
        mine = ours(**inputs).last_hidden_state
        theirs = reference(head, config_name).base_model(**inputs).last_hidden_state
    torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=0)


@pytest.mark.parametrize("config_name", ["distil-a", "distil-b"])
def test_bf16_load_keeps_ties_and_stays_near_fp32(config_name, checkpoint_dir, reference):
    """bf16 keeps 8 bits of mantissa: activations of size ~1 carry errors of ~1e-2."""
    folder = checkpoint_dir("DistilBertForMaskedLM", config_name)
    ours = distilbert.DistilBertForMaskedLM.from_pretrained(folder, dtype=torch.bfloat16)
    assert {p.dtype for p in ours.parameters()} == {torch.bfloat16}
    tied = ours.vocab_projector.weight is ours.distilbert.embeddings.word_embeddings.weight
    assert tied == CONFIGS[config_name].get("tie_word_embeddings", True)
    inputs = make_inputs("DistilBertForMaskedLM", config_name)
    labels = labels_for("DistilBertForMaskedLM", config_name, inputs)
    with torch.no_grad():
        mine = ours(**inputs, **labels)
        expected = reference("DistilBertForMaskedLM", config_name)(**inputs, **labels)
    assert mine.logits.dtype == torch.bfloat16
    torch.testing.assert_close(mine.logits.float(), expected.logits, atol=0.1, rtol=0.05)
    torch.testing.assert_close(mine.loss.float(), expected.loss, atol=0.05, rtol=0.02)


# -- positions: sinusoidal or learned ----------------------------------------------------------------


@pytest.mark.parametrize(("rows", "dim"), [(40, 21), (32, 16), (512, 768)])
def test_sinusoidal_table_is_transformers_bit_for_bit(rows, dim):
    from transformers.models.distilbert.modeling_distilbert import create_sinusoidal_embeddings

    expected = create_sinusoidal_embeddings(rows, dim, torch.empty(rows, dim))
    assert torch.equal(distilbert.sinusoidal_table(rows, dim), expected)


@pytest.mark.parametrize("config_name", CONFIGS)
def test_a_new_model_starts_as_transformers_starts_it(config_name):
    """Same rule as transformers' _init_weights: normal(0, initializer_range), zero biases and padding row,
    LayerNorms 1/0, and the sinusoidal table where the config asks for one (equal to transformers' bit for bit)."""
    values = {**CONFIGS[config_name], "initializer_range": 0.5}  # far from torch's own inits
    theirs = transformers.DistilBertForMaskedLM(transformers.DistilBertConfig(**values))
    ours = distilbert.DistilBertForMaskedLM(DistilBertConfig(**values))
    expected = theirs.state_dict()
    for name, tensor in ours.state_dict().items():
        reference_tensor = expected[name]
        if name.endswith("position_embeddings.weight") and values.get("sinusoidal_pos_embds"):
            assert torch.equal(tensor, reference_tensor), name
            assert ours.get_parameter(name).requires_grad  # trained like any weight, as in transformers 5
        elif torch.all(reference_tensor == reference_tensor.flatten()[0]):  # zeros and ones
            assert torch.equal(tensor, reference_tensor), name
        else:
            assert 0.8 < tensor.std().item() / reference_tensor.std().item() < 1.25, name
    assert not ours.distilbert.embeddings.word_embeddings.weight[values["pad_token_id"]].any()


def test_checkpoint_values_replace_the_sinusoidal_table_and_a_missing_one_starts_from_it(tmp_path):
    """transformers loads a sinusoidal table from the file (trained or not) and computes it only where it is missing."""
    theirs = hf_model("DistilBertModel", "distil-b")
    with torch.no_grad():
        theirs.embeddings.position_embeddings.weight.add_(1.0)
    theirs.save_pretrained(tmp_path)
    ours = distilbert.DistilBertModel.from_pretrained(tmp_path)
    weight = ours.embeddings.position_embeddings.weight
    assert torch.equal(weight, theirs.embeddings.position_embeddings.weight)
    inputs = make_inputs("DistilBertModel", "distil-b")
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


def test_learned_positions_are_a_plain_table():
    model = distilbert.DistilBertModel(DistilBertConfig(**CONFIGS["distil-a"]))
    assert type(model.embeddings.position_embeddings) is nn.Embedding
    sinusoidal = distilbert.DistilBertModel(DistilBertConfig(**CONFIGS["distil-b"]))
    assert isinstance(sinusoidal.embeddings.position_embeddings, distilbert.SinusoidalPositions)


# -- changing a pretrained model ----------------------------------------------------------------


@pytest.mark.parametrize(("grow", "multiple"), [(13, None), (1, 8), (-20, None)])
@pytest.mark.parametrize("config_name", ["distil-a", "distil-b"])  # tied, untied
def test_resized_vocabulary_matches_transformers_and_round_trips(config_name, grow, multiple, checkpoint_dir, tmp_path):
    folder = checkpoint_dir("DistilBertForMaskedLM", config_name)
    ours = distilbert.DistilBertForMaskedLM.from_pretrained(folder)
    theirs = transformers.DistilBertForMaskedLM.from_pretrained(folder).eval()
    with torch.no_grad():  # a bias of its own, which resizing must keep (zeros for new rows)
        bias = torch.randn(ours.config.vocab_size)
        ours.vocab_projector.bias.copy_(bias)
        theirs.vocab_projector.bias.copy_(bias)
    old = ours.config.vocab_size
    returned = ours.resize_token_embeddings(old + grow, pad_to_multiple_of=multiple)
    theirs.resize_token_embeddings(old + grow, pad_to_multiple_of=multiple, mean_resizing=False)
    size, kept = theirs.config.vocab_size, min(old, theirs.config.vocab_size)
    assert returned is ours.get_input_embeddings() and returned.num_embeddings == ours.config.vocab_size == size
    head = ours.get_output_embeddings()
    assert head is ours.vocab_projector and head.weight.shape == (size, CONFIGS[config_name]["dim"])
    assert head.out_features == size and head.bias.shape == (size,)
    assert (head.weight is returned.weight) == ours.config.tie_word_embeddings
    torch.testing.assert_close(returned.weight[:kept], theirs.get_input_embeddings().weight[:kept], atol=0, rtol=0)
    torch.testing.assert_close(head.weight[:kept], theirs.get_output_embeddings().weight[:kept], atol=0, rtol=0)
    torch.testing.assert_close(head.bias, theirs.get_output_embeddings().bias, atol=0, rtol=0)
    inputs = make_inputs("DistilBertForMaskedLM", config_name)
    inputs["input_ids"] %= kept  # ids both vocabularies have
    with torch.no_grad():
        torch.testing.assert_close(ours(**inputs).logits[..., :kept], theirs(**inputs).logits[..., :kept])
    ours.save_pretrained(tmp_path)
    reloaded, info = transformers.DistilBertForMaskedLM.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    inputs["input_ids"][:, 1] = size - 1  # a token only the resized vocabulary has (or its last)
    with torch.no_grad():
        torch.testing.assert_close(reloaded.eval()(**inputs).logits, ours(**inputs).logits, atol=1e-6, rtol=0)


@pytest.mark.parametrize("class_name", CLASSES)
def test_embedding_accessors_return_the_modules_transformers_returns(class_name, checkpoint_dir, reference):
    ours = ours_class(class_name).from_pretrained(checkpoint_dir(class_name, "distil-a"))
    theirs = reference(class_name, "distil-a")

    def name_of(model: nn.Module, module: nn.Module | None) -> str | None:
        return None if module is None else next(n for n, m in model.named_modules() if m is module)

    assert name_of(ours, ours.get_input_embeddings()) == name_of(theirs, theirs.get_input_embeddings())
    assert name_of(ours, ours.get_output_embeddings()) == name_of(theirs, theirs.get_output_embeddings())


@pytest.mark.parametrize("config_name", ["distil-a", "distil-b"])  # tied, untied
def test_set_embeddings_replaces_the_modules_as_in_transformers(config_name, checkpoint_dir, tmp_path):
    ours = distilbert.DistilBertForMaskedLM.from_pretrained(checkpoint_dir("DistilBertForMaskedLM", config_name))
    theirs = hf_model("DistilBertForMaskedLM", config_name)
    old = ours.get_input_embeddings()
    torch.manual_seed(9)
    embeddings = nn.Embedding(old.num_embeddings, old.embedding_dim, padding_idx=old.padding_idx)
    head = nn.Linear(old.embedding_dim, old.num_embeddings)
    for model in (ours, theirs):
        model.set_input_embeddings(copy.deepcopy(embeddings))
        model.set_output_embeddings(copy.deepcopy(head))
    inputs = make_inputs("DistilBertForMaskedLM", config_name)
    with torch.no_grad():
        assert_outputs_close(ours(**inputs), theirs(**inputs))
    ours.tie_weights()  # a tied config: the projector reads the new input embeddings again, and keeps its own bias
    tied = ours.config.tie_word_embeddings
    assert (ours.get_output_embeddings().weight is ours.get_input_embeddings().weight) == tied
    torch.testing.assert_close(ours.get_output_embeddings().bias, head.bias, atol=0, rtol=0)
    ours.save_pretrained(tmp_path)
    reloaded = transformers.DistilBertForMaskedLM.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert_outputs_close(reloaded(**inputs), ours(**inputs), atol=1e-6)


PRUNE_CASES = [
    ("DistilBertModel", "distil-a", {0: [1, 3], 1: [2]}, {0: [0, 3]}),
    ("DistilBertForSequenceClassification", "distil-b", {2: [0, 2]}, {"1": [1]}),  # JSON-style string keys too
    ("DistilBertForMultipleChoice", "distil-c", {0: [1]}, {-1: [1]}),  # negative layers count from the end
]


@pytest.mark.parametrize(("class_name", "config_name", "first", "second"), PRUNE_CASES)
def test_pruned_heads_match_transformers_and_reload_with_their_shapes(
    class_name, config_name, first, second, checkpoint_dir, tmp_path
):
    ours = ours_class(class_name).from_pretrained(checkpoint_dir(class_name, config_name))
    ours.prune_heads(first)
    ours.prune_heads(second)  # accumulates; heads already gone are skipped
    layers = CONFIGS[config_name]["n_layers"]
    gone: dict[int, set[int]] = {}
    for layer, heads in [*first.items(), *second.items()]:
        gone.setdefault(int(layer) % layers, set()).update(heads)
    assert ours.config.pruned_heads == {layer: sorted(heads) for layer, heads in sorted(gone.items())}
    # transformers 5 has no prune_heads: its unpruned model, the output projections blind to the pruned heads.
    theirs = hf_model(class_name, config_name)
    prefix = "" if class_name == "DistilBertModel" else "distilbert."
    heads, size = CONFIGS[config_name]["n_heads"], CONFIGS[config_name]["dim"]
    with torch.no_grad():
        for layer, pruned in gone.items():
            kept = torch.ones(heads, size // heads, dtype=torch.bool)
            kept[sorted(pruned)] = False
            kept = kept.flatten()  # (nh * hs,): the features of the heads that stay, in their order
            attention = f"{prefix}transformer.layer.{layer}.attention"
            for name in ("q_lin", "k_lin", "v_lin"):
                expected = theirs.get_submodule(f"{attention}.{name}").weight[kept]
                torch.testing.assert_close(ours.get_submodule(f"{attention}.{name}").weight, expected)
            out_lin = theirs.get_submodule(f"{attention}.out_lin").weight
            torch.testing.assert_close(ours.get_submodule(f"{attention}.out_lin").weight, out_lin[:, kept])
            out_lin[:, ~kept] = 0
    inputs = make_inputs(class_name, config_name)
    ours.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["pruned_heads"] == {
        str(layer): sorted(heads) for layer, heads in sorted(gone.items())
    }
    again = ours_class(class_name).from_pretrained(tmp_path)
    assert not again.load_report.missing and not again.load_report.mismatched and not again.load_report.unexpected
    with torch.no_grad():
        expected = theirs(**inputs, output_hidden_states=True)
        assert_outputs_close(ours(**inputs, output_hidden_states=True), expected)
        assert_outputs_close(again(**inputs, output_hidden_states=True), expected)


# -- the config and the calling conventions --------------------------------------------------------

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


@pytest.mark.parametrize("config_name", CONFIGS)
def test_config_json_uses_distilbert_names_and_transformers_reads_it_identically(config_name, tmp_path):
    theirs = transformers.DistilBertConfig(**CONFIGS[config_name])
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
    theirs = hf_model("DistilBertForTokenClassification", "distil-c")
    theirs.config.layer_norm_eps = 1e-2  # transformers' DistilBERT hard-codes 1e-12 and ignores it
    theirs.save_pretrained(tmp_path)
    ours = distilbert.DistilBertForTokenClassification.from_pretrained(tmp_path)
    assert ours.config.extra["layer_norm_eps"] == 1e-2
    inputs = make_inputs("DistilBertForTokenClassification", "distil-c")
    with torch.no_grad():
        assert_outputs_close(ours(**inputs), theirs(**inputs))


@pytest.mark.parametrize("class_name", HEADS)
def test_forward_names_transformers_inputs(class_name):
    """Trainer keeps only the dataset columns forward names: they must be transformers' own, in its order."""
    theirs = inspect.signature(getattr(transformers, class_name).forward).parameters
    ours = inspect.signature(ours_class(class_name).forward).parameters
    named = [name for name, p in theirs.items() if p.kind is not p.VAR_KEYWORD and name not in REFUSED_INPUTS]
    assert [name for name, p in ours.items() if p.kind is not p.VAR_KEYWORD] == named
    assert ours_class(class_name).main_input_name == "input_ids"
