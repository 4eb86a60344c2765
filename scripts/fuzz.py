"""Run the property-based tests of tests/test_fuzz.py for longer than the test suite does.

Each test mutates a valid input (a safetensors header, a config.json, a sharded index, a tokenizer.json,
forward inputs) and checks that minibert either computes what transformers computes or raises one of its
own errors, within a time and a memory bound. The suite runs 200 examples of each; this runs many more,
with new random examples every time (a failure prints the smallest example hypothesis found):

    python scripts/fuzz.py                          # 5,000 examples of each test
    python scripts/fuzz.py --examples 50000 -k tokenizer
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=5000, help="examples per test (default 5000)")
    parser.add_argument("-k", dest="select", help="only the tests whose name matches, as pytest's -k")
    args = parser.parse_args()
    environment = {**os.environ, "MINIBERT_FUZZ_EXAMPLES": str(args.examples), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_fuzz.py"]
    if args.select:
        command += ["-k", args.select]
    return subprocess.call(command, env=environment, cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main())
