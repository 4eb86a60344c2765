"""ELECTRA computes what transformers computes: every class, config and checkpoint layout, and every habit.

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
from torch import nn

import minibert
from minibert import electra
from minibert.bert import Layer
from minibert.config import ElectraConfig
from minibert.pretrained import REFUSED_INPUTS

# Widths that differ where the code could go wrong: -a and -c project their embeddings up
# (embeddings_project), -b does not; head counts, activations, pad ids, token types (1, 2, 3),
# every summary the multiple-choice head can take, and an untied generator (-c).
CONFIGS = {
    "electra-a": dict(
        vocab_size=99,
        embedding_size=16,
        hidden_size=36,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=40,
        type_vocab_size=2,
        pad_token_id=0,
    ),
    "electra-b": dict(
        vocab_size=83,
        embedding_size=24,
        hidden_size=24,
        num_hidden_layers=3,
        num_attention_heads=3,
        intermediate_size=30,
        hidden_act="gelu_new",
        max_position_embeddings=30,
        type_vocab_size=3,
        pad_token_id=5,
        layer_norm_eps=1e-5,
        num_labels=3,
        summary_type="last",
        summary_activation="tanh",
    ),
    "electra-c": dict(
        vocab_size=61,
        embedding_size=10,
        hidden_size=14,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=22,
        hidden_act="relu",
        max_position_embeddings=32,
        type_vocab_size=1,
        pad_token_id=3,
        tie_word_embeddings=False,
        num_labels=4,
        summary_type="mean",
        summary_use_proj=False,
    ),
}
CLASSES = [
    "ElectraModel",
    "ElectraForPreTraining",
    "ElectraForMaskedLM",
    "ElectraForSequenceClassification",
    "ElectraForTokenClassification",
    "ElectraForQuestionAnswering",
    "ElectraForMultipleChoice",
]
HEADS = CLASSES[1:]
CASES = [(c, n) for c in CLASSES for n in CONFIGS]
HEAD_CASES = [(c, n) for c in HEADS for n in CONFIGS]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread; on a busy machine, several threads wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def ours_class(class_name: str) -> type[minibert.PreTrainedModel]:
    return getattr(electra, class_name)


def hf_model(class_name: str, config_name: str, attn: str = "sdpa", **overrides) -> nn.Module:
    """A transformers model with random weights, every tensor non-trivial (as conftest.hf_model builds them)."""
    torch.manual_seed(0)
    config = transformers.ElectraConfig(**{**CONFIGS[config_name], **overrides})
    if class_name.endswith("QuestionAnswering"):
        config.num_labels = 2  # a start and an end score per token
    config._attn_implementation = attn
    model = getattr(transformers, class_name)(config)
    with torch.no_grad():  # transformers inits biases to 0 and LayerNorms to 1/0: randomise so they count
        for name, param in model.named_parameters():
            if name.endswith("bias") or "LayerNorm" in name:
                param.add_(torch.randn_like(param) * 0.1)
    return model.eval()


def electra_legacy_state(state: dict[str, torch.Tensor], max_positions: int) -> dict[str, torch.Tensor]:
    """conftest.legacy_state (LayerNorm.gamma/beta, a saved position_ids buffer) under ELECTRA's prefix."""
    renamed = {k: v for k, v in legacy_state(state, max_positions).items() if not k.endswith("position_ids")}
    prefix = "electra." if any(k.startswith("electra.") for k in state) else ""
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
                legacy = electra_legacy_state(state, model.config.max_position_embeddings)
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
    """Right padding of different lengths per row (one row without), token types where the config has them."""
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
    token_type_ids = torch.randint(0, values["type_vocab_size"], shape, generator=generator) * attention_mask
    assert (attention_mask == 0).any()
    return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}


