"""Clear failures on bad files and bad inputs, proof in the load report, and `minibert inspect`."""

import base64
import copy
import errno
import hashlib
import json
import logging
import os
import pickle
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest
import tokenizers
import torch
import transformers
from conftest import CLASSES, assert_outputs_close, config_names_for, make_inputs, ours_class
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import minibert
from minibert.cli import main
from minibert.errors import InputError, InputTypeError
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


# == round two: hostile and faulty input ===============================================


def files_of(folder):
    """Every file of a folder, name -> bytes: to prove a failed save changed nothing (and left nothing)."""
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def outputs(model, inputs):
    """The last hidden state at real tokens: minibert's default inference path leaves padding at zero."""
    with torch.no_grad():
        state = model(**inputs).last_hidden_state
    mask = inputs.get("attention_mask")
    return state if mask is None else state[mask.ne(0)]


def rewrite_safetensors(path, change):
    """Read a safetensors file, let ``change`` edit its tensors (a dict), write it back."""
    tensors = load_file(path)
    change(tensors)
    save_file(tensors, path, metadata={"format": "pt"})


# -- nothing read or written outside the folder -----------------------------------------


@pytest.mark.parametrize("spelling", ["relative", "absolute"])
def test_index_entry_naming_a_shard_outside_the_folder_is_refused(checkpoint_dir, tmp_path, spelling):
    folder = copy_checkpoint(checkpoint_dir, tmp_path, layout="sharded-safetensors")
    index_path = folder / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    key, shard = next(iter(index["weight_map"].items()))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.move(folder / shard, elsewhere / shard)  # a real shard: a trusting loader would read it
    name = f"../elsewhere/{shard}" if spelling == "relative" else str(elsewhere / shard)
    index["weight_map"] = {k: name if v == shard else v for k, v in index["weight_map"].items()}
    index_path.write_text(json.dumps(index))
    pattern = rf"model\.safetensors\.index\.json: entry '{re.escape(key)}' names shard '{re.escape(name)}'"
    with pytest.raises(minibert.CheckpointError, match=pattern):
        minibert.BertModel.from_pretrained(folder)


