"""The loader: keys as the contract, rename rules, ties, init of what is missing, shapes, the Hub path."""

import json
import shutil
from pathlib import Path

import pytest
import torch
import transformers
from conftest import (
    CLASSES,
    assert_real_tokens_close,
    config_names_for,
    family_of,
    hf_config,
    hf_model,
    make_inputs,
    ours_class,
    save_bin,
)
from safetensors.torch import save_file

import minibert
from minibert.bert import Embeddings
from minibert.config import config_class_for


def ours_config(config_name: str, **changes) -> minibert.BertConfig:
    values = hf_config(config_name).to_dict()
    return config_class_for(values).from_dict(values, **changes)


@pytest.mark.parametrize(("class_name", "config_name"), [(c, n) for c in CLASSES for n in config_names_for(c)])
def test_state_dict_has_exactly_transformers_keys_and_shapes(class_name, config_name):
    """Keys and shapes, the head's prefix, the tensors tied, and every LayerNorm's eps (DistilBERT's is fixed)."""
    two_labels = class_name.endswith(("QuestionAnswering", "AlbertForPreTraining"))
    config = ours_config(config_name, **({"num_labels": 2} if two_labels else {}))
    ours, theirs = ours_class(class_name)(config), hf_model(class_name, config_name)
    shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert shapes == {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    # In order too, but where transformers 5 builds RoBERTa's modules in another (heads or token types first)
    # and GTE's, NomicBERT's and DeBERTa's (norms before the projections).
    unordered = ("roberta", "xlm-roberta", "camembert", "gte", "nomic", "deberta")
    assert list(shapes) == list(theirs.state_dict()) or family_of(class_name) in unordered
    assert ours.base_model_prefix == theirs.base_model_prefix
    assert shared_tensors(ours) == shared_tensors(theirs)
    assert ours.tied_weights() == (dict(theirs._tied_weights_keys or {}) if config.tie_word_embeddings else {})
    layer_norms = {n: m.eps for n, m in ours.named_modules() if isinstance(m, torch.nn.LayerNorm)}
    assert layer_norms == {n: m.eps for n, m in theirs.named_modules() if isinstance(m, torch.nn.LayerNorm)}


def shared_tensors(model: torch.nn.Module) -> set[frozenset[str]]:
    """The groups of parameter names that hold one tensor (tied weights)."""
    names: dict[int, set[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(param), set()).add(name)
    return {frozenset(group) for group in names.values() if len(group) > 1}


def test_buffers_are_not_saved_and_encoders_are_exposed_by_prefix():
    model = minibert.RobertaForTokenClassification(ours_config("roberta-a"))
    assert "roberta.embeddings.position_ids" not in model.state_dict()
    assert dict(model.named_buffers()).keys() == {
        "roberta.embeddings.position_ids",
        "roberta.embeddings.token_type_ids",
    }
    assert isinstance(model.roberta, minibert.RobertaModel) and model.base_model is model.roberta
    assert isinstance(minibert.BertForMaskedLM(ours_config("bert-a")).bert, minibert.BertModel)


def test_init_follows_transformers_rule_applied_once(monkeypatch):
    config = ours_config("bert-b", initializer_range=0.5)
    calls = []
    original = minibert.BertForPreTraining._init_weights
    monkeypatch.setattr(
        minibert.BertForPreTraining,
        "_init_weights",
        lambda self, module: (calls.append(module), original(self, module)),
    )
    model = minibert.BertForPreTraining(config)
    assert len(calls) == len(list(model.modules())) == len({id(m) for m in calls})
    embeddings = model.bert.embeddings
    assert torch.all(embeddings.word_embeddings.weight[config.pad_token_id] == 0)
    assert abs(embeddings.word_embeddings.weight.std().item() - 0.5) < 0.05
    for name, param in model.named_parameters():
        if name.endswith("bias") and "LayerNorm" not in name:
            assert torch.all(param == 0), name
        if "LayerNorm" in name:
            assert torch.all(param == (1 if name.endswith("weight") else 0)), name
    assert torch.equal(embeddings.position_ids[0], torch.arange(config.max_position_embeddings))
    assert model.cls.predictions.decoder.weight is embeddings.word_embeddings.weight
    assert model.cls.predictions.decoder.bias is model.cls.predictions.bias


def test_loading_initialises_only_what_the_checkpoint_lacks(checkpoint_dir, monkeypatch):
    calls = []
    original = minibert.BertForSequenceClassification._init_weights
    monkeypatch.setattr(
        minibert.BertForSequenceClassification,
        "_init_weights",
        lambda self, module: (calls.append(type(module).__name__), original(self, module)),
    )
    minibert.BertForSequenceClassification.from_pretrained(checkpoint_dir("BertForSequenceClassification", "bert-a"))
    assert calls == ["Embeddings"]  # only the computed buffers
    calls.clear()
    model = minibert.BertForSequenceClassification.from_pretrained(checkpoint_dir("BertModel", "bert-a"))
    assert sorted(calls) == ["Embeddings", "PackedLinear"]  # buffers and the new classifier
    assert model.load_report.missing == ["classifier.weight", "classifier.bias"]
    assert torch.all(model.classifier.bias == 0) and model.classifier.weight.std() > 0


def test_legacy_names_and_saved_buffers_are_mapped_and_reported(checkpoint_dir):
    model = minibert.BertForMaskedLM.from_pretrained(checkpoint_dir("BertForMaskedLM", "bert-a", "legacy-bin"))
    report = model.load_report
    assert ("bert.embeddings.LayerNorm.gamma", "bert.embeddings.LayerNorm.weight") in report.renamed
    assert all("legacy name" in r.rule for r in report.records if r.status == "renamed")
    assert report.ignored == ["bert.embeddings.position_ids"]
    assert report.missing == [] and report.unexpected == []
    assert set(report.tied) == {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias"}


def test_report_accounts_for_every_checkpoint_key_and_prints_what_needs_attention(checkpoint_dir):
    folder = checkpoint_dir("BertModel", "bert-a")
    model = minibert.BertForMaskedLM.from_pretrained(folder)
    report = model.load_report
    used = {r.checkpoint_key for r in report.records if r.checkpoint_key}
    from safetensors import safe_open

    assert used == set(safe_open(folder / "model.safetensors", "pt").keys())
    text = str(report)
    assert "missing     cls.predictions.transform.dense.weight (initialised)" in text
    assert "unexpected  pooler.dense.weight" in text
    assert json.loads(json.dumps(report.to_dict()))["counts"]["missing"] == len(report.missing)


def test_decoder_bias_saved_only_under_its_alias_still_loads(tmp_path, reference):
    theirs = reference("BertForMaskedLM", "bert-a")
    state = {k: v for k, v in theirs.state_dict().items() if k != "cls.predictions.bias"}
    save_bin(state, tmp_path, theirs.config)
    ours = minibert.BertForMaskedLM.from_pretrained(tmp_path)
    assert torch.equal(ours.cls.predictions.bias, theirs.cls.predictions.bias)
    assert ours.load_report.missing == []
    inputs = make_inputs("bert-a")
    with torch.no_grad():
        assert_real_tokens_close(ours(**inputs).logits, theirs(**inputs).logits, inputs["attention_mask"])


def test_untied_decoder_loads_as_its_own_tensor(checkpoint_dir, reference):
    ours = minibert.BertForMaskedLM.from_pretrained(checkpoint_dir("BertForMaskedLM", "bert-c"))
    assert ours.cls.predictions.decoder.weight is not ours.bert.embeddings.word_embeddings.weight
    assert ours.load_report.tied == []
    torch.testing.assert_close(
        ours.cls.predictions.decoder.weight, reference("BertForMaskedLM", "bert-c").cls.predictions.decoder.weight
    )


def test_shape_mismatch_lists_every_key_with_both_shapes(checkpoint_dir):
    folder = checkpoint_dir("BertForSequenceClassification", "bert-a")
    with pytest.raises(minibert.CheckpointError) as error:
        minibert.BertForSequenceClassification.from_pretrained(folder, num_labels=5)
    message = str(error.value)
    assert "classifier.weight: checkpoint (2, 32) vs model (5, 32)" in message
    assert "classifier.bias: checkpoint (2,) vs model (5,)" in message
    assert "ignore_mismatched_sizes=True" in message


def test_ignore_mismatched_sizes_initialises_and_reports_them(checkpoint_dir, reference):
    folder = checkpoint_dir("BertForSequenceClassification", "bert-a")
    model = minibert.BertForSequenceClassification.from_pretrained(folder, num_labels=5, ignore_mismatched_sizes=True)
    assert model.load_report.mismatched == ["classifier.weight", "classifier.bias"]
    assert model.classifier.weight.shape == (5, 32) and torch.all(model.classifier.bias == 0)
    expected = reference("BertForSequenceClassification", "bert-a").bert.pooler.dense.weight
    assert torch.equal(model.bert.pooler.dense.weight, expected)


def test_checkpoint_of_another_architecture_is_refused(checkpoint_dir):
    with pytest.raises(minibert.CheckpointError, match="none of its"):
        minibert.BertModel.from_pretrained(
            checkpoint_dir("RobertaForMaskedLM", "roberta-a"), config=ours_config("bert-a")
        )


def test_two_checkpoint_keys_for_one_tensor_is_an_error(tmp_path, reference):
    theirs = reference("BertModel", "bert-a")
    state = dict(theirs.state_dict())
    state["bert.pooler.dense.bias"] = state["pooler.dense.bias"].clone()
    save_bin(state, tmp_path, theirs.config)
    with pytest.raises(minibert.CheckpointError, match=r"both map to model key 'pooler\.dense\.bias'"):
        minibert.BertModel.from_pretrained(tmp_path)


def test_folder_without_weights_names_what_was_looked_for(tmp_path):
    hf_config("bert-a").save_pretrained(tmp_path)
    with pytest.raises(minibert.CheckpointNotFoundError, match=r"model\.safetensors"):
        minibert.BertModel.from_pretrained(tmp_path)
    with pytest.raises(minibert.CheckpointNotFoundError, match="no such checkpoint folder"):
        minibert.BertModel.from_pretrained(tmp_path / "typo")


def test_dtype_auto_takes_the_checkpoints_dtype(tmp_path, reference):
    theirs = reference("BertModel", "bert-a")
    save_file(
        {k: v.to(torch.bfloat16).contiguous() for k, v in theirs.state_dict().items()},
        str(tmp_path / "model.safetensors"),
    )
    theirs.config.save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(
        json.dumps({k: v for k, v in json.loads((tmp_path / "config.json").read_text()).items() if k != "dtype"})
    )
    assert minibert.BertModel.from_pretrained(tmp_path, dtype="auto").dtype == torch.bfloat16
    assert minibert.BertModel.from_pretrained(tmp_path).dtype == torch.float32


def test_auto_models_pick_the_class_from_model_type(checkpoint_dir):
    assert type(minibert.AutoModel.from_pretrained(checkpoint_dir("BertModel", "bert-a"))) is minibert.BertModel
    model = minibert.AutoModelForSequenceClassification.from_pretrained(
        checkpoint_dir("RobertaModel", "roberta-a"), num_labels=7
    )
    assert type(model) is minibert.RobertaForSequenceClassification and model.config.num_labels == 7
    assert type(minibert.AutoModelForPreTraining.from_config(ours_config("roberta-a"))) is minibert.RobertaForMaskedLM
    with pytest.raises(minibert.ConfigError, match="roberta"):
        minibert.AutoModelForNextSentencePrediction.from_config(ours_config("roberta-a"))


def fake_hub_cache(cache: Path, repo_id: str, files: Path, revision: str = "main", commit: str = "a" * 40) -> None:
    """The folder layout huggingface_hub's cache uses: models--org--name/{refs,snapshots}."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / revision).write_text(commit)
    shutil.copytree(files, repo / "snapshots" / commit)


def test_hub_id_resolves_through_the_cache_offline(tmp_path, checkpoint_dir, reference):
    fake_hub_cache(tmp_path, "org/tiny-bert", checkpoint_dir("BertModel", "bert-a"))
    fake_hub_cache(
        tmp_path,
        "org/tiny-bert",
        checkpoint_dir("BertForMaskedLM", "bert-a", "sharded-safetensors"),
        revision="v2",
        commit="b" * 40,
    )
    model = minibert.AutoModel.from_pretrained("org/tiny-bert", cache_dir=tmp_path)
    assert model.load_report.missing == [] and "snapshots" in model.load_report.source
    inputs = make_inputs("bert-a")
    with torch.no_grad():
        assert_real_tokens_close(
            model(**inputs).last_hidden_state,
            reference("BertModel", "bert-a")(**inputs).last_hidden_state,
            inputs["attention_mask"],
        )
    mlm = minibert.BertForMaskedLM.from_pretrained("org/tiny-bert", revision="v2", cache_dir=tmp_path)
    assert mlm.load_report.missing == [] and "b" * 40 in mlm.load_report.source


def test_hub_id_missing_from_the_offline_cache_is_a_clear_error(tmp_path):
    with pytest.raises(minibert.CheckpointNotFoundError, match="org/absent"):
        minibert.BertModel.from_pretrained("org/absent", cache_dir=tmp_path)


def test_transformers_loads_a_legacy_checkpoint_the_same_way(checkpoint_dir):
    """Sanity check of the fixture itself: the legacy layout is one transformers also reads."""
    folder = checkpoint_dir("BertModel", "bert-a", "legacy-bin")
    theirs = transformers.BertModel.from_pretrained(folder).eval()
    ours = minibert.BertModel.from_pretrained(folder)
    inputs = make_inputs("bert-a")
    with torch.no_grad():
        assert_real_tokens_close(
            ours(**inputs).last_hidden_state, theirs(**inputs).last_hidden_state, inputs["attention_mask"]
        )


def test_embeddings_buffers_are_recomputed_after_loading(checkpoint_dir):
    model = minibert.BertModel.from_pretrained(checkpoint_dir("BertModel", "bert-b"))
    embeddings = next(m for m in model.modules() if isinstance(m, Embeddings))
    assert torch.equal(embeddings.position_ids[0], torch.arange(40))
    assert torch.all(embeddings.token_type_ids == 0)


def test_tied_alias_with_values_of_its_own_is_not_dropped_silently(tmp_path, reference):
    theirs = reference("BertForMaskedLM", "bert-a")
    state = {k: v.clone() for k, v in theirs.state_dict().items()}
    state["cls.predictions.decoder.weight"] += 1.0  # the config ties it to the word embeddings anyway
    save_bin(state, tmp_path, theirs.config)
    with pytest.warns(UserWarning, match=r"cls\.predictions\.decoder\.weight differs from"):
        model = minibert.BertForMaskedLM.from_pretrained(tmp_path)
    assert torch.equal(model.cls.predictions.decoder.weight, theirs.bert.embeddings.word_embeddings.weight)
