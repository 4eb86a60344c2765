"""The tokenizer: added tokens, the stages put together in order, and the call interface of transformers.

A tokenizer runs the pipeline of the Rust ``tokenizers`` library step by step:

1. added tokens (``[CLS]``, ``<mask>``, ...) are cut out of the raw text and never split;
2. the rest is normalised (cleaning, lowercasing, accents), then cut again at the added tokens that
   are matched in normalised text;
3. a pre-tokenizer splits it into words, and the model (WordPiece, BPE or Unigram) splits each word
   into vocabulary entries, with a per-word cache;
4. truncation, then a template adds the special tokens, then padding.

Asked for character offsets (``return_offsets_mapping``), the same steps run a second path: each
character carries its origin in the raw text through normalisation and pre-tokenization, each token
its span (``aligned_words``, ``aligned_tokens``), as tokenizers' ``NormalizedString`` does. The plain
path never pays for it.

``PreTrainedTokenizer`` builds every step as a ``tokenizer.json`` describes it, as transformers'
``TokenizersBackend`` (``PreTrainedTokenizerFast``) does; the classes of each model family (``families``)
write that description themselves from the folder's vocabulary.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, Self, TypeVar

import torch

from minibert.errors import TokenizerError
from minibert.tokenization.characters import WHITESPACE
from minibert.tokenization.decoders import (
    Decoder,
    clean_up_tokenization,
    decoder_from_json,
)
from minibert.tokenization.files import (
    TOKENIZER_CONFIG_FILE,
    TOKENIZER_FILE,
    TokenizerFiles,
    resolve_tokenizer_folder,
)
from minibert.tokenization.models import BPE, Model, model_from_json
from minibert.tokenization.normalizers import CACHE_SIZE, Normalizer, Origins, align, normalizer_from_json
from minibert.tokenization.pre_tokenizers import PreTokenizer, pre_tokenizer_from_json
from minibert.tokenization.templates import Template, template_from_json

# transformers' "no length limit", used when tokenizer_config.json sets no model_max_length.
VERY_LARGE_INTEGER = int(1e30)
LARGE_INTEGER = int(1e20)
SPECIAL_TOKEN_NAMES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
# What the aligned path (character offsets) adds to each row: two returned columns and two kept for BatchEncoding.
ALIGNED_COLUMNS = ("special_tokens_mask", "offset_mapping")
ALIGNMENTS = ("word_ids", "sequence_ids")
T = TypeVar("T")  # a token: its id, or a Token
# from_pretrained's ``pipeline_from``: whose steps run around the folder's vocabulary. transformers 5's model
# classes (BertTokenizer, AlbertTokenizer, ...) build their own in __init__ and read only the vocabulary (and
# a few parts) of tokenizer.json, which can disagree with the file (tokenization_utils_tokenizers.py,
# TokenizersBackend.convert_to_native_format); its generic TokenizersBackend runs the file whole.
PIPELINE_SOURCES = {
    "transformers": "the steps transformers 5's class builds (the default: the ids transformers gives)",
    "tokenizer.json": "the folder's tokenizer.json whole (the steps the model was trained with)",
}


# --- Added tokens -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AddedToken:
    """A token found in the text before anything else runs, as ``tokenizers.AddedToken``.

    ``lstrip``/``rstrip`` swallow the whitespace beside it (RoBERTa's ``<mask>`` takes the space before
    it); ``single_word`` tokens only match outside words; ``normalized`` tokens are looked for in
    normalised text; ``special`` ones are dropped by ``decode(skip_special_tokens=True)``.
    """

    content: str
    id: int
    special: bool = True
    lstrip: bool = False
    rstrip: bool = False
    single_word: bool = False
    normalized: bool = False

    @classmethod
    def from_json(cls, data: dict[str, Any], id: int) -> AddedToken:
        """From an entry of ``added_tokens`` (tokenizer.json) or ``added_tokens_decoder`` (tokenizer_config.json)."""
        flags = {f.name for f in fields(cls)} - {"content", "id"}
        if not isinstance(data, dict) or not isinstance(data.get("content"), str) or not data["content"]:
            raise TokenizerError(f"added token {id!r}: {data!r} has no content (a non-empty string)")
        if isinstance(id, bool) or not isinstance(id, int) or id < 0:
            raise TokenizerError(f"added token {data['content']!r}: its id {id!r} is not a non-negative integer")
        wrong = next((flag for flag in flags if flag in data and not isinstance(data[flag], bool)), None)
        if wrong is not None:
            raise TokenizerError(f"added token {data['content']!r}: {wrong} must be true or false, got {data[wrong]!r}")
        return cls(data["content"], id, **{flag: data[flag] for flag in flags if flag in data})


class AddedTokenSplitter:
    """Cuts text at added tokens: the leftmost match first, the longest where several start at one place."""

    def __init__(self, tokens: Iterable[AddedToken]) -> None:
        self.tokens = {token.content: token for token in tokens if token.content}
        # re tries alternatives in order, so listing the longest first makes it pick the longest match.
        alternatives = sorted(self.tokens, key=len, reverse=True)
        self.pattern = re.compile("|".join(map(re.escape, alternatives))) if alternatives else None

    def split(self, text: str) -> list[tuple[AddedToken | None, str]]:
        """``text`` cut into plain pieces ``(None, piece)`` (never empty) and added tokens ``(token, matched text)``.

        The matched text includes the whitespace an ``lstrip``/``rstrip`` token swallowed.
        """
        if self.pattern is None:
            return [(None, text)] if text else []
        parts: list[tuple[AddedToken | None, str]] = []
        done = 0  # where the text not yet handed out starts
        for match in self.pattern.finditer(text):
            token = self.tokens[match.group()]
            start, end = match.span()
            if token.single_word and (_WORD_CHAR_BEFORE.search(text, 0, start) or _WORD_CHAR.match(text, end)):
                continue
            while token.lstrip and start > done and text[start - 1] in WHITESPACE:  # no slicing: linear in text
                start -= 1
            while token.rstrip and end < len(text) and text[end] in WHITESPACE:
                end += 1
            if done < start:
                parts.append((None, text[done:start]))
            parts.append((token, text[start:end]))
            done = end
        if done < len(text):
            parts.append((None, text[done:]))
        return parts


_WORD_CHAR_BEFORE = re.compile(r"\w$")
_WORD_CHAR = re.compile(r"\w")


# --- The tokenizer interface ------------------------------------------------------------------------------------


class Token(NamedTuple):
    """One token of a text, or a special token of the template, with what tokenizers' ``Encoding`` keeps of it."""

    id: int
    value: str  # as the model spells it ("Ġworld"), or an added token's matched text
    offsets: tuple[int, int]  # the characters [start, end) of the original text it covers
    word: int | None  # its word's index (each added token and pre-tokenized word is one); None: a special token


