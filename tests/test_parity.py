"""minibert computes what transformers computes: every class, config, checkpoint layout and output field."""

import pytest
import torch
import transformers
from conftest import (
    BERT_CLASSES,
    CLASSES,
    LAYOUTS,
    assert_outputs_close,
    base_class_of,
    config_names_for,
    inputs_for,
    make_inputs,
    ours_class,
)

import minibert

CASES = [(c, n) for c in CLASSES for n in config_names_for(c)]
HEADS = [c for c in CLASSES if not c.endswith("Model")]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("class_name", "config_name"), CASES)
def test_every_output_matches_transformers(class_name, config_name, layout, checkpoint_dir, reference):
    ours = ours_class(class_name).from_pretrained(checkpoint_dir(class_name, config_name, layout))
    assert ours.load_report.missing == [] and ours.load_report.unexpected == []
    theirs = reference(class_name, config_name)
    inputs = inputs_for(class_name, config_name)
    with torch.no_grad():
        assert_outputs_close(ours(**inputs, output_hidden_states=True), theirs(**inputs, output_hidden_states=True))


@pytest.mark.parametrize(("class_name", "config_name"), CASES)
def test_attentions_match_transformers_eager(class_name, config_name, checkpoint_dir, reference):
    ours = ours_class(class_name).from_pretrained(checkpoint_dir(class_name, config_name))
    theirs = reference(class_name, config_name, attn="eager")
    inputs = inputs_for(class_name, config_name)
    with torch.no_grad():
        mine = ours(**inputs, output_attentions=True, output_hidden_states=True)
        assert_outputs_close(mine, theirs(**inputs, output_attentions=True, output_hidden_states=True))
    assert len(mine.attentions) == len(mine.hidden_states) - 1  # one per layer run (ALBERT repeats layers)


@pytest.mark.parametrize(("class_name", "config_name"), CASES)
def test_eager_and_sdpa_paths_agree(class_name, config_name, checkpoint_dir):
    model = ours_class(class_name).from_pretrained(checkpoint_dir(class_name, config_name))
    inputs = inputs_for(class_name, config_name, seed=7)
    with torch.no_grad():
        sdpa = model(**inputs, output_hidden_states=True)
        model.set_attn_implementation("eager")
        eager = model(**inputs, output_hidden_states=True)
    assert_outputs_close(eager, sdpa)


def labels_for(class_name: str, config: minibert.BertConfig, inputs: dict) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    batch = inputs["input_ids"].shape[0]
    length = inputs["input_ids"].shape[-1]
    if class_name.endswith(("MaskedLM", "PreTraining")):
        labels = torch.randint(0, config.vocab_size, (batch, length), generator=generator)
        labels[torch.rand(batch, length, generator=generator) < 0.6] = -100  # unmasked tokens are ignored
        order = "sentence_order_label" if class_name.startswith("Albert") else "next_sentence_label"
        extra = {order: torch.tensor([0, 1, 1][:batch])} if class_name.endswith("PreTraining") else {}
        return {"labels": labels, **extra}
    if class_name.endswith("NextSentencePrediction"):
        return {"labels": torch.tensor([1, 0, 1][:batch])}
    if class_name.endswith("SequenceClassification"):
        return {"labels": torch.randint(0, config.num_labels, (batch,), generator=generator)}
    if class_name.endswith("TokenClassification"):
        labels = torch.randint(0, config.num_labels, (batch, length), generator=generator)
        return {"labels": labels.masked_fill(inputs["attention_mask"] == 0, -100)}
    if class_name.endswith("QuestionAnswering"):
        # The last position is out of range: clamped and ignored, as in transformers.
        return {
            "start_positions": torch.tensor([1, 3, length + 5][:batch]),
            "end_positions": torch.tensor([2, length + 5, 4][:batch]),
        }
    if class_name.endswith("MultipleChoice"):
        return {"labels": torch.randint(0, inputs["input_ids"].shape[1], (batch,), generator=generator)}
    raise AssertionError(class_name)


