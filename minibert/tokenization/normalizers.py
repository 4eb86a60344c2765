"""Normalizers, text -> text: BERT's cleaning, Unicode normal forms, lowercasing, accents, SentencePiece's rules
(its Nmt cleaning and its compiled charsmaps).

Each is a function of a text (a ``Normalizer``), built from its entry in ``tokenizer.json`` by
``normalizer_from_json``, as tokenizers' ``normalizers`` module defines it. Lowercasing goes character
by character, as in Rust: a word-final Σ never becomes ς.
"""

from __future__ import annotations

import base64
import functools
import re
import struct
import unicodedata
from collections.abc import Callable
from typing import Any

from minibert.errors import TokenizerError
from minibert.tokenization.characters import WHITESPACE, category_class

Normalizer = Callable[[str], str]
CACHE_SIZE = 1 << 16  # entries of each per-word (or per-grapheme) cache


# --- Character tables -------------------------------------------------------------------------------------------


def is_cjk(cp: int) -> bool:
    """The CJK ideograph blocks BERT splits character by character (Hangul and kana are not among them)."""
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B81F
        or 0x2B920 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


class CharMap(dict[int, str]):
    """A ``str.translate`` table that fills itself on each character's first use, so nothing is built up front."""

    def __init__(self, rule: Callable[[str], str]) -> None:
        super().__init__()
        self.rule = rule

    def __missing__(self, cp: int) -> str:
        self[cp] = value = self.rule(chr(cp))
        return value


# Lowercasing character by character, as Rust does: str.lower() would turn a word-final Σ into ς.
LOWERCASE = CharMap(str.lower)
DROP_NONSPACING_MARKS = CharMap(lambda c: "" if unicodedata.category(c) == "Mn" else c)
DROP_MARKS = CharMap(lambda c: "" if unicodedata.category(c)[0] == "M" else c)


def lowercase(text: str) -> str:
    return text.lower() if text.isascii() else text.translate(LOWERCASE)


def strip_accents(text: str) -> str:
    """Drop the combining marks of an NFD text (tokenizers' StripAccents; it does not decompose by itself)."""
    return text if text.isascii() else text.translate(DROP_MARKS)


# --- Normalizers ------------------------------------------------------------------------------------------------


class BertNormalizer:
    """BERT's cleaning: drop control characters, spaces around CJK ideographs, strip accents, lowercase.

    ``strip_accents=None`` follows ``lowercase``, as in the original BERT. Mirrors tokenizers' BertNormalizer.
    """

    def __init__(
        self,
        clean_text: bool = True,
        handle_chinese_chars: bool = True,
        strip_accents: bool | None = None,
        lowercase: bool = True,
    ) -> None:
        self.chars = CharMap(functools.partial(self.clean_char, clean_text, handle_chinese_chars))
        self.strip_accents = lowercase if strip_accents is None else strip_accents
        self.lowercase = lowercase

    @staticmethod
    def clean_char(clean_text: bool, handle_chinese_chars: bool, char: str) -> str:
        """What one character becomes: ``"\\x00"`` -> ``""``, ``"\\u3000"`` -> ``" "``, ``"北"`` -> ``" 北 "``."""
        if clean_text:
            # Control characters go first: \v, \f and U+0085 are whitespace but also controls, so they vanish.
            if char in "\x00\ufffd" or (char not in "\t\n\r" and unicodedata.category(char) in ("Cc", "Cf", "Co")):
                return ""
            if char in WHITESPACE:
                return " "
        if handle_chinese_chars and is_cjk(ord(char)):
            return f" {char} "
        return char

    def __call__(self, text: str) -> str:
        text = text.translate(self.chars)
        if self.strip_accents and not text.isascii():
            text = unicodedata.normalize("NFD", text).translate(DROP_NONSPACING_MARKS)
        return lowercase(text) if self.lowercase else text


# SentencePiece's nmt_nfkc rules beyond NFKC, as tokenizers' Nmt normalizer has them (normalizers/unicode.rs,
# do_nmt): ASCII control characters vanish (NUL stays), the other line breaks and the invisible or replacement
# characters become a space; so does ▁, which would otherwise pass for SentencePiece's own space.
NMT_REMOVED = [*range(0x01, 0x09), 0x0B, *range(0x0E, 0x20), 0x7F, 0x8F, 0x9F]
NMT_SPACES = [0x09, 0x0A, 0x0C, 0x0D, 0x1680, *range(0x200B, 0x2010), 0x2028, 0x2029, 0x2581, 0xFEFF, 0xFFFD]
NMT = {cp: None for cp in NMT_REMOVED} | dict.fromkeys(NMT_SPACES, " ")