class BatchEncoding(dict[str, Any]):
    """What calling a tokenizer returns: ``input_ids``, ``attention_mask`` and maybe ``token_type_ids``.

    As transformers' BatchEncoding, it also says which word and which sequence each token comes from
    (None for special tokens and padding). A call made without ``return_offsets_mapping`` did not track
    them, so the first question encodes its texts again, with offsets: the plain path stays fast.
    """

    def __init__(
        self, data: dict[str, Any], alignments: dict[str, list[Any]] | Callable[[], BatchEncoding] | None = None
    ) -> None:
        super().__init__(data)
        self.alignments = alignments  # word_ids and sequence_ids by row, or how to get them

    def word_ids(self, batch_index: int = 0) -> list[int | None]:
        """The word of each token of row ``batch_index``, as ``transformers.BatchEncoding.word_ids``."""
        return list(self._alignment("word_ids")[batch_index])

    def sequence_ids(self, batch_index: int = 0) -> list[int | None]:
        """The sequence (0, or 1 for a pair's second) of each token of row ``batch_index``."""
        return list(self._alignment("sequence_ids")[batch_index])

    def _alignment(self, name: str) -> list[Any]:
        if callable(self.alignments):
            self.alignments = self.alignments().alignments
        if not isinstance(self.alignments, dict):
            raise TokenizerError(f"{name}() needs the output of a tokenizer call; this BatchEncoding was built by hand")
        return self.alignments[name]


