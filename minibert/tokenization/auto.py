"""AutoTokenizer: the tokenizer class a folder's files call for, picked as ``transformers.AutoTokenizer`` does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from minibert.errors import CheckpointNotFoundError, TokenizerError, first_line
from minibert.tokenization.families import (
    AlbertTokenizer,
    BertTokenizer,
    CamembertTokenizer,
    DebertaV2Tokenizer,
    DistilBertTokenizer,
    MPNetTokenizer,
    RobertaTokenizer,
    XLMRobertaTokenizer,
)
from minibert.tokenization.files import SENTENCEPIECE_FILES, TOKENIZER_FILE, TokenizerFiles, resolve_tokenizer_folder
from minibert.tokenization.tokenizer import PreTrainedTokenizer

# tokenizer_config.json's tokenizer_class (less "Fast"), resolved as transformers 5 resolves it: ELECTRA's
# name is an alias of BertTokenizer there, and the generic classes run tokenizer.json as it is.
TOKENIZER_CLASSES: dict[str, type[PreTrainedTokenizer]] = {
    "BertTokenizer": BertTokenizer,
    "ElectraTokenizer": BertTokenizer,
    "DistilBertTokenizer": DistilBertTokenizer,
    "MPNetTokenizer": MPNetTokenizer,
    "RobertaTokenizer": RobertaTokenizer,
    "AlbertTokenizer": AlbertTokenizer,
    "XLMRobertaTokenizer": XLMRobertaTokenizer,
    "CamembertTokenizer": CamembertTokenizer,
    "DebertaV2Tokenizer": DebertaV2Tokenizer,
    "PreTrainedTokenizer": PreTrainedTokenizer,
    "TokenizersBackend": PreTrainedTokenizer,
}
# config.json's model_type, as transformers' TOKENIZER_MAPPING_NAMES (models/auto/tokenization_auto.py):
# DistilBERT's is BertTokenizer there, so a DistilBERT folder returns token types unless its
# tokenizer_config.json names DistilBertTokenizer.
MODEL_TYPE_CLASSES: dict[str, type[PreTrainedTokenizer]] = {
    "bert": BertTokenizer,
    "distilbert": BertTokenizer,
    "electra": BertTokenizer,
    "nomic_bert": BertTokenizer,
    "mpnet": MPNetTokenizer,
    "roberta": RobertaTokenizer,
    "albert": AlbertTokenizer,
    "xlm-roberta": XLMRobertaTokenizer,
    "gte": XLMRobertaTokenizer,
    "camembert": CamembertTokenizer,
    "deberta-v2": DebertaV2Tokenizer,
    "modernbert": PreTrainedTokenizer,
}
# transformers' MODELS_WITH_INCORRECT_HUB_TOKENIZER_CLASS, among minibert's model types: their folders get the
# generic class (tokenizer.json whole) whatever tokenizer_class they name.
GENERIC_MODEL_TYPES = frozenset({"modernbert"})
# Without a class named: the one that reads the classic files the folder has.
CLASSIC_FILE_CLASSES: dict[str, type[PreTrainedTokenizer]] = {
    "vocab.txt": BertTokenizer,
    "vocab.json": RobertaTokenizer,
    SENTENCEPIECE_FILES[0]: AlbertTokenizer,  # spiece.model
    SENTENCEPIECE_FILES[1]: XLMRobertaTokenizer,  # sentencepiece.bpe.model
}


class AutoTokenizer:
    """Picks the tokenizer class for a folder, as ``transformers.AutoTokenizer`` does."""

    def __init__(self) -> None:
        raise TypeError("AutoTokenizer is a dispatcher: use AutoTokenizer.from_pretrained(...)")

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | Path,
        *,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        pipeline_from: str = "transformers",
    ) -> PreTrainedTokenizer:
        """The tokenizer of a local folder or a Hub repository, of the class ``tokenizer_class`` picks.

        The folder or id is positional or, as in transformers, ``pretrained_model_name_or_path=``. By default
        the steps are those transformers 5 builds for that class; ``pipeline_from="tokenizer.json"`` runs the
        folder's file whole (``tokenizer.pipeline_source`` says which ran; ``pipeline_differences`` where they part).
        """
        folder = resolve_tokenizer_folder(pretrained_model_name_or_path, revision=revision, cache_dir=cache_dir)
        files = TokenizerFiles.read(folder)
        tokenizer = tokenizer_class(files).from_files(files, pipeline_from)
        if (named := named_class(files)) is not None and named not in TOKENIZER_CLASSES:
            tokenizer.pipeline_source += f" (minibert has no {named}: transformers 5's may build other steps)"
        return tokenizer


def tokenizer_class(files: TokenizerFiles) -> type[PreTrainedTokenizer]:
    """The class tokenizer_config.json's ``tokenizer_class`` names (or config.json's), else config.json's
    ``model_type``; else tokenizer.json as it is (transformers' TokenizersBackend), else the class that reads
    the classic files of a folder that names no class.

    As in transformers' AutoTokenizer.from_pretrained, a ModernBERT folder gets the generic class whatever it
    names, and so does a folder naming a class minibert does not have, even beside a model type it knows. A
    class whose model the files do not hold is passed over: Chinese ALBERT checkpoints ship a BERT
    ``vocab.txt``, so they get the BertTokenizer.
    """
    named = named_class(files)
    unknown_class = named is not None and named not in TOKENIZER_CLASSES
    if files.tokenizer_json is not None and (files.model_type in GENERIC_MODEL_TYPES or unknown_class):
        return PreTrainedTokenizer
    for table, name in ((TOKENIZER_CLASSES, named), (MODEL_TYPE_CLASSES, files.model_type)):
        candidate = table.get(name) if name is not None else None
        if candidate is not None and reads(candidate, files):
            return candidate
    if files.tokenizer_json is not None:
        return PreTrainedTokenizer
    # A SentencePiece model's steps depend on the model it serves: T5's are not ALBERT's, say.
    if unknown_class or (files.sentencepiece is not None and (named or files.model_type)):
        raise TokenizerError(
            f"{files.vocab_path}: without a tokenizer.json, the tokenizer of tokenizer_class {named!r}, model_type "
            f"{files.model_type!r} is not supported (supported: tokenizer_class {', '.join(TOKENIZER_CLASSES)}; "
            f"model_type {', '.join(MODEL_TYPE_CLASSES)})"
        )
    for name, candidate in CLASSIC_FILE_CLASSES.items():
        if (files.folder / name).is_file() and reads(candidate, files):
            return candidate
    raise TokenizerError(
        f"{files.vocab_path}: a {files.model_kind} model is not supported (supported: WordPiece, BPE, Unigram)"
    )


def named_class(files: TokenizerFiles) -> str | None:
    """The tokenizer class the folder names, less "Fast": ``"BertTokenizerFast"`` -> ``"BertTokenizer"``."""
    named = files.config.get("tokenizer_class") or files.model_tokenizer_class
    return None if named is None else str(named).removesuffix("Fast")


def reads(candidate: type[PreTrainedTokenizer], files: TokenizerFiles) -> bool:
    """Whether the class runs the model the files hold (the generic class: any model of a tokenizer.json)."""
    if not candidate.model_kind:
        return files.tokenizer_json is not None
    return candidate.model_kind == files.model_kind


# Texts that tell the stages of two pipelines apart: compatibility forms (the ligature fi, superscripts, the
# long s, fullwidth and halfwidth forms), accents, case, scripts, spaces and quotes.
PROBES = (
    "Hello, World! Ünïcödé façade naïve Straße İstanbul ΟΔΟΣ",
    "\ufb01 \u00b9 \u00b3 \u00aa \u00b5 \u017f \u2460 \uff21\uff54 \uff76\uff80\uff76\uff85 \u337f \u2026 \u203c",
    "한국어 텍스트 日本語のテキスト 中文文本 ภาษาไทย العربية हिन्दी",
    "``quoted'' \"double\"   spaces\ttab\nnewline\u3000ideographic\u00a0no-break",
    "e\u0301 combining, zero\u200bwidth, emoji \U0001f44d\U0001f3fd \u2603 and digits 12345",
)


def tokenizer_summary(folder: Path) -> dict[str, Any] | None:
    """What ``minibert inspect`` shows of a folder's tokenizer: its class, where its steps come from, and where
    they part from the folder's tokenizer.json; None for a folder without tokenizer files."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        differences = pipeline_differences(tokenizer)
    except CheckpointNotFoundError:
        return None
    except TokenizerError as error:
        return {"error": first_line(error)}
    return {
        "class": type(tokenizer).__name__,
        "pipeline_source": tokenizer.pipeline_source,
        "differs_from_tokenizer_json": differences,
    }


def pipeline_differences(tokenizer: PreTrainedTokenizer) -> dict[str, str]:
    """Stage -> where the steps transformers 5 builds and the folder's tokenizer.json part, on ``PROBES``.

    Each stage gets the same input on both sides (the normalizer's output of transformers' steps, say), so a
    stage is listed only where it acts differently itself; ``ids`` says whether the whole differs. Empty where
    there is one pipeline only (a generic class, or a folder without tokenizer.json). A cased tokenizer.json
    that transformers lowercases: ``{"ids": ..., "normalizer": "'Hello, ...': 'hello, ...' (transformers) vs
    'Hello, ...' (tokenizer.json)"}``.
    """
    files = tokenizer.files
    if files is None or files.tokenizer_json is None or not tokenizer.rebuilds:
        return {}
    other = type(tokenizer).from_files(
        files, "tokenizer.json" if tokenizer.pipeline_from == "transformers" else "transformers"
    )
    rebuilt, written = (tokenizer, other) if tokenizer.pipeline_from == "transformers" else (other, tokenizer)

    def words(text: str) -> list[str]:
        return rebuilt.pre_tokenizer(rebuilt.normalize(text), True)

    stages: dict[str, Any] = {
        "ids": lambda t, text: t(text)["input_ids"],
        "normalizer": lambda t, text: t.normalize(text),
        "pre_tokenizer": lambda t, text: t.pre_tokenizer(rebuilt.normalize(text), True),
        "model": lambda t, text: [t.model(word) for word in words(text)],
        "decoder": lambda t, text: t.decoder(rebuilt.tokenize(text)),
        "post_processor": lambda t, text: [t.template.apply([7, 8], None, True), t.template.apply([7], [9], True)],
        "added_tokens": lambda t, text: sorted(map(repr, t.added_tokens)),
    }
    differences = {}
    for stage, run in stages.items():
        for text in PROBES:
            if (one := run(rebuilt, text)) != (two := run(written, text)):
                one, two = from_first_difference(one, two)
                differences[stage] = f"{shorten(text)}: {one} (transformers) vs {two} ({TOKENIZER_FILE})"
                break
    return differences


def from_first_difference(mine: Any, theirs: Any) -> tuple[str, str]:
    """Two strings or lists shown from where they first differ: ``[1, 2, 3], [1, 5]`` -> ``'from 1: [2, 3]'``."""
    if not (isinstance(mine, str | list) and type(mine) is type(theirs)):
        return shorten(mine), shorten(theirs)
    start = next((i for i, (a, b) in enumerate(zip(mine, theirs, strict=False)) if a != b), min(len(mine), len(theirs)))
    prefix = f"from {start}: " if start else ""
    return prefix + shorten(mine[start:]), prefix + shorten(theirs[start:])


def shorten(value: Any, width: int = 60) -> str:
    """``repr(value)``, cut to ``width`` characters."""
    shown = repr(value)
    return shown if len(shown) <= width else shown[: width - 3] + "..."