def labels_for(class_name: str, config_name: str, inputs: dict) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    batch, length = ids.shape[0], ids.shape[-1]
    num_labels = CONFIGS[config_name].get("num_labels", 2)
    if class_name == "ElectraForPreTraining":  # 1 = replaced; padding holds labels too, which the mask must skip
        return {"labels": torch.randint(0, 2, (batch, length), generator=generator)}
    if class_name == "ElectraForMaskedLM":
        labels = torch.randint(0, CONFIGS[config_name]["vocab_size"], (batch, length), generator=generator)
        unmasked = (torch.rand(batch, length, generator=generator) < 0.6) | (mask == 0)  # as real batches: not padding
        return {"labels": labels.masked_fill(unmasked, -100)}
    if class_name == "ElectraForSequenceClassification":
        return {"labels": torch.randint(0, num_labels, (batch,), generator=generator)}
    if class_name == "ElectraForTokenClassification":
        labels = torch.randint(0, num_labels, (batch, length), generator=generator)
        return {"labels": labels.masked_fill(mask == 0, -100)}
    if class_name == "ElectraForQuestionAnswering":  # the out-of-range positions are clamped and ignored
        return {
            "start_positions": torch.tensor([1, 3, length + 5, 0][:batch]),
            "end_positions": torch.tensor([2, length + 5, 4, 1][:batch]),
        }
    if class_name == "ElectraForMultipleChoice":
        return {"labels": torch.randint(0, ids.shape[1], (batch,), generator=generator)}
    raise AssertionError(class_name)


# -- outputs, in every layout ------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("class_name", "config_name"), CASES)
def test_every_output_matches_transformers(class_name, config_name, layout, checkpoint_dir, reference):
    ours = ours_class(class_name).from_pretrained(checkpoint_dir(class_name, config_name, layout))
    report = ours.load_report
    assert report.missing == [] and report.unexpected == [] and report.mismatched == []
    theirs = reference(class_name, config_name)
    shapes = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == shapes  # key for key
    inputs = make_inputs(class_name, config_name)
    with torch.no_grad():
        mine, expected = ours(**inputs, output_hidden_states=True), theirs(**inputs, output_hidden_states=True)
    assert mine.keys() == list(expected.keys())  # transformers' output field names
    assert len(mine.hidden_states) == CONFIGS[config_name]["num_hidden_layers"] + 1
    assert_outputs_close(mine, expected)


def test_embeddings_project_exists_only_where_the_widths_differ(checkpoint_dir):
    narrow, square = (
        electra.ElectraModel.from_pretrained(checkpoint_dir("ElectraModel", n)) for n in CONFIGS if n != "electra-c"
    )
    assert narrow.embeddings_project.weight.shape == (36, 16) and narrow.pooler is None
    assert square.embeddings_project is None and "embeddings_project.weight" not in square.state_dict()


@pytest.mark.parametrize(("class_name", "config_name"), CASES)
def test_attentions_match_transformers_eager(class_name, config_name, checkpoint_dir, reference):
    ours = ours_class(class_name).from_pretrained(checkpoint_dir(class_name, config_name))
    theirs = reference(class_name, config_name, attn="eager")
    inputs = make_inputs(class_name, config_name)
    with torch.no_grad():
        expected = theirs(**inputs, output_attentions=True, output_hidden_states=True)
        mine = ours(**inputs, output_attentions=True, output_hidden_states=True)
        assert len(mine.attentions) == CONFIGS[config_name]["num_hidden_layers"]
        assert_outputs_close(mine, expected)
        ours.set_attn_implementation("eager")  # the written-out maths without being asked for attentions
        assert_outputs_close(ours(**inputs, output_hidden_states=True), theirs(**inputs, output_hidden_states=True))