@pytest.mark.parametrize("layout", ["safetensors", "sharded-safetensors", "bin"])
def test_weight_file_linked_outside_the_folder_is_refused(checkpoint_dir, tmp_path, layout):
    folder = copy_checkpoint(checkpoint_dir, tmp_path, layout=layout)
    name = max((p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin")), key=lambda p: p.stat().st_size)
    outside = tmp_path / "outside" / name.name
    outside.parent.mkdir()
    shutil.move(name, outside)
    name.symlink_to(outside)
    with pytest.raises(minibert.CheckpointError, match=rf"{re.escape(name.name)}.*resolves to {outside}, outside"):
        minibert.BertModel.from_pretrained(folder)


@pytest.mark.parametrize("target", ["elsewhere", "/dev/zero"])
def test_config_linked_outside_the_folder_is_refused(checkpoint_dir, tmp_path, target):
    folder = copy_checkpoint(checkpoint_dir, tmp_path)
    if target == "elsewhere":
        target = tmp_path / "config.json"
        shutil.move(folder / "config.json", target)
    else:
        (folder / "config.json").unlink()
    (folder / "config.json").symlink_to(target)
    start = time.perf_counter()
    with pytest.raises(minibert.ConfigError, match=rf"config\.json: resolves to {target}, outside {folder}"):
        minibert.BertModel.from_pretrained(folder)
    assert time.perf_counter() - start < 1


def hub_cache(cache, repo_id, files, commit="c" * 40):
    """The layout huggingface_hub gives a download: files in blobs/<sha256>, snapshots/<commit>/<name> linking there."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    for folder in (repo / "refs", repo / "blobs", snapshot):
        folder.mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    for path in sorted(files.iterdir()):
        blob = hashlib.sha256(path.read_bytes()).hexdigest()
        shutil.copyfile(path, repo / "blobs" / blob)
        (snapshot / path.name).symlink_to(f"../../blobs/{blob}")
    return snapshot


def test_hub_snapshot_linking_into_its_blobs_loads_and_linking_elsewhere_is_refused(
    checkpoint_dir, reference, tmp_path
):
    source = checkpoint_dir("BertModel", "bert-a", "sharded-safetensors")
    snapshot = hub_cache(tmp_path, "org/linked", source)
    assert all(path.is_symlink() for path in snapshot.iterdir())
    inputs = make_inputs("bert-a")
    expected = outputs(reference("BertModel", "bert-a"), inputs)
    for name in ("org/linked", snapshot):  # by Hub id, through huggingface_hub, and as a local folder
        model = minibert.AutoModel.from_pretrained(name, cache_dir=tmp_path)
        torch.testing.assert_close(outputs(model, inputs), expected, atol=1e-5, rtol=0)
    # A snapshot file that leads into another repository's blobs is outside this repository.
    other = hub_cache(tmp_path, "org/other", source, commit="d" * 40)
    shard = sorted(snapshot.glob("model-*.safetensors"))[0]
    blob = os.readlink(shard).rpartition("/")[2]
    shard.unlink()
    shard.symlink_to(f"../../../models--org--other/blobs/{blob}")
    assert (other.parent.parent / "blobs" / blob).is_file()
    with pytest.raises(minibert.CheckpointError, match=rf"{shard.name}'.*resolves to .*models--org--other.*, outside"):
        minibert.AutoModel.from_pretrained("org/linked", cache_dir=tmp_path)


@pytest.mark.parametrize("max_shard_size", ["5GB", "4KB"])
def test_save_replaces_symlinks_and_writes_nothing_outside(checkpoint_dir, tmp_path, max_shard_size):
    folder = copy_checkpoint(checkpoint_dir, tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.move(folder / name, outside / name)
        (folder / name).symlink_to(outside / name)
    before = files_of(outside)
    model = minibert.BertModel.from_pretrained(outside)
    with torch.no_grad():
        model.pooler.dense.bias.add_(1.0)
    model.save_pretrained(folder, max_shard_size=max_shard_size)
    assert files_of(outside) == before
    assert not any(path.is_symlink() for path in folder.iterdir())
    assert not (folder / "model.safetensors").exists() or max_shard_size == "5GB"  # a sharded save drops the link
    reloaded = minibert.BertModel.from_pretrained(folder)
    torch.testing.assert_close(reloaded.pooler.dense.bias, model.pooler.dense.bias, atol=0, rtol=0)


# -- saving is atomic -------------------------------------------------------------------------


@pytest.mark.parametrize(("layout", "max_shard_size"), [("safetensors", "5GB"), ("sharded-safetensors", "4KB")])
@pytest.mark.parametrize("failing", ["first file", "last file", "interrupt"])
def test_failed_save_leaves_the_previous_checkpoint_byte_identical(
    checkpoint_dir, reference, tmp_path, monkeypatch, layout, max_shard_size, failing
):
    folder = copy_checkpoint(checkpoint_dir, tmp_path, layout=layout)
    before = files_of(folder)
    model = minibert.BertModel.from_pretrained(folder)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(1.0)
    written = len(model.save_pretrained(tmp_path / "trial", max_shard_size=max_shard_size))
    fail_at = 1 if failing == "first file" else written  # the last file is complete: only the renames are left
    flushed = []
    flush = minibert.checkpoint._flush

    def failing_flush(path):  # each file is flushed once complete
        flushed.append(path)
        if len(flushed) == fail_at:
            raise KeyboardInterrupt if failing == "interrupt" else OSError(errno.ENOSPC, "No space left on device")
        flush(path)

    monkeypatch.setattr(minibert.checkpoint, "_flush", failing_flush)
    expected = (
        (KeyboardInterrupt, None) if failing == "interrupt" else (minibert.CheckpointError, "No space left.*unchanged")
    )
    with pytest.raises(expected[0], match=expected[1]):
        model.save_pretrained(folder, max_shard_size=max_shard_size)
    assert files_of(folder) == before  # the same names, no temporary file left, the same bytes
    monkeypatch.undo()
    inputs = make_inputs("bert-a")
    torch.testing.assert_close(
        outputs(minibert.BertModel.from_pretrained(folder), inputs),
        outputs(reference("BertModel", "bert-a"), inputs),
        atol=1e-5,
        rtol=0,
    )


SAVE_UNDER_A_SIZE_LIMIT = """
import resource, signal, sys
import torch, minibert
limit, kill = int(sys.argv[1]), sys.argv[2] == "kill"
pairs = zip(sys.argv[3::2], sys.argv[4::2])
models = [(folder, size, minibert.BertModel.from_pretrained(folder)) for folder, size in pairs]
if kill:  # Python ignores SIGXFSZ, so a write past the limit fails with EFBIG; by default the kernel kills
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
for folder, size, model in models:
    with torch.no_grad():
        model.pooler.dense.bias.add_(1.0)
    try:
        model.save_pretrained(folder, max_shard_size=size)
    except minibert.CheckpointError as error:
        print(error)
"""


@pytest.mark.parametrize("limit_signal", ["error", "kill"])
def test_save_past_a_file_size_limit_keeps_the_previous_checkpoint(checkpoint_dir, reference, tmp_path, limit_signal):
    """RLIMIT_FSIZE cuts a file short as a full disk does: in a subprocess, so the limit binds only there."""
    folders = {}
    for layout, size in (("safetensors", "5GB"), ("sharded-safetensors", "4KB")):
        folders[layout] = shutil.copytree(checkpoint_dir("BertModel", "bert-a", layout), tmp_path / layout), size
    before = {layout: files_of(folder) for layout, (folder, _) in folders.items()}
    arguments = [str(item) for folder, size in folders.values() for item in (folder, size)]
    # 9000 bytes: config.json and an index fit, the word embeddings (99 x 32 floats) do not.
    run = subprocess.run(
        [sys.executable, "-c", SAVE_UNDER_A_SIZE_LIMIT, "9000", limit_signal, *arguments],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if limit_signal == "error":
        assert run.returncode == 0, run.stderr
        assert run.stdout.count("File too large") == 2 and run.stdout.count("are unchanged") == 2, run.stdout
        assert {layout: files_of(folder) for layout, (folder, _) in folders.items()} == before
    else:  # killed mid-write: Python cannot clean up, but the old files are untouched (temporaries are hidden)
        assert run.returncode == -signal.SIGXFSZ, run.stderr
        for layout, (folder, _) in folders.items():
            assert {k: v for k, v in files_of(folder).items() if not k.startswith(".")} == before[layout]
    inputs = make_inputs("bert-a")
    for folder, _ in folders.values():
        torch.testing.assert_close(
            outputs(minibert.BertModel.from_pretrained(folder), inputs),
            outputs(reference("BertModel", "bert-a"), inputs),
            atol=1e-5,
            rtol=0,
        )


# -- the index is the truth ------------------------------------------------------------------


def sharded_copy(checkpoint_dir, tmp_path):
    folder = copy_checkpoint(checkpoint_dir, tmp_path, layout="sharded-safetensors")
    index_path = folder / "model.safetensors.index.json"
    return folder, index_path, json.loads(index_path.read_text())


def test_tensor_in_two_shards_is_refused(checkpoint_dir, tmp_path):
    folder, _, index = sharded_copy(checkpoint_dir, tmp_path)
    key, shard = "pooler.dense.bias", index["weight_map"]["pooler.dense.bias"]
    other = next(name for name in sorted(set(index["weight_map"].values())) if name != shard)
    rewrite_safetensors(folder / other, lambda tensors: tensors.update({key: torch.zeros(32)}))
    pattern = rf"index\.json: tensor '{key}' is in two shards, .*the index names '{shard}'"
    with pytest.raises(minibert.CheckpointError, match=pattern):
        minibert.BertModel.from_pretrained(folder)


def test_index_entry_whose_shard_lacks_the_tensor_is_refused(checkpoint_dir, tmp_path):
    folder, _, index = sharded_copy(checkpoint_dir, tmp_path)
    shard = index["weight_map"]["pooler.dense.bias"]
    rewrite_safetensors(folder / shard, lambda tensors: tensors.pop("pooler.dense.bias"))
    pattern = rf"entry 'pooler\.dense\.bias' names '{shard}', which does not hold that tensor"
    with pytest.raises(minibert.CheckpointError, match=pattern):
        minibert.BertModel.from_pretrained(folder)


def test_tensor_the_index_leaves_out_is_read_as_transformers_reads_it_and_reported(checkpoint_dir, tmp_path):
    folder, index_path, index = sharded_copy(checkpoint_dir, tmp_path)
    shard = index["weight_map"].pop("pooler.dense.bias")
    index_path.write_text(json.dumps(index))
    with pytest.warns(
        UserWarning, match=rf"pooler\.dense\.bias: not in model\.safetensors\.index\.json: read from {shard}"
    ):
        ours = minibert.BertModel.from_pretrained(folder)
    record = next(r for r in ours.load_report.records if r.model_key == "pooler.dense.bias")
    assert record.status == "loaded" and record.file == shard and "not in" in record.note
    assert "note        pooler.dense.bias: not in" in str(ours.load_report)
    theirs = transformers.BertModel.from_pretrained(folder).eval()  # transformers reads every key of its shards
    inputs = make_inputs("bert-a")
    with torch.no_grad():
        assert_outputs_close(ours(**inputs), theirs(**inputs))


def test_shard_the_index_does_not_name_is_not_read_and_reported(checkpoint_dir, reference, tmp_path):
    folder, _, index = sharded_copy(checkpoint_dir, tmp_path)
    shard = index["weight_map"]["pooler.dense.bias"]
    stale = folder / "model-00009-of-00009.safetensors"  # left by an older save with more shards
    shutil.copyfile(folder / shard, stale)
    rewrite_safetensors(stale, lambda tensors: tensors.update({k: v + 1 for k, v in tensors.items()}))
    with pytest.warns(
        UserWarning, match=r"pooler\.dense\.bias: in model-00009-of-00009\.safetensors, which .* not read"
    ):
        ours = minibert.BertModel.from_pretrained(folder)
    ignored = [r for r in ours.load_report.records if r.status == "ignored" and r.file == stale.name]
    assert "pooler.dense.bias" in {r.model_key for r in ignored} and all("not read" in r.note for r in ignored)
    assert torch.equal(ours.pooler.dense.bias, reference("BertModel", "bert-a").pooler.dense.bias)


def test_tensors_initialised_at_random_are_logged(checkpoint_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="minibert"):
        minibert.BertForSequenceClassification.from_pretrained(checkpoint_dir("BertModel", "bert-a"))
    (message,) = [r.getMessage() for r in caplog.records if r.name.startswith("minibert")]
    assert "classifier.weight, classifier.bias" in message and "initialised at random" in message


# -- bounded before allocated ----------------------------------------------------------------


@pytest.mark.parametrize("field", ["num_hidden_layers", "num_labels", "intermediate_size", "vocab_size"])
def test_config_whose_model_cannot_fit_is_refused_at_once(checkpoint_dir, tmp_path, field):
    folder = copy_checkpoint(checkpoint_dir, tmp_path)
    values = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**values, field: 10**9, "id2label": None}))
    start = time.perf_counter()
    pattern = rf"config\.json: a model of this config needs at least [\d,.]+ GB .*{field}=1,000,000,000.*MINIBERT_MAX"
    with pytest.raises(minibert.ConfigError, match=pattern):
        minibert.BertForSequenceClassification.from_pretrained(folder)
    assert time.perf_counter() - start < 1


def test_the_memory_limit_can_be_lowered_and_raised(checkpoint_dir, monkeypatch):
    folder = checkpoint_dir("BertModel", "bert-a")  # 20,960 parameters: 83.8 kB in float32, 41.9 kB in bfloat16
    monkeypatch.setenv("MINIBERT_MAX_MODEL_SIZE", "60KB")
    with pytest.raises(minibert.ConfigError, match=r"BertModel: 8\d\.\d kB in float32 .* more than the 60\.0 kB limit"):
        minibert.BertModel.from_pretrained(folder)
    assert minibert.BertModel.from_pretrained(folder, dtype=torch.bfloat16).dtype == torch.bfloat16
    monkeypatch.setenv("MINIBERT_MAX_MODEL_SIZE", "1MB")
    minibert.BertModel.from_pretrained(folder)
    monkeypatch.setenv("MINIBERT_MAX_MODEL_SIZE", "lots")
    with pytest.raises(minibert.ConfigError, match="MINIBERT_MAX_MODEL_SIZE='lots'"):
        minibert.BertModel.from_pretrained(folder)


def finishes(call, seconds=10):
    """Run ``call`` in a thread: its exception once it returns, or None if it is still running after ``seconds``."""
    outcome = []

    def target():
        try:
            call()
            outcome.append(None)
        except Exception as error:
            outcome.append(error)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    return outcome[0] if outcome else "still running"


def test_config_that_is_a_fifo_or_a_folder_is_refused_without_waiting(checkpoint_dir, tmp_path):
    folder = copy_checkpoint(checkpoint_dir, tmp_path)
    (folder / "config.json").unlink()
    os.mkfifo(folder / "config.json")
    error = finishes(lambda: minibert.BertModel.from_pretrained(folder))
    if error == "still running":  # release the reader blocked on the FIFO before failing
        os.close(os.open(folder / "config.json", os.O_WRONLY | os.O_NONBLOCK))
    assert isinstance(error, minibert.ConfigError) and "config.json: not a regular file" in str(error)
    (folder / "config.json").unlink()
    (folder / "config.json").mkdir()
    with pytest.raises(minibert.ConfigError, match="config.json: not a regular file"):
        minibert.BertModel.from_pretrained(folder)


def test_json_larger_than_the_bound_is_refused(checkpoint_dir, tmp_path, monkeypatch):
    folder = copy_checkpoint(checkpoint_dir, tmp_path)
    monkeypatch.setattr(minibert.files, "MAX_JSON_BYTES", 100)
    with pytest.raises(minibert.ConfigError, match=r"config\.json: larger than the 100 bytes"):
        minibert.BertModel.from_pretrained(folder)


DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("name", ["config.json", "model.safetensors.index.json", "tokenizer.json"])
def test_json_nested_100000_deep_is_an_error_naming_the_file(checkpoint_dir, tmp_path, name):
    folder = copy_checkpoint(checkpoint_dir, tmp_path, layout="sharded-safetensors")
    if name == "config.json":
        text, load, error = '{"model_type": "bert", "x": ' + DEEP + "}", minibert.BertModel.from_pretrained, "Config"
    elif name == "tokenizer.json":
        text, load, error = (
            '{"model": {"vocab": ' + DEEP + "}}",
            minibert.PreTrainedTokenizer.from_pretrained,
            "Tokenizer",
        )
    else:
        text, load, error = '{"weight_map": ' + DEEP + "}", minibert.BertModel.from_pretrained, "Checkpoint"
    (folder / name).write_text(text)
    with pytest.raises(
        getattr(minibert, f"{error}Error"), match=rf"{re.escape(name)}: JSON nested more than 64 levels"
    ):
        load(folder)


# -- config fields are typed --------------------------------------------------------------------


def write_config(folder, **changes):
    values = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**values, **changes}))


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("pad_token_id", 0.5, "an integer or null"),
        ("pad_token_id", "0", "an integer or null"),
        ("tie_word_embeddings", "false", "true or false"),
        ("hidden_act", ["gelu"], "a string"),
        ("model_type", ["bert"], "a string"),
        ("id2label", {"a": "x"}, "a mapping from label ids"),
        ("id2label", ["x", "y"], "a mapping from label ids"),
        ("id2label", 3, "a mapping from label ids"),
        ("architectures", 5, "a list of strings or null"),
        ("num_hidden_layers", 2.0, "an integer"),
        ("layer_norm_eps", float("nan"), "a finite number"),
    ],
)
def test_config_value_of_the_wrong_type_names_file_field_value_and_type(
    checkpoint_dir, tmp_path, field, value, expected
):
    folder = copy_checkpoint(checkpoint_dir, tmp_path)
    write_config(folder, **{field: value})
    pattern = rf"config\.json: {field} must be {expected}.*, got {re.escape(repr(value))}"
    for load in (minibert.BertModel.from_pretrained, minibert.AutoModel.from_pretrained):
        with pytest.raises(minibert.ConfigError, match=pattern):
            load(folder)


def test_config_values_transformers_accepts_keep_working(checkpoint_dir, tmp_path):
    folder = copy_checkpoint(checkpoint_dir, tmp_path, "BertForSequenceClassification")
    write_config(folder, id2label={"0": "neg", "1": 7}, eos_token_id=[1, 2], hidden_dropout_prob=0)
    theirs = transformers.AutoConfig.from_pretrained(folder)
    ours = minibert.BertForSequenceClassification.from_pretrained(folder).config
    assert ours.id2label == {0: "neg", 1: "7"} and {k: str(v) for k, v in theirs.id2label.items()} == ours.id2label
    assert ours.eos_token_id == theirs.eos_token_id == [1, 2] and ours.hidden_dropout_prob == 0


# -- tokenizer files are validated on load -------------------------------------------------------

WORDPIECE_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "##s", "a", "b", "##b"]


def wordpiece_spec(unk_token="[UNK]"):
    vocab = {token: id for id, token in enumerate(WORDPIECE_VOCAB)}
    tokenizer = tokenizers.Tokenizer(tokenizers.models.WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = tokenizers.normalizers.BertNormalizer()
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.BertPreTokenizer()
    spec = json.loads(tokenizer.to_str())
    spec["model"]["unk_token"] = unk_token
    return spec


def bpe_spec(corpus=("hello world", "low lower lowest", "abcabcabc abab")):
    tokenizer = tokenizers.Tokenizer(tokenizers.models.BPE())
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=300, initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tokenizer.train_from_iterator(corpus, trainer)
    return json.loads(tokenizer.to_str())


def unigram_spec(unk_id=0):
    vocab = [("<unk>", 0.0), ("▁", -2.0), ("a", -3.0), ("b", -3.0), ("ab", -2.5), ("▁ab", -2.0)]
    tokenizer = tokenizers.Tokenizer(tokenizers.models.Unigram(vocab, unk_id=0))
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.Metaspace()
    spec = json.loads(tokenizer.to_str())
    spec["model"]["unk_id"] = unk_id
    return spec


def tokenizer_folder(tmp_path, spec, config=None, name="tok"):
    folder = tmp_path / name
    folder.mkdir(exist_ok=True)
    (folder / "tokenizer.json").write_text(json.dumps(spec) if isinstance(spec, dict) else spec)
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "PreTrainedTokenizerFast", **(config or {})})
    )
    return folder


def load_tokenizer(folder):
    return minibert.PreTrainedTokenizer.from_pretrained(folder)


def test_wordpiece_without_its_unknown_token_is_refused(tmp_path):
    with pytest.raises(minibert.TokenizerError, match=r"tokenizer\.json: WordPiece's unk_token '\[NOPE\]' is not in"):
        load_tokenizer(tokenizer_folder(tmp_path, wordpiece_spec(unk_token="[NOPE]")))
    classic = tmp_path / "classic"
    classic.mkdir()
    (classic / "vocab.txt").write_text("\n".join(t for t in WORDPIECE_VOCAB if t != "[UNK]") + "\n")
    with pytest.raises(minibert.TokenizerError, match=r"vocab\.txt: has no unk_token '\[UNK\]'"):
        minibert.AutoTokenizer.from_pretrained(classic)


def test_two_tokens_on_one_id_are_refused(tmp_path):
    spec = wordpiece_spec()
    spec["model"]["vocab"]["world"] = 5  # hello's id
    with pytest.raises(minibert.TokenizerError, match=r"tokens 'hello' and 'world' both have id 5"):
        load_tokenizer(tokenizer_folder(tmp_path, spec))
    classic = tmp_path / "classic"
    classic.mkdir()
    (classic / "vocab.json").write_text(json.dumps({"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "a": 3}))
    (classic / "merges.txt").write_text("#version: 0.2\n")
    with pytest.raises(minibert.TokenizerError, match=r"vocab\.json: tokens '<unk>' and 'a' both have id 3"):
        minibert.AutoTokenizer.from_pretrained(classic)


@pytest.mark.parametrize("merge", ["absent piece", "absent result", "not a pair"])
def test_bpe_merges_must_join_vocabulary_pieces_into_one(tmp_path, merge):
    spec = bpe_spec()
    vocab = spec["model"]["vocab"]
    a, b = next((a, b) for a, b in map(tuple, spec["model"]["merges"]))
    if merge == "absent piece":
        spec["model"]["merges"].append(["zzq", b])
    elif merge == "absent result":
        del vocab[a + b]
    else:
        spec["model"]["merges"].append(["a", "b", "c"])
    folder = tokenizer_folder(tmp_path, spec)
    with pytest.raises(minibert.TokenizerError, match=r"tokenizer\.json: merge \d+ "):
        load_tokenizer(folder)
    if merge != "not a pair":  # tokenizers refuses these files too
        with pytest.raises(Exception, match="(?i)merge|vocab"):
            tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))


@pytest.mark.parametrize("unk_id", [6, 10**6, -1, "0", True])
def test_unigram_unk_id_outside_its_pieces_is_refused(tmp_path, unk_id):
    with pytest.raises(minibert.TokenizerError, match=r"tokenizer\.json: (Unigram's unk_id|the model's unk_id)"):
        load_tokenizer(tokenizer_folder(tmp_path, unigram_spec(unk_id)))


def test_model_max_length_absent_or_null_means_no_limit_as_in_transformers(tmp_path):
    for config in ({}, {"model_max_length": None}):
        folder = tokenizer_folder(tmp_path, wordpiece_spec(), config)
        theirs = transformers.AutoTokenizer.from_pretrained(folder)
        assert load_tokenizer(folder).model_max_length == theirs.model_max_length == int(1e30)
    assert (
        load_tokenizer(tokenizer_folder(tmp_path, wordpiece_spec(), {"model_max_length": 512.0})).model_max_length
        == 512
    )


@pytest.mark.parametrize("value", ['"abc"', "1e400", "0", "-5", "true", "[512]"])
def test_model_max_length_that_is_not_a_positive_integer_is_refused(tmp_path, value):
    folder = tokenizer_folder(tmp_path, wordpiece_spec())
    (folder / "tokenizer_config.json").write_text('{"model_max_length": ' + value + "}")
    with pytest.raises(minibert.TokenizerError, match=r"tokenizer_config\.json: model_max_length must be a positive"):
        load_tokenizer(folder)


def with_replace(spec, pattern):
    return {**spec, "normalizer": {"type": "Replace", "pattern": {"Regex": pattern}, "content": "_"}}


@pytest.mark.parametrize(("pattern", "refused"), [("(a+)+$", "exponential"), (r"\s+x", "quadratic"), ("(", "compile")])
def test_regex_that_could_backtrack_without_bound_is_refused_at_once(tmp_path, pattern, refused):
    folder = tokenizer_folder(tmp_path, with_replace(wordpiece_spec(), pattern))
    start = time.perf_counter()
    with pytest.raises(minibert.TokenizerError, match=rf"Replace pattern .*{refused}"):
        load_tokenizer(folder)
    assert time.perf_counter() - start < 1


def test_linear_regex_runs_as_tokenizers_runs_it(tmp_path):
    spec = with_replace(wordpiece_spec(), " {2,}")
    ours = load_tokenizer(tokenizer_folder(tmp_path, spec))
    theirs = tokenizers.Tokenizer.from_str(json.dumps(spec))
    for text in ("hello  world", "a " * 5 + "   b", " " * 100_000 + "hello"):
        assert ours.encode(text) == theirs.encode(text).ids


@pytest.mark.parametrize("charsmap", ["!!not base64!!", base64.b64encode(b"\x40\x00\x00\x00abcd").decode()])
def test_corrupt_precompiled_charsmap_is_refused(tmp_path, charsmap):
    spec = {**unigram_spec(), "normalizer": {"type": "Precompiled", "precompiled_charsmap": charsmap}}
    with pytest.raises(minibert.TokenizerError, match=r"tok: .*precompiled_charsmap is"):
        load_tokenizer(tokenizer_folder(tmp_path, spec))


@pytest.mark.parametrize(
    "damage",
    [
        lambda spec: spec["model"].pop("vocab"),
        lambda spec: spec.update(model=[]),
        lambda spec: spec.update(added_tokens=[{"id": 3}]),
        lambda spec: spec.update(added_tokens=[{"id": 3, "content": "[SEP]", "special": "yes"}]),
        lambda spec: spec.update(normalizer={"lowercase": True}),
        lambda spec: spec.update(pre_tokenizer={"type": "Sequence", "pretokenizers": 5}),
        lambda spec: spec["model"].update(max_input_chars_per_word="100"),
    ],
)
def test_malformed_tokenizer_json_is_an_error_naming_the_folder(tmp_path, damage):
    spec = wordpiece_spec()
    damage(spec)
    with pytest.raises(minibert.TokenizerError, match=rf"{tmp_path / 'tok'}.*tokenizer\.json|{tmp_path / 'tok'}"):
        load_tokenizer(tokenizer_folder(tmp_path, spec))


def test_byte_level_bpe_is_near_linear_in_the_word_length(tmp_path):
    spec = bpe_spec()
    ours = load_tokenizer(tokenizer_folder(tmp_path, spec))
    theirs = tokenizers.Tokenizer.from_str(json.dumps(spec))
    word = "".join(random.Random(0).choice("abclowerst") for _ in range(200_000))  # 200 kB without a space
    start = time.perf_counter()
    ids = ours.encode(word)
    assert time.perf_counter() - start < 5  # quadratic merging took 2.9 s at 20 kB, so about 5 minutes here
    assert ids == theirs.encode(word).ids


# -- forward inputs ------------------------------------------------------------------------------

BASES = [
    ("BertModel", "bert-a"),
    ("RobertaModel", "roberta-a"),
    ("AlbertModel", "albert-a"),
    ("DistilBertModel", "distilbert-a"),
    ("ElectraModel", "electra-a"),
    ("MPNetModel", "mpnet-a"),
]


@pytest.mark.parametrize(("class_name", "config_name"), BASES)
def test_attention_mask_values_are_read_as_transformers_reads_them(checkpoint_dir, reference, class_name, config_name):
    """Any non-zero value attends (transformers' create_bidirectional_mask turns the mask to bool)."""
    ours = ours_class(class_name).from_pretrained(checkpoint_dir(class_name, config_name))
    theirs = reference(class_name, config_name)
    inputs = make_inputs(config_name)
    mask = inputs["attention_mask"]
    for value in (mask * 0.5, mask * 2, -mask, mask.bool(), mask.float() * 1e-30):
        changed = {**inputs, "attention_mask": value}
        for attn in ("sdpa", "eager"):
            ours.set_attn_implementation(attn)
            torch.testing.assert_close(outputs(ours, changed), outputs(theirs, changed), atol=1e-5, rtol=0)
        torch.testing.assert_close(outputs(ours, changed), outputs(ours, inputs), atol=1e-6, rtol=0)


@pytest.mark.parametrize(("class_name", "config_name"), BASES)
@pytest.mark.parametrize("source", ["padding token's embedding row", "inputs_embeds"])
def test_nan_or_inf_at_padding_never_reaches_real_tokens(checkpoint_dir, reference, class_name, config_name, source):
    ours = ours_class(class_name).from_pretrained(checkpoint_dir(class_name, config_name))
    theirs = reference(class_name, config_name)
    inputs = make_inputs(config_name)
    real = inputs["attention_mask"].bool()  # (B, T)
    expected = outputs(theirs, inputs)  # finite padding
    if source == "inputs_embeds":
        with torch.no_grad():
            embeds = ours.get_input_embeddings()(inputs["input_ids"])  # (B, T, E)
        poisoned = embeds.clone()
        poisoned[~real] = torch.tensor([float("nan"), float("inf")]).repeat(embeds.shape[-1] // 2 + 1)[
            : embeds.shape[-1]
        ]
        expected = outputs(theirs, {**inputs, "input_ids": None, "inputs_embeds": embeds})
        inputs = {**inputs, "input_ids": None, "inputs_embeds": poisoned}
        broken = theirs
    else:
        pad = inputs["input_ids"][~real][0]
        with torch.no_grad():
            ours.get_input_embeddings().weight[pad] = float("nan")
        broken = copy.deepcopy(theirs)
        with torch.no_grad():
            broken.get_input_embeddings().weight[pad] = float("nan")
    for attn, unpad in (("sdpa", False), ("eager", False), ("sdpa", True)):
        ours.set_attn_implementation(attn)
        ours.set_unpadding(unpad)
        torch.testing.assert_close(outputs(ours, inputs), expected, atol=1e-5, rtol=0)  # real tokens
    # transformers' own flaw, which this guards against: NaN in the padding reaches the real tokens
    assert outputs(broken, inputs).isnan().any()


@pytest.mark.parametrize("dtype", [torch.int8, torch.int16, torch.int32, torch.uint8])
def test_ids_of_any_integer_dtype_are_accepted(checkpoint_dir, reference, dtype):
    for class_name, config_name in BASES[:2]:
        ours = ours_class(class_name).from_pretrained(checkpoint_dir(class_name, config_name))
        inputs = make_inputs(config_name)
        narrow = {name: value.to(dtype) for name, value in inputs.items()}
        torch.testing.assert_close(
            outputs(ours, narrow), outputs(reference(class_name, config_name), inputs), atol=1e-5, rtol=0
        )


def test_inputs_of_the_wrong_kind_are_refused_by_name(checkpoint_dir, reference):
    ours = minibert.BertModel.from_pretrained(checkpoint_dir("BertModel", "bert-a"))
    theirs = reference("BertModel", "bert-a")
    ids = make_inputs("bert-a")["input_ids"]  # (3, 11)
    refused = [
        ({"input_ids": ids.float()}, InputTypeError, "input_ids must hold integer ids, got dtype torch.float32"),
        ({"input_ids": ids.bool()}, InputTypeError, "input_ids must hold integer ids, got dtype torch.bool"),
        ({"input_ids": ids.tolist()}, InputTypeError, "input_ids must be a tensor of integer ids, got list"),
        ({"input_ids": ids, "token_type_ids": ids.float() * 0}, InputTypeError, "token_type_ids must hold integer"),
        ({"input_ids": ids, "position_ids": torch.zeros(3, 10, dtype=torch.long)}, InputError, r"\(3, 10\), expected"),
        ({"input_ids": ids, "position_ids": torch.zeros(2, 11, dtype=torch.long)}, InputError, r"\(2, 11\), expected"),
        ({"input_ids": ids, "position_ids": torch.zeros(3, 11)}, InputTypeError, "position_ids must hold integer"),
        ({"inputs_embeds": torch.zeros(3, 0, 32)}, InputError, r"inputs_embeds is empty \(shape \(3, 0, 32\)\)"),
        (
            {"inputs_embeds": torch.zeros(3, 11, 32, dtype=torch.long)},
            InputTypeError,
            "inputs_embeds must be .* floats",
        ),
        (
            {"inputs_embeds": torch.zeros(3, 11, 32, dtype=torch.float64)},
            InputTypeError,
            r"inputs_embeds has dtype torch\.float64, but the model computes in torch\.float32",
        ),
    ]
    for kwargs, error, pattern in refused:
        with pytest.raises(error, match=pattern):
            ours(**kwargs)
    with pytest.raises(RuntimeError, match="dtype"):  # transformers refuses float64 embeddings too, less clearly
        theirs(inputs_embeds=torch.zeros(3, 11, 32, dtype=torch.float64))
    torch.testing.assert_close(  # one row of positions for the whole batch, as transformers broadcasts it
        outputs(ours, {"input_ids": ids, "position_ids": torch.arange(11)[None]}),
        outputs(theirs, {"input_ids": ids, "position_ids": torch.arange(11)[None]}),
        atol=1e-5,
        rtol=0,
    )


# -- dtypes a checkpoint may hold ----------------------------------------------------------------


def test_unsigned_extra_tensor_is_reported_as_unexpected(checkpoint_dir, reference, tmp_path):
    folder = copy_checkpoint(checkpoint_dir, tmp_path)
    step = torch.tensor([7], dtype=torch.uint32)  # a step counter some trainers save
    rewrite_safetensors(folder / "model.safetensors", lambda tensors: tensors.update(step=step))
    model = minibert.BertModel.from_pretrained(folder)
    record = next(r for r in model.load_report.records if r.checkpoint_key == "step")
    assert record.status == "unexpected" and record.dtype == "uint32"
    inputs = make_inputs("bert-a")
    torch.testing.assert_close(
        outputs(model, inputs), outputs(reference("BertModel", "bert-a"), inputs), atol=1e-5, rtol=0
    )


@pytest.mark.parametrize("dtype", [torch.float8_e4m3fn, torch.float8_e5m2])
def test_float8_weight_is_refused_naming_it(checkpoint_dir, tmp_path, dtype):
    folder = copy_checkpoint(checkpoint_dir, tmp_path)
    name = str(dtype).removeprefix("torch.")
    rewrite_safetensors(
        folder / "model.safetensors", lambda t: t.update({"pooler.dense.weight": t["pooler.dense.weight"].to(dtype)})
    )
    with pytest.raises(
        minibert.CheckpointError, match=rf"8-bit floats: pooler\.dense\.weight \({name}, in model\.safetensors\)"
    ):
        minibert.BertModel.from_pretrained(folder)
    for dtype_choice in ("auto", None):  # nor does "auto" pick float8 for the model
        with pytest.raises(minibert.CheckpointError, match="does not dequantise"):
            minibert.BertModel.from_pretrained(folder, dtype=dtype_choice)


def test_bin_with_a_key_that_is_not_a_string_is_refused(checkpoint_dir, tmp_path):
    folder = copy_checkpoint(checkpoint_dir, tmp_path, layout="bin")
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    torch.save({**state, 3: torch.zeros(1)}, folder / "pytorch_model.bin")
    with pytest.raises(minibert.CheckpointError, match=r"pytorch_model\.bin: key 3 is not a string"):
        minibert.BertModel.from_pretrained(folder)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weight_is_warned_about_and_reported(checkpoint_dir, tmp_path, value):
    folder = copy_checkpoint(checkpoint_dir, tmp_path)

    def poison(tensors):
        tensors["pooler.dense.weight"][3, 5] = value

    rewrite_safetensors(folder / "model.safetensors", poison)
    with pytest.warns(UserWarning, match=r"NaN or Inf values in pooler\.dense\.weight"):
        model = minibert.BertModel.from_pretrained(folder)
    report = model.load_report
    assert report.nonfinite == ["pooler.dense.weight"]
    assert all(
        r.verified for r in report.records if r.status == "loaded"
    )  # the values are the file's: no contradiction
    assert "non-finite  pooler.dense.weight holds NaN or Inf values, as model.safetensors does" in str(report)
    assert json.loads(json.dumps(report.to_dict(), allow_nan=False))


# -- the command line: one line, exit 2 -----------------------------------------------------------


def damage_config(**changes):
    return lambda folder: write_config(folder, **changes)


def link_weights_outside(folder):
    outside = folder.parent / "outside.safetensors"
    shutil.move(folder / "model.safetensors", outside)
    (folder / "model.safetensors").symlink_to(outside)


def index_outside(folder):
    shutil.move(folder / "model.safetensors", folder.parent / "x.safetensors")
    weight_map = dict.fromkeys(safe_open(folder.parent / "x.safetensors", "pt").keys(), "../x.safetensors")
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))


def float8_weight(folder):
    key = "bert.encoder.layer.0.attention.self.query.weight"  # a weight every command reads
    rewrite_safetensors(folder / "model.safetensors", lambda t: t.update({key: t[key].to(torch.float8_e4m3fn)}))


def deep_config(folder):
    (folder / "config.json").write_text('{"model_type": "bert", "x": ' + DEEP + "}")


MODEL_DAMAGE = {  # damage -> what the error line names
    "pad_token_id '0'": (damage_config(pad_token_id="0"), "config.json: pad_token_id"),
    "tie_word_embeddings 'false'": (damage_config(tie_word_embeddings="false"), "config.json: tie_word_embeddings"),
    "10**9 layers": (damage_config(num_hidden_layers=10**9), "config.json: a model of this config needs"),
    "config nested deep": (deep_config, "config.json: JSON nested"),
    "weights linked outside": (link_weights_outside, "model.safetensors: resolves to"),
    "index naming ../": (index_outside, "model.safetensors.index.json: entry"),
    "float8 weight": (float8_weight, "layer.0.attention.self.query.weight (float8_e4m3fn"),
}
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(94)]  # bert-a's 99 ids
TOKENIZER_DAMAGE = {
    "vocab.txt without [UNK]": (lambda f: (f / "vocab.txt").write_text("\n".join(VOCAB[2:])), "vocab.txt: has no"),
    "model_max_length 'abc'": (
        lambda f: (f / "tokenizer_config.json").write_text('{"model_max_length": "abc"}'),
        "tokenizer_config.json: model_max_length",
    ),
    "do_lower_case 'false'": (
        lambda f: (f / "tokenizer_config.json").write_text('{"do_lower_case": "false"}'),
        "tokenizer_config.json: do_lower_case",
    ),
}
COMMANDS = {
    "inspect": [],
    "verify": [],
    "fill-mask": ["w1 [MASK] w2"],
    "classify": ["w1 w2"],
    "embed": ["w1 w2", "w3"],
}


