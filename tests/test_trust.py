"""Clear failures on bad files and bad inputs, proof in the load report, and `minibert inspect`."""

import json
import os
import pickle
import shutil

import pytest
import torch
from conftest import CLASSES, config_names_for, make_inputs, ours_class

import minibert
from minibert.cli import main
from minibert.loading import PROBE_SIZE, probe


def copy_checkpoint(checkpoint_dir, tmp_path, class_name="BertModel", config_name="bert-a", layout="safetensors"):
    folder = tmp_path / "ckpt"
    shutil.copytree(checkpoint_dir(class_name, config_name, layout), folder)
    return folder


# -- bad files ------------------------------------------------------------------------


@pytest.mark.parametrize("cut", [0, 7, 100, -50])
def test_truncated_or_corrupt_safetensors_names_the_file(checkpoint_dir, tmp_path, cut):
    folder = copy_checkpoint(checkpoint_dir, tmp_path)
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[:cut])
    with pytest.raises(minibert.CheckpointError, match="model.safetensors") as error:
        minibert.BertModel.from_pretrained(folder)
    assert isinstance(error.value, ValueError)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_bin_names_the_file(checkpoint_dir, tmp_path, damage):
    folder = copy_checkpoint(checkpoint_dir, tmp_path, layout="bin")
    weights = folder / "pytorch_model.bin"
    data = weights.read_bytes()
    weights.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"\x80\x02garbage" * 10, "empty": b""}[damage])
    with pytest.raises(minibert.CheckpointError, match="pytorch_model.bin"):
        minibert.BertModel.from_pretrained(folder)


