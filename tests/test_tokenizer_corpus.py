"""minibert's tokenizers give transformers' ids on real text nobody on the project wrote.

The corpus is built at test time from files every machine has: Python's own sources and CJK test texts,
the licences and package documentation of /usr/share, man pages in many languages, and the day and month
names of glibc's locales (written there as ``<U65E5>`` escapes). A seeded sample of a few hundred lines
runs through every tokenizer layout of tokenizer_data.py as singles, pairs, padded and truncated batches;
``scripts/tokenizer_corpus.py`` runs thousands.
"""

from __future__ import annotations

import gzip
import json
import pickle
import random
import re
import shutil
import sysconfig
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import transformers
from test_tokenizers import KINDS
from tokenizer_data import sentencepiece_model

from minibert.cli import main
from minibert.tokenization import AutoTokenizer, PreTrainedTokenizer, TokenizerError
from minibert.tokenization.auto import pipeline_differences

STDLIB = Path(sysconfig.get_paths()["stdlib"])
SHARE = Path("/usr/share")
LOCALE_ESCAPE = re.compile(r"<U([0-9A-Fa-f]{4,6})>")
MAX_LINE = 400  # characters: long lines are rare and only slow the pure-Python side down


def text_lines(path: Path) -> list[str]:
    """The lines of a text file (gzip-compressed too), undecodable bytes replaced; [] if unreadable."""
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile):
        return []
    return data.decode("utf-8", errors="replace").splitlines()


def locale_lines(path: Path) -> list[str]:
    """A glibc locale's lines with their ``<U0053>`` escapes decoded, keeping those that had any."""
    return [LOCALE_ESCAPE.sub(lambda m: chr(int(m[1], 16)), line) for line in text_lines(path) if "<U" in line]


# Each source: the files it reads (sorted, so that a seed picks the same ones on every run) and its reader.
SOURCES: dict[str, tuple[Callable[[], list[Path]], Callable[[Path], list[str]]]] = {
    "python-sources": (lambda: sorted(STDLIB.glob("*.py")), text_lines),
    "python-cjk-texts": (lambda: sorted((STDLIB / "test" / "cjkencodings").glob("*-utf8.txt")), text_lines),
    "python-test-data": (lambda: sorted((STDLIB / "test").glob("*.txt")), text_lines),
    "licences": (lambda: sorted((SHARE / "common-licenses").glob("*")), text_lines),
    "package-docs": (lambda: sorted((SHARE / "doc").glob("*/*")), text_lines),
    "man-pages": (lambda: sorted((SHARE / "man").glob("*/man*/*.gz")), text_lines),
    "locales": (lambda: sorted((SHARE / "i18n" / "locales").glob("*")), locale_lines),
}