@pytest.mark.parametrize(("class_name", "config_name"), [(c, n) for c, n in CASES if c in HEADS])
def test_losses_match_transformers(class_name, config_name, checkpoint_dir, reference):
    ours = ours_class(class_name).from_pretrained(checkpoint_dir(class_name, config_name))
    theirs = reference(class_name, config_name)
    inputs = inputs_for(class_name, config_name)
    labels = labels_for(class_name, ours.config, inputs)
    with torch.no_grad():
        mine, expected = ours(**inputs, **labels), theirs(**inputs, **labels)
    assert mine.loss is not None and torch.isfinite(mine.loss)
    torch.testing.assert_close(mine.loss, expected.loss, atol=1e-5, rtol=0)


@pytest.mark.parametrize("prefix", ["Bert", "Roberta", "Albert"])
@pytest.mark.parametrize(("num_labels", "problem_type"), [(1, "regression"), (3, "multi_label_classification")])
def test_regression_and_multi_label_losses_match_transformers(prefix, num_labels, problem_type, tmp_path):
    config_name = f"{prefix.lower()}-a"
    from conftest import hf_config

    config = hf_config(config_name)
    config.num_labels = num_labels
    config.problem_type = problem_type
    torch.manual_seed(0)
    theirs = getattr(transformers, f"{prefix}ForSequenceClassification")(config).eval()
    theirs.save_pretrained(tmp_path)
    ours = ours_class(f"{prefix}ForSequenceClassification").from_pretrained(tmp_path)
    assert ours.config.problem_type == problem_type
    inputs = make_inputs(config_name)
    labels = torch.rand(3, num_labels).round() if num_labels > 1 else torch.randn(3)
    with torch.no_grad():
        torch.testing.assert_close(
            ours(**inputs, labels=labels).loss, theirs(**inputs, labels=labels).loss, atol=1e-6, rtol=0
        )


@pytest.mark.parametrize("class_name", ["BertModel", "RobertaModel", "AlbertModel"])
def test_optional_inputs_default_as_in_transformers(class_name, checkpoint_dir, reference):
    """No mask, no token types, explicit position_ids, inputs_embeds instead of ids."""
    config_name = config_names_for(class_name)[0]
    ours = ours_class(class_name).from_pretrained(checkpoint_dir(class_name, config_name))
    theirs = reference(class_name, config_name)
    inputs = make_inputs(config_name)
    ids = inputs["input_ids"]
    embeds = theirs.embeddings.word_embeddings(ids).detach()
    positions = torch.arange(ids.shape[1]).flip(0).expand_as(ids) + 2
    with torch.no_grad():
        for kwargs in (
            {"input_ids": ids},
            {"input_ids": ids, "position_ids": positions},
            {"inputs_embeds": embeds, "attention_mask": inputs["attention_mask"]},
        ):
            assert_outputs_close(ours(**kwargs), theirs(**kwargs))


@pytest.mark.parametrize("head", HEADS)
def test_base_checkpoint_loads_into_head_model(head, checkpoint_dir, reference):
    """The encoder is the checkpoint's, only the head is new, and the report says so as transformers does."""
    base, config_name = base_class_of(head), config_names_for(head)[0]
    folder = checkpoint_dir(base, config_name)
    ours = ours_class(head).from_pretrained(folder)
    _, info = getattr(transformers, head).from_pretrained(folder, output_loading_info=True)
    report = ours.load_report
    # transformers also lists a tied alias as missing when the tensor it shares is.
    tied_to_missing = {alias for alias, shared in ours.tied_weights().items() if shared in report.missing}
    assert set(report.missing) | tied_to_missing == set(info["missing_keys"])
    assert set(report.unexpected) == set(info["unexpected_keys"])
    assert report.missing and all(not k.startswith(f"{ours.base_model_prefix}.") for k in report.missing)
    assert all(rule and "added prefix" in rule for rule in (r.rule for r in report.records if r.status == "renamed"))
    inputs = make_inputs(config_name)
    with torch.no_grad():
        mine, theirs = ours.base_model(**inputs), reference(base, config_name)(**inputs)
    torch.testing.assert_close(mine.last_hidden_state, theirs.last_hidden_state, atol=1e-5, rtol=0)
    if mine.pooler_output is not None:
        torch.testing.assert_close(mine.pooler_output, theirs.pooler_output, atol=1e-5, rtol=0)


