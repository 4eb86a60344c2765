"""`minibert verify`: evidence layer by layer, and exit codes a script can rely on."""

import pytest
import torch

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