@pytest.fixture
def cli_folder(checkpoint_dir, tmp_path):
    folder = copy_checkpoint(checkpoint_dir, tmp_path, "BertForMaskedLM")
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "BertTokenizer"}))
    return folder


CLI_CASES = [
    (damage, command)
    for damage in MODEL_DAMAGE
    for command in COMMANDS
    if not (command == "inspect" and damage == "float8 weight")  # inspect shows the dtype instead of refusing
] + [(damage, command) for damage in TOKENIZER_DAMAGE for command in ("fill-mask", "classify", "embed")]


@pytest.mark.parametrize(("damage", "command"), CLI_CASES)
def test_command_line_says_what_is_wrong_in_one_line_and_exits_2(cli_folder, capsys, damage, command):
    assert main(["fill-mask", str(cli_folder), *COMMANDS["fill-mask"]]) == 0  # the folder works before the damage
    capsys.readouterr()
    make, named = {**MODEL_DAMAGE, **TOKENIZER_DAMAGE}[damage]
    make(cli_folder)
    assert main([command, str(cli_folder), *COMMANDS[command]]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith(f"minibert {command}: error: ")]
    assert len(errors) == 1 and named in errors[0], err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == errors[0]


def test_a_modernbert_config_too_large_to_build_is_refused_before_its_layer_list_is_made():
    with pytest.raises(minibert.ConfigError, match="num_hidden_layers=1,000,000,000"):
        minibert.ModernBertConfig(num_hidden_layers=10**9)


@pytest.mark.parametrize("dtype", [torch.int16, torch.uint8])
def test_modernbert_takes_ids_of_any_integer_dtype(tmp_path, dtype):
    config = transformers.ModernBertConfig(
        vocab_size=60,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=40,
        max_position_embeddings=64,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        cls_token_id=1,
        sep_token_id=2,
    )
    torch.manual_seed(0)
    theirs = transformers.ModernBertModel(config).eval()
    theirs.save_pretrained(tmp_path)
    ours = minibert.ModernBertModel.from_pretrained(tmp_path)
    ids = torch.randint(1, 60, (2, 9))
    with torch.no_grad():  # transformers' ModernBERT refuses int16 ids: its reference is the same ids as long
        torch.testing.assert_close(
            ours(ids.to(dtype)).last_hidden_state, theirs(ids).last_hidden_state, atol=1e-5, rtol=0
        )
