"""Pre-tokenizers, text -> words: BERT's whitespace and punctuation split, GPT-2's byte-level split, a plain
whitespace split, and SentencePiece's ``▁`` for spaces.

Each is a function of a text and of whether that text opens the input (a ``PreTokenizer``), built from
its entry in ``tokenizer.json`` by ``pre_tokenizer_from_json``, as tokenizers' ``pre_tokenizers`` module
defines it. The model then splits each word on its own.

For character offsets, each also has ``aligned(text, origins, at_start)``: the same words, each with the
origins of its characters (see ``normalizers``), carried through as tokenizers' ``PreTokenizedString``
carries its alignments.
"""

from __future__ import annotations

import functools
import itertools
import re
from typing import Any, Protocol

from minibert.errors import TokenizerError
from minibert.tokenization.characters import WHITESPACE, category_class
from minibert.tokenization.files import entry_type, option, steps
from minibert.tokenization.normalizers import CACHE_SIZE, Origins

AlignedWord = tuple[str, Origins]  # a word and the origin of each of its characters


class PreTokenizer(Protocol):
    """Splits a text into words; ``at_start`` says whether the text opens the input."""

    def __call__(self, text: str, at_start: bool) -> list[str]: ...

    def aligned(self, text: str, origins: Origins, at_start: bool) -> list[AlignedWord]: ...


WHITESPACE_CLASS = "".join(map(re.escape, WHITESPACE))
# BERT counts all printable ASCII that is not a letter or digit as punctuation, besides Unicode's P*.
ASCII_PUNCTUATION = "".join(chr(cp) for cp in [*range(33, 48), *range(58, 65), *range(91, 97), *range(123, 127)])
# Whitespace but single spaces between words: what keeps GPT-2's regex from cutting a text before each space.
NOT_SINGLE_SPACES = re.compile("[" + "".join(re.escape(char) for char in WHITESPACE if char != " ") + "]|  | $")


def _bytes_to_chars() -> list[str]:
    """GPT-2's byte-to-character table: printable bytes stand for themselves, the others move past U+00FF.

    Every byte thus has a visible character, and BPE never meets a space or a control character:
    ``b"a"`` -> ``"a"``, ``b" "`` -> ``"Ġ"`` (U+0120), ``b"\\n"`` -> ``"Ċ"``.
    """
    printable = {*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)}
    moved = iter(range(256, 512))
    return [chr(byte) if byte in printable else chr(next(moved)) for byte in range(256)]


BYTE_TO_CHAR = _bytes_to_chars()


class BertPreTokenizer:
    """Split at whitespace, and make every punctuation character a word of its own."""

    def __init__(self) -> None:
        punctuation = category_class("P") + re.escape(ASCII_PUNCTUATION)
        self.pattern = re.compile(f"[^{WHITESPACE_CLASS}{punctuation}]+|[{punctuation}]")

    def __call__(self, text: str, at_start: bool) -> list[str]:
        return self.pattern.findall(text)

    def aligned(self, text: str, origins: Origins, at_start: bool) -> list[AlignedWord]:
        return [(match.group(), origins[match.start() : match.end()]) for match in self.pattern.finditer(text)]


class ByteLevel:
    """GPT-2's split into words (contractions, letter runs, digit runs, other runs, spaces), then bytes as chars.

    The regex is GPT-2's, with ``\\p{L}``, ``\\p{N}`` and ``\\s`` spelled out as character classes.
    """

    def __init__(self, add_prefix_space: bool = False, use_regex: bool = True) -> None:
        self.add_prefix_space = add_prefix_space
        self.use_regex = use_regex
        letters, numbers, space = category_class("L"), category_class("N"), WHITESPACE_CLASS
        self.pattern = re.compile(
            rf"'s|'t|'re|'ve|'m|'ll|'d| ?[{letters}]+| ?[{numbers}]+| ?[^{space}{letters}{numbers}]+"
            rf"|[{space}]+(?![^{space}])|[{space}]+"
        )
        self.piece_words = functools.lru_cache(maxsize=CACHE_SIZE)(self.piece_words)  # a cache each

    def __call__(self, text: str, at_start: bool) -> list[str]:
        if self.add_prefix_space and not text.startswith(" "):
            text = " " + text
        if not self.use_regex:
            return list(self.piece_words(text, False))
        if NOT_SINGLE_SPACES.search(text):
            return list(self.piece_words(text, True))
        # Words apart by single spaces: the regex cuts before each space, and the pieces recur, as words do.
        first, *rest = text.split(" ")
        words = list(self.piece_words(first, True)) if first else []
        for piece in rest:
            words += self.piece_words(" " + piece, True)
        return words

    def piece_words(self, text: str, use_regex: bool) -> tuple[str, ...]:
        """The words of a text, bytes as characters (cached per pre-tokenizer for the pieces that recur)."""
        words = self.pattern.findall(text) if use_regex else [text]
        return tuple(word.encode("utf-8").decode("latin-1").translate(BYTE_TO_CHAR) for word in words)

    def aligned(self, text: str, origins: Origins, at_start: bool) -> list[AlignedWord]:
        """Each byte's character aligned with the character it is a byte of; a prefix space with the first."""
        if self.add_prefix_space and text and not text.startswith(" "):
            text, origins = " " + text, origins[:1] + origins
        spans = [match.span() for match in self.pattern.finditer(text)] if self.use_regex else [(0, len(text))]
        words = []
        for start, end in spans:
            word, byte_origins = text[start:end], origins[start:end]
            if not word.isascii():  # a character of n bytes stands for each of them
                sizes = [len(char.encode("utf-8")) for char in word]
                byte_origins = [origin for origin, size in zip(byte_origins, sizes, strict=True) for _ in range(size)]
            words.append((word.encode("utf-8").decode("latin-1").translate(BYTE_TO_CHAR), byte_origins))
        return words