@pytest.mark.parametrize("class_name", ["ElectraModel", "ElectraForPreTraining"])
@pytest.mark.parametrize("config_name", ["electra-a", "electra-b"])
def test_optional_inputs_default_as_in_transformers(class_name, config_name, checkpoint_dir, reference):
    """No mask, no token types, explicit position_ids, and inputs_embeds at the embedding width."""
    ours = ours_class(class_name).from_pretrained(checkpoint_dir(class_name, config_name))
    theirs = reference(class_name, config_name)
    inputs = make_inputs(class_name, config_name)
    ids = inputs["input_ids"]
    embeds = theirs.get_input_embeddings()(ids).detach()  # (B, T, embedding_size)
    positions = torch.arange(ids.shape[1]).flip(0).expand_as(ids) + 2
    with torch.no_grad():
        for kwargs in (
            {"input_ids": ids},
            {"input_ids": ids, "position_ids": positions},
            {"inputs_embeds": embeds, "attention_mask": inputs["attention_mask"]},
        ):
            assert_outputs_close(ours(**kwargs), theirs(**kwargs))
    width = CONFIGS[config_name]["embedding_size"]
    with pytest.raises(ValueError, match=rf"inputs_embeds must have shape \(batch, length, {width}\)"):
        ours(inputs_embeds=torch.zeros(1, 3, width + 1))


# -- losses and gradients ----------------------------------------------------------------------


@pytest.mark.parametrize(("class_name", "config_name"), HEAD_CASES)
def test_losses_match_transformers(class_name, config_name, checkpoint_dir, reference):
    ours = ours_class(class_name).from_pretrained(checkpoint_dir(class_name, config_name))
    theirs = reference(class_name, config_name)
    inputs = make_inputs(class_name, config_name)
    labels = labels_for(class_name, config_name, inputs)
    with torch.no_grad():
        mine, expected = ours(**inputs, **labels), theirs(**inputs, **labels)
    assert mine.loss is not None and torch.isfinite(mine.loss)
    torch.testing.assert_close(mine.loss, expected.loss, atol=1e-5, rtol=0)


@pytest.mark.parametrize("config_name", list(CONFIGS))
def test_discriminator_loss_counts_real_tokens_only_as_in_transformers(config_name, checkpoint_dir, reference):
    ours = electra.ElectraForPreTraining.from_pretrained(checkpoint_dir("ElectraForPreTraining", config_name))
    theirs = reference("ElectraForPreTraining", config_name)
    inputs = make_inputs("ElectraForPreTraining", config_name)
    labels = labels_for("ElectraForPreTraining", config_name, inputs)["labels"]
    unmasked = {k: v for k, v in inputs.items() if k != "attention_mask"}
    with torch.no_grad():
        masked, everywhere = ours(**inputs, labels=labels), ours(**unmasked, labels=labels)
        torch.testing.assert_close(everywhere.loss, theirs(**unmasked, labels=labels).loss, atol=1e-5, rtol=0)
        torch.testing.assert_close(masked.loss, theirs(**inputs, labels=labels).loss, atol=1e-5, rtol=0)
        bool_mask = {**inputs, "attention_mask": inputs["attention_mask"].bool()}
        torch.testing.assert_close(ours(**bool_mask, labels=labels).loss, masked.loss, atol=1e-6, rtol=0)
    assert masked.logits.shape == labels.shape
    assert abs(masked.loss - everywhere.loss) > 1e-4  # the padding's labels would change the loss


def theirs_for_training(class_name: str, config_name: str) -> nn.Module:
    model = hf_model(class_name, config_name).train()
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0  # transformers' attention reads its dropout module's p too
    return model


NO_DROPOUT = {
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
    "classifier_dropout": 0.0,
    "summary_last_dropout": 0.0,
}
TRAINING_CASES = [(c, n, False) for c, n in HEAD_CASES] + [
    ("ElectraForPreTraining", "electra-a", True),
    ("ElectraForMaskedLM", "electra-c", True),
    ("ElectraForMultipleChoice", "electra-b", True),
]


@pytest.mark.parametrize(("class_name", "config_name", "checkpointing"), TRAINING_CASES)
def test_training_loss_and_every_gradient_match_transformers(class_name, config_name, checkpointing, checkpoint_dir):
    ours = ours_class(class_name).from_pretrained(checkpoint_dir(class_name, config_name), **NO_DROPOUT).train()
    runs = []
    if checkpointing:
        ours.gradient_checkpointing_enable()
        for module in ours.modules():
            if isinstance(module, Layer):
                module.register_forward_pre_hook(lambda *_: runs.append(1))
    theirs = theirs_for_training(class_name, config_name)
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
        assert len(runs) == 2 * CONFIGS[config_name]["num_hidden_layers"]  # each layer again in backward


