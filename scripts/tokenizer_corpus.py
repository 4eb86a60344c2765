"""Run the large version of tests/test_tokenizer_corpus.py: thousands of lines of real text through every layout.

The corpus is built from files this machine has (Python's sources and CJK test texts, /usr/share's licences,
package documentation, man pages and glibc locales; see the test module), and each layout of the tests'
tokenizer folders is compared with transformers.AutoTokenizer on the same folder, as singles, pairs, padded
and truncated batches. Prints the count of differing encodings per layout (an encoding differs when its keys
or any value differ, or when only one side raises) and exits 1 if any differs:

    python scripts/tokenizer_corpus.py                  # about 3,000 lines (fewer where sources are small)
    python scripts/tokenizer_corpus.py --lines 10000 --seed 1 --show 3
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import transformers  # noqa: E402
from test_tokenizer_corpus import LAYOUTS, add_layouts, batches, real_text  # noqa: E402
from tokenizer_data import make_tokenizer_folders  # noqa: E402

from minibert.tokenization import AutoTokenizer  # noqa: E402


def outcome(tokenizer: Any, *args: Any, **kwargs: Any) -> Any:
    """A call's keys (in order) and values, or the fact that it raised."""
    try:
        encoding = tokenizer(*args, **kwargs)
    except Exception:  # either side refusing is an outcome to compare
        return "raised"
    return list(encoding.items())


def calls(texts: list[str]) -> list[tuple[str, tuple[Any, ...], dict[str, Any]]]:
    """(kind, arguments, options) of every call to compare: singles, pairs, padded and truncated batches."""
    made = [("single", (text,), {}) for text in texts]
    made += [("pair", pair, {}) for pair in zip(texts, texts[7:] + texts[:7], strict=True)]
    for batch in batches(texts, 16):
        made += [
            ("padded", (batch,), {"padding": True}),
            ("padded", (batch, batch[::-1]), {"padding": "longest", "truncation": True, "max_length": 40}),
            ("truncated", (batch,), {"padding": "max_length", "truncation": True, "max_length": 24}),
            ("truncated", (batch, batch[::-1]), {"truncation": "only_second", "max_length": 48}),
        ]
    return made


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=3000, help="lines of real text (default 3000)")
    parser.add_argument("--seed", type=int, default=0, help="the sample's seed (default 0)")
    parser.add_argument("--show", type=int, default=0, help="print this many differing inputs per layout")
    args = parser.parse_args()
    logging.getLogger("transformers").setLevel(logging.ERROR)  # "sequence longer than the model's length"
    texts = real_text(args.lines, args.seed)
    todo = calls(texts)
    print(f"{len(texts)} lines, {len(todo)} calls per layout")
    print(f"{'layout':24}  {'class':22}  {'single':>7}  {'pair':>7}  {'padded':>7}  {'truncated':>9}")
    total = 0
    with tempfile.TemporaryDirectory() as root:
        folders = add_layouts(make_tokenizer_folders(Path(root) / "base"), Path(root))
        for layout in LAYOUTS:
            ours = AutoTokenizer.from_pretrained(folders[layout])
            theirs = transformers.AutoTokenizer.from_pretrained(folders[layout])
            counts = dict.fromkeys(("single", "pair", "padded", "truncated"), 0)
            shown = 0
            for kind, arguments, options in todo:
                if outcome(ours, *arguments, **options) != outcome(theirs, *arguments, **options):
                    counts[kind] += 1
                    if shown < args.show:
                        print(f"  differs ({kind}, {options}): {arguments[0]!r:.200}")
                        shown += 1
            total += sum(counts.values())
            cells = "  ".join(f"{counts[kind]:>{width}}" for kind, width in zip(counts, (7, 7, 7, 9), strict=True))
            print(f"{layout:24}  {type(ours).__name__:22}  {cells}")
    print(f"{total} differing encodings in all")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
