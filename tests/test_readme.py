"""The README's usage example runs as written."""

import re
import subprocess
import sys
from pathlib import Path


def python_blocks() -> list[str]:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", readme, re.S)


def run(example: str, folder: Path) -> str:
    result = subprocess.run([sys.executable, "-c", example], cwd=folder, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_readme_usage_example_runs(tmp_path):
    out = run(python_blocks()[0], tmp_path)
    assert "103 loaded" in out and "torch.Size([2, 5, 384])" in out
    assert (tmp_path / "my-copy" / "model.safetensors").exists()


def test_every_readme_example_runs(tmp_path):
    for example in python_blocks()[1:]:
        run(example, tmp_path)