# -- the fast path, saving, loading across heads -----------------------------------------------


UNPADDED_CASES = [(c, n) for c, n in CASES if not (c == "ElectraForMultipleChoice" and n != "electra-a")]


@pytest.mark.parametrize(("class_name", "config_name"), UNPADDED_CASES)
def test_unpadded_path_matches_transformers_at_real_tokens(class_name, config_name, checkpoint_dir, reference):
    ours = ours_class(class_name).from_pretrained(checkpoint_dir(class_name, config_name))
    inputs = make_inputs(class_name, config_name, batch=4, length=13)
    # Not span labels: the span softmax runs over padding positions too, which the unpadded path leaves at zero.
    labelled = class_name not in ("ElectraModel", "ElectraForQuestionAnswering")
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


@pytest.mark.parametrize("config_name", ["electra-b", "electra-c"])
def test_unpadding_is_refused_where_the_summary_reads_padding(config_name, checkpoint_dir):
    ours = electra.ElectraForMultipleChoice.from_pretrained(checkpoint_dir("ElectraForMultipleChoice", config_name))
    with pytest.raises(ValueError, match=f"summary_type '{CONFIGS[config_name]['summary_type']}' reads padding"):
        ours.set_unpadding(True)
    assert ours.electra.unpad is False
    ours.set_unpadding(False)


@pytest.mark.parametrize(("class_name", "config_name"), CASES)
def test_saved_model_loads_in_transformers_with_identical_outputs(class_name, config_name, checkpoint_dir, tmp_path):
    ours = ours_class(class_name).from_pretrained(checkpoint_dir(class_name, config_name))
    shard = "4KB" if config_name == "electra-a" else "5GB"  # sharded too, for some
    ours.save_pretrained(tmp_path, max_shard_size=shard)
    theirs, info = getattr(transformers, class_name).from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert theirs.config.model_type == "electra" and theirs.config.summary_type == CONFIGS[config_name].get(
        "summary_type", "first"
    )
    inputs = make_inputs(class_name, config_name)
    with torch.no_grad():
        assert_outputs_close(
            ours(**inputs, output_hidden_states=True), theirs.eval()(**inputs, output_hidden_states=True), atol=1e-6
        )


@pytest.mark.parametrize("config_name", ["electra-a", "electra-b"])
@pytest.mark.parametrize("head", HEADS)
def test_base_checkpoint_loads_into_head_model(head, config_name, checkpoint_dir, reference):
    """The encoder is the checkpoint's, only the head is new, and the report says so as transformers does."""
    folder = checkpoint_dir("ElectraModel", config_name)
    spans = {"num_labels": 2} if head == "ElectraForQuestionAnswering" else {}  # a start and an end
    ours = ours_class(head).from_pretrained(folder, **spans)
    _, info = getattr(transformers, head).from_pretrained(folder, output_loading_info=True, **spans)
    report = ours.load_report
    tied_to_missing = {alias for alias, shared in ours.tied_weights().items() if shared in report.missing}
    assert set(report.missing) | tied_to_missing == set(info["missing_keys"])
    assert set(report.unexpected) == set(info["unexpected_keys"]) == set()
    assert report.missing and all(not k.startswith("electra.") for k in report.missing)
    assert all("added prefix 'electra.'" in r.rule for r in report.records if r.status == "renamed")
    inputs = make_inputs("ElectraModel", config_name)
    with torch.no_grad():
        mine, theirs = ours.base_model(**inputs), reference("ElectraModel", config_name)(**inputs)
    torch.testing.assert_close(mine.last_hidden_state, theirs.last_hidden_state, atol=1e-5, rtol=0)


