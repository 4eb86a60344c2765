"""The fast paths (unpadded batches, float32 products for bf16 weights) compute what the reference path
computes, the default picks the unpadded layout where it should, and torch.compile runs the model."""

import copy

import pytest
import torch
from conftest import (
    CLASSES,
    CONFIGS,
    assert_outputs_close,
    config_names_for,
    inputs_for,
    labels_for,
    make_inputs,
    ours_class,
    unpadded_mask,
)

from minibert.bert import UNPADDED_BELOW
from minibert.linear import Float32Linear

CASES = [(c, n) for c in CLASSES for n in config_names_for(c)]


def reads_padding(class_name: str, config_name: str) -> bool:
    """ELECTRA's "last" and "mean" multiple-choice summaries read padding positions: those calls run padded."""
    return class_name == "ElectraForMultipleChoice" and CONFIGS[config_name].get("summary_type", "first") != "first"


@pytest.mark.parametrize(("class_name", "config_name"), CASES)
def test_default_path_unpads_inference_and_the_dense_path_matches_transformers_everywhere(
    class_name, config_name, checkpoint_dir, reference
):
    """Default: unpadded, transformers' values at real tokens, zeros at padding. Dense: every position."""
    model = ours_class(class_name).from_pretrained(checkpoint_dir(class_name, config_name))
    inputs = inputs_for(class_name, config_name, batch=4, length=13)
    assert float(inputs["attention_mask"].float().mean()) < UNPADDED_BELOW
    with torch.no_grad():
        fast = model(**inputs, output_hidden_states=True)
        model.set_unpadding(False)
        dense = model(**inputs, output_hidden_states=True)
        theirs = reference(class_name, config_name)(**inputs, output_hidden_states=True)
    assert (unpadded_mask(fast) is None) == reads_padding(class_name, config_name)
    assert unpadded_mask(dense) is None
    assert_outputs_close(dense, theirs)  # every position, padding included
    assert_outputs_close(fast, theirs)  # real tokens where it ran unpadded; hidden states zero at padding
    assert_outputs_close(fast, dense)


def test_auto_unpads_inference_batches_with_enough_padding_only(checkpoint_dir, reference):
    """Unpadded under no_grad and inference_mode; dense with autograd on, without padding, with attention maps,
    above UNPADDED_BELOW real tokens, and for a sequence that starts with padding (the pooler reads it)."""
    model = ours_class("BertModel").from_pretrained(checkpoint_dir("BertModel", "bert-a"))
    theirs = reference("BertModel", "bert-a")
    inputs = make_inputs("bert-a", batch=4, length=12)
    mask = inputs["attention_mask"]
    full = {**inputs, "attention_mask": torch.ones_like(mask)}
    nearly_full = {**full, "attention_mask": torch.ones_like(mask)}
    nearly_full["attention_mask"][1, -1] = 0  # 47 of 48 real: above UNPADDED_BELOW
    left = {name: x.flip(1) for name, x in inputs.items()}
    assert model.unpad == "auto"
    with torch.inference_mode():
        assert unpadded_mask(model(**inputs)) is not None
    with torch.no_grad():
        assert unpadded_mask(model(**inputs)) is not None
        assert unpadded_mask(model(**full)) is None
        assert unpadded_mask(model(**inputs, output_attentions=True)) is None
        assert unpadded_mask(model(**nearly_full)) is None
        for case in (inputs, left, nearly_full):
            mine = model(**case, output_hidden_states=True)
            assert_outputs_close(mine, theirs(**case, output_hidden_states=True))
        assert unpadded_mask(mine) is None
        model.set_unpadding(True)  # forced: whatever the fraction
        assert unpadded_mask(model(**nearly_full)) is not None
        assert unpadded_mask(model(**inputs, output_attentions=True)) is None  # maps read padding queries
        model.set_unpadding(False)
        assert unpadded_mask(model(**inputs)) is None
    model.set_unpadding("auto")
    assert unpadded_mask(model(**inputs)) is None  # autograd on: training keeps the dense path
    model.set_unpadding(True)
    assert unpadded_mask(model(**inputs)) is not None
    with pytest.raises(ValueError, match="True, False or 'auto'"):
        model.set_unpadding("yes")


@pytest.mark.parametrize(
    ("class_name", "labelled"),
    [("BertForTokenClassification", "padding"), ("BertForQuestionAnswering", "spans"), ("BertForMaskedLM", "tokens")],
)
def test_heads_whose_loss_reads_padding_run_that_call_padded(class_name, labelled, checkpoint_dir, reference):
    """A label at a padding position, or the span softmax over every position: transformers' loss needs them."""
    model = ours_class(class_name).from_pretrained(checkpoint_dir(class_name, "bert-a"))
    inputs = inputs_for(class_name, "bert-a")
    labels = labels_for(class_name, "bert-a", inputs)
    if labelled == "padding":
        labels["labels"][inputs["attention_mask"] == 0] = 1
    with torch.no_grad():
        mine = model(**inputs, **labels)
        torch.testing.assert_close(
            mine.loss, reference(class_name, "bert-a")(**inputs, **labels).loss, atol=1e-5, rtol=0
        )
        assert (unpadded_mask(mine) is None) == (labelled != "tokens")  # MLM labels are -100 at padding
        assert unpadded_mask(model(**inputs)) is not None  # without labels: unpadded
    assert model.bert.unpad == "auto"


