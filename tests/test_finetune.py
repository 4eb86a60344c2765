"""Fine-tuning and changing a pretrained model: the losses, gradients and surgery of transformers.

Every comparison is against transformers: the model the checkpoint was saved from, trained or
changed the same way (transformers 5 has no ``prune_heads``: pruned heads are compared with the
unpruned model whose output projection ignores them, and with a transformers model given the
pruned shapes in memory).
"""

import copy
import dataclasses
import json

import pytest
import torch
import transformers
from conftest import (
    CLASSES,
    assert_outputs_close,
    assert_real_tokens_close,
    base_class_of,
    config_names_for,
    family_of,
    hf_config,
    hf_model,
    inputs_for,
    labels_for,
    make_inputs,
    ours_class,
    task_of,
)
from safetensors.torch import load_file
from torch import nn

import minibert
from minibert.albert import AlbertLayer
from minibert.bert import Layer
from minibert.distilbert import TransformerBlock
from minibert.gte import GteLayer
from minibert.nomic_bert import NomicBertLayer

HEADS = [c for c in CLASSES if task_of(c) != "Model"]
HEAD_CASES = [(c, n) for c in HEADS for n in config_names_for(c)]
# One per masked-LM head of its own (XLM-R's and CamemBERT's are RoBERTa's).
MLM = ["BertForMaskedLM", "RobertaForMaskedLM", "AlbertForMaskedLM", "DistilBertForMaskedLM", "ElectraForMaskedLM",
       "MPNetForMaskedLM", "GteForMaskedLM", "NomicBertForMaskedLM"]  # fmt: skip
SEQUENCE = ["BertForSequenceClassification", "RobertaForSequenceClassification", "AlbertForSequenceClassification"]


def without_dropout(class_name: str) -> dict[str, float]:
    """Config overrides that turn every dropout off: each dropout field of the family's config, under its
    own name (ALBERT's classifier_dropout_prob, DistilBERT's dropout and qa_dropout, ELECTRA's summary's...)."""
    fields = dataclasses.fields(ours_class(class_name).config_class)
    return {field.name: 0.0 for field in fields if field.init and "dropout" in field.name}


def theirs_for_training(class_name: str, config_name: str) -> nn.Module:
    """The transformers model the checkpoint was saved from, in train mode with every dropout at 0."""
    model = hf_model(class_name, config_name).train()
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0  # transformers' attention reads its dropout module's p too
    return model


def gradients(model: nn.Module) -> dict[str, torch.Tensor | None]:
    """Every parameter's gradient by name; tied tensors appear under each of their names."""
    return {name: param.grad for name, param in model.named_parameters(remove_duplicate=False)}


def assert_same_gradients(ours: nn.Module, theirs: nn.Module) -> None:
    mine, expected = gradients(ours), gradients(theirs)
    assert mine.keys() == expected.keys()
    for name, grad in expected.items():
        if grad is None:  # a tensor the loss does not reach (an untied model's unused head bias)
            assert mine[name] is None, name
        else:
            torch.testing.assert_close(mine[name], grad, atol=1e-5, rtol=1e-4, msg=lambda m, n=name: f"{n}: {m}")
    assert sum(g is not None and bool(g.any()) for g in mine.values()) > len(mine) // 2


def assert_training_step_matches_transformers(class_name: str, config_name: str, ours: nn.Module) -> None:
    """Loss and every gradient of one training step equal transformers' on the same batch."""
    theirs = theirs_for_training(class_name, config_name)
    inputs = inputs_for(class_name, config_name)
    labels = labels_for(class_name, config_name, inputs)
    mine, expected = ours(**inputs, **labels).loss, theirs(**inputs, **labels).loss
    torch.testing.assert_close(mine, expected, atol=1e-5, rtol=0)
    mine.backward()
    expected.backward()
    assert_same_gradients(ours, theirs)


# -- training ------------------------------------------------------------------------------


@pytest.mark.parametrize(("class_name", "config_name"), HEAD_CASES)
def test_training_loss_and_gradients_match_transformers(class_name, config_name, checkpoint_dir):
    folder = checkpoint_dir(class_name, config_name)
    ours = ours_class(class_name).from_pretrained(folder, **without_dropout(class_name)).train()
    assert_training_step_matches_transformers(class_name, config_name, ours)