class RunsCode:
    """A pickle payload that would create a file if unpickled by a trusting loader."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("zip_format", [True, False])
def test_pickle_that_runs_code_is_refused_and_never_runs(checkpoint_dir, tmp_path, zip_format):
    folder = copy_checkpoint(checkpoint_dir, tmp_path, layout="bin")
    marker = tmp_path / "code-ran"
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    state["embeddings.word_embeddings.weight"] = RunsCode(marker)
    if zip_format:
        torch.save(state, folder / "pytorch_model.bin")
    else:
        with open(folder / "pytorch_model.bin", "wb") as f:  # the pre-zip format of torch < 1.6
            pickle.dump(state, f, protocol=2)
    with pytest.raises(minibert.CheckpointError, match="pytorch_model.bin.*refused to unpickle") as error:
        minibert.BertModel.from_pretrained(folder)
    assert "system" in str(error.value)
    assert not marker.exists()
    # the payload is real: a trusting loader would have run it
    pickle.loads(pickle.dumps(RunsCode(marker)))
    assert marker.exists()


def test_index_naming_a_missing_shard_names_both(checkpoint_dir, tmp_path):
    folder = copy_checkpoint(checkpoint_dir, tmp_path, layout="sharded-safetensors")
    shard = sorted(folder.glob("model-*.safetensors"))[-1]
    shard.unlink()
    with pytest.raises(minibert.CheckpointError, match=f"model.safetensors.index.json.*{shard.name}"):
        minibert.BertModel.from_pretrained(folder)


def test_broken_index_names_the_file(checkpoint_dir, tmp_path):
    folder = copy_checkpoint(checkpoint_dir, tmp_path, layout="sharded-bin")
    (folder / "pytorch_model.bin.index.json").write_text('{"weight_map": 3}')
    with pytest.raises(minibert.CheckpointError, match="pytorch_model.bin.index.json"):
        minibert.BertModel.from_pretrained(folder)


def test_empty_folder_is_not_found(tmp_path):
    with pytest.raises(minibert.CheckpointNotFoundError, match=str(tmp_path)) as error:
        minibert.AutoModel.from_pretrained(tmp_path)
    assert isinstance(error.value, FileNotFoundError)


def test_unreadable_config_names_the_file(checkpoint_dir, tmp_path):
    folder = copy_checkpoint(checkpoint_dir, tmp_path)
    (folder / "config.json").write_text("{ not json")
    with pytest.raises(minibert.ConfigError, match="config.json"):
        minibert.BertModel.from_pretrained(folder)


def test_unsupported_model_type_names_the_file_even_with_an_explicit_class(checkpoint_dir, tmp_path):
    folder = copy_checkpoint(checkpoint_dir, tmp_path)
    values = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**values, "model_type": "gpt2"}))
    for load in (minibert.AutoModel.from_pretrained, minibert.BertModel.from_pretrained):
        with pytest.raises(minibert.ConfigError, match="config.json.*gpt2"):
            load(folder)


def test_integer_tensor_where_a_weight_belongs_is_refused(checkpoint_dir, tmp_path):
    folder = copy_checkpoint(checkpoint_dir, tmp_path, layout="bin")
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    state["pooler.dense.bias"] = state["pooler.dense.bias"].long()
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(minibert.CheckpointError, match="pooler.dense.bias"):
        minibert.BertModel.from_pretrained(folder)


@pytest.mark.parametrize("command", ["inspect", "verify"])
def test_command_line_errors_are_one_line_with_exit_2(checkpoint_dir, tmp_path, capsys, command):
    folder = copy_checkpoint(checkpoint_dir, tmp_path)
    (folder / "model.safetensors").write_bytes(b"")
    assert main([command, str(folder)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"minibert {command}: error: ") and "model.safetensors" in captured.err
    assert len(captured.err.strip().splitlines()) == 1 and "Traceback" not in captured.err


# -- proof in the load report -----------------------------------------------------------


def test_every_tensor_has_a_record_with_its_source(checkpoint_dir):
    model = minibert.BertForPreTraining.from_pretrained(checkpoint_dir("BertForPreTraining", "bert-b", "sharded-bin"))
    report = model.load_report
    by_key = {r.model_key: r for r in report.records if r.model_key}
    assert set(model.state_dict()) <= set(by_key)
    for record in report.records:
        if record.status == "loaded":
            assert record.file.startswith("pytorch_model-") and record.checkpoint_key == record.model_key
            assert record.verified is True and record.dtype == "float32"
    assert by_key["cls.predictions.decoder.weight"].rule == "shares bert.embeddings.word_embeddings.weight"
    assert json.loads(json.dumps(report.to_dict()))["records"][0]["file"]


def test_load_check_catches_a_tensor_overwritten_after_reading(checkpoint_dir, monkeypatch):
    """If loading let initialisation clobber a loaded tensor, the probe check must fail the load."""
    folder = checkpoint_dir("BertForSequenceClassification", "bert-a")
    original = minibert.PreTrainedModel.tie_weights

    def clobbering_tie(self):
        original(self)
        if not self.classifier.weight.is_meta:
            with torch.no_grad():
                self.classifier.weight.view(-1)[-1] += 1  # one value, the last: probes include it

    monkeypatch.setattr(minibert.PreTrainedModel, "tie_weights", clobbering_tie)
    with pytest.raises(minibert.CheckpointError, match="classifier.weight"):
        minibert.BertForSequenceClassification.from_pretrained(folder)


def test_printed_report_is_compact_and_points_at_what_needs_attention(checkpoint_dir):
    model = minibert.BertForMaskedLM.from_pretrained(checkpoint_dir("BertModel", "bert-b", "legacy-bin"))
    text = str(model.load_report)
    lines = text.splitlines()
    assert "loaded" not in lines[0] or "renamed" in lines[0]
    assert any(
        "by rule: legacy name LayerNorm.gamma -> LayerNorm.weight; added prefix 'bert.'" in line for line in lines
    )
    assert not any(line.strip().startswith("renamed     bert.") for line in lines)  # grouped, not one per key
    assert any(line.strip() == "unexpected  pooler.dense.weight (not used)" for line in lines)
    assert len(lines) < 20


@pytest.mark.parametrize("numel", [1, 2, 1023, 1024, 1025, 23_440_897])
def test_probe_spans_the_whole_tensor(numel):
    values = torch.arange(numel, dtype=torch.int32)
    sample = probe(values)
    assert sample[0] == 0 and sample[-1] == numel - 1 and len(sample) == min(numel, PROBE_SIZE)
    assert torch.all(sample[1:] > sample[:-1])


# -- inspect ------------------------------------------------------------------------------


def test_inspect_lists_every_checkpoint_key_without_loading(checkpoint_dir, capsys, monkeypatch):
    folder = checkpoint_dir("BertForMaskedLM", "bert-a", "legacy-bin")
    monkeypatch.setattr(minibert.checkpoint.Checkpoint, "get", lambda *a: pytest.fail("inspect read a tensor"))
    assert main(["inspect", str(folder), "--model-class", "BertForSequenceClassification"]) == 0
    out = capsys.readouterr().out
    assert "BertForSequenceClassification" in out
    assert "bert.embeddings.LayerNorm.gamma" in out and "renamed" in out and "legacy name" in out
    assert "cls.predictions.bias" in out and "unexpected" in out
    assert "classifier.weight" in out and "missing" in out
    assert out.strip().splitlines()[-1].startswith("totals")


def test_inspect_json_accounts_for_every_key(checkpoint_dir, capsys):
    folder = checkpoint_dir("RobertaForMaskedLM", "roberta-a", "sharded-safetensors")
    assert main(["inspect", str(folder), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["model_class"] == "RobertaForMaskedLM"
    assert sum(f["tensors"] for f in summary["files"]) == len(
        {r["checkpoint_key"] for r in summary["records"]} - {None}
    )
    statuses = {r["model_key"]: r["status"] for r in summary["records"]}
    assert statuses["lm_head.decoder.weight"] == "tied" and statuses["lm_head.dense.weight"] == "loaded"
    assert summary["parameters"] == minibert.RobertaForMaskedLM.from_pretrained(folder).num_parameters()


def test_inspect_shows_mismatches_instead_of_refusing(checkpoint_dir, tmp_path, capsys):
    folder = copy_checkpoint(checkpoint_dir, tmp_path, "BertForSequenceClassification")
    values = json.loads((folder / "config.json").read_text())
    values["id2label"] = {str(i): f"L{i}" for i in range(4)}
    (folder / "config.json").write_text(json.dumps(values))
    assert main(["inspect", str(folder)]) == 0
    assert "mismatched" in capsys.readouterr().out


# -- bad inputs -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bert(checkpoint_dir):
    return minibert.BertModel.from_pretrained(checkpoint_dir("BertModel", "bert-a"))


@pytest.fixture(scope="module")
def roberta(checkpoint_dir):
    return minibert.RobertaModel.from_pretrained(checkpoint_dir("RobertaModel", "roberta-a"))


def test_token_id_outside_the_vocabulary(bert):
    ids = make_inputs("bert-a")["input_ids"]
    ids[1, 2] = 99
    with pytest.raises(ValueError, match=r"input_ids holds 99, outside \[0, 99\) \(vocab_size=99\)"):
        bert(ids)
    with pytest.raises(ValueError, match="input_ids holds -6"):
        bert(ids.clamp(max=5) - 6)


def test_sequence_longer_than_the_position_table(bert, roberta):
    with pytest.raises(ValueError, match="sequence length 65 exceeds the 64 positions"):
        bert(torch.ones(1, 65, dtype=torch.long))
    # RoBERTa counts positions from pad_token_id + 1 = 2: 40 rows leave room for 38 tokens.
    roberta(torch.full((1, 38), 5))
    with pytest.raises(ValueError, match="sequence length 39 exceeds the 38 positions.*padding offset of 2"):
        roberta(torch.full((1, 39), 5))


def test_token_type_outside_the_table(bert, roberta):
    inputs = make_inputs("bert-a")
    with pytest.raises(ValueError, match=r"token_type_ids holds 2, outside \[0, 2\) \(type_vocab_size=2\)"):
        bert(inputs["input_ids"], token_type_ids=torch.full_like(inputs["input_ids"], 2))
    with pytest.raises(ValueError, match=r"token_type_ids holds 1, outside \[0, 1\)"):
        roberta(torch.full((1, 4), 5), token_type_ids=torch.ones(1, 4, dtype=torch.long))


@pytest.mark.parametrize("name", ["attention_mask", "token_type_ids"])
def test_mask_or_types_of_another_shape(bert, name):
    ids = make_inputs("bert-a")["input_ids"]
    with pytest.raises(ValueError, match=rf"{name} has shape \(3, 10\), but the inputs have \(3, 11\)"):
        bert(ids, **{name: torch.zeros(3, 10, dtype=torch.long)})


def test_non_integer_ids_and_both_or_neither_inputs(bert):
    with pytest.raises(TypeError, match="input_ids must hold integer ids, got dtype torch.float32"):
        bert(torch.ones(1, 4))
    ids = torch.ones(1, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="exactly one of input_ids and inputs_embeds"):
        bert(ids, inputs_embeds=torch.zeros(1, 4, 32))
    with pytest.raises(ValueError, match="exactly one of input_ids and inputs_embeds"):
        bert()
    with pytest.raises(ValueError, match=r"inputs_embeds must have shape \(batch, length, 32\)"):
        bert(inputs_embeds=torch.zeros(1, 4, 31))


@pytest.mark.parametrize("class_name", [c for c in CLASSES if c.endswith(("MultipleChoice", "ForMaskedLM"))])
def test_heads_check_inputs_too(class_name, checkpoint_dir):
    config_name = config_names_for(class_name)[0]
    model = ours_class(class_name).from_pretrained(checkpoint_dir(class_name, config_name))
    shape = (1, 2, 4) if class_name.endswith("MultipleChoice") else (1, 4)
    with pytest.raises(ValueError, match="input_ids holds 1000"):
        model(torch.full(shape, 1000))
