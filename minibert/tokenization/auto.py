"""AutoTokenizer: the tokenizer class a folder's files call for, picked as ``transformers.AutoTokenizer`` does."""

from __future__ import annotations

from pathlib import Path

from minibert.errors import TokenizerError
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
from minibert.tokenization.files import SENTENCEPIECE_FILES, TokenizerFiles, resolve_tokenizer_folder
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
# config.json's model_type, as transformers' TOKENIZER_MAPPING_NAMES: DistilBERT's is BertTokenizer there,
# so a DistilBERT folder returns token types unless its tokenizer_config.json names DistilBertTokenizer.
MODEL_TYPE_CLASSES: dict[str, type[PreTrainedTokenizer]] = {
    "bert": BertTokenizer,
    "distilbert": BertTokenizer,
    "electra": BertTokenizer,
    "mpnet": MPNetTokenizer,
    "roberta": RobertaTokenizer,
    "albert": AlbertTokenizer,
    "xlm-roberta": XLMRobertaTokenizer,
    "camembert": CamembertTokenizer,
    "deberta-v2": DebertaV2Tokenizer,
}
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
    ) -> PreTrainedTokenizer:
        """The tokenizer of a local folder or a Hub repository, of the class ``tokenizer_class`` picks.

        The folder or id is positional or, as in transformers, ``pretrained_model_name_or_path=``.
        """
        folder = resolve_tokenizer_folder(pretrained_model_name_or_path, revision=revision, cache_dir=cache_dir)
        files = TokenizerFiles.read(folder)
        return tokenizer_class(files).from_files(files)


def tokenizer_class(files: TokenizerFiles) -> type[PreTrainedTokenizer]:
    """The class tokenizer_config.json's ``tokenizer_class`` names, else config.json's ``model_type``; else
    tokenizer.json as it is (transformers' TokenizersBackend), else the class that reads the classic files
    of a folder that names no class.

    A class whose model the files do not hold is passed over: Chinese ALBERT checkpoints ship a BERT
    ``vocab.txt``, so they get the BertTokenizer.
    """
    named = files.config.get("tokenizer_class")
    for table, name in ((TOKENIZER_CLASSES, named), (MODEL_TYPE_CLASSES, files.model_type)):
        candidate = table.get(str(name).removesuffix("Fast"))
        if candidate is not None and reads(candidate, files):
            return candidate
    if files.tokenizer_json is not None:
        return PreTrainedTokenizer
    # A SentencePiece model's steps depend on the model it serves: T5's are not ALBERT's, say.
    unknown_class = named is not None and str(named).removesuffix("Fast") not in TOKENIZER_CLASSES
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


def reads(candidate: type[PreTrainedTokenizer], files: TokenizerFiles) -> bool:
    """Whether the class runs the model the files hold (the generic class: any model of a tokenizer.json)."""
    if not candidate.model_kind:
        return files.tokenizer_json is not None
    return candidate.model_kind == files.model_kind