@pytest.mark.parametrize(
    ("class_name", "config_name"),
    [("DistilBertForMaskedLM", "distilbert-b"), ("ElectraForPreTraining", "electra-a"),
     ("MPNetForTokenClassification", "mpnet-a")],
)  # fmt: skip
def test_unpadded_training_matches_transformers(class_name, config_name, checkpoint_dir):
    """Gradients flow through the gather and scatter of the unpadded path: transformers' loss and gradients."""
    folder = checkpoint_dir(class_name, config_name)
    ours = ours_class(class_name).from_pretrained(folder, **without_dropout(class_name)).train()
    ours.set_unpadding(True)
    assert_training_step_matches_transformers(class_name, config_name, ours)


@pytest.mark.parametrize(
    ("class_name", "config_name"),
    [("DebertaV2ForSequenceClassification", "deberta-v3"), ("DebertaV2ForMaskedLM", "deberta-v3"),
     ("DebertaV2ForTokenClassification", "deberta-v2"), ("DebertaV2ForMaskedLM", "deberta-v2")],
)  # fmt: skip
def test_eager_training_matches_transformers(class_name, config_name, checkpoint_dir):
    """DeBERTa's position terms go into SDPA's mask, and are written out on the eager path: both train alike."""
    folder = checkpoint_dir(class_name, config_name)
    ours = ours_class(class_name).from_pretrained(folder, attn_implementation="eager", **without_dropout(class_name))
    assert_training_step_matches_transformers(class_name, config_name, ours.train())


def layer_calls(model: nn.Module) -> list[str]:
    """A list that grows by one entry each time one of the model's transformer layers starts to run."""
    calls = []
    for module in model.modules():
        if isinstance(module, Layer | AlbertLayer | TransformerBlock | GteLayer | NomicBertLayer):
            # A pre-hook: recomputation stops once it has what backward needs, before the layer returns.
            module.register_forward_pre_hook(lambda *_: calls.append("run"))
    return calls


@pytest.mark.parametrize("use_reentrant", [False, True])
@pytest.mark.parametrize(
    ("class_name", "config_name", "runs", "unpad"),
    [("BertForMaskedLM", "bert-a", 2, False), ("RobertaForSequenceClassification", "roberta-b", 2, False),
     ("AlbertForPreTraining", "albert-b", 8, False), ("AlbertForQuestionAnswering", "albert-c", 5, False),
     ("DistilBertForSequenceClassification", "distilbert-b", 3, False),
     ("DistilBertForQuestionAnswering", "distilbert-c", 1, False),
     ("DistilBertForMultipleChoice", "distilbert-a", 2, True),
     ("ElectraForPreTraining", "electra-a", 2, False), ("ElectraForMaskedLM", "electra-c", 1, False),
     ("ElectraForMultipleChoice", "electra-b", 3, False),
     # transformers' MPNet cannot checkpoint; its position bias, computed outside the layers, must
     # still get every layer's gradient (reentrant checkpointing too).
     ("MPNetForSequenceClassification", "mpnet-b", 3, False),
     ("GteForSequenceClassification", "gte-b", 3, False),
     ("NomicBertForSequenceClassification", "nomic-b", 3, False),
     # transformers' own reentrant checkpointing fails on deberta-v3: the normalised relative-position
     # table its layers share is back-propagated through once per layer. minibert's layers each read it.
     ("DebertaV2ForSequenceClassification", "deberta-v3", 2, False),
     ("DebertaV2ForSequenceClassification", "deberta-v2", 3, False)],
)  # fmt: skip
def test_gradient_checkpointing_recomputes_layers_with_the_same_gradients(
    class_name, config_name, runs, unpad, use_reentrant, checkpoint_dir
):
    ours = ours_class(class_name).from_pretrained(
        checkpoint_dir(class_name, config_name), **without_dropout(class_name)
    )
    ours.set_unpadding(unpad)
    calls = layer_calls(ours)
    ours.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": use_reentrant})
    assert ours.is_gradient_checkpointing
    assert_training_step_matches_transformers(class_name, config_name, ours.train())
    assert len(calls) == 2 * runs  # every layer run once forward, once again in backward
    ours.eval()
    with torch.no_grad():
        ours(**inputs_for(class_name, config_name))
    assert len(calls) == 3 * runs  # not in eval: nothing to recompute
    ours.gradient_checkpointing_disable()
    assert not ours.is_gradient_checkpointing