class PreTrainedTokenizer:
    """A tokenizer.json run as it is, with the call interface of transformers' ``TokenizersBackend``.

    A tokenizer is a ``model`` (WordPiece, BPE or Unigram) with the steps around it; the subclasses in
    ``families`` differ in the steps they build around the vocabulary and in their defaults. Built by
    ``from_pretrained``.
    """

    model_kind: ClassVar[str] = ""  # the tokenizer.json model type the class runs ("": any)
    # The keys a call returns by default (token_type_ids only where they are listed), as in transformers.
    model_input_names: ClassVar[tuple[str, ...]] = ("input_ids", "attention_mask")
    default_special_tokens: ClassVar[dict[str, str]] = {}
    # Named special tokens that take the whitespace before them (``<mask>``), unless the files say otherwise.
    lstrip_tokens: ClassVar[tuple[str, ...]] = ()
    # Whether the class builds its own steps around the vocabulary, as transformers' class of that name does.
    rebuilds: ClassVar[bool] = False
    # Where the steps came from (set by from_files): a key of PIPELINE_SOURCES, and in words, for users and inspect.
    pipeline_from: str = "transformers"
    pipeline_source: str = "the steps given to its constructor"

    # The named special tokens and their ids (None where the tokenizer has none), as in transformers.
    bos_token: str | None
    eos_token: str | None
    unk_token: str | None
    sep_token: str | None
    pad_token: str | None
    cls_token: str | None
    mask_token: str | None
    bos_token_id: int | None
    eos_token_id: int | None
    unk_token_id: int | None
    sep_token_id: int | None
    pad_token_id: int | None
    cls_token_id: int | None
    mask_token_id: int | None

    def __init__(
        self,
        model: Model,
        *,
        normalizer: Normalizer | None,
        pre_tokenizer: PreTokenizer,
        decoder: Decoder,
        template: Template,
        added_tokens: Sequence[AddedToken] = (),
        special_tokens: dict[str, str] | None = None,
        model_max_length: int = VERY_LARGE_INTEGER,
        padding_side: str = "right",
        truncation_side: str = "right",
        clean_up_tokenization_spaces: bool = False,
        name_or_path: str = "",
        files: TokenizerFiles | None = None,
    ) -> None:
        for name, side in (("padding_side", padding_side), ("truncation_side", truncation_side)):
            if side not in ("left", "right"):
                raise TokenizerError(f"{name} must be 'left' or 'right', got {side!r}")
        self.model = model
        self.normalizer = normalizer
        self.pre_tokenizer = pre_tokenizer
        self.decoder = decoder
        self.template = template
        self.model_max_length = model_max_length
        self.padding_side = padding_side
        self.truncation_side = truncation_side
        self.clean_up_tokenization_spaces = clean_up_tokenization_spaces
        self.name_or_path = name_or_path
        self.files = files  # what from_pretrained read: enough to pickle the tokenizer

        named = {**self.default_special_tokens, **(special_tokens or {})}
        # The named special tokens are added tokens too, as transformers registers them.
        listed = {token.content for token in added_tokens}
        unlisted = {
            content: name for name, content in named.items() if content not in listed and content in model.vocab
        }
        self.added_tokens = [*added_tokens] + [
            AddedToken(content, model.vocab[content], lstrip=name in self.lstrip_tokens)
            for content, name in unlisted.items()
        ]
        self.added_vocab = {token.content: token.id for token in self.added_tokens}
        self.special_ids = frozenset(token.id for token in self.added_tokens if token.special)
        self.id_to_token = model.id_to_token | {token.id: token.content for token in self.added_tokens}
        for name in SPECIAL_TOKEN_NAMES:
            setattr(self, name, named.get(name))
            setattr(self, f"{name}_id", self.lookup(named[name]) if name in named else None)

        self.raw_splitter = AddedTokenSplitter(token for token in self.added_tokens if not token.normalized)
        self.normalized_splitter = AddedTokenSplitter(
            replace(token, content=self.normalize(token.content)) for token in self.added_tokens if token.normalized
        )
        self.word_ids = functools.lru_cache(maxsize=CACHE_SIZE)(self.word_ids)  # a cache per tokenizer
        self.word_spans = functools.lru_cache(maxsize=CACHE_SIZE)(self.word_spans)

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | Path,
        *,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        pipeline_from: str = "transformers",
    ) -> Self:
        """Read a local folder, or a Hub repository through ``huggingface_hub``'s cache.

        The folder or id is positional or, as in transformers, ``pretrained_model_name_or_path=``.
        ``pipeline_from``: see ``PIPELINE_SOURCES``.
        """
        folder = resolve_tokenizer_folder(pretrained_model_name_or_path, revision=revision, cache_dir=cache_dir)
        files = TokenizerFiles.read(folder)
        if cls.model_kind and files.model_kind != cls.model_kind:
            raise TokenizerError(
                f"{files.folder}: {cls.__name__} runs a {cls.model_kind} model, the files hold {files.model_kind}; "
                "AutoTokenizer picks the class that fits"
            )
        return cls.from_files(files, pipeline_from)

    @classmethod
    def from_files(cls, files: TokenizerFiles, pipeline_from: str = "transformers") -> Self:
        """The tokenizer ``spec`` describes (``pipeline_from="tokenizer.json"``: the folder's own file), configured
        by the folder's other files."""
        if pipeline_from not in PIPELINE_SOURCES:
            choices = ", ".join(map(repr, PIPELINE_SOURCES))
            raise TokenizerError(f"pipeline_from must be one of {choices}, got {pipeline_from!r}")
        rebuilt = cls.rebuilds and pipeline_from == "transformers"
        try:
            spec = cls.spec(files) if rebuilt else written_spec(files, cls.__name__)
            tokenizer = cls(
                model_from_json(spec["model"], str(files.vocab_path), files.tokenizer_json is not None),
                normalizer=normalizer_from_json(spec.get("normalizer")),
                pre_tokenizer=pre_tokenizer_from_json(spec.get("pre_tokenizer")),
                decoder=decoder_from_json(spec.get("decoder")),
                template=template_from_json(spec.get("post_processor")),
                special_tokens=cls.special_tokens(files),
                **tokenizer_options(files, spec.get("added_tokens", [])),
            )
        except TokenizerError as error:
            if str(files.folder) in str(error):
                raise
            raise TokenizerError(f"{files.folder}: {error}") from error  # the folder, where a step named only its file
        except (KeyError, TypeError, AttributeError, IndexError, ValueError) as error:
            # A file of the right JSON but the wrong shape: a missing key, a list where an object belongs.
            what = f"missing key {error}" if isinstance(error, KeyError) else f"{type(error).__name__}: {error}"
            raise TokenizerError(
                f"{files.folder}: malformed tokenizer files ({', '.join(files.names())}): {what}"
            ) from error
        tokenizer.pipeline_from, tokenizer.pipeline_source = pipeline_from, pipeline_source(cls, files, rebuilt)
        return tokenizer

    @classmethod
    def spec(cls, files: TokenizerFiles) -> dict[str, Any]:
        """The ``tokenizer.json`` to run: the folder's own, as it is (the families' classes write theirs)."""
        return written_spec(files, cls.__name__)

    @classmethod
    def special_tokens(cls, files: TokenizerFiles) -> dict[str, str]:
        """The named special tokens: the class's defaults, with those the configuration files name over them."""
        named = dict(cls.default_special_tokens)
        for name in SPECIAL_TOKEN_NAMES:
            value = files.config.get(name)
            if isinstance(value, dict):
                value = value["content"]
            if isinstance(value, str):
                named[name] = value
        return named

    # Vocabulary.

    @property
    def vocab_size(self) -> int:
        """The size of the model's vocabulary, without tokens added on top of it (as in transformers)."""
        return len(self.model.id_to_token)

    def __len__(self) -> int:
        """The model's vocabulary and the added tokens it does not hold, as tokenizers counts them."""
        return self.vocab_size + len(self.added_vocab.keys() - self.model.vocab.keys())

    def get_vocab(self) -> dict[str, int]:
        return self.model.vocab | self.added_vocab

    def convert_tokens_to_ids(self, tokens: str | list[str]) -> Any:
        """The id of a token, or of each in a list; unknown tokens get ``unk_token``'s id."""
        if not isinstance(tokens, str):
            return [self.convert_tokens_to_ids(token) for token in tokens]
        id = self.lookup(tokens)
        return self.unk_token_id if id is None else id

    def lookup(self, token: str) -> int | None:
        """The id of a token of the vocabulary or of the added tokens, None for any other."""
        return self.added_vocab.get(token, self.model.vocab.get(token))

    def convert_ids_to_tokens(self, ids: int | Iterable[int], skip_special_tokens: bool = False) -> Any:
        """The token of an id, or of each in a list (None for an id outside the vocabulary)."""
        if isinstance(ids, int):
            return self.id_to_token.get(ids)
        return [self.id_to_token.get(id) for id in as_ids(ids) if not (skip_special_tokens and id in self.special_ids)]

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as the files read (the steps hold closures and caches), e.g. for DataLoader workers."""
        if self.files is None:
            raise TypeError(f"a {type(self).__name__} built by hand cannot be pickled; read it with from_pretrained")
        return type(self).from_files, (self.files, self.pipeline_from)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name_or_path={self.name_or_path!r}, vocab_size={self.vocab_size})"

    # Text to ids.

    def normalize(self, text: str) -> str:
        return text if self.normalizer is None else self.normalizer(text)

    def word_ids(self, word: str) -> tuple[int, ...]:
        """The ids of one pre-tokenized word (replaced by a cached version per tokenizer)."""
        unk_id = self.model.vocab.get(self.model.unk_token or "")
        return tuple(self.model.vocab.get(token, unk_id) for token in self.model(word))

    def word_spans(self, word: str) -> tuple[tuple[int, str, int, int], ...]:
        """The ids, tokens and spans in the word of one pre-tokenized word (cached per tokenizer, as word_ids)."""
        unk_id = self.model.vocab.get(self.model.unk_token or "")
        spans = self.model.split_with_offsets(word)
        return tuple((self.model.vocab.get(token, unk_id), token, start, end) for token, start, end in spans)

    def words(self, text: str) -> Iterator[tuple[AddedToken | None, str]]:
        """Steps 1-3: the added tokens ``(token, matched text)`` and the words ``(None, word)`` of a text."""
        for i, (token, segment) in enumerate(self.raw_splitter.split(text)):
            if token is not None:
                yield token, segment
                continue
            for j, (token, piece) in enumerate(self.normalized_splitter.split(self.normalize(segment))):
                if token is not None:
                    yield token, piece
                    continue
                for word in self.pre_tokenizer(piece, i == 0 and j == 0):
                    yield None, word

    def text_to_ids(self, text: str) -> list[int]:
        """The ids of one text, before truncation and special tokens."""
        ids: list[int] = []
        for token, word in self.words(text):
            if token is None:
                ids += self.word_ids(word)
            else:
                ids.append(token.id)
        return ids

    def aligned_words(self, text: str) -> Iterator[tuple[AddedToken | None, str, Origins]]:
        """``words``, each with the origin of each of its characters: its index in ``text`` (see normalizers)."""
        start = 0
        for i, (token, segment) in enumerate(self.raw_splitter.split(text)):
            origins = list(range(start, start + len(segment)))
            start += len(segment)
            if token is not None:
                yield token, segment, origins
                continue
            if self.normalizer is not None:
                segment, origins = align(self.normalizer, segment, origins)
            done = 0
            for j, (token, piece) in enumerate(self.normalized_splitter.split(segment)):
                piece_origins = origins[done : done + len(piece)]
                done += len(piece)
                if token is not None:
                    yield token, piece, piece_origins
                    continue
                for word, word_origins in self.pre_tokenizer.aligned(piece, piece_origins, i == 0 and j == 0):
                    yield None, word, word_origins

    def aligned_tokens(self, text: str) -> list[Token]:
        """The tokens of one text with their character offsets and words, before truncation and special tokens.

        A token covers the original characters of its first and last normalised ones, as tokenizers'
        ``NormalizedString::convert_offsets`` has it (an inserted character with no origin gives (0, 0)).
        """
        tokens: list[Token] = []
        for word_index, (added, word, origins) in enumerate(self.aligned_words(text)):
            if added is not None:
                tokens.append(Token(added.id, word, span(origins, 0, len(word)), word_index))
                continue
            for id, value, start, end in self.word_spans(word):
                tokens.append(Token(id, value, span(origins, start, end), word_index))
        return tokens

    def tokenize(self, text: str) -> list[str]:
        """The tokens of ``text`` without special tokens, spelt as tokenizers does: an added token as matched."""
        tokens: list[str] = []
        for token, word in self.words(text):
            tokens += [word] if token is not None else self.model(word)
        return tokens

    def __call__(
        self,
        text: str | Sequence[str],
        text_pair: str | Sequence[str] | None = None,
        *,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        return_tensors: str | None = None,
        return_attention_mask: bool = True,
        return_token_type_ids: bool | None = None,
        return_special_tokens_mask: bool = False,
        return_offsets_mapping: bool = False,
        add_special_tokens: bool = True,
    ) -> BatchEncoding:
        """Tokenise a text, a pair of texts, or a batch of either, as ``transformers`` tokenizers do.

        ``padding``: False, True or "longest" (to the longest of the batch), or "max_length".
        ``truncation``: True or "longest_first", "only_first", "only_second"; ``max_length`` alone implies it.
        ``return_tensors="pt"`` gives int64 tensors of shape (batch, length), batch 1 for a single text.
        ``return_offsets_mapping``: each token's ``(start, end)`` in its own text ((0, 0) for special tokens and
        padding; a (batch, length, 2) tensor with ``"pt"``); ``return_special_tokens_mask``: 1 for those.
        """
        again = functools.partial(  # for word_ids() and sequence_ids() on a call without offsets
            self.__call__,
            text,
            text_pair,
            padding=padding,
            truncation=truncation,
            max_length=max_length,
            add_special_tokens=add_special_tokens,
            return_offsets_mapping=True,
        )
        if return_tensors not in (None, "pt"):
            raise TokenizerError(f"return_tensors must be None or 'pt' (PyTorch), got {return_tensors!r}")
        batched = not isinstance(text, str)
        if batched:
            if isinstance(text_pair, str) or (text_pair is not None and len(text_pair) != len(text)):
                raise TokenizerError("with a batch of texts, text_pair must be a batch of the same length")
            pairs = list(zip(text, [None] * len(text) if text_pair is None else text_pair, strict=True))
        else:
            pairs = [(text, text_pair or None)]  # as in transformers, an empty text_pair is no pair
        padding, truncation, max_length = self._strategies(padding, truncation, max_length)
        aligned = return_offsets_mapping or return_special_tokens_mask
        encode = self._encode_aligned if aligned else self._encode
        rows = [encode(first, second, truncation, max_length, add_special_tokens) for first, second in pairs]

        columns: dict[str, list[list[Any]]] = {"input_ids": [row["input_ids"] for row in rows]}
        if return_token_type_ids is None:
            return_token_type_ids = "token_type_ids" in self.model_input_names
        if return_token_type_ids:
            columns["token_type_ids"] = [row["token_type_ids"] for row in rows]
        if return_attention_mask:
            columns["attention_mask"] = [[1] * len(row["input_ids"]) for row in rows]
        for name, wanted in zip(ALIGNED_COLUMNS, (return_special_tokens_mask, return_offsets_mapping), strict=True):
            if wanted:
                columns[name] = [row[name] for row in rows]
        alignments = {name: [row[name] for row in rows] for name in ALIGNMENTS} if aligned else None
        if padding is not None:
            length = max_length if padding == "max_length" else max(len(row["input_ids"]) for row in rows)
            self._pad(columns, length)
            if alignments is not None:
                self._pad(alignments, length)
        return self._batch_encoding(columns, batched, return_tensors, alignments or again)

    def encode(self, text: str, text_pair: str | None = None, **kwargs: Any) -> Any:
        """The ``input_ids`` of one text or pair; keyword arguments as in ``__call__``."""
        return self(text, text_pair, **kwargs)["input_ids"]

    def _strategies(
        self, padding: bool | str, truncation: bool | str | None, max_length: int | None
    ) -> tuple[str | None, str | None, int | None]:
        """The padding and truncation strategies (None for none) and their length, read as transformers does."""
        paddings = {False: None, "do_not_pad": None, True: "longest", "longest": "longest", "max_length": "max_length"}
        truncations = {False: None, "do_not_truncate": None, True: "longest_first"}
        truncations |= {name: name for name in ("longest_first", "only_first", "only_second")}
        if max_length is not None and padding is False and truncation is None:
            truncation = True  # a lone max_length means truncation
        if padding not in paddings:
            raise TokenizerError(f"padding must be one of {', '.join(map(repr, paddings))}; got {padding!r}")
        if truncation is not None and truncation not in truncations:
            raise TokenizerError(f"truncation must be one of {', '.join(map(repr, truncations))}; got {truncation!r}")
        padding, truncation = paddings[padding], truncations.get(truncation)
        if max_length is None and (padding == "max_length" or truncation is not None):
            if self.model_max_length > LARGE_INTEGER:  # no limit known: nothing to pad or truncate to
                padding = None if padding == "max_length" else padding
                truncation = None
            else:
                max_length = self.model_max_length
        if padding is not None and self.pad_token_id is None:
            raise TokenizerError(
                f"padding needs a pad token, and the tokenizer of {self.name_or_path or type(self).__name__!r} has "
                f"none (pad_token is {self.pad_token!r})"
            )
        return padding, truncation, max_length

    def _encode(
        self, first: str, second: str | None, truncation: str | None, max_length: int | None, add_special_tokens: bool
    ) -> dict[str, list[int]]:
        """The ids and token types of one text or pair: tokenised, truncated, then framed by special tokens."""
        first_ids = self.text_to_ids(first)
        second_ids = None if second is None else self.text_to_ids(second)
        first_ids, second_ids = self._fit(first_ids, second_ids, truncation, max_length, add_special_tokens)
        ids, types = self.template.apply(first_ids, second_ids, add_special_tokens)
        return {"input_ids": ids, "token_type_ids": types}

    def _encode_aligned(
        self, first: str, second: str | None, truncation: str | None, max_length: int | None, add_special_tokens: bool
    ) -> dict[str, list[Any]]:
        """``_encode``, with what tokenizers' ``Encoding`` adds: each token's offsets, word and sequence, and
        whether it is a special token; the template trims the offsets first if it says so."""
        sequences = self._fit(
            self.aligned_tokens(first),
            None if second is None else self.aligned_tokens(second),
            truncation,
            max_length,
            add_special_tokens,
        )
        names = ("input_ids", "token_type_ids", *ALIGNED_COLUMNS, *ALIGNMENTS)
        row: dict[str, list[Any]] = {name: [] for name in names}
        ids, types, special, offsets, words, sequence_ids = row.values()
        for item, type_id in self.template.items(second is not None, add_special_tokens):
            if item not in ("A", "B"):  # a special token
                tokens, sequence = [Token(item, "", (0, 0), None)], None
            else:
                sequence = 0 if item == "A" else 1
                tokens = sequences[sequence] or []
            ids += [token.id for token in tokens]
            types += [type_id] * len(tokens)
            special += [int(sequence is None)] * len(tokens)
            if self.template.trim_offsets and sequence is not None:
                offsets += [self.template.trim(t.value, t.offsets, i == 0) for i, t in enumerate(tokens)]
            else:
                offsets += [token.offsets for token in tokens]
            words += [token.word for token in tokens]
            sequence_ids += [sequence] * len(tokens)
        return row

    def _fit(
        self, first: list[T], second: list[T] | None, truncation: str | None, max_length: int | None, special: bool
    ) -> tuple[list[T], list[T] | None]:
        """Truncate one or two sequences to ``max_length`` with room for their ``special`` tokens, if asked."""
        if truncation is None:
            return first, second
        budget = max_length - (self.template.num_special_tokens(second is not None) if special else 0)
        # tokenizers' unsigned arithmetic wraps around, so a budget below zero truncates nothing.
        return self._truncate(first, second, budget, truncation) if budget >= 0 else (first, second)

    def _truncate(
        self, first: list[T], second: list[T] | None, budget: int, strategy: str
    ) -> tuple[list[T], list[T] | None]:
        """Cut one or two sequences to ``budget`` ids in all, as tokenizers' ``truncate_encodings`` does."""
        if budget == 0:  # whatever the strategy, nothing of either sequence stays
            return [], None if second is None else []
        excess = len(first) + len(second or []) - budget
        if excess <= 0:
            return first, second
        if strategy == "longest_first" and second is not None:
            # The shorter sequence stays whole if the longer can take the whole cut; else each gets half the
            # budget, the longer (the second, on a tie) the odd id.
            shorter = min(len(first), len(second))
            keep_shorter = shorter if 2 * shorter <= budget else budget // 2
            keep_longer = budget - keep_shorter
            if len(first) > len(second):
                return self._cut(first, keep_longer), self._cut(second, keep_shorter)
            return self._cut(first, keep_shorter), self._cut(second, keep_longer)
        if strategy == "longest_first":
            return self._cut(first, budget), second
        target = first if strategy == "only_first" else second
        if target is None:
            raise TokenizerError("truncation='only_second' needs a text_pair")
        if len(target) <= excess:
            raise TokenizerError(
                f"truncation={strategy!r} cannot reach max_length: the sequence to cut has {len(target)} ids and "
                f"{excess} must go; use truncation='longest_first'"
            )
        cut = self._cut(target, len(target) - excess)
        return (cut, second) if strategy == "only_first" else (first, cut)

    def _cut(self, ids: list[T], keep: int) -> list[T]:
        return ids[:keep] if self.truncation_side == "right" else ids[len(ids) - keep :]

    def _pad(self, columns: dict[str, list[list[Any]]], length: int) -> None:
        """Pad every row to ``length`` (rows already longer stay as they are) on ``padding_side``."""
        pad_values = {"input_ids": self.pad_token_id, "token_type_ids": 0, "attention_mask": 0}
        pad_values |= {"special_tokens_mask": 1, "offset_mapping": (0, 0), "word_ids": None, "sequence_ids": None}
        for name, rows in columns.items():
            for row in rows:
                padding = [pad_values[name]] * (length - len(row))
                if self.padding_side == "left":
                    row[:0] = padding
                else:
                    row += padding

    @staticmethod
    def _batch_encoding(
        columns: dict[str, list[list[Any]]],
        batched: bool,
        return_tensors: str | None,
        alignments: dict[str, list[Any]] | Callable[[], BatchEncoding],
    ) -> BatchEncoding:
        if return_tensors is None:
            return BatchEncoding({name: rows if batched else rows[0] for name, rows in columns.items()}, alignments)
        if len({len(row) for row in columns["input_ids"]}) > 1:
            raise TokenizerError(
                "the sequences have different lengths and cannot form one tensor: pass padding=True "
                "(and truncation=True if they may exceed the model's length)"
            )
        tensors = {name: torch.tensor(rows, dtype=torch.long) for name, rows in columns.items()}
        if "offset_mapping" in tensors:  # (B, T, 2), also where T is 0
            rows = columns["offset_mapping"]
            tensors["offset_mapping"] = tensors["offset_mapping"].reshape(len(rows), len(rows[0]) if rows else 0, 2)
        return BatchEncoding(tensors, alignments)

    # Ids to text.

    def decode(
        self,
        token_ids: int | Iterable[int],
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
    ) -> str:
        """The text of a sequence of ids (a list or a 1-d tensor); ids outside the vocabulary are skipped."""
        ids = [token_ids] if isinstance(token_ids, int) else as_ids(token_ids)
        tokens = [
            self.id_to_token[id]
            for id in ids
            if id in self.id_to_token and not (skip_special_tokens and id in self.special_ids)
        ]
        text = self.decoder(tokens)
        if clean_up_tokenization_spaces is None:
            clean_up_tokenization_spaces = self.clean_up_tokenization_spaces
        # transformers skips the clean-up for BPE models, where it would corrupt the text.
        return clean_up_tokenization(text) if clean_up_tokenization_spaces and not isinstance(self.model, BPE) else text

    def batch_decode(self, sequences: Iterable[Iterable[int]], **kwargs: Any) -> list[str]:
        """``decode`` for each sequence (a list of lists or a 2-d tensor)."""
        return [self.decode(ids, **kwargs) for ids in sequences]


