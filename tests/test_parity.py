"""minibert computes what transformers computes: every class, config, checkpoint layout and output field."""

import pytest
import torch
import transformers
from conftest import (
    CLASSES,
    FAMILIES,
    LAYOUTS,
    assert_outputs_close,
    assert_real_tokens_close,
    base_class_of,
    config_names_for,
    hf_config,
    inputs_for,
    labels_for,
    make_inputs,
    ours_class,
    task_of,
)

import minibert

CASES = [(c, n) for c in CLASSES for n in config_names_for(c)]
BASES = [c for c in CLASSES if task_of(c) == "Model"]
HEADS = [c for c in CLASSES if task_of(c) != "Model"]
# Every head on its family's first two configs (the second often has other label counts).
HEAD_CASES = [(c, n) for c in HEADS for n in config_names_for(c)[:2]]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("class_name", "config_name"), CASES)
def test_every_output_matches_transformers(class_name, config_name, layout, checkpoint_dir, reference):
    """Every output field, hidden state and attention map, from a checkpoint in every layout."""
    ours = ours_class(class_name).from_pretrained(checkpoint_dir(class_name, config_name, layout))
    report = ours.load_report
    inputs, theirs = inputs_for(class_name, config_name), reference(class_name, config_name)
    assert report.missing == [] and report.mismatched == []
    if layout == "legacy-bin":  # LayerNorm.gamma/beta renamed, the saved position_ids buffer ignored
        prefix = "" if ours.base_model is ours else f"{ours.base_model_prefix}."
        buffer = [f"{prefix}embeddings.position_ids"]
        # Where transformers' model has no such buffer (GTE's rotary positions), it is unexpected there too.
        ignored = hasattr(theirs.base_model.embeddings, "position_ids")
        assert (report.ignored, report.unexpected) == ((buffer, []) if ignored else ([], buffer))
        assert report.renamed and all("legacy name" in r.rule for r in report.records if r.status == "renamed")
    else:
        assert report.unexpected == []
    with torch.no_grad():
        mine, expected = ours(**inputs, output_hidden_states=True), theirs(**inputs, output_hidden_states=True)
        assert mine.keys() == list(expected.keys())  # transformers' field names, in its order
        assert_outputs_close(mine, expected)
        flags = {"output_attentions": True, "output_hidden_states": True}
        mine = ours(**inputs, **flags)
        assert_outputs_close(mine, reference(class_name, config_name, attn="eager")(**inputs, **flags))
    assert len(mine.attentions) == len(mine.hidden_states) - 1  # one per layer run (ALBERT repeats layers)


@pytest.mark.parametrize(("class_name", "config_name"), CASES)
def test_eager_and_sdpa_paths_agree_with_transformers(class_name, config_name, checkpoint_dir, reference):
    model = ours_class(class_name).from_pretrained(checkpoint_dir(class_name, config_name))
    inputs = inputs_for(class_name, config_name, seed=7)
    with torch.no_grad():
        sdpa = model(**inputs, output_hidden_states=True)
        model.set_attn_implementation("eager")  # the written-out maths without being asked for attentions
        eager = model(**inputs, output_hidden_states=True)
        assert_outputs_close(eager, reference(class_name, config_name)(**inputs, output_hidden_states=True))
    assert_outputs_close(eager, sdpa)