@pytest.mark.parametrize(
    ("class_name", "config_name"),
    [("BertModel", "bert-b"), ("MPNetModel", "mpnet-b"), ("GteModel", "gte-b"), ("NomicBertModel", "nomic-b")],
)
def test_sequence_by_sequence_attention_and_holes_in_the_mask(class_name, config_name, checkpoint_dir, reference):
    """Right padding: attention runs one run of equal lengths at a time (attend_sequences), position biases
    (MPNet) and rotations (GTE, NomicBERT) cut to each run; a mask with holes goes through the (B, T) layout."""
    model = ours_class(class_name).from_pretrained(checkpoint_dir(class_name, config_name))
    theirs = reference(class_name, config_name)
    inputs = make_inputs(config_name, batch=6, length=12)
    inputs["attention_mask"][2:4] = inputs["attention_mask"][1]  # a run of three sequences of one length
    holes = {**inputs, "attention_mask": inputs["attention_mask"].clone()}
    holes["attention_mask"][0, 4:6] = 0  # padding inside a sequence
    for case in (inputs, holes):
        with torch.no_grad():
            mine = model(**case, output_hidden_states=True)
            expected = theirs(**case, output_hidden_states=True)
        assert unpadded_mask(mine) is not None
        assert_outputs_close(mine, expected)


def test_unpadded_path_zeroes_padding_and_leaves_unpadded_batches_alone(checkpoint_dir):
    model = ours_class("BertModel").from_pretrained(checkpoint_dir("BertModel", "bert-a"))
    inputs = inputs_for("BertModel", "bert-a")
    with torch.no_grad():
        fast = model(**inputs).last_hidden_state
        model.set_unpadding(False)
        reference = model(**inputs).last_hidden_state
        no_padding = {**inputs, "attention_mask": torch.ones_like(inputs["attention_mask"])}
        dense_without_padding = model(**no_padding).last_hidden_state
        model.set_unpadding(True)
        assert torch.equal(model(**no_padding).last_hidden_state, dense_without_padding)
    padding = inputs["attention_mask"] == 0
    assert torch.all(fast[padding] == 0) and not torch.all(reference[padding] == 0)


def test_training_keeps_the_dense_path_and_its_gradients(checkpoint_dir):
    """With autograd on, the default is the dense path, bit for bit; forced unpadding trains to the same gradients."""
    model = ours_class("BertForSequenceClassification").from_pretrained(
        checkpoint_dir("BertForSequenceClassification", "bert-a")
    )
    model.train()
    inputs = inputs_for("BertForSequenceClassification", "bert-a")
    labels = torch.tensor([0, 1, 1])
    grads = {}
    for unpad in (False, "auto", True):
        model.zero_grad()
        model.set_unpadding(unpad)
        torch.manual_seed(0)  # the same dropout masks
        outputs = model(**inputs, labels=labels)
        assert (unpadded_mask(outputs) is not None) == (unpad is True)
        outputs.loss.backward()
        grads[unpad] = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    assert all(torch.equal(a, b) for a, b in zip(grads["auto"], grads[False], strict=True))
    model.eval()
    for unpad in (False, True):  # no dropout: the two layouts give the same gradients, up to rounding
        model.zero_grad()
        model.set_unpadding(unpad)
        model(**inputs, labels=labels).loss.backward()
        grads[unpad] = model.bert.encoder.layer[0].attention.self.query.weight.grad.clone()
    torch.testing.assert_close(grads[True], grads[False], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("unpad", [False, True])
def test_torch_compile_runs_and_matches_eager(checkpoint_dir, unpad):
    class_name = "BertForMaskedLM"
    config_name = config_names_for(class_name)[0]
    model = ours_class(class_name).from_pretrained(checkpoint_dir(class_name, config_name))
    model.set_unpadding(unpad)  # compiled graphs keep the padded layout either way
    inputs = inputs_for(class_name, config_name)
    compiled = torch.compile(model)
    with torch.no_grad():
        eager = model(**inputs).logits
        torch.testing.assert_close(
            compiled(**inputs).logits[inputs["attention_mask"].bool()],
            eager[inputs["attention_mask"].bool()],
            atol=1e-5,
            rtol=0,
        )


def test_float32_matmuls_keep_bf16_weights_and_stay_within_bf16_tolerance(checkpoint_dir, reference):
    """bf16 weights, float32 products: the same state dict, outputs near transformers' fp32 and bf16 ones.

    Tolerance: bf16 keeps 8 bits of mantissa, so activations of size ~1 carry errors of ~1e-2.
    """
    folder = checkpoint_dir("BertForMaskedLM", "bert-b")
    model = ours_class("BertForMaskedLM").from_pretrained(folder, dtype=torch.bfloat16)
    keys = list(model.state_dict())
    model.set_float32_matmuls(True)
    assert list(model.state_dict()) == keys and {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
    inputs = inputs_for("BertForMaskedLM", "bert-b")
    theirs = reference("BertForMaskedLM", "bert-b")
    with torch.no_grad():
        fast = model(**inputs).logits
        exact = theirs(**inputs).logits
        theirs_bf16 = copy.deepcopy(theirs).to(torch.bfloat16)(**inputs).logits
    assert fast.dtype == torch.bfloat16
    real = inputs["attention_mask"].bool()
    torch.testing.assert_close(fast[real].float(), exact[real], atol=0.05, rtol=0.02)
    torch.testing.assert_close(fast[real].float(), theirs_bf16[real].float(), atol=0.05, rtol=0.02)
    model.set_float32_matmuls(False)
    assert all(type(m) is not Float32Linear for m in model.modules())
