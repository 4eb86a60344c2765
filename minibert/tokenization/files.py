"""A tokenizer folder: finding it (a local path, or a Hub id through its cache) and reading its files once.

``TokenizerFiles`` holds what the folder says: ``tokenizer.json`` (every stage's spec), the configuration
files over one another, and which model the files hold; each later stage is built from it, and a
tokenizer pickles as it. Without ``tokenizer.json``, the vocabulary is in the classic files: ``vocab.txt``
(WordPiece), ``vocab.json`` + ``merges.txt`` (BPE) or a SentencePiece model (Unigram).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from minibert import files as safe_files
from minibert import hub
from minibert.errors import CheckpointNotFoundError, TokenizerError
from minibert.tokenization.sentencepiece_model import SentencePieceModel

TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"
MODEL_CONFIG_FILE = "config.json"
# ALBERT's and T5's name, then XLM-R's and CamemBERT's (a Unigram model in spite of its name), then DeBERTa-v2's.
SENTENCEPIECE_FILES = ("spiece.model", "sentencepiece.bpe.model", "spm.model")
# tokenizer_config.json's switches, which must be true or false (or absent, or null: the class's default).
FLAGS = (
    "do_lower_case",
    "strip_accents",
    "tokenize_chinese_chars",
    "add_prefix_space",
    "keep_accents",
    "clean_up_tokenization_spaces",
    "split_by_punct",
)
# A folder needs one of these (or the pair vocab.json + merges.txt); the others only configure.
VOCAB_FILES = (TOKENIZER_FILE, "vocab.txt", "vocab.json", "merges.txt", *SENTENCEPIECE_FILES)


def resolve_tokenizer_folder(
    name_or_path: str | Path, *, revision: str | None = None, cache_dir: str | Path | None = None
) -> Path:
    """A local folder as it is; a Hub id's tokenizer files fetched into (or found in) the Hub cache."""
    if hub.is_local(name_or_path):
        folder = Path(name_or_path).expanduser()
        if not folder.is_dir():
            raise CheckpointNotFoundError(f"{folder}: no such tokenizer folder")
        return folder
    repo_id = str(name_or_path)
    fetched = [
        hub.hub_download(repo_id, name, revision, cache_dir)
        for name in (TOKENIZER_CONFIG_FILE, SPECIAL_TOKENS_MAP_FILE, MODEL_CONFIG_FILE, TOKENIZER_FILE)
    ]
    if fetched[-1] is None:  # no tokenizer.json: the classic vocabulary files
        fetched += [hub.hub_download(repo_id, name, revision, cache_dir) for name in VOCAB_FILES[1:]]
    paths = [path for path in fetched if path is not None]
    if not any(path.name in VOCAB_FILES for path in paths):
        raise CheckpointNotFoundError(
            f"Hub repository {repo_id!r} (revision {revision or 'main'}) has none of the tokenizer files "
            f"{', '.join(VOCAB_FILES)}, or they are not in the local cache while HF_HUB_OFFLINE is set"
        )
    return paths[0].parent


def read_json(path: Path, limit: int | None = None) -> dict[str, Any]:
    """A JSON object from a file of the folder (see ``minibert.files``); a TokenizerError naming the file if not."""
    value = safe_files.read_json(path, path.parent, TokenizerError, limit)
    if not isinstance(value, dict):
        raise TokenizerError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def read_text(path: Path) -> str:
    """A vocabulary text file of the folder (vocab.txt, merges.txt), bounded as ``minibert.files`` bounds it."""
    return safe_files.read_text(path, path.parent, TokenizerError, safe_files.MAX_VOCABULARY_BYTES)


