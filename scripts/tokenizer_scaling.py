"""Time one text of 10 KB, 100 KB and 1 MB through each tokenizer layout: the time must grow linearly.

    .venv/bin/python scripts/tokenizer_scaling.py [--sizes 10000 100000 1000000] [--layouts bert roberta]

Two texts per size: a single word without spaces (letters of the test corpus, run together) and a line
of real words (the corpus's words, space-separated). Each layout is read from the folders of
tests/tokenizer_data.py (the real all-MiniLM-L6-v2 for WordPiece); a "x per 10x" column gives the growth
of each step up in size, about 10 when the time is linear. transformers' time is shown for scale.
"""

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import transformers

from minibert.tokenization import AutoTokenizer

TESTS = Path(__file__).resolve().parent.parent / "tests"
LAYOUTS = {
    "bert": "minilm",
    "roberta": "bpe",
    "albert": "unigram",
    "xlm-roberta": "xlm-roberta-spm",
    "deberta-v3": "deberta-v3",
}


def make_texts(size: int, seed: int = 0) -> dict[str, str]:
    """A word of ``size`` characters without spaces, and a line of ``size`` characters of real words."""
    words = (TESTS / "data" / "tokenizer_corpus.txt").read_text(encoding="utf-8").split()
    rng = random.Random(seed)
    line = " ".join(rng.choices(words, k=size // 4))[:size]
    word = "".join(rng.choices(words, k=size // 4))[:size]
    return {"one word": word, "words": line}


def seconds(tokenizer, text: str) -> float:
    start = time.perf_counter()
    tokenizer(text)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--layouts", nargs="+", choices=list(LAYOUTS), default=list(LAYOUTS))
    parser.add_argument("--no-transformers", action="store_true", help="time minibert alone")
    args = parser.parse_args()
    transformers.logging.set_verbosity_error()
    sys.path.insert(0, str(TESTS))
    from tokenizer_data import make_tokenizer_folders, sentencepiece_model

    texts = {size: make_texts(size) for size in args.sizes}
    with tempfile.TemporaryDirectory() as tmp:
        folders = make_tokenizer_folders(Path(tmp) / "folders")
        deberta = folders["deberta-v3"] = Path(tmp) / "deberta-v3"
        deberta.mkdir()
        pieces = {"pad_piece": "[PAD]", "bos_piece": "[CLS]", "eos_piece": "[SEP]", "unk_piece": "[UNK]"}
        (deberta / "spm.model").write_bytes(sentencepiece_model(pad_id=0, bos_id=1, eos_id=2, unk_id=3, **pieces))
        (deberta / "config.json").write_text('{"model_type": "deberta-v2"}')
        print("seconds for one text; 'x per 10x': minibert's growth over the size before (linear: about 10)")
        print(f"{'layout':12} {'text':9} {'characters':>10} {'minibert':>9} {'x per 10x':>9} {'transformers':>12}")
        for layout in args.layouts:
            ours = AutoTokenizer.from_pretrained(folders[LAYOUTS[layout]])
            theirs = (
                None if args.no_transformers else transformers.AutoTokenizer.from_pretrained(folders[LAYOUTS[layout]])
            )
            for kind in ("one word", "words"):
                before = None
                for size in args.sizes:
                    text = texts[size][kind]
                    mine = seconds(ours, text)
                    growth = "" if before is None else f"{mine / before:8.1f}x"
                    reference = "" if theirs is None else f"{seconds(theirs, text):12.3f}"
                    print(f"{layout:12} {kind:9} {size:10d} {mine:9.3f} {growth:>9} {reference:>12}", flush=True)
                    before = mine


if __name__ == "__main__":
    main()