def real_text(lines: int, seed: int = 0) -> list[str]:
    """About ``lines`` distinct non-empty lines, an equal share from each source this machine has, each share
    spread over as many of the source's files as it can (so as many languages as the locales and man pages have)."""
    rng = random.Random(seed)
    available = {name: files for name, (find, _) in SOURCES.items() if (files := [f for f in find() if f.is_file()])}
    share = -(-lines // max(len(available), 1))
    corpus: dict[str, None] = {}
    for name, files in available.items():
        read, picked = SOURCES[name][1], {}
        chosen = rng.sample(files, min(len(files), 2 * share))  # twice as many: some files hold no text
        per_file = -(-share // min(len(chosen), share))
        for path in chosen:
            candidates = sorted({line[:MAX_LINE] for line in read(path) if line.strip()})
            picked |= dict.fromkeys(rng.sample(candidates, min(len(candidates), per_file)))
            if len(picked) >= share:
                break
        corpus |= dict.fromkeys(list(picked)[:share])
    return list(corpus)


def batches(texts: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(texts), size):
        yield texts[start : start + size]


# -- the layouts ---------------------------------------------------------------------------------------------------

# tokenizer_data.py's folders, one of each layout (the real all-MiniLM-L6-v2 folder among them), and below,
# those where transformers 5 rebuilds steps that tokenizer.json describes otherwise, and DeBERTa-v2's.
LAYOUTS = [*KINDS, "bert-lowercased", "albert-over-nfkc", "deberta-v3", "deberta-json", "modernbert"]
# Folders whose tokenizer.json transformers 5 does not run whole: the steps its class builds differ from the file's.
REBUILT = {
    "bert-lowercased": "normalizer",  # a cased tokenizer.json; tokenizer_config.json leaves do_lower_case at True
    "xlm-roberta": "normalizer",  # tokenizers' SentencePieceUnigramTokenizer: Nmt, NFKC (XLM-R has neither)
    "albert-over-nfkc": "normalizer",  # the same file named ALBERT's: NFKD, accents stripped, lowercase
}
XLMR_SPECIAL = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}
XLMR_SPECIAL |= {"cls_token": "<s>", "sep_token": "</s>", "mask_token": "<mask>"}


def copy_folder(source: Path, target: Path, config: dict, model_type: str | None = None) -> Path:
    """``source``'s files in ``target``, with a tokenizer_config.json of ``config`` (and config.json's model_type)."""
    shutil.copytree(source, target)
    (target / "tokenizer_config.json").write_text(json.dumps(config | {"model_max_length": 64}))
    if model_type is not None:
        (target / "config.json").write_text(json.dumps({"model_type": model_type}))
    return target


def add_layouts(made: dict[str, Path], root: Path) -> dict[str, Path]:
    """tokenizer_data.py's folders (``made``) and, written in ``root``, the layouts of this file built from them."""
    made = dict(made)
    made["bert-lowercased"] = copy_folder(
        made["wordpiece"], root / "bert-lowercased", {"tokenizer_class": "BertTokenizer"}
    )
    albert = {"tokenizer_class": "AlbertTokenizer"} | XLMR_SPECIAL
    made["albert-over-nfkc"] = copy_folder(made["sentencepiece-unigram"], root / "albert-over-nfkc", albert)
    # ModernBERT's folders get transformers' generic class, whatever tokenizer_class they name.
    made["modernbert"] = copy_folder(
        made["bpe"], root / "modernbert", {"tokenizer_class": "RobertaTokenizer"}, "modernbert"
    )
    # DeBERTa-v3's layout (spm.model, no class named, config.json's model_type), then as transformers saves it.
    pieces = {"pad_piece": "[PAD]", "bos_piece": "[CLS]", "eos_piece": "[SEP]", "unk_piece": "[UNK]"}
    deberta = made["deberta-v3"] = root / "deberta-v3"
    deberta.mkdir()
    (deberta / "spm.model").write_bytes(sentencepiece_model(pad_id=0, bos_id=1, eos_id=2, unk_id=3, **pieces))
    (deberta / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False, "model_max_length": 64}))
    (deberta / "config.json").write_text(json.dumps({"model_type": "deberta-v2"}))
    transformers.AutoTokenizer.from_pretrained(deberta).save_pretrained(root / "deberta-json")
    made["deberta-json"] = root / "deberta-json"
    return made


@pytest.fixture(scope="module")
def folders(tokenizer_folders, tmp_path_factory) -> dict[str, Path]:
    return add_layouts(tokenizer_folders, tmp_path_factory.mktemp("corpus-tokenizers"))


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return real_text(300)


def same(ours: PreTrainedTokenizer, theirs, *args, **kwargs) -> bool:
    """Whether both give the same keys (in order) and values, or both refuse the call."""
    try:
        expected = theirs(*args, **kwargs)
    except Exception:  # the Rust library refused (a truncation it cannot make)
        with pytest.raises(TokenizerError):
            ours(*args, **kwargs)
        return True
    got = ours(*args, **kwargs)
    return list(got) == list(expected) and got == dict(expected)


# -- the corpus ----------------------------------------------------------------------------------------------------


def test_the_corpus_is_real_multilingual_text(corpus):
    """Enough lines, and several scripts where this machine has Python's CJK test texts or glibc's locales."""
    assert len(corpus) >= 250 and len(set(corpus)) == len(corpus)
    scripts = {unicodedata.name(char, "?").split()[0] for line in corpus for char in line if ord(char) > 0x2FF}
    if any(SOURCES["python-cjk-texts"][0]()):
        assert {"CJK", "HANGUL", "HIRAGANA"} <= scripts
    if any(SOURCES["locales"][0]()):  # a few hundred languages: a sample meets several scripts
        assert len(scripts & {"CYRILLIC", "ARABIC", "GREEK", "DEVANAGARI", "BENGALI", "THAI", "ETHIOPIC"}) >= 3


