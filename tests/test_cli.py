"""`minibert verify`: evidence layer by layer, and exit codes a script can rely on."""

import io
import json
import shutil
import sys
from unittest import mock

import numpy as np
import pytest
import torch
import transformers
from safetensors.torch import load_file

import minibert
from minibert import activations
from minibert.cli import main


def test_verify_passes_on_a_faithful_load_and_shows_each_layer(checkpoint_dir, capsys):
    assert main(["verify", str(checkpoint_dir("BertForMaskedLM", "bert-b"))]) == 0
    out = capsys.readouterr().out
    for line in ("embeddings", "layer 1", "layer 3", "logits", "PASS"):
        assert line in out


def test_verify_fails_with_exit_1_and_points_at_the_diverging_output(checkpoint_dir, capsys, monkeypatch):
    # A wrong activation inside the layers: the embeddings still agree, layer 1 does not.
    monkeypatch.setitem(activations.ACTIVATIONS, "gelu", torch.nn.functional.silu)
    assert main(["verify", str(checkpoint_dir("BertModel", "bert-a"))]) == 1
    out = capsys.readouterr().out
    assert "exceeds atol" in out and "FAIL" in out
    embeddings_line = next(line for line in out.splitlines() if line.strip().startswith("embeddings"))
    assert "exceeds" not in embeddings_line  # the embeddings are right: the first layer is where it parts


@pytest.mark.parametrize("argument", ["/nonexistent/folder", "--model-class=GPT2Model"])
def test_verify_errors_exit_2_with_one_line(argument, checkpoint_dir, capsys):
    args = (
        ["verify", argument]
        if argument.startswith("/")
        else ["verify", str(checkpoint_dir("BertModel", "bert-a")), argument]
    )
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("minibert verify: error:") and len(err.strip().splitlines()) == 1


def test_verify_without_transformers_says_so(checkpoint_dir, capsys, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "transformers", None)  # import fails as if not installed
    assert main(["verify", str(checkpoint_dir("BertModel", "bert-a"))]) == 2
    assert "pip install transformers" in capsys.readouterr().err


# -- the tasks on the command line -------------------------------------------------------------

SENTENCES = ["A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby."]


@pytest.fixture(scope="module")
def minilm_vectors(minilm_dir):
    from minibert.encoders import SentenceEncoder

    return SentenceEncoder(minilm_dir).encode(SENTENCES)


def test_embed_writes_one_json_vector_per_text_from_arguments_stdin_and_files(
    minilm_dir, minilm_vectors, tmp_path, capsys, monkeypatch
):
    assert main(["embed", str(minilm_dir), *SENTENCES]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    torch.testing.assert_close(torch.tensor(rows), torch.tensor(minilm_vectors), atol=0, rtol=0)  # float32 exactly
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(SENTENCES[1:]) + "\n"))
    (tmp_path / "texts.txt").write_text(SENTENCES[0] + "\n", encoding="utf-8")
    assert main(["embed", str(minilm_dir), "--file", str(tmp_path / "texts.txt"), "-", "--batch-size", "1"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    expected = minilm_vectors[[1, 2, 0]]  # the arguments (stdin here) first, then the files
    torch.testing.assert_close(torch.tensor(rows), torch.tensor(expected), atol=1e-6, rtol=0)


@pytest.mark.parametrize("suffix", [".npy", ".safetensors", ".jsonl"])
def test_embed_writes_files(minilm_dir, minilm_vectors, tmp_path, capsys, suffix):
    path = tmp_path / f"vectors{suffix}"
    assert main(["embed", str(minilm_dir), "--normalize", *SENTENCES, "--output", str(path)]) == 0
    assert capsys.readouterr().out == ""
    if suffix == ".npy":
        written = np.load(path)
    elif suffix == ".safetensors":
        written = load_file(path)["embeddings"].numpy()
    else:
        written = np.array([json.loads(line) for line in path.read_text().splitlines()], dtype=np.float32)
    np.testing.assert_allclose(written, minilm_vectors, atol=1e-6, rtol=0)


def test_embed_shows_progress_on_large_inputs_at_a_terminal(minilm_dir, capsys, monkeypatch):
    monkeypatch.setattr("minibert.cli.PROGRESS_FROM", 3)
    assert main(["embed", str(minilm_dir), *SENTENCES[:2]]) == 0
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(["embed", str(minilm_dir), *SENTENCES, "--batch-size", "1"]) == 0
    assert "Batches" in capsys.readouterr().err


def test_embed_similarity_prints_the_matrix_and_ranking(minilm_dir, capsys):
    assert main(["embed", str(minilm_dir), "--similarity", *SENTENCES]) == 0
    out = capsys.readouterr().out
    assert "cosine similarity of 3 sentence embeddings" in out
    ranking = out.split("closest to")[1].splitlines()
    assert "A man is eating a piece of bread." in ranking[1]  # the nearest sentence comes first


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ([], "no texts: give them as arguments"),
        (["a", "--output", "vectors.txt"], "--output vectors.txt: write .npy, .safetensors, .jsonl"),
        (["a", "--batch-size", "0"], "batch_size must be a positive integer, got 0"),
        (["a", "--max-length", "0"], "--max-length must be a positive integer, got 0"),
        (["a", "--prompt-name", "query"], "prompt_name 'query' is not one of the prompts"),
    ],
)
def test_embed_errors_exit_2_with_one_line(minilm_dir, capsys, arguments, message):
    assert main(["embed", str(minilm_dir), *arguments]) == 2
    err = capsys.readouterr().err
    assert err.startswith("minibert embed: error:") and message in err and len(err.strip().splitlines()) == 1


def test_rerank_prints_documents_by_score(tmp_path, minilm_dir, capsys):
    config = transformers.BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16, num_labels=1
    )
    torch.manual_seed(0)
    transformers.BertForSequenceClassification(config).save_pretrained(tmp_path)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (tmp_path / name).write_bytes((minilm_dir / name).read_bytes())
    from sentence_transformers import CrossEncoder

    expected = CrossEncoder(str(tmp_path), device="cpu").rank(SENTENCES[0], SENTENCES, return_documents=True)
    assert main(["rerank", str(tmp_path), SENTENCES[0], *SENTENCES, "--top-k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"{i:>3}. {r['score']:.4f}  {r['text']}" for i, r in enumerate(expected[:2], start=1)]


def test_classify_reads_a_file_in_batches_and_warns_of_a_random_head(minilm_dir, tmp_path, capsys):
    (tmp_path / "texts.txt").write_text("\n".join(SENTENCES * 3) + "\n", encoding="utf-8")
    assert main(["classify", str(minilm_dir), "--file", str(tmp_path / "texts.txt"), "--batch-size", "4"]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 9 and captured.out.startswith(f"{SENTENCES[0]}: LABEL_")
    assert captured.err.startswith("minibert classify: warning: ")
    assert "classifier.weight, classifier.bias: not in the checkpoint" in captured.err


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"minibert {minibert.__version__}"


def test_verify_says_in_one_line_when_transformers_cannot_load_what_minibert_loaded(checkpoint_dir, tmp_path, capsys):
    """transformers' loader failing deep inside (simulated) is one line on stderr, exit 2, no traceback."""
    folder = tmp_path / "ckpt"
    shutil.copytree(checkpoint_dir("BertModel", "bert-a"), folder)
    with mock.patch("transformers.BertModel.from_pretrained", side_effect=KeyError("deep inside")):
        assert main(["verify", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "transformers cannot" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
