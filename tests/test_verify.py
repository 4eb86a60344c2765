"""`minibert inspect` and `minibert verify` work on every architecture: a tiny checkpoint of each passes."""

import pytest
from conftest import FAMILIES, config_names_for

from minibert.cli import main

BASES = [f"{prefix}Model" for _, prefix, _ in FAMILIES.values()]


@pytest.mark.parametrize("class_name", BASES)
def test_verify_passes_and_inspect_reads_every_architecture(class_name, checkpoint_dir, capsys):
    folder = checkpoint_dir(class_name, config_names_for(class_name)[0])
    assert main(["inspect", str(folder)]) == 0
    assert main(["verify", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "PASS: max abs difference" in out and "layer 1" in out