def test_the_corpus_is_the_same_on_every_run():
    assert real_text(50, seed=3) == real_text(50, seed=3) != real_text(50, seed=4)


@pytest.mark.parametrize("kind", LAYOUTS)
def test_corpus_lines_as_singles_and_pairs(pair_of, corpus, kind):
    ours, theirs = pair_of(kind)
    assert [text for text in corpus if not same(ours, theirs, text)] == []
    pairs = list(zip(corpus, corpus[7:] + corpus[:7], strict=True))
    assert [pair for pair in pairs if not same(ours, theirs, *pair)] == []


@pytest.mark.parametrize("kind", LAYOUTS)
def test_corpus_in_padded_and_truncated_batches(pair_of, corpus, kind):
    ours, theirs = pair_of(kind)
    for batch in batches(corpus, 16):
        other = batch[::-1]
        assert same(ours, theirs, batch, padding=True)
        assert same(ours, theirs, batch, other, padding="longest", truncation="longest_first", max_length=40)
        assert same(ours, theirs, batch, padding="max_length", truncation=True, max_length=24)
        assert same(ours, theirs, batch, other, truncation="only_second", max_length=48)


# -- rebuilt pipelines ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(REBUILT))
def test_rebuilt_pipelines_say_so_and_the_file_is_an_option(pair_of, folders, corpus, kind):
    """By default transformers' ids; pipeline_from="tokenizer.json" gives its TokenizersBackend's, the file whole."""
    ours, _ = pair_of(kind)
    as_written = AutoTokenizer.from_pretrained(folders[kind], pipeline_from="tokenizer.json")
    backend = transformers.TokenizersBackend.from_pretrained(folders[kind])  # runs tokenizer.json whole
    assert type(as_written) is type(ours)
    assert ours.pipeline_source.startswith(f"rebuilt as transformers 5's {type(ours).__name__} does")
    assert as_written.pipeline_source.startswith("the folder's tokenizer.json whole")
    differ = [text for text in corpus if ours(text)["input_ids"] != as_written(text)["input_ids"]]
    assert differ, "the two pipelines should part somewhere on the corpus"
    assert [text for text in corpus if as_written(text)["input_ids"] != backend(text)["input_ids"]] == []
    assert REBUILT[kind] in pipeline_differences(ours) and REBUILT[kind] in pipeline_differences(as_written)
    assert pickle.loads(pickle.dumps(as_written))(differ[:5]) == as_written(differ[:5])


def test_one_pipeline_only_has_no_differences(pair_of, folders):
    """A generic class runs the file (there is nothing to rebuild), and classic files have no file to run."""
    assert pipeline_differences(pair_of("sentencepiece-unigram")[0]) == {}
    assert pipeline_differences(pair_of("minilm")[0]) == {}  # the rebuilt steps act as the file's
    with pytest.raises(TokenizerError, match="tokenizer.json as it is, which is missing"):
        AutoTokenizer.from_pretrained(folders["wordpiece-vocab-txt"], pipeline_from="tokenizer.json")
    with pytest.raises(TokenizerError, match="pipeline_from must be one of"):
        AutoTokenizer.from_pretrained(folders["minilm"], pipeline_from="file")