@pytest.mark.parametrize("config_name", ["electra-a", "electra-b"])
@pytest.mark.parametrize("head", HEADS)
def test_head_checkpoint_loads_into_base_model(head, config_name, checkpoint_dir, reference):
    folder = checkpoint_dir(head, config_name)
    ours = electra.ElectraModel.from_pretrained(folder)
    _, info = transformers.ElectraModel.from_pretrained(folder, output_loading_info=True)
    assert set(ours.load_report.missing) == set(info["missing_keys"]) == set()
    assert set(ours.load_report.unexpected) == set(info["unexpected_keys"])
    inputs = make_inputs("ElectraModel", config_name)
    with torch.no_grad():
        mine = ours(**inputs).last_hidden_state
        theirs = reference(head, config_name).base_model(**inputs).last_hidden_state
    torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=0)


@pytest.mark.parametrize("class_name", ["ElectraForPreTraining", "ElectraForMaskedLM"])
def test_bf16_load_keeps_ties_and_stays_near_fp32(class_name, checkpoint_dir, reference):
    """bf16 keeps 8 bits of mantissa: activations of size ~1 carry errors of ~1e-2."""
    ours = ours_class(class_name).from_pretrained(checkpoint_dir(class_name, "electra-a"), dtype=torch.bfloat16)
    assert {p.dtype for p in ours.parameters()} == {torch.bfloat16}
    if class_name == "ElectraForMaskedLM":
        assert ours.generator_lm_head.weight is ours.electra.embeddings.word_embeddings.weight
    inputs = make_inputs(class_name, "electra-a")
    labels = labels_for(class_name, "electra-a", inputs)
    with torch.no_grad():
        mine, expected = ours(**inputs, **labels), reference(class_name, "electra-a")(**inputs, **labels)
    assert mine.logits.dtype == torch.bfloat16
    torch.testing.assert_close(mine.logits.float(), expected.logits, atol=0.1, rtol=0.05)
    torch.testing.assert_close(mine.loss.float(), expected.loss, atol=0.05, rtol=0.02)


# -- changing a pretrained model ----------------------------------------------------------------


@pytest.mark.parametrize(("grow", "multiple"), [(13, None), (1, 8), (-20, None)])
@pytest.mark.parametrize("config_name", ["electra-a", "electra-c"])  # tied, untied
def test_resized_vocabulary_matches_transformers_and_round_trips(config_name, grow, multiple, checkpoint_dir, tmp_path):
    folder = checkpoint_dir("ElectraForMaskedLM", config_name)
    ours = electra.ElectraForMaskedLM.from_pretrained(folder)
    theirs = transformers.ElectraForMaskedLM.from_pretrained(folder).eval()
    old = ours.config.vocab_size
    returned = ours.resize_token_embeddings(old + grow, pad_to_multiple_of=multiple)
    theirs.resize_token_embeddings(old + grow, pad_to_multiple_of=multiple, mean_resizing=False)
    size, kept = theirs.config.vocab_size, min(old, theirs.config.vocab_size)
    assert returned is ours.get_input_embeddings() and returned.num_embeddings == ours.config.vocab_size == size
    head = ours.get_output_embeddings()
    assert head is ours.generator_lm_head and head.weight.shape == (size, 10 if config_name == "electra-c" else 16)
    assert head.out_features == size and head.bias.shape == (size,)
    assert (head.weight is returned.weight) == ours.config.tie_word_embeddings
    torch.testing.assert_close(returned.weight[:kept], theirs.get_input_embeddings().weight[:kept], atol=0, rtol=0)
    torch.testing.assert_close(head.weight[:kept], theirs.get_output_embeddings().weight[:kept], atol=0, rtol=0)
    torch.testing.assert_close(head.bias, theirs.get_output_embeddings().bias, atol=0, rtol=0)  # zeros added
    inputs = make_inputs("ElectraForMaskedLM", config_name)
    inputs["input_ids"] %= kept  # ids both vocabularies have
    with torch.no_grad():
        torch.testing.assert_close(ours(**inputs).logits[..., :kept], theirs(**inputs).logits[..., :kept])
    ours.save_pretrained(tmp_path)
    reloaded, info = transformers.ElectraForMaskedLM.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    inputs["input_ids"][:, 1] = size - 1  # a token only the resized vocabulary has (or its last)
    with torch.no_grad():
        torch.testing.assert_close(reloaded.eval()(**inputs).logits, ours(**inputs).logits, atol=1e-6, rtol=0)