@pytest.mark.parametrize(("class_name", "config_name"), [(c, n) for c, n in CASES if c in HEADS])
def test_losses_match_transformers(class_name, config_name, checkpoint_dir, reference):
    ours = ours_class(class_name).from_pretrained(checkpoint_dir(class_name, config_name))
    theirs = reference(class_name, config_name)
    inputs = inputs_for(class_name, config_name)
    labels = labels_for(class_name, config_name, inputs)
    with torch.no_grad():
        mine, expected = ours(**inputs, **labels), theirs(**inputs, **labels)
    assert mine.loss is not None and torch.isfinite(mine.loss)
    torch.testing.assert_close(mine.loss, expected.loss, atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(("num_labels", "problem_type"), [(1, "regression"), (3, "multi_label_classification")])
def test_regression_and_multi_label_losses_match_transformers(family, num_labels, problem_type, tmp_path):
    configs, prefix, _ = FAMILIES[family]
    config_name = next(iter(configs))
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


# The base model of each family, and the heads that reshape or read their inputs their own way.
OPTIONAL_INPUT_CASES = [(c, n) for c in [*BASES, "DistilBertForMultipleChoice", "ElectraForPreTraining"]
                        for n in config_names_for(c)[:2]]  # fmt: skip


@pytest.mark.parametrize(("class_name", "config_name"), OPTIONAL_INPUT_CASES)
def test_optional_inputs_default_as_in_transformers(class_name, config_name, checkpoint_dir, reference):
    """No mask, no token types, explicit position_ids (per row, or one row for all), inputs_embeds at the
    embedding width instead of ids, left padding."""
    ours = ours_class(class_name).from_pretrained(checkpoint_dir(class_name, config_name))
    theirs = reference(class_name, config_name)
    inputs = inputs_for(class_name, config_name)
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    embeds = theirs.get_input_embeddings()(ids).detach()  # (B, T, E), or (B, C, T, E)
    positions = torch.arange(ids.shape[-1]).flip(0).unsqueeze(0) + 2  # (1, T)
    variants = [
        {"input_ids": ids},
        {"input_ids": ids, "attention_mask": mask, "position_ids": positions},
        {"inputs_embeds": embeds, "attention_mask": mask},
        {name: value.flip(-1) for name, value in inputs.items()},
    ]
    if task_of(class_name) != "ForMultipleChoice":  # transformers' DistilBERT does not flatten (B, C, T) positions
        variants.append({"input_ids": ids, "position_ids": positions.expand_as(ids)})
    with torch.no_grad():
        for kwargs in variants:  # reference() resets the dynamic NTK state the position_ids variants stretch
            assert_outputs_close(ours(**kwargs), reference(class_name, config_name)(**kwargs))
    if task_of(class_name) != "ForMultipleChoice":
        width = embeds.shape[-1]
        with pytest.raises(ValueError, match=rf"inputs_embeds must have shape \(batch, length, {width}\)"):
            ours(inputs_embeds=torch.zeros(1, 3, width + 1))


def spans(class_name: str) -> dict[str, int]:
    """A span head scores a start and an end: two labels, whatever the checkpoint's config says."""
    return {"num_labels": 2} if task_of(class_name) == "ForQuestionAnswering" else {}


@pytest.mark.parametrize(("head", "config_name"), HEAD_CASES)
def test_base_checkpoint_loads_into_head_model(head, config_name, checkpoint_dir, reference):
    """The encoder is the checkpoint's, only the head is new, and the report says so as transformers does."""
    base = base_class_of(head)
    folder = checkpoint_dir(base, config_name)
    ours = ours_class(head).from_pretrained(folder, **spans(head))
    _, info = getattr(transformers, head).from_pretrained(folder, output_loading_info=True, **spans(head))
    report = ours.load_report
    # transformers also lists a tied alias as missing when the tensor it shares is.
    tied_to_missing = {alias for alias, shared in ours.tied_weights().items() if shared in report.missing}
    assert set(report.missing) | tied_to_missing == set(info["missing_keys"])
    assert set(report.unexpected) == set(info["unexpected_keys"])
    assert all(key.startswith("pooler.") for key in report.unexpected)  # a pooler the head does not use
    # Only the head is new, and a pooler the base was saved without (GTE's).
    encoder, pooler = f"{ours.base_model_prefix}.", f"{ours.base_model_prefix}.pooler."
    assert report.missing and all(k.startswith(pooler) or not k.startswith(encoder) for k in report.missing)
    added = f"added prefix '{ours.base_model_prefix}.'"
    assert all(added in r.rule for r in report.records if r.status == "renamed")
    inputs = make_inputs(config_name)
    with torch.no_grad():
        mine, theirs = ours.base_model(**inputs), reference(base, config_name)(**inputs)
    assert_real_tokens_close(mine.last_hidden_state, theirs.last_hidden_state, inputs["attention_mask"])
    # Where both have a pooler: GTE's sequence head adds a new one its base has not.
    if mine.pooler_output is not None and getattr(theirs, "pooler_output", None) is not None:
        torch.testing.assert_close(mine.pooler_output, theirs.pooler_output, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("head", "config_name"), HEAD_CASES)
def test_head_checkpoint_loads_into_base_model(head, config_name, checkpoint_dir, reference):
    base = base_class_of(head)
    folder = checkpoint_dir(head, config_name)
    ours = ours_class(base).from_pretrained(folder)
    _, info = getattr(transformers, base).from_pretrained(folder, output_loading_info=True)
    assert set(ours.load_report.missing) == set(info["missing_keys"])
    assert all(key.startswith("pooler.") for key in ours.load_report.missing)  # a pooler the head had not
    # The report names the file's keys, transformers the converted ones: GTE's file layout says lm_head.norm.
    unexpected = {key.replace("lm_head.norm.", "lm_head.layer_norm.") for key in ours.load_report.unexpected}
    assert unexpected == set(info["unexpected_keys"])
    inputs = make_inputs(config_name)
    with torch.no_grad():
        mine = ours(**inputs).last_hidden_state
        theirs = reference(head, config_name).base_model(**inputs).last_hidden_state
    assert_real_tokens_close(mine, theirs, inputs["attention_mask"])


@pytest.mark.parametrize(("class_name", "config_name"), CASES)
def test_saved_model_loads_in_transformers_with_identical_outputs(
    class_name, config_name, checkpoint_dir, reference, tmp_path
):
    ours = ours_class(class_name).from_pretrained(checkpoint_dir(class_name, config_name))
    # Sharded too: each family's first config, and base and masked-LM models on every config.
    sharded = config_name == config_names_for(class_name)[0] or task_of(class_name) in ("Model", "ForMaskedLM")
    ours.save_pretrained(tmp_path, max_shard_size="4KB" if sharded else "5GB")
    theirs, info = getattr(transformers, class_name).from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    inputs = inputs_for(class_name, config_name)
    with torch.no_grad():
        reloaded = theirs.eval()(**inputs, output_hidden_states=True)
        expected = reference(class_name, config_name)(**inputs, output_hidden_states=True)
        assert_outputs_close(reloaded, expected, atol=0)  # the very weights the checkpoint holds
        assert_outputs_close(ours(**inputs, output_hidden_states=True), reloaded)  # the default: real tokens
        # Bit for bit where both run the same kernels: padded, F.linear's products (not the packed weights
        # of the default), the same sdpa call; transformers' MPNet has eager attention only.
        exact = type(theirs)._supports_sdpa
        ours.set_unpadding(False)
        ours.set_weight_packing(False)
        assert_outputs_close(ours(**inputs, output_hidden_states=True), reloaded, atol=0 if exact else 1e-5)


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
        assert_real_tokens_close(mine.last_hidden_state, expected.last_hidden_state, mask)
        torch.testing.assert_close(mine.pooler_output, expected.pooler_output, atol=1e-5, rtol=0)


HALF_PRECISION_CASES = [
    ("BertForMaskedLM", "bert-a", torch.bfloat16),
    ("BertForMaskedLM", "bert-a", torch.float16),
    ("DistilBertForMaskedLM", "distilbert-a", torch.bfloat16),
    ("DistilBertForMaskedLM", "distilbert-b", torch.bfloat16),  # untied
    ("ElectraForPreTraining", "electra-a", torch.bfloat16),
    ("ElectraForMaskedLM", "electra-a", torch.bfloat16),
    ("MPNetForMaskedLM", "mpnet-a", torch.bfloat16),
    ("MPNetForSequenceClassification", "mpnet-a", torch.bfloat16),
    ("GteForMaskedLM", "gte-b", torch.bfloat16),  # dynamic NTK, untied
    ("GteForSequenceClassification", "gte-b", torch.bfloat16),
    ("DebertaV2ForMaskedLM", "deberta-v3", torch.bfloat16),
    ("DebertaV2ForMaskedLM", "deberta-v2", torch.bfloat16),
]


@pytest.mark.parametrize(("class_name", "config_name", "dtype"), HALF_PRECISION_CASES)
def test_half_precision_load(class_name, config_name, dtype, checkpoint_dir, reference):
    """Weights arrive in the dtype asked for, ties kept; logits and loss stay near transformers' in fp32
    and in that dtype. bf16 keeps 8 bits of mantissa: activations of size ~1 carry errors of ~1e-2."""
    folder = checkpoint_dir(class_name, config_name)
    ours = ours_class(class_name).from_pretrained(folder, dtype=dtype)
    assert {p.dtype for p in ours.parameters()} == {dtype}
    decoder = ours.get_output_embeddings()
    if decoder is not None:
        assert (decoder.weight is ours.get_input_embeddings().weight) == ours.config.tie_word_embeddings
    theirs = getattr(transformers, class_name).from_pretrained(folder, dtype=dtype).eval()
    inputs = make_inputs(config_name)
    labels = labels_for(class_name, config_name, inputs)
    with torch.no_grad():
        mine = ours(**inputs, **labels)
        for expected in (reference(class_name, config_name)(**inputs, **labels), theirs(**inputs, **labels)):
            assert_real_tokens_close(mine.logits.float(), expected.logits.float(), inputs["attention_mask"], 0.1, 0.05)
            torch.testing.assert_close(mine.loss.float(), expected.loss.float(), atol=0.05, rtol=0.02)
    assert mine.logits.dtype == dtype