@pytest.mark.parametrize("head", HEADS)
def test_head_checkpoint_loads_into_base_model(head, checkpoint_dir, reference):
    base, config_name = base_class_of(head), config_names_for(head)[0]
    folder = checkpoint_dir(head, config_name)
    ours = ours_class(base).from_pretrained(folder)
    _, info = getattr(transformers, base).from_pretrained(folder, output_loading_info=True)
    assert set(ours.load_report.missing) == set(info["missing_keys"])
    assert set(ours.load_report.unexpected) == set(info["unexpected_keys"])
    inputs = make_inputs(config_name)
    with torch.no_grad():
        mine = ours(**inputs).last_hidden_state
        theirs = reference(head, config_name).base_model(**inputs).last_hidden_state
    torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("class_name", "config_name"), CASES)
def test_saved_model_loads_in_transformers_with_identical_outputs(class_name, config_name, checkpoint_dir, tmp_path):
    ours = ours_class(class_name).from_pretrained(checkpoint_dir(class_name, config_name))
    shard = "4KB" if class_name in BERT_CLASSES[:2] else "5GB"  # sharded too, for some
    ours.save_pretrained(tmp_path, max_shard_size=shard)
    theirs, info = getattr(transformers, class_name).from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    inputs = inputs_for(class_name, config_name)
    with torch.no_grad():
        assert_outputs_close(
            ours(**inputs, output_hidden_states=True), theirs.eval()(**inputs, output_hidden_states=True), atol=0
        )


def test_real_minilm_weights_match_transformers_on_padded_batches(minilm_dir):
    ours = minibert.BertModel.from_pretrained(minilm_dir)
    theirs = transformers.BertModel.from_pretrained(str(minilm_dir)).eval()
    assert ours.load_report.missing == [] and ours.load_report.unexpected == []
    generator = torch.Generator().manual_seed(0)
    for batch, length in [(1, 7), (4, 33), (2, 128)]:
        ids = torch.randint(1000, 30000, (batch, length), generator=generator)
        mask = (torch.arange(length) < torch.randint(1, length + 1, (batch, 1), generator=generator)).long()
        mask[0] = 1
        ids[mask == 0] = 0
        types = (torch.arange(length) >= length // 2).long().expand(batch, -1) * mask
        with torch.no_grad():
            mine = ours(ids, attention_mask=mask, token_type_ids=types)
            expected = theirs(ids, attention_mask=mask, token_type_ids=types)
        torch.testing.assert_close(mine.last_hidden_state, expected.last_hidden_state, atol=1e-5, rtol=0)
        torch.testing.assert_close(mine.pooler_output, expected.pooler_output, atol=1e-5, rtol=0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_load(dtype, checkpoint_dir, reference):
    """Weights arrive in the dtype asked for; outputs stay near fp32 (a tiny model, 2 layers)."""
    ours = minibert.BertForMaskedLM.from_pretrained(checkpoint_dir("BertForMaskedLM", "bert-a"), dtype=dtype)
    assert {p.dtype for p in ours.parameters()} == {dtype}
    assert ours.cls.predictions.decoder.weight is ours.bert.embeddings.word_embeddings.weight
    inputs = make_inputs("bert-a")
    with torch.no_grad():
        logits = ours(**inputs).logits
        expected = reference("BertForMaskedLM", "bert-a")(**inputs).logits
    assert logits.dtype == dtype
    torch.testing.assert_close(logits.float(), expected, atol=0.1, rtol=0.05)