def nmt(text: str) -> str:
    """``"tab\\there\\x07\\u200b"`` -> ``"tab here "``."""
    return text.translate(NMT)


class Precompiled:
    """SentencePiece's compiled normalisation rules, as tokenizers' Precompiled normalizer applies them.

    ``charsmap`` holds a double-array trie (darts-clone) of UTF-8 keys, then the NUL-terminated
    replacements its leaves point to. A grapheme shorter than 6 bytes is replaced whole when the
    shortest of its prefixes with a rule has one; otherwise each character by its own rule, if any.
    """

    def __init__(self, charsmap: bytes) -> None:
        trie_size = int.from_bytes(charsmap[:4], "little")
        self.units = struct.unpack(f"<{trie_size // 4}I", charsmap[4 : 4 + trie_size])
        self.replacements = charsmap[4 + trie_size :]
        self.rule = functools.lru_cache(maxsize=CACHE_SIZE)(self.rule)  # graphemes repeat: a cache each

    def rule(self, chunk: str) -> str | None:
        """The replacement of the shortest prefix of ``chunk`` that has one, or None."""
        units = self.units
        position = _offset(units[0])
        for byte in chunk.encode("utf-8"):
            position ^= byte
            if byte == 0 or position >= len(units) or units[position] & 0x800000FF != byte:  # not this label
                return None
            has_leaf = units[position] >> 8 & 1
            position ^= _offset(units[position])
            if has_leaf:
                start = units[position] & 0x7FFFFFFF
                return self.replacements[start : self.replacements.index(0, start)].decode("utf-8")
        return None

    def __call__(self, text: str) -> str:
        pieces = []
        for grapheme in grapheme_pattern().findall(text):
            replacement = self.rule(grapheme) if len(grapheme.encode("utf-8")) < 6 else None
            if replacement is None:
                replacement = "".join(char if (rule := self.rule(char)) is None else rule for char in grapheme)
            pieces.append(replacement)
        return "".join(pieces)


def _offset(unit: int) -> int:
    """Where a darts-clone unit's children start, relative to it (XOR)."""
    return (unit >> 10) << ((unit & (1 << 9)) >> 6)


@functools.cache
def grapheme_pattern() -> re.Pattern[str]:
    """Unicode grapheme clusters, simplified: CR LF, or a character with the combining marks and ZWJ after it.

    Enough for the rule above, which only treats clusters under 6 bytes whole: ``"e\\u0301x\\r\\n"`` ->
    ``["e\\u0301", "x", "\\r\\n"]``.
    """
    return re.compile(f"\r\n|[\x00-\x1f\x7f-\x9f]|.[{category_class('M')}\u200d]*", re.DOTALL)


def normalizer_from_json(spec: dict[str, Any] | None) -> Normalizer | None:
    """The normalizer a ``tokenizer.json`` describes, for the step types of the BERT family's tokenizers."""
    if spec is None:
        return None
    kind = spec["type"]
    if kind == "Sequence":
        steps = [step for step in map(normalizer_from_json, spec["normalizers"]) if step is not None]

        def normalize(text: str) -> str:
            for step in steps:
                text = step(text)
            return text

        return normalize
    if kind == "BertNormalizer":
        options = ("clean_text", "handle_chinese_chars", "strip_accents", "lowercase")
        return BertNormalizer(**{key: spec[key] for key in options if key in spec})
    if kind in ("NFD", "NFKD", "NFC", "NFKC"):
        return functools.partial(unicodedata.normalize, kind)
    if kind == "Lowercase":
        return lowercase
    if kind == "StripAccents":
        return strip_accents
    if kind == "Nmt":
        return nmt
    if kind == "Replace":
        content, pattern = spec["content"], spec["pattern"]
        if "String" in pattern:
            return lambda text: text.replace(pattern["String"], content)
        regex = re.compile(pattern["Regex"])
        return lambda text: regex.sub(lambda _: content, text)
    if kind == "Precompiled":
        charsmap = spec.get("precompiled_charsmap")
        return Precompiled(base64.b64decode(charsmap)) if charsmap else None
    if kind == "Strip":
        left, right = spec.get("strip_left", True), spec.get("strip_right", True)

        def strip(text: str) -> str:
            text = text.lstrip(WHITESPACE) if left else text
            return text.rstrip(WHITESPACE) if right else text

        return strip
    raise TokenizerError(
        f"tokenizer.json: normalizer {kind!r} is not supported (supported: BertNormalizer, "
        "Sequence, NFD, NFKD, NFC, NFKC, Lowercase, StripAccents, Nmt, Replace, Strip, Precompiled)"
    )