def pipeline_source(cls: type[PreTrainedTokenizer], files: TokenizerFiles, rebuilt: bool) -> str:
    """Where a tokenizer's steps came from, in words (``tokenizer.pipeline_source``)."""
    if rebuilt:
        return f"rebuilt as transformers 5's {cls.__name__} does, around {files.vocab_path.name}"
    if cls.rebuilds:
        return f"the folder's {TOKENIZER_FILE} whole, where transformers 5's {cls.__name__} rebuilds it"
    return f"the folder's {TOKENIZER_FILE} whole, as transformers 5's TokenizersBackend runs it"


def written_spec(files: TokenizerFiles, class_name: str) -> dict[str, Any]:
    """The folder's tokenizer.json, which a folder of the classic files alone does not have."""
    if files.tokenizer_json is None:
        raise TokenizerError(f"{files.folder}: {class_name} reads {TOKENIZER_FILE} as it is, which is missing")
    return files.tokenizer_json


def span(origins: Origins, start: int, end: int) -> tuple[int, int]:
    """The original characters behind normalised characters [start, end): from the first's to the last's.

    An origin of -1 (a character inserted before any other) counts as the span (0, 0), as in tokenizers.
    """
    first, last = origins[start], origins[end - 1]
    return (first if first >= 0 else 0), (last + 1 if last >= 0 else 0)