def test_gradient_checkpointing_replays_dropout(checkpoint_dir):
    """With dropout on, the recomputed layers draw the same masks: gradients equal those without it."""
    ours = minibert.BertForSequenceClassification.from_pretrained(
        checkpoint_dir("BertForSequenceClassification", "bert-b"), hidden_dropout_prob=0.3
    ).train()
    inputs = make_inputs("bert-b")
    labels = torch.tensor([0, 1, 1])
    found = []
    for enabled in (False, True):
        ours.zero_grad()
        if enabled:
            ours.gradient_checkpointing_enable()
        torch.manual_seed(11)
        ours(**inputs, labels=labels).loss.backward()
        found.append({name: p.grad.clone() for name, p in ours.named_parameters()})
    for name, grad in found[0].items():
        torch.testing.assert_close(found[1][name], grad, atol=1e-6, rtol=1e-5, msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize("class_name", SEQUENCE)
def test_train_mode_turns_dropout_on(class_name, checkpoint_dir):
    config_name = config_names_for(class_name)[0]
    folder = checkpoint_dir(class_name, config_name)
    ours = ours_class(class_name).from_pretrained(folder, hidden_dropout_prob=0.2, attention_probs_dropout_prob=0.2)
    inputs = make_inputs(config_name)
    with torch.no_grad():
        assert not ours.training
        torch.testing.assert_close(ours(**inputs).logits, ours(**inputs).logits, atol=0, rtol=0)
        ours.train()
        assert all(module.training for module in ours.modules())
        assert not torch.allclose(ours(**inputs).logits, ours(**inputs).logits)


# -- resizing the vocabulary ---------------------------------------------------------------


def head_bias(model: minibert.PreTrainedModel) -> nn.Parameter | None:
    """The MLM head's own bias (``cls.predictions.bias``), which a tied decoder shares; None where the
    decoder holds the only bias (DistilBERT's, ELECTRA's, GTE's)."""
    decoder = next(n for n, m in model.named_modules() if m is model.get_output_embeddings())
    head = model.get_submodule(decoder.removesuffix(".decoder")) if decoder.endswith(".decoder") else None
    return None if head is None else head._parameters.get("bias")


@pytest.mark.parametrize(("grow", "multiple"), [(13, None), (1, 8), (-20, None)])
@pytest.mark.parametrize(("class_name", "config_name"), [(c, n) for c in MLM for n in config_names_for(c)])
def test_resized_vocabulary_matches_transformers_and_round_trips(
    class_name, config_name, grow, multiple, checkpoint_dir, tmp_path
):
    folder = checkpoint_dir(class_name, config_name)
    ours = ours_class(class_name).from_pretrained(folder)
    theirs = getattr(transformers, class_name).from_pretrained(folder).eval()
    old = ours.config.vocab_size
    returned = ours.resize_token_embeddings(old + grow, pad_to_multiple_of=multiple)
    theirs.resize_token_embeddings(old + grow, pad_to_multiple_of=multiple, mean_resizing=False)
    size, kept = theirs.config.vocab_size, min(old, theirs.config.vocab_size)
    assert returned is ours.get_input_embeddings() and returned.padding_idx == theirs.get_input_embeddings().padding_idx
    assert returned.num_embeddings == ours.config.vocab_size == ours.base_model.config.vocab_size == size
    decoder = ours.get_output_embeddings()
    assert decoder.weight.shape == (size, returned.embedding_dim) and decoder.out_features == size
    assert (decoder.weight is returned.weight) == ours.config.tie_word_embeddings
    if head_bias(ours) is not None:
        assert head_bias(ours).shape == (size,) and (decoder.bias is head_bias(ours)) == ours.config.tie_word_embeddings
    torch.testing.assert_close(returned.weight[:kept], theirs.get_input_embeddings().weight[:kept], atol=0, rtol=0)
    torch.testing.assert_close(decoder.weight[:kept], theirs.get_output_embeddings().weight[:kept], atol=0, rtol=0)
    torch.testing.assert_close(decoder.bias, theirs.get_output_embeddings().bias, atol=0, rtol=0)  # zeros added
    for weight in {returned.weight, decoder.weight}:  # new rows: normal(0, initializer_range)
        added = weight[kept:]
        if added.numel():
            assert 0.6 < added.std().item() / ours.config.initializer_range < 1.4 and abs(added.mean()) < 0.01

    inputs = make_inputs(config_name)
    inputs["input_ids"] %= kept  # ids both vocabularies have
    with torch.no_grad():
        mask = inputs["attention_mask"]
        assert_real_tokens_close(ours(**inputs).logits[..., :kept], theirs(**inputs).logits[..., :kept], mask, 1e-5)
        assert ours(**inputs).logits.shape[-1] == size

    ours.save_pretrained(tmp_path)
    again = ours_class(class_name).from_pretrained(tmp_path)
    reloaded, info = getattr(transformers, class_name).from_pretrained(tmp_path, output_loading_info=True)
    assert not again.load_report.missing and not again.load_report.unexpected
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    inputs["input_ids"][:, 1] = size - 1  # a token only the resized vocabulary has (or its last)
    with torch.no_grad():
        expected = ours(**inputs).logits
        torch.testing.assert_close(again(**inputs).logits, expected, atol=0, rtol=0)
        assert_real_tokens_close(reloaded.eval()(**inputs).logits, expected, inputs["attention_mask"], 1e-6)


def test_resize_refuses_to_drop_the_padding_row_and_changes_nothing(checkpoint_dir):
    ours = minibert.BertForMaskedLM.from_pretrained(checkpoint_dir("BertForMaskedLM", "bert-b"))  # pad id 5
    before = {k: v.shape for k, v in ours.state_dict().items()}
    with pytest.raises(minibert.ConfigError, match="pad_token_id 5"):
        ours.resize_token_embeddings(5)
    assert {k: v.shape for k, v in ours.state_dict().items()} == before and ours.config.vocab_size == 120
    with pytest.raises(ValueError, match="pad_to_multiple_of"):
        ours.resize_token_embeddings(130, pad_to_multiple_of=0)
    assert ours.resize_token_embeddings() is ours.get_input_embeddings() and ours.config.vocab_size == 120


@pytest.mark.parametrize("class_name", CLASSES)
def test_embedding_accessors_return_the_modules_transformers_returns(class_name, checkpoint_dir):
    config_name = config_names_for(class_name)[0]
    ours = ours_class(class_name).from_pretrained(checkpoint_dir(class_name, config_name))
    theirs = hf_model(class_name, config_name)

    def name_of(model: nn.Module, module: nn.Module | None) -> str | None:
        return None if module is None else next(n for n, m in model.named_modules() if m is module)

    assert name_of(ours, ours.get_input_embeddings()) == name_of(theirs, theirs.get_input_embeddings())
    expected = name_of(theirs, theirs.get_output_embeddings())
    if class_name == "DebertaV2ForMaskedLM" and not ours.config.legacy:
        # transformers names DeBERTa v3's transform (lm_head.dense), no projection to the vocabulary: minibert none.
        assert expected == "lm_predictions.lm_head.dense"
        expected = None
    assert name_of(ours, ours.get_output_embeddings()) == expected


@pytest.mark.parametrize(
    ("class_name", "config_name"),
    [("BertForMaskedLM", "bert-a"), ("BertForMaskedLM", "bert-c"), ("RobertaForMaskedLM", "roberta-a"),
     ("AlbertForMaskedLM", "albert-a"), ("AlbertForMaskedLM", "albert-c"),  # -c: untied decoders
     ("DistilBertForMaskedLM", "distilbert-a"), ("DistilBertForMaskedLM", "distilbert-b"),  # -b: untied
     ("ElectraForMaskedLM", "electra-a"), ("ElectraForMaskedLM", "electra-c"),  # -c: untied
     ("MPNetForMaskedLM", "mpnet-a"), ("MPNetForMaskedLM", "mpnet-b")],  # -b: untied
)  # fmt: skip
def test_set_embeddings_replaces_the_modules_as_in_transformers(class_name, config_name, checkpoint_dir, tmp_path):
    ours = ours_class(class_name).from_pretrained(checkpoint_dir(class_name, config_name))
    theirs = hf_model(class_name, config_name)
    old = ours.get_input_embeddings()
    torch.manual_seed(9)
    embeddings = nn.Embedding(old.num_embeddings, old.embedding_dim, padding_idx=old.padding_idx)
    decoder = nn.Linear(old.embedding_dim, old.num_embeddings)
    for model in (ours, theirs):
        model.set_input_embeddings(copy.deepcopy(embeddings))
        model.set_output_embeddings(copy.deepcopy(decoder))
    inputs = make_inputs(config_name)
    with torch.no_grad():
        assert_outputs_close(ours(**inputs), theirs(**inputs))
    ours.tie_weights()  # a tied config: the decoder reads the new input embeddings again, with the new bias
    tied = ours.config.tie_word_embeddings
    assert (ours.get_output_embeddings().weight is ours.get_input_embeddings().weight) == tied
    if head_bias(ours) is not None:
        assert (ours.get_output_embeddings().bias is head_bias(ours)) == tied
    torch.testing.assert_close(ours.get_output_embeddings().bias, decoder.bias, atol=0, rtol=0)
    ours.save_pretrained(tmp_path)
    reloaded = getattr(transformers, class_name).from_pretrained(tmp_path).eval()
    with torch.no_grad():  # transformers' MPNet runs eager attention, minibert sdpa: rounded differently
        assert_outputs_close(reloaded(**inputs), ours(**inputs), atol=1e-6 if reloaded._supports_sdpa else 1e-5)


# -- pruning attention heads ---------------------------------------------------------------

PRUNE_CASES = [
    ("BertModel", "bert-a", {0: [1, 3], 1: [2]}, {0: [0, 3]}),
    ("BertForSequenceClassification", "bert-b", {2: [0, 2]}, {"1": [1]}),  # JSON-style string keys too
    ("RobertaForMaskedLM", "roberta-a", {1: [0, 1]}, {1: [2]}),
    ("AlbertModel", "albert-b", {3: [1]}, {1: [0]}),  # layers 3, 1 = (group 1, inner 1), (group 0, inner 1)
    ("AlbertForSequenceClassification", "albert-a", {0: [2]}, {0: [1, 2]}),
    ("DistilBertModel", "distilbert-a", {0: [1, 3], 1: [2]}, {0: [0, 3]}),
    ("DistilBertForSequenceClassification", "distilbert-b", {2: [0, 2]}, {"1": [1]}),
    ("DistilBertForMultipleChoice", "distilbert-c", {0: [1]}, {-1: [1]}),  # negative layers count from the end
    ("ElectraModel", "electra-a", {0: [1, 3], 1: [2]}, {0: [0, 3]}),
    ("ElectraForPreTraining", "electra-b", {2: [0, 2]}, {"1": [1]}),
    ("ElectraForMultipleChoice", "electra-c", {0: [1]}, {-1: [1]}),
    ("MPNetModel", "mpnet-a", {0: [1, 3], 1: [2]}, {0: [0, 3]}),  # the kept heads read their rows of the bias
    ("MPNetForSequenceClassification", "mpnet-b", {2: [0, 2]}, {"1": [1]}),
    ("MPNetForMaskedLM", "mpnet-a", {1: [0, 1, 2]}, {1: [3]}),  # every head of a layer
    ("GteForSequenceClassification", "gte-a", {0: [1]}, {1: [0, 2]}),
    ("GteModel", "gte-b", {2: [0, 2]}, {"1": [1]}),
]


def pruned(class_name: str, first: dict, second: dict, folder) -> tuple[minibert.PreTrainedModel, dict]:
    """The checkpoint's model pruned twice, and the heads that should be gone: {layer: sorted heads}."""
    ours = ours_class(class_name).from_pretrained(folder)
    ours.prune_heads(first)
    ours.prune_heads(second)  # accumulates; heads already gone are skipped
    union: dict[int, set[int]] = {}
    for layer, heads in [*first.items(), *second.items()]:
        union.setdefault(int(layer) % ours.config.attention_layers, set()).update(heads)
    return ours, {layer: sorted(heads) for layer, heads in sorted(union.items())}


def attention_modules(class_name: str, config_name: str, layer: int) -> tuple[list[str], str, int]:
    """The query, key and value projections and the output projection of ``layer`` (numbered as
    transformers 4.x did), and the head size."""
    config = hf_config(config_name)  # hidden_size and num_attention_heads name DistilBERT's dim and n_heads too
    prefix = "" if task_of(class_name) == "Model" else f"{getattr(transformers, class_name).base_model_prefix}."
    head_size = config.hidden_size // config.num_attention_heads
    family = family_of(class_name)
    if family == "albert":
        group, inner = divmod(layer, config.inner_group_num)
        attention = f"{prefix}encoder.albert_layer_groups.{group}.albert_layers.{inner}.attention"
        return [f"{attention}.{name}" for name in ("query", "key", "value")], f"{attention}.dense", head_size
    if family == "distilbert":
        attention = f"{prefix}transformer.layer.{layer}.attention"
        return [f"{attention}.{name}" for name in ("q_lin", "k_lin", "v_lin")], f"{attention}.out_lin", head_size
    if family == "gte":
        attention = f"{prefix}layers.{layer}.self_attn"
        return [f"{attention}.{name}_proj" for name in "qkv"], f"{attention}.o_proj", head_size
    if family == "mpnet":
        attention = f"{prefix}encoder.layer.{layer}.attention.attn"
        return [f"{attention}.{name}" for name in ("q", "k", "v")], f"{attention}.o", head_size
    attention = f"{prefix}encoder.layer.{layer}.attention"
    return [f"{attention}.self.{name}" for name in ("query", "key", "value")], f"{attention}.output.dense", head_size


@pytest.mark.parametrize(
    ("class_name", "config_name", "first", "second"),
    [*PRUNE_CASES, ("RobertaForMaskedLM", "roberta-a", {1: [0, 1, 2]}, {1: [3]})],  # every head of a layer
)
def test_pruned_heads_contribute_nothing_as_in_transformers(class_name, config_name, first, second, checkpoint_dir):
    ours, gone = pruned(class_name, first, second, checkpoint_dir(class_name, config_name))
    assert ours.config.pruned_heads == gone
    # The unpruned transformers model, its output projections blind to the pruned heads.
    theirs = hf_model(class_name, config_name)
    with torch.no_grad():
        for layer, heads in gone.items():
            projections, output, size = attention_modules(class_name, config_name, layer)
            kept = torch.ones(ours.config.num_attention_heads, size, dtype=torch.bool)
            kept[heads] = False
            kept = kept.flatten()  # (nh * hs,): the features of the heads that stay, in their order
            for name in projections:
                torch.testing.assert_close(ours.get_submodule(name).weight, theirs.get_submodule(name).weight[kept])
            torch.testing.assert_close(ours.get_submodule(output).weight, theirs.get_submodule(output).weight[:, kept])
            theirs.get_submodule(output).weight[:, ~kept] = 0
        inputs = inputs_for(class_name, config_name)
        assert_outputs_close(ours(**inputs, output_hidden_states=True), theirs(**inputs, output_hidden_states=True))


@pytest.mark.parametrize(("class_name", "config_name", "first", "second"), PRUNE_CASES)
def test_pruned_model_saves_and_reloads_with_its_shapes(
    class_name, config_name, first, second, checkpoint_dir, tmp_path
):
    ours, gone = pruned(class_name, first, second, checkpoint_dir(class_name, config_name))
    ours.save_pretrained(tmp_path)
    written = json.loads((tmp_path / "config.json").read_text())["pruned_heads"]
    assert written == {str(layer): heads for layer, heads in gone.items()}  # transformers 4.x's field
    again = ours_class(class_name).from_pretrained(tmp_path)
    assert again.config.pruned_heads == gone
    assert not again.load_report.missing and not again.load_report.mismatched and not again.load_report.unexpected
    inputs = inputs_for(class_name, config_name)
    with torch.no_grad():
        expected = ours(**inputs, output_hidden_states=True)
        assert_outputs_close(again(**inputs, output_hidden_states=True), expected, atol=0)
    if family_of(class_name) == "mpnet":
        return  # transformers' MPNet adds a position bias for every head: pruned shapes crash it
    # transformers 5 has no prune_heads and ignores pruned_heads: give its model the pruned shapes in memory.
    theirs = hf_model(class_name, config_name)
    state = ours.state_dict()
    for name, module in list(theirs.named_modules()):
        if isinstance(module, nn.Linear) and state[f"{name}.weight"].shape != module.weight.shape:
            theirs.set_submodule(name, nn.Linear(*reversed(state[f"{name}.weight"].shape)))
    theirs.load_state_dict(state)
    with torch.no_grad():
        assert_outputs_close(theirs.eval()(**inputs, output_hidden_states=True), expected)


def test_prune_heads_refuses_unknown_layers_and_heads_and_changes_nothing(checkpoint_dir):
    ours = minibert.AlbertModel.from_pretrained(checkpoint_dir("AlbertModel", "albert-b"))  # 2 groups x 2 layers
    before = {k: v.shape for k, v in ours.state_dict().items()}
    with pytest.raises(minibert.ConfigError, match=r"layer 4 is outside \[0, 4\)"):
        ours.prune_heads({4: [0]})
    with pytest.raises(minibert.ConfigError, match=r"outside \[0, 2\)"):
        ours.prune_heads({0: [0, 2]})
    assert {k: v.shape for k, v in ours.state_dict().items()} == before and ours.config.pruned_heads == {}


# -- replacing a head ----------------------------------------------------------------------


def assert_only_head_initialised(ours: minibert.PreTrainedModel, saved: dict[str, torch.Tensor], head: set[str]):
    """Every tensor but ``head`` holds the checkpoint's value; the head starts as _init_weights starts it."""
    state = ours.state_dict()
    added = "" if any(k.startswith(f"{ours.base_model_prefix}.") for k in saved) else f"{ours.base_model_prefix}."
    for key, tensor in saved.items():
        if f"{added}{key}" not in head:
            assert torch.equal(state[f"{added}{key}"], tensor), key
    assert head and set(state) == {f"{added}{k}" for k in saved} | head
    for key in head:
        if key.endswith("bias"):
            assert not state[key].any(), key
        else:
            assert 0.5 < state[key].std().item() / ours.config.initializer_range < 1.5, key


@pytest.mark.parametrize("class_name", SEQUENCE)
def test_new_label_count_initialises_only_the_classifier(class_name, checkpoint_dir):
    config_name = config_names_for(class_name)[0]
    folder = checkpoint_dir(class_name, config_name)
    with pytest.raises(minibert.CheckpointError, match="ignore_mismatched_sizes=True"):
        ours_class(class_name).from_pretrained(folder, num_labels=5)
    ours = ours_class(class_name).from_pretrained(folder, num_labels=5, ignore_mismatched_sizes=True)
    _, info = getattr(transformers, class_name).from_pretrained(
        folder, num_labels=5, ignore_mismatched_sizes=True, output_loading_info=True
    )
    assert set(ours.load_report.mismatched) == {key for key, *_ in info["mismatched_keys"]}
    assert ours.config.num_labels == 5 and ours(**make_inputs(config_name)).logits.shape == (3, 5)
    assert_only_head_initialised(ours, load_file(folder / "model.safetensors"), set(ours.load_report.mismatched))


@pytest.mark.parametrize("class_name", [*SEQUENCE, "BertForQuestionAnswering", "AlbertForTokenClassification"])
def test_base_checkpoint_gets_a_new_head_and_keeps_every_encoder_tensor(class_name, checkpoint_dir):
    base = base_class_of(class_name)
    folder = checkpoint_dir(base, config_names_for(class_name)[0])
    ours = ours_class(class_name).from_pretrained(folder)
    _, info = getattr(transformers, class_name).from_pretrained(folder, output_loading_info=True)
    assert set(ours.load_report.missing) == set(info["missing_keys"])
    assert set(ours.load_report.unexpected) == set(info["unexpected_keys"])  # e.g. a pooler the head does not use
    saved = {k: v for k, v in load_file(folder / "model.safetensors").items() if k not in ours.load_report.unexpected}
    assert_only_head_initialised(ours, saved, set(ours.load_report.missing))