@dataclass(frozen=True)
class TokenizerFiles:
    """The files of a tokenizer folder, read once."""

    folder: Path
    tokenizer_json: dict[str, Any] | None
    config: dict[str, Any]  # tokenizer_config.json, with special_tokens_map.json over it
    model_type: str | None  # config.json's, if there is one
    sentencepiece: SentencePieceModel | None = None  # read only where no other file holds the vocabulary
    # config.json's tokenizer_class, which transformers' AutoTokenizer reads where tokenizer_config.json has none
    model_tokenizer_class: str | None = None

    @classmethod
    def read(cls, folder: Path) -> TokenizerFiles:
        def optional(name: str, limit: int | None = None) -> dict[str, Any]:
            return read_json(folder / name, limit) if (folder / name).is_file() else {}

        tokenizer_json = optional(TOKENIZER_FILE, safe_files.MAX_VOCABULARY_BYTES) or None
        if tokenizer_json is not None and not isinstance(tokenizer_json.get("model"), dict):
            raise TokenizerError(f"{folder / TOKENIZER_FILE}: 'model' must be an object (its vocabulary and type)")
        config = optional(TOKENIZER_CONFIG_FILE) | optional(SPECIAL_TOKENS_MAP_FILE)
        wrong = next((name for name in FLAGS if not isinstance(config.get(name), bool | None)), None)
        if wrong is not None:  # bool("false") is True: a string would silently mean the opposite
            raise TokenizerError(
                f"{folder / TOKENIZER_CONFIG_FILE}: {wrong} must be true or false, got {config[wrong]!r}"
            )
        model_config = optional(MODEL_CONFIG_FILE)
        model_type, model_tokenizer_class = model_config.get("model_type"), model_config.get("tokenizer_class")
        for name, value in (("model_type", model_type), ("tokenizer_class", model_tokenizer_class)):
            if not isinstance(value, str | None):
                raise TokenizerError(f"{folder / MODEL_CONFIG_FILE}: {name} must be a string, got {value!r}")
        files = cls(folder, tokenizer_json, config, model_type, model_tokenizer_class=model_tokenizer_class)
        if files.model_kind is None:
            model_file = next((folder / name for name in SENTENCEPIECE_FILES if (folder / name).is_file()), None)
            if model_file is None:
                raise CheckpointNotFoundError(
                    f"{folder}: no tokenizer files (looked for tokenizer.json, vocab.txt, vocab.json + merges.txt, "
                    f"{' and '.join(SENTENCEPIECE_FILES)})"
                )
            files = replace(files, sentencepiece=SentencePieceModel.read(model_file))
        return files

    def names(self) -> list[str]:
        """The folder's tokenizer files, for messages."""
        names = dict.fromkeys((TOKENIZER_FILE, TOKENIZER_CONFIG_FILE, SPECIAL_TOKENS_MAP_FILE, *VOCAB_FILES))
        return [name for name in names if (self.folder / name).is_file()]

    @property
    def model_kind(self) -> str | None:
        """The model the files hold: WordPiece, BPE or Unigram (None for none)."""
        if self.tokenizer_json is not None:
            return model_type(self.tokenizer_json.get("model", {}))
        if (self.folder / "vocab.txt").is_file():
            return "WordPiece"
        if (self.folder / "vocab.json").is_file() and (self.folder / "merges.txt").is_file():
            return "BPE"
        return None if self.sentencepiece is None else self.sentencepiece.model_kind

    @property
    def vocab_path(self) -> Path:
        """The file the vocabulary is read from, for error messages."""
        if self.tokenizer_json is not None:
            return self.folder / TOKENIZER_FILE
        if self.sentencepiece is not None:
            return self.sentencepiece.path
        return self.folder / ("vocab.txt" if (self.folder / "vocab.txt").is_file() else "vocab.json")

    def wordpiece_vocab(self) -> dict[str, int]:
        """tokenizer.json's vocabulary, else vocab.txt's: one token a line, its id the line number."""
        if self.tokenizer_json is not None:
            return self.tokenizer_json["model"]["vocab"]
        lines = read_text(self.folder / "vocab.txt").split("\n")
        if lines[-1] == "":  # the newline that ends the last line
            lines.pop()
        return {token: id for id, token in enumerate(lines)}

    def bpe_vocab(self) -> tuple[dict[str, int], list[Any]]:
        """tokenizer.json's vocabulary and merges, else vocab.json's and merges.txt's (``"a b"`` a line)."""
        if self.tokenizer_json is not None:
            return self.tokenizer_json["model"]["vocab"], self.tokenizer_json["model"]["merges"]
        lines = read_text(self.folder / "merges.txt").split("\n")
        merges = [line for line in lines if line and not line.startswith("#version")]
        return read_json(self.folder / "vocab.json", safe_files.MAX_VOCABULARY_BYTES), merges


KINDS = {
    str: "a string",
    int: "an integer",
    int | float: "a number",
    bool: "true or false",
    list: "a list",
    dict: "an object",
}


def entry_type(spec: Any, stage: str) -> str:
    """The ``type`` of a tokenizer.json entry (a normalizer, a pre-tokenizer, ...), which must be an object with one."""
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
        shown = repr(spec) if len(repr(spec)) <= 80 else repr(spec)[:77] + "..."
        raise TokenizerError(f"tokenizer.json: a {stage} must be an object with a type, got {shown}")
    return spec["type"]


def steps(spec: dict[str, Any], name: str, stage: str) -> list[dict[str, Any]]:
    """A Sequence's entries (``normalizers``, ``pretokenizers``): a list of objects, never null or absent."""
    value = spec.get(name)
    if not isinstance(value, list) or not all(isinstance(step, dict) for step in value):
        raise TokenizerError(
            f"tokenizer.json: a Sequence {stage}'s {name} must be a list of objects, got {value!r:.80}"
        )
    return value


def option(spec: dict[str, Any], name: str, kind: Any, default: Any = None) -> Any:
    """``spec[name]`` if it has type ``kind`` (absent or null: ``default``); a bool is no int here.

    ``{"type": "ByteLevel", "add_prefix_space": "no"}`` is an error: ``bool("no")`` would read as true.
    """
    value = spec.get(name)
    if value is None:
        return default
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise TokenizerError(
            f"tokenizer.json: {spec.get('type', 'the entry')}'s {name} must be {KINDS[kind]}, got {value!r}"
        )
    return value


def model_type(spec: dict[str, Any]) -> str | None:
    """The type of a ``tokenizer.json`` model; some files written by early tokenizers versions leave it out.

    Then its keys tell: ``{"vocab": ..., "merges": [...]}`` -> ``"BPE"``.
    """
    if "type" in spec:
        return spec["type"]
    if "merges" in spec:
        return "BPE"
    if "unk_id" in spec:
        return "Unigram"
    return "WordPiece" if "max_input_chars_per_word" in spec else None