def as_ids(ids: Iterable[int]) -> list[int]:
    """A list of Python ints from a list, a tuple or a tensor."""
    return ids.tolist() if hasattr(ids, "tolist") else [int(id) for id in ids]


def tokenizer_options(files: TokenizerFiles, added_tokens: list[dict[str, Any]]) -> dict[str, Any]:
    """The keyword arguments of PreTrainedTokenizer that the configuration files set.

    The added tokens are ``added_tokens`` (tokenizer.json's list, with ids), then those of
    tokenizer_config.json's ``added_tokens_decoder`` not among them.
    """
    if not isinstance(added_tokens, list):
        raise TokenizerError(f"tokenizer.json: added_tokens must be a list, got {type(added_tokens).__name__}")
    tokens = [
        AddedToken.from_json(token, token.get("id") if isinstance(token, dict) else None) for token in added_tokens
    ]
    listed = {token.content for token in tokens}
    decoder = files.config.get("added_tokens_decoder", {})
    tokens += [AddedToken.from_json(token, int(id)) for id, token in decoder.items() if token["content"] not in listed]
    return {
        "added_tokens": tokens,
        "model_max_length": model_max_length(files),
        "padding_side": files.config.get("padding_side", "right"),
        "truncation_side": files.config.get("truncation_side", "right"),
        "clean_up_tokenization_spaces": bool(files.config.get("clean_up_tokenization_spaces", False)),
        "name_or_path": str(files.folder),
        "files": files,
    }


def model_max_length(files: TokenizerFiles) -> int:
    """tokenizer_config.json's ``model_max_length``: a positive integer; absent or null, no limit, as in transformers.

    transformers writes its "no limit" sentinel as int(1e30), and some files hold it as a float (1e30): an
    integral number is read as the integer it is. ``"abc"``, ``0`` or ``1e400`` (infinity) is an error.
    """
    value = files.config.get("model_max_length")
    if value is None:
        return VERY_LARGE_INTEGER
    integral = isinstance(value, int) or (isinstance(value, float) and math.isfinite(value) and value.is_integer())
    if isinstance(value, bool) or not integral or value < 1:
        raise TokenizerError(
            f"{files.folder / TOKENIZER_CONFIG_FILE}: model_max_length must be a positive integer (or absent for no "
            f"limit), got {value!r}"
        )
    return int(value)
