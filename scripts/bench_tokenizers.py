"""Time minibert's tokenizers against transformers' fast (Rust) tokenizers on the same texts.

    .venv/bin/python scripts/bench_tokenizers.py [--lines 20000] [--repeats 5] [--batch-size 64]

BERT is all-MiniLM-L6-v2's real WordPiece; RoBERTa (byte-level BPE) and ALBERT (Unigram) are trained
here on the test corpus with the ``tokenizers`` library. The texts are sentences drawn at random from
the words of that corpus. Each measurement alternates minibert and transformers and reports medians;
both sides are checked to give the same ids first.
"""

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import transformers
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from minibert.cli import default_checkpoint
from minibert.tokenization import AutoTokenizer

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "data" / "tokenizer_corpus.txt"


def make_texts(lines: int, seed: int = 0) -> list[str]:
    """``lines`` sentences of 4 to 40 words drawn from the test corpus: words recur, as in real text."""
    words = CORPUS.read_text(encoding="utf-8").split()
    rng = random.Random(seed)
    return [" ".join(rng.choices(words, k=rng.randint(4, 40))) for _ in range(lines)]


def make_unique_texts(lines: int, seed: int = 0) -> list[str]:
    """Sentences of made-up words that almost never recur, so per-word caches cannot help."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyzéèäöüßñçåø"
    return [
        " ".join("".join(rng.choices(letters, k=rng.randint(2, 12))) for _ in range(rng.randint(4, 40)))
        for _ in range(lines)
    ]


def train_roberta(folder: Path, texts: list[str]) -> Path:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    special = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    tokenizer.train_from_iterator(
        texts,
        trainers.BpeTrainer(vocab_size=4000, special_tokens=special, initial_alphabet=alphabet, show_progress=False),
    )
    tokenizer.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    return save(folder / "roberta", tokenizer, '{"tokenizer_class": "RobertaTokenizer"}')


def train_albert(folder: Path, texts: list[str]) -> Path:
    tokenizer = Tokenizer(models.Unigram())
    steps = [normalizers.Replace("``", '"'), normalizers.Replace("''", '"'), normalizers.NFKD()]
    tokenizer.normalizer = normalizers.Sequence([*steps, normalizers.StripAccents(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace()])
    tokenizer.decoder = decoders.Metaspace()
    special = ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer.train_from_iterator(
        texts, trainers.UnigramTrainer(vocab_size=2000, special_tokens=special, unk_token="<unk>", show_progress=False)
    )
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return save(folder / "albert", tokenizer, '{"tokenizer_class": "AlbertTokenizer"}')


def save(folder: Path, tokenizer: Tokenizer, config: str) -> Path:
    folder.mkdir()
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(config)
    return folder


def seconds(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def compare(runs: list[Callable[[], object]], repeats: int) -> list[float]:
    """Median seconds of each run, taking turns so that drifts in machine load hit all alike."""
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(repeats):
        for run, measured in zip(runs, times, strict=True):
            measured.append(seconds(run))
    return [statistics.median(measured) for measured in times]


def time_calls(
    ours, theirs, rust: Tokenizer, lines: list[str], batch_size: int, repeats: int
) -> dict[str, list[float]]:
    """Seconds of minibert, transformers and the bare Rust tokenizer for one text a call, then for batches."""
    batches = [lines[i : i + batch_size] for i in range(0, len(lines), batch_size)]
    options = {"padding": True, "truncation": True, "max_length": 128}
    one_a_call = [
        lambda: [ours(text) for text in lines],
        lambda: [theirs(text) for text in lines],
        lambda: [rust.encode(text) for text in lines],
    ]
    batched = [
        lambda: [ours(batch, **options) for batch in batches],
        lambda: [theirs(batch, **options) for batch in batches],
        lambda: [rust.encode_batch(batch) for batch in batches],
    ]
    return {"one text a call": compare(one_a_call, repeats), f"batches of {batch_size}": compare(batched, repeats)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    transformers.logging.set_verbosity_error()
    texts = make_texts(args.lines)
    workloads = {"corpus words": texts, "unique words": make_unique_texts(args.lines)}

    with tempfile.TemporaryDirectory() as tmp:
        training = CORPUS.read_text(encoding="utf-8").splitlines() + texts[:2000]
        folders = {
            "bert (MiniLM WordPiece, 30k)": default_checkpoint(),
            "roberta (byte-level BPE, 4k)": train_roberta(Path(tmp), training),
            "albert (Unigram, 2k)": train_albert(Path(tmp), training),
        }
        print(f"{args.lines} texts of 4-40 words per workload; medians of {args.repeats} alternating runs (seconds)")
        print("minibert vs transformers' fast tokenizer; 'rust' is its tokenizers backend alone, for scale")
        print(
            f"{'tokenizer':30} {'texts':>13} {'call':>16} {'minibert':>9} {'transformers':>13} {'ratio':>6} {'rust':>7}"
        )
        for name, folder in folders.items():
            ours = AutoTokenizer.from_pretrained(folder)
            if name.startswith("albert"):
                theirs = transformers.AlbertTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))
            else:
                theirs = transformers.AutoTokenizer.from_pretrained(folder)
            rust = Tokenizer.from_file(str(folder / "tokenizer.json"))
            for workload, lines in workloads.items():
                assert ours(lines[:500])["input_ids"] == theirs(lines[:500])["input_ids"], (name, workload)
                for call, (mine, reference, core) in time_calls(
                    ours, theirs, rust, lines, args.batch_size, args.repeats
                ).items():
                    print(
                        f"{name:30} {workload:>13} {call:>16} {mine:9.3f} {reference:13.3f} "
                        f"{mine / reference:5.2f}x {core:7.3f}"
                    )


if __name__ == "__main__":
    main()