@pytest.mark.parametrize("class_name", CLASSES)
def test_embedding_accessors_return_the_modules_transformers_returns(class_name, checkpoint_dir, reference):
    ours = ours_class(class_name).from_pretrained(checkpoint_dir(class_name, "electra-a"))
    theirs = reference(class_name, "electra-a")

    def name_of(model: nn.Module, module: nn.Module | None) -> str | None:
        return None if module is None else next(n for n, m in model.named_modules() if m is module)

    assert name_of(ours, ours.get_input_embeddings()) == name_of(theirs, theirs.get_input_embeddings())
    assert name_of(ours, ours.get_output_embeddings()) == name_of(theirs, theirs.get_output_embeddings())


@pytest.mark.parametrize("config_name", ["electra-a", "electra-c"])  # tied, untied
def test_set_embeddings_replaces_the_modules_as_in_transformers(config_name, checkpoint_dir, tmp_path):
    ours = electra.ElectraForMaskedLM.from_pretrained(checkpoint_dir("ElectraForMaskedLM", config_name))
    theirs = hf_model("ElectraForMaskedLM", config_name)
    old = ours.get_input_embeddings()
    torch.manual_seed(9)
    embeddings = nn.Embedding(old.num_embeddings, old.embedding_dim, padding_idx=old.padding_idx)
    head = nn.Linear(old.embedding_dim, old.num_embeddings)
    for model in (ours, theirs):
        model.set_input_embeddings(copy.deepcopy(embeddings))
        model.set_output_embeddings(copy.deepcopy(head))
    inputs = make_inputs("ElectraForMaskedLM", config_name)
    with torch.no_grad():
        assert_outputs_close(ours(**inputs), theirs(**inputs))
    ours.tie_weights()  # a tied config: the head reads the new input embeddings again, and keeps its own bias
    tied = ours.config.tie_word_embeddings
    assert (ours.get_output_embeddings().weight is ours.get_input_embeddings().weight) == tied
    torch.testing.assert_close(ours.get_output_embeddings().bias, head.bias, atol=0, rtol=0)
    ours.save_pretrained(tmp_path)
    reloaded = transformers.ElectraForMaskedLM.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert_outputs_close(reloaded(**inputs), ours(**inputs), atol=1e-6)


PRUNE_CASES = [
    ("ElectraModel", "electra-a", {0: [1, 3], 1: [2]}, {0: [0, 3]}),
    ("ElectraForPreTraining", "electra-b", {2: [0, 2]}, {"1": [1]}),  # JSON-style string keys too
    ("ElectraForMultipleChoice", "electra-c", {0: [1]}, {-1: [1]}),  # negative layers count from the end
]