def test_inspect_shows_where_the_pipelines_differ(checkpoint_dir, folders, tmp_path, capsys):
    """A tiny BERT checkpoint with the cased tokenizer.json that transformers 5 lowercases (``bert-lowercased``)."""
    folder = tmp_path / "checkpoint"
    shutil.copytree(checkpoint_dir("BertModel", "bert-a"), folder)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(folders["bert-lowercased"] / name, folder / name)
    assert main(["inspect", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "tokenizer   BertTokenizer, rebuilt as transformers 5's BertTokenizer does, around tokenizer.json" in out
    assert "tokenizer   normalizer differs from tokenizer.json on 'Hello, World!" in out
    assert main(["inspect", str(folder), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)["tokenizer"]
    assert (
        summary["class"] == "BertTokenizer" and {"ids", "normalizer"} <= summary["differs_from_tokenizer_json"].keys()
    )
    assert main(["inspect", str(checkpoint_dir("BertModel", "bert-a")), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tokenizer"] is None  # no tokenizer files: nothing to show


# -- the class of each folder --------------------------------------------------------------------------------------

# model_type -> the folder whose vocabulary a checkpoint of that type ships (with config.json's model_type alone).
MODEL_TYPES = {
    "bert": "wordpiece",
    "distilbert": "wordpiece",
    "electra": "wordpiece",
    "nomic_bert": "wordpiece",
    "mpnet": "mpnet",
    "roberta": "bpe",
    "modernbert": "bpe",
    "albert": "unigram",
    "xlm-roberta": "sentencepiece-unigram",
    "camembert": "sentencepiece-unigram",
    "gte": "sentencepiece-unigram",
    "deberta-v2": "deberta-v3",
}
# tokenizer_class -> a folder with its vocabulary.
TOKENIZER_CLASSES = {
    "BertTokenizer": "wordpiece",
    "BertTokenizerFast": "wordpiece",
    "ElectraTokenizerFast": "wordpiece",
    "DistilBertTokenizer": "wordpiece",
    "MPNetTokenizerFast": "mpnet",
    "RobertaTokenizer": "bpe",
    "AlbertTokenizerFast": "unigram",
    "XLMRobertaTokenizer": "sentencepiece-unigram",
    "CamembertTokenizer": "sentencepiece-unigram",
    "DebertaV2Tokenizer": "deberta-v3",
    "PreTrainedTokenizerFast": "bpe",
    "TokenizersBackend": "unigram",
}


NAMED_TOGETHER = [("bert", "RobertaTokenizer", "bpe"), ("modernbert", "BertTokenizer", "wordpiece")]
NAMED_TOGETHER += [("bert", "NoSuchTokenizer", "wordpiece"), ("albert", "BertTokenizer", "wordpiece")]


@pytest.mark.parametrize(
    "model_type, tokenizer_class, layout",
    [(model_type, None, layout) for model_type, layout in MODEL_TYPES.items()]
    + [(None, name, layout) for name, layout in TOKENIZER_CLASSES.items()]
    + NAMED_TOGETHER,
)
def test_auto_tokenizer_picks_transformers_class(folders, tmp_path, corpus, model_type, tokenizer_class, layout):
    """Every model_type and tokenizer_class minibert supports, alone or named together, as transformers picks."""
    folder = tmp_path / "folder"
    shutil.copytree(folders[layout], folder)
    config = {"model_max_length": 64} | ({} if tokenizer_class is None else {"tokenizer_class": tokenizer_class})
    if layout == "sentencepiece-unigram":
        config |= XLMR_SPECIAL
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    if model_type is not None:
        (folder / "config.json").write_text(json.dumps({"model_type": model_type}))
    ours, theirs = AutoTokenizer.from_pretrained(folder), transformers.AutoTokenizer.from_pretrained(folder)
    theirs_name = type(theirs).__name__.replace("TokenizersBackend", "PreTrainedTokenizer")
    assert (type(ours).__name__, ours.model_input_names) == (theirs_name, tuple(theirs.model_input_names))
    texts = corpus[:40]
    assert same(ours, theirs, texts) and same(ours, theirs, texts, texts[::-1], padding=True)


def test_config_json_names_the_class_where_tokenizer_config_json_does_not(folders, tmp_path, corpus):
    """transformers' AutoTokenizer reads config.json's tokenizer_class too; a class minibert lacks is said so."""
    shutil.copytree(folders["wordpiece"], tmp_path / "folder")
    folder = tmp_path / "folder"
    (folder / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 64}))
    for named, expected in (
        ("DistilBertTokenizerFast", "DistilBertTokenizer"),
        ("NoSuchTokenizer", "TokenizersBackend"),
    ):
        (folder / "config.json").write_text(json.dumps({"model_type": "bert", "tokenizer_class": named}))
        ours, theirs = AutoTokenizer.from_pretrained(folder), transformers.AutoTokenizer.from_pretrained(folder)
        assert type(theirs).__name__ == expected
        assert type(ours).__name__ == expected.replace("TokenizersBackend", "PreTrainedTokenizer")
        assert same(ours, theirs, corpus[:40], padding=True)
    assert ours.pipeline_source.endswith("(minibert has no NoSuchTokenizer: transformers 5's may build other steps)")