class WhitespaceSplit:
    """Split at whitespace, dropping it."""

    pattern = re.compile(f"[^{WHITESPACE_CLASS}]+")

    def __call__(self, text: str, at_start: bool) -> list[str]:
        return self.pattern.findall(text)

    def aligned(self, text: str, origins: Origins, at_start: bool) -> list[AlignedWord]:
        return [(match.group(), origins[match.start() : match.end()]) for match in self.pattern.finditer(text)]


class Metaspace:
    """SentencePiece's view of spaces: each becomes ``▁``, which then starts a new word.

    ``prepend_scheme`` puts a ``▁`` before every text ("always"), only before the start of the input
    ("first"), or nowhere ("never"), so that a word looks the same at the start and inside a sentence.
    """

    def __init__(self, replacement: str = "▁", prepend_scheme: str = "always", split: bool = True) -> None:
        if not isinstance(replacement, str) or len(replacement) != 1:
            raise TokenizerError(f"Metaspace replacement must be one character, got {replacement!r}")
        if prepend_scheme not in ("always", "first", "never"):
            raise TokenizerError(f"Metaspace prepend_scheme must be always, first or never, not {prepend_scheme!r}")
        self.replacement = replacement
        self.prepend_scheme = prepend_scheme
        self.split = split
        self.pattern = re.compile(f"(?={re.escape(replacement)})")

    def __call__(self, text: str, at_start: bool) -> list[str]:
        text = text.replace(" ", self.replacement)
        prepend = self.prepend_scheme == "always" or (self.prepend_scheme == "first" and at_start)
        if prepend and not text.startswith(self.replacement):
            text = self.replacement + text
        return [word for word in self.pattern.split(text) if word] if self.split else [text]

    def aligned(self, text: str, origins: Origins, at_start: bool) -> list[AlignedWord]:
        """A ``▁`` for a space is aligned with that space, a prepended one with the first character."""
        text = text.replace(" ", self.replacement)
        prepend = self.prepend_scheme == "always" or (self.prepend_scheme == "first" and at_start)
        if prepend and text and not text.startswith(self.replacement):
            text, origins = self.replacement + text, origins[:1] + origins
        if not self.split:
            return [(text, origins)] if text else []
        starts = [0, *(match.start() for match in re.finditer(re.escape(self.replacement), text) if match.start())]
        return [(text[a:b], origins[a:b]) for a, b in itertools.pairwise([*starts, len(text)]) if a < b]


class WholeText:
    """No pre-tokenizer: a text is a single word (an empty one, none)."""

    def __call__(self, text: str, at_start: bool) -> list[str]:
        return [text] if text else []

    def aligned(self, text: str, origins: Origins, at_start: bool) -> list[AlignedWord]:
        return [(text, origins)] if text else []


class PreTokenizerSequence:
    """Run each step on every word of the previous one; only a word at offset 0 still opens the input."""

    def __init__(self, steps: list[PreTokenizer]) -> None:
        self.steps = steps

    def __call__(self, text: str, at_start: bool) -> list[str]:
        words = [(text, at_start)]
        for step in self.steps:
            words = [
                (word, opens and i == 0 and piece.startswith(word))
                for piece, opens in words
                for i, word in enumerate(step(piece, opens))
            ]
        return [word for word, _ in words]

    def aligned(self, text: str, origins: Origins, at_start: bool) -> list[AlignedWord]:
        words = [(text, origins, at_start)]
        for step in self.steps:
            words = [
                (word, word_origins, opens and i == 0 and piece.startswith(word))
                for piece, piece_origins, opens in words
                for i, (word, word_origins) in enumerate(step.aligned(piece, piece_origins, opens))
            ]
        return [(word, word_origins) for word, word_origins, _ in words]


def pre_tokenizer_from_json(spec: dict[str, Any] | None) -> PreTokenizer:
    """The pre-tokenizer a ``tokenizer.json`` describes; without one, a text is a single word (an empty one, none)."""
    if spec is None:
        return WholeText()
    kind = entry_type(spec, "pre-tokenizer")
    if kind == "Sequence":
        parts = steps(spec, "pretokenizers", "pre-tokenizer")
        return PreTokenizerSequence([pre_tokenizer_from_json(part) for part in parts])
    if kind == "BertPreTokenizer":
        return BertPreTokenizer()
    if kind == "ByteLevel":
        return ByteLevel(option(spec, "add_prefix_space", bool, False), option(spec, "use_regex", bool, True))
    if kind == "WhitespaceSplit":
        return WhitespaceSplit()
    if kind == "Metaspace":
        replacement, split = option(spec, "replacement", str, "▁"), option(spec, "split", bool, True)
        return Metaspace(replacement, prepend_scheme_from_json(spec), split)
    raise TokenizerError(
        f"tokenizer.json: pre-tokenizer {kind!r} is not supported "
        "(supported: BertPreTokenizer, ByteLevel, WhitespaceSplit, Metaspace, Sequence)"
    )


def prepend_scheme_from_json(spec: dict[str, Any]) -> str:
    """Metaspace's prepend scheme; files older than tokenizers 0.19 say add_prefix_space instead.

    The Metaspace decoder reads it too, to know whether the first token's ``▁`` was prepended.
    """
    if "prepend_scheme" in spec:
        return spec["prepend_scheme"]
    return "always" if option(spec, "add_prefix_space", bool, True) else "never"
