"""ELECTRA's own promises: the embeddings projection, the discriminator's loss, the sequence summary.

Parity on every class, config and layout, losses, training, loading, saving and surgery run in the
shared tests (test_parity.py, test_finetune.py, ...) on conftest's ELECTRA configs.
"""

import pytest
import torch
import transformers
from conftest import ELECTRA_CONFIGS, inputs_for, labels_for, make_inputs

import minibert
from minibert import electra
from minibert.electra import ElectraConfig

# -- the encoder: embeddings projected up, no pooler -----------------------------------------------


def test_embeddings_project_exists_only_where_the_widths_differ_and_there_is_no_pooler(checkpoint_dir, reference):
    narrow, square = (
        electra.ElectraModel.from_pretrained(checkpoint_dir("ElectraModel", n)) for n in ("electra-a", "electra-b")
    )
    assert narrow.embeddings_project.weight.shape == (36, 16)
    assert reference("ElectraModel", "electra-a").embeddings_project.weight.shape == (36, 16)
    assert square.embeddings_project is None and "embeddings_project.weight" not in square.state_dict()
    assert not hasattr(reference("ElectraModel", "electra-b"), "embeddings_project")
    assert narrow.pooler is None and not hasattr(reference("ElectraModel", "electra-a"), "pooler")
    with pytest.raises(minibert.ConfigError, match="ELECTRA has no pooler"):
        electra.ElectraModel(narrow.config, add_pooling_layer=True)


# -- the discriminator's loss ----------------------------------------------------------------------


@pytest.mark.parametrize("config_name", ELECTRA_CONFIGS)
def test_discriminator_loss_counts_real_tokens_only_as_in_transformers(config_name, checkpoint_dir, reference):
    ours = electra.ElectraForPreTraining.from_pretrained(checkpoint_dir("ElectraForPreTraining", config_name))
    theirs = reference("ElectraForPreTraining", config_name)
    inputs = make_inputs(config_name)
    labels = labels_for("ElectraForPreTraining", config_name, inputs)["labels"]  # padding labelled too
    unmasked = {k: v for k, v in inputs.items() if k != "attention_mask"}
    with torch.no_grad():
        masked, everywhere = ours(**inputs, labels=labels), ours(**unmasked, labels=labels)
        torch.testing.assert_close(everywhere.loss, theirs(**unmasked, labels=labels).loss, atol=1e-5, rtol=0)
        torch.testing.assert_close(masked.loss, theirs(**inputs, labels=labels).loss, atol=1e-5, rtol=0)
        bool_mask = {**inputs, "attention_mask": inputs["attention_mask"].bool()}
        torch.testing.assert_close(ours(**bool_mask, labels=labels).loss, masked.loss, atol=1e-6, rtol=0)
    assert masked.logits.shape == labels.shape
    assert abs(masked.loss - everywhere.loss) > 1e-4  # the padding's labels would change the loss


# -- the multiple-choice head's sequence summary ---------------------------------------------------


@pytest.mark.parametrize("config_name", ["electra-b", "electra-c"])
def test_summaries_that_read_padding_run_padded(config_name, checkpoint_dir, reference):
    """transformers' 'last' and 'mean' summaries read padding positions, which the unpadded path leaves at zero."""
    inputs = inputs_for("ElectraForMultipleChoice", config_name)
    other_padding = inputs["input_ids"].masked_fill(inputs["attention_mask"] == 0, 2)
    theirs = reference("ElectraForMultipleChoice", config_name)
    with torch.no_grad():
        assert not torch.allclose(theirs(**inputs).logits, theirs(**{**inputs, "input_ids": other_padding}).logits)
    ours = electra.ElectraForMultipleChoice.from_pretrained(checkpoint_dir("ElectraForMultipleChoice", config_name))
    for unpad in ("auto", True):
        ours.set_unpadding(unpad)
        with torch.no_grad():
            torch.testing.assert_close(ours(**inputs).logits, theirs(**inputs).logits, atol=1e-5, rtol=0)
        assert ours.electra.unpad == unpad


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


# -- the config ------------------------------------------------------------------------------------


def test_config_has_transformers_fields_and_defaults():
    theirs = transformers.ElectraConfig()
    ours = ElectraConfig()
    names = {"embedding_size", "summary_type", "summary_use_proj", "summary_activation", "summary_last_dropout"}
    for name in names | {"hidden_size", "num_attention_heads", "intermediate_size", "vocab_size", "classifier_dropout"}:
        assert getattr(ours, name) == getattr(theirs, name), name
    for name in ("pad_token_id", "hidden_act", "layer_norm_eps", "max_position_embeddings", "tie_word_embeddings"):
        assert getattr(ours, name) == getattr(theirs, name), name
    for config_values in ELECTRA_CONFIGS.values():
        values = transformers.ElectraConfig(**config_values).to_dict()
        config = ElectraConfig.from_dict(values)
        assert minibert.config.config_class_for(values) is ElectraConfig and config.extra["use_cache"] is True
        assert all(getattr(config, name) == values[name] for name in names)
        written = config.to_dict()
        assert written["model_type"] == "electra"
        again = transformers.ElectraConfig.from_dict(written)  # and back: transformers reads the same
        for name in (*names, "hidden_act", "type_vocab_size", "pad_token_id", "tie_word_embeddings", "use_cache"):
            assert getattr(again, name) == values[name], name
    with pytest.raises(minibert.ConfigError, match="embedding_size must be a positive integer"):
        ElectraConfig(embedding_size=0)
    with pytest.raises(minibert.ConfigError, match="summary_last_dropout must be a probability"):
        ElectraConfig(summary_last_dropout=1.5)