@pytest.mark.parametrize(("class_name", "config_name", "first", "second"), PRUNE_CASES)
def test_pruned_heads_match_transformers_and_reload_with_their_shapes(
    class_name, config_name, first, second, checkpoint_dir, tmp_path
):
    ours = ours_class(class_name).from_pretrained(checkpoint_dir(class_name, config_name))
    ours.prune_heads(first)
    ours.prune_heads(second)  # accumulates; heads already gone are skipped
    layers = CONFIGS[config_name]["num_hidden_layers"]
    gone: dict[int, set[int]] = {}
    for layer, heads in [*first.items(), *second.items()]:
        gone.setdefault(int(layer) % layers, set()).update(heads)
    assert ours.config.pruned_heads == {layer: sorted(heads) for layer, heads in sorted(gone.items())}
    # transformers 5 has no prune_heads: its unpruned model, the output projections blind to the pruned heads.
    theirs = hf_model(class_name, config_name)
    prefix = "" if class_name == "ElectraModel" else "electra."
    heads, size = CONFIGS[config_name]["num_attention_heads"], CONFIGS[config_name]["hidden_size"]
    with torch.no_grad():
        for layer, pruned in gone.items():
            kept = torch.ones(heads, size // heads, dtype=torch.bool)
            kept[sorted(pruned)] = False
            kept = kept.flatten()  # (nh * hs,): the features of the heads that stay, in their order
            attention = f"{prefix}encoder.layer.{layer}.attention"
            query = theirs.get_submodule(f"{attention}.self.query").weight[kept]
            torch.testing.assert_close(ours.get_submodule(f"{attention}.self.query").weight, query)
            theirs.get_submodule(f"{attention}.output.dense").weight[:, ~kept] = 0
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


def test_config_has_transformers_fields_and_defaults():
    theirs = transformers.ElectraConfig()
    ours = ElectraConfig()
    names = {"embedding_size", "summary_type", "summary_use_proj", "summary_activation", "summary_last_dropout"}
    for name in names | {"hidden_size", "num_attention_heads", "intermediate_size", "vocab_size", "classifier_dropout"}:
        assert getattr(ours, name) == getattr(theirs, name), name
    for name in ("pad_token_id", "hidden_act", "layer_norm_eps", "max_position_embeddings", "tie_word_embeddings"):
        assert getattr(ours, name) == getattr(theirs, name), name
    values = transformers.ElectraConfig(**CONFIGS["electra-c"]).to_dict()
    config = ElectraConfig.from_dict(values)
    assert config.summary_type == "mean" and config.summary_use_proj is False and config.extra["use_cache"] is True
    assert minibert.config.config_class_for(values) is ElectraConfig
    again = transformers.ElectraConfig.from_dict(config.to_dict())  # and back: transformers reads the same
    for name in (*names, "hidden_act", "type_vocab_size", "pad_token_id", "tie_word_embeddings", "use_cache"):
        assert getattr(again, name) == values[name], name
    with pytest.raises(minibert.ConfigError, match="embedding_size must be a positive integer"):
        ElectraConfig(embedding_size=0)
    with pytest.raises(minibert.ConfigError, match="summary_last_dropout must be a probability"):
        ElectraConfig(summary_last_dropout=1.5)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"summary_type": "attn"}, "summary_type 'attn' is not supported"),
     ({"summary_activation": "bogus"}, "unknown summary_activation 'bogus'"),
     ({"extra": {"summary_proj_to_labels": True}}, "summary_proj_to_labels is not supported")],
)  # fmt: skip
def test_unsupported_summaries_fail_when_the_head_is_built(overrides, message):
    config = ElectraConfig(hidden_size=8, embedding_size=8, num_attention_heads=2, num_hidden_layers=1, **overrides)
    electra.ElectraModel(config)  # the encoder does not read the summary fields
    with pytest.raises(minibert.ConfigError, match=message):
        electra.ElectraForMultipleChoice(config)


def test_summary_first_dropout_is_read_as_transformers_reads_it():
    """An XLM summary field ElectraConfig does not declare, but transformers' summary reads if present."""
    values = transformers.ElectraConfig(hidden_size=8, embedding_size=8, summary_first_dropout=0.3).to_dict()
    theirs = transformers.models.electra.modeling_electra.ElectraSequenceSummary(transformers.ElectraConfig(**values))
    assert electra.ElectraSequenceSummary(ElectraConfig.from_dict(values)).first_dropout.p == theirs.first_dropout.p


def test_electra_has_no_pooler():
    config = ElectraConfig(hidden_size=8, embedding_size=8, num_attention_heads=2, num_hidden_layers=1)
    with pytest.raises(minibert.ConfigError, match="ELECTRA has no pooler"):
        electra.ElectraModel(config, add_pooling_layer=True)


@pytest.mark.parametrize("class_name", HEADS)
def test_forward_names_transformers_inputs(class_name):
    """Trainer keeps only the dataset columns forward names: they must be transformers' own, in order."""
    theirs = inspect.signature(getattr(transformers, class_name).forward).parameters
    ours = inspect.signature(ours_class(class_name).forward).parameters
    named = [name for name, p in theirs.items() if p.kind is not p.VAR_KEYWORD and name not in REFUSED_INPUTS]
    assert [name for name, p in ours.items() if p.kind is not p.VAR_KEYWORD] == named
    assert ours_class(class_name).base_model_prefix == "electra"
