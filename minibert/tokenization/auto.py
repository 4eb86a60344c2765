"""AutoTokenizer: the tokenizer class a folder's files call for, picked as ``transformers.AutoTokenizer`` does."""

from __future__ import annotations

from pathlib import Path

from minibert.errors import TokenizerError
from minibert.tokenization.files import TOKENIZER_FILE, TokenizerFiles, resolve_tokenizer_folder
from minibert.tokenization.tokenizer import AlbertTokenizer, BertTokenizer, PreTrainedTokenizer, RobertaTokenizer

TOKENIZER_CLASSES: dict[str, type[PreTrainedTokenizer]] = {
    "BertTokenizer": BertTokenizer,
    "RobertaTokenizer": RobertaTokenizer,
    "AlbertTokenizer": AlbertTokenizer,
    "bert": BertTokenizer,
    "roberta": RobertaTokenizer,
    "albert": AlbertTokenizer,
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
        """A BertTokenizer, RobertaTokenizer or AlbertTokenizer for a local folder or a Hub repository.

        The folder or id is positional or, as in transformers, ``pretrained_model_name_or_path=``.
        """
        folder = resolve_tokenizer_folder(pretrained_model_name_or_path, revision=revision, cache_dir=cache_dir)
        files = TokenizerFiles.read(folder)
        return tokenizer_class(files).from_files(files)


def tokenizer_class(files: TokenizerFiles) -> type[PreTrainedTokenizer]:
    """The class tokenizer_config.json's ``tokenizer_class`` names, else config.json's ``model_type``, else the
    one that runs the model the files hold.

    A name whose model the files do not hold is passed over: Chinese ALBERT checkpoints ship a BERT
    ``vocab.txt``, so they get the BertTokenizer.
    """
    kind = files.model_kind
    for name in (files.config.get("tokenizer_class"), files.model_type):
        candidate = TOKENIZER_CLASSES.get(str(name).removesuffix("Fast"))
        if candidate is not None and candidate.model_kind == kind:
            return candidate
    for candidate in (BertTokenizer, RobertaTokenizer, AlbertTokenizer):
        if candidate.model_kind == kind:
            return candidate
    raise TokenizerError(
        f"{files.folder / TOKENIZER_FILE}: model {kind!r} is not supported (supported: WordPiece, BPE, Unigram)"
    )
