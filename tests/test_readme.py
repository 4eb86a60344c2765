"""The README's usage example runs as written."""

import re
import subprocess
import sys
from pathlib import Path


def test_readme_usage_example_runs(tmp_path):
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    example = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    result = subprocess.run([sys.executable, "-c", example], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "103 loaded" in result.stdout and "torch.Size([2, 5, 384])" in result.stdout
    assert (tmp_path / "my-copy" / "model.safetensors").exists()
