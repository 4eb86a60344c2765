"""ALBERT's own promises: shared layers run where transformers runs them, and the report shows it."""

import pytest
import torch
import transformers
from conftest import make_inputs

import minibert
from minibert.cli import main


def odd_albert(tmp_path, layers: int, groups: int, inner: int = 1):
    config = transformers.AlbertConfig(
        vocab_size=30,
        embedding_size=4,
        hidden_size=8,
        num_hidden_layers=layers,
        num_hidden_groups=groups,
        inner_group_num=inner,
        num_attention_heads=2,
        intermediate_size=8,
        max_position_embeddings=16,
    )
    torch.manual_seed(0)
    model = transformers.AlbertModel(config).eval()
    model.save_pretrained(tmp_path)
    return model


@pytest.mark.parametrize(("layers", "groups", "inner"), [(18, 14, 1), (7, 3, 2), (5, 5, 1)])
def test_group_assignment_matches_transformers_even_where_integer_division_would_not(tmp_path, layers, groups, inner):
    theirs = odd_albert(tmp_path, layers, groups, inner)
    ours = minibert.AlbertModel.from_pretrained(tmp_path)
    expected = [(int(step / (layers / groups)), j) for step in range(layers) for j in range(inner)]
    assert ours.encoder.schedule() == expected
    if (layers, groups) == (18, 14):
        assert expected[9][0] != 9 * groups // layers  # the case float and integer division disagree on
    ids = torch.randint(0, 30, (2, 9))
    with torch.no_grad():
        mine, reference = ours(ids, output_hidden_states=True), theirs(ids, output_hidden_states=True)
    assert len(mine.hidden_states) == len(reference.hidden_states) == layers * inner + 1
    for a, b in zip(mine.hidden_states, reference.hidden_states, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_checkpoint_holds_fewer_layer_tensors_than_the_model_runs(checkpoint_dir):
    model = minibert.AlbertForMaskedLM.from_pretrained(checkpoint_dir("AlbertForMaskedLM", "albert-b"))
    layer_tensors = [r for r in model.load_report.records if ".albert_layers." in (r.model_key or "")]
    assert len({r.model_key.split(".albert_layers.")[0] for r in layer_tensors}) == 2  # two groups stored
    uses = model.tensor_uses()
    assert uses == {
        "albert.encoder.albert_layer_groups.0.albert_layers.0.": [1, 3],
        "albert.encoder.albert_layer_groups.0.albert_layers.1.": [2, 4],
        "albert.encoder.albert_layer_groups.1.albert_layers.0.": [5, 7],
        "albert.encoder.albert_layer_groups.1.albert_layers.1.": [6, 8],
    }
    assert sum(len(runs) for runs in uses.values()) == 4 * 2  # num_hidden_layers x inner_group_num


def test_factorised_embeddings_are_narrower_than_the_hidden_size(checkpoint_dir, reference):
    model = minibert.AlbertModel.from_pretrained(checkpoint_dir("AlbertModel", "albert-b"))
    assert model.embeddings.word_embeddings.weight.shape == (80, 8)
    assert model.encoder.embedding_hidden_mapping_in.weight.shape == (24, 8)
    inputs = make_inputs("albert-b")
    embeds = reference("AlbertModel", "albert-b").embeddings.word_embeddings(inputs["input_ids"]).detach()
    with pytest.raises(ValueError, match=r"inputs_embeds must have shape \(batch, length, 8\)"):
        model(inputs_embeds=torch.zeros(1, 3, 24))
    with torch.no_grad():
        torch.testing.assert_close(
            model(inputs_embeds=embeds).last_hidden_state,
            reference("AlbertModel", "albert-b")(inputs_embeds=embeds).last_hidden_state,
            atol=1e-5,
            rtol=0,
        )


def test_inspect_and_verify_show_the_shared_stack(checkpoint_dir, capsys):
    folder = str(checkpoint_dir("AlbertForPreTraining", "albert-b"))
    assert main(["inspect", folder]) == 0
    out = capsys.readouterr().out
    assert "albert_layers.1.ffn.weight" in out and "runs at layers 6, 8" in out
    assert main(["verify", folder]) == 0
    out = capsys.readouterr().out
    assert "layer 8 (albert_layer_groups.1.albert_layers.1)" in out and "sop_logits" in out


def test_tensors_of_an_unused_group_are_still_loaded_and_reported(tmp_path):
    """More groups than layers: transformers keeps the extra group's weights, and so does minibert."""
    odd_albert(tmp_path, layers=2, groups=3)
    model = minibert.AlbertModel.from_pretrained(tmp_path)
    assert model.load_report.missing == [] and model.load_report.unexpected == []
    assert "encoder.albert_layer_groups.2.albert_layers.0." not in model.tensor_uses()
