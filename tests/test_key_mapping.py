"""Property: whatever subset, renaming and prefixing of a checkpoint's keys, loading either accounts
for every key exactly, with every loaded tensor holding its true value, or raises a clear error."""

import tempfile
from pathlib import Path

import torch
from conftest import hf_model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

import minibert

# The source of truth: every tensor of a BERT pre-training checkpoint, under transformers' names.
SOURCE = hf_model("BertForPreTraining", "bert-a").state_dict()
SOURCE_CONFIG = hf_model("BertForPreTraining", "bert-a").config
TARGETS = ["BertModel", "BertForMaskedLM", "BertForPreTraining", "BertForSequenceClassification"]


def canonical(model: minibert.PreTrainedModel, model_key: str) -> str:
    """The source key holding the true value of a model key."""
    return model_key if model.base_model is not model else f"bert.{model_key}"


@st.composite
def mutated_checkpoints(draw):
    state = {}
    for key, tensor in SOURCE.items():
        if not draw(st.booleans()) and draw(st.booleans()):  # keep about three keys in four
            continue
        if key.endswith(("LayerNorm.weight", "LayerNorm.bias")) and draw(st.booleans()):
            key = key.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        if key.startswith("bert.") and draw(st.booleans()):
            key = key.removeprefix("bert.")
        state[key] = tensor
    for i in range(draw(st.integers(0, 3))):
        state[f"junk.{i}.weight"] = torch.randn(draw(st.integers(1, 4)))
    return state


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(state=mutated_checkpoints(), target=st.sampled_from(TARGETS))
def test_any_key_mutation_loads_with_a_complete_account_or_fails_clearly(state, target):
    with tempfile.TemporaryDirectory() as folder:
        SOURCE_CONFIG.save_pretrained(folder)
        save_file({k: v.clone() for k, v in state.items()}, str(Path(folder) / "model.safetensors"))
        cls = getattr(minibert, target)
        try:
            model = cls.from_pretrained(folder)
        except minibert.CheckpointError as error:
            assert folder in str(error)
            planned = cls.plan_pretrained(folder, strict=False)[2]
            assert not any(r.status in ("loaded", "renamed") for r in planned.records), str(error)
            return
    report = model.load_report
    # Every checkpoint key is accounted for...
    assert {r.checkpoint_key for r in report.records if r.checkpoint_key} == set(state)
    # ...and every model tensor has exactly one record.
    model_keys = [r.model_key for r in report.records if r.status not in ("unexpected", "ignored")]
    assert sorted(model_keys) == sorted(model.state_dict())
    values = model.state_dict()
    for record in report.records:
        true_value = SOURCE.get(canonical(model, record.model_key)) if record.model_key else None
        if record.status in ("loaded", "renamed", "tied") and record.checkpoint_key is not None:
            assert torch.equal(values[record.model_key], true_value), record
        if record.status == "missing":
            assert not any(r.model_key == record.model_key and r.checkpoint_key for r in report.records)
    if not report.missing:  # a complete load holds the true value everywhere
        for key, value in values.items():
            assert torch.equal(value, SOURCE[canonical(model, key)]), key
