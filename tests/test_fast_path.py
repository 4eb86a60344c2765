"""The fast paths (unpadded batches, float32 products for bf16 weights) compute what the reference path
computes, and torch.compile runs the model."""

import copy

import pytest
import torch
from conftest import CLASSES, CONFIGS, config_names_for, inputs_for, labels_for, ours_class, task_of

from minibert.pretrained import Float32Linear

# Every class and config, but ELECTRA's multiple-choice summaries that read padding (they refuse the path).
FAST_CASES = [(c, n) for c in CLASSES for n in config_names_for(c)
              if c != "ElectraForMultipleChoice" or CONFIGS[n].get("summary_type", "first") == "first"]  # fmt: skip


def at_real_tokens(outputs, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every output tensor, per-token ones restricted to real tokens (the fast path zeroes padding)."""
    keep = mask.reshape(-1, mask.shape[-1]).bool()  # (B, T); multiple choice: (B * C, T)

    def select(value: torch.Tensor) -> torch.Tensor:
        return value[keep] if tuple(value.shape[:2]) == tuple(keep.shape) else value

    fields = {name: select(v) for name, v in vars(outputs).items() if isinstance(v, torch.Tensor)}
    fields.update({f"hidden_states[{i}]": select(h) for i, h in enumerate(outputs.hidden_states or ())})
    return fields


@pytest.mark.parametrize(("class_name", "config_name"), FAST_CASES)
def test_unpadded_path_matches_the_reference_path_at_real_tokens(class_name, config_name, checkpoint_dir, reference):
    """Outputs and losses; padding rows are zeros on this path."""
    model = ours_class(class_name).from_pretrained(checkpoint_dir(class_name, config_name))
    inputs = inputs_for(class_name, config_name, batch=4, length=13)
    assert (inputs["attention_mask"] == 0).any()
    # Not span labels: the span softmax runs over padding positions too, which the unpadded path leaves at zero.
    labelled = task_of(class_name) not in ("Model", "ForQuestionAnswering")
    labels = labels_for(class_name, config_name, inputs) if labelled else {}
    with torch.no_grad():
        expected = model(**inputs, **labels, output_hidden_states=True)
        theirs = reference(class_name, config_name)(**inputs, **labels, output_hidden_states=True)
        model.set_unpadding(True)
        fast = model(**inputs, **labels, output_hidden_states=True)
    mask = inputs["attention_mask"]
    mine, ref = at_real_tokens(fast, mask), at_real_tokens(expected, mask)
    assert mine.keys() == ref.keys() and len(mine) > 2
    for name in mine:
        torch.testing.assert_close(mine[name], ref[name], atol=1e-5, rtol=0, msg=name)
    for name, value in at_real_tokens(theirs, mask).items():
        if name in mine:
            torch.testing.assert_close(mine[name], value, atol=1e-5, rtol=0, msg=f"vs transformers: {name}")
    padding = ~mask.reshape(-1, mask.shape[-1]).bool()  # (B, T); multiple choice: (B * C, T)
    assert torch.all(fast.hidden_states[-1][padding] == 0)


def test_unpadded_path_zeroes_padding_and_leaves_unpadded_batches_alone(checkpoint_dir):
    model = ours_class("BertModel").from_pretrained(checkpoint_dir("BertModel", "bert-a"))
    inputs = inputs_for("BertModel", "bert-a")
    with torch.no_grad():
        reference = model(**inputs).last_hidden_state
        model.set_unpadding(True)
        fast = model(**inputs).last_hidden_state
        no_padding = {**inputs, "attention_mask": torch.ones_like(inputs["attention_mask"])}
        fast_without_padding = model(**no_padding).last_hidden_state
        model.set_unpadding(False)
        assert torch.equal(fast_without_padding, model(**no_padding).last_hidden_state)
    padding = inputs["attention_mask"] == 0
    assert torch.all(fast[padding] == 0) and not torch.all(reference[padding] == 0)


def test_unpadded_path_trains_like_the_reference_path(checkpoint_dir):
    """Gradients flow through the gather/scatter: the same loss and weight gradients."""
    model = ours_class("BertForSequenceClassification").from_pretrained(
        checkpoint_dir("BertForSequenceClassification", "bert-a")
    )
    inputs = inputs_for("BertForSequenceClassification", "bert-a")
    labels = torch.tensor([0, 1, 1])
    grads = []
    for unpad in (False, True):
        model.zero_grad()
        model.set_unpadding(unpad)
        model(**inputs, labels=labels).loss.backward()
        grads.append(model.bert.encoder.layer[0].attention.self.query.weight.grad.clone())
    torch.testing.assert_close(grads[1], grads[0], atol=1e-6, rtol=1e-5)


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
