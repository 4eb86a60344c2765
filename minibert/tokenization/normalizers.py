"""Normalizers, text -> text: BERT's cleaning, Unicode normal forms, lowercasing, accents, SentencePiece's rules
(its Nmt cleaning and its compiled charsmaps).

Each is a function of a text (a ``Normalizer``), built from its entry in ``tokenizer.json`` by
``normalizer_from_json``, as tokenizers' ``normalizers`` module defines it. Lowercasing goes character
by character, as in Rust: a word-final Σ never becomes ς.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import re._constants as sre
import re._parser as sre_parse
import struct
import unicodedata
from collections.abc import Callable
from typing import Any

from minibert.errors import TokenizerError
from minibert.tokenization.characters import WHITESPACE, category_class
from minibert.tokenization.files import entry_type, option, steps

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
        if len(charsmap) < 8 or trie_size < 4 or trie_size % 4 or 4 + trie_size > len(charsmap):
            raise TokenizerError(
                f"precompiled_charsmap is corrupt: {len(charsmap)} bytes, announcing a trie of {trie_size} bytes"
            )
        self.units = struct.unpack(f"<{trie_size // 4}I", charsmap[4 : 4 + trie_size])
        self.replacements = charsmap[4 + trie_size :]
        try:  # NUL-terminated UTF-8 strings
            self.replacements.decode("utf-8")
        except UnicodeDecodeError as error:
            raise TokenizerError(
                f"precompiled_charsmap is corrupt: replacements that are not UTF-8 ({error})"
            ) from error
        if self.replacements and not self.replacements.endswith(b"\0"):
            raise TokenizerError("precompiled_charsmap is corrupt: its last replacement has no terminating NUL")
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
                start = units[position] & 0x7FFFFFFF if position < len(units) else len(self.replacements)
                try:
                    return self.replacements[start : self.replacements.index(0, start)].decode("utf-8")
                except (ValueError, UnicodeDecodeError) as error:  # a leaf pointing outside, or inside a character
                    raise TokenizerError(
                        f"precompiled_charsmap is corrupt: the rule for {chunk!r} points at byte {start} of "
                        f"{len(self.replacements)}"
                    ) from error
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
    kind = entry_type(spec, "normalizer")
    if kind == "Sequence":
        parts = [part for part in map(normalizer_from_json, steps(spec, "normalizers", "normalizer")) if part]

        def normalize(text: str) -> str:
            for part in parts:
                text = part(text)
            return text

        return normalize
    if kind == "BertNormalizer":
        options = {"clean_text": bool, "handle_chinese_chars": bool, "strip_accents": bool | None, "lowercase": bool}
        wrong = next((key for key, kind in options.items() if key in spec and not isinstance(spec[key], kind)), None)
        if wrong is not None:
            raise TokenizerError(f"tokenizer.json: BertNormalizer's {wrong} must be true or false, got {spec[wrong]!r}")
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
        if not isinstance(content, str) or not isinstance(pattern, dict):
            raise TokenizerError(f"tokenizer.json: Replace needs a content string and a pattern, got {spec!r:.100}")
        if isinstance(pattern.get("String"), str):
            if not pattern["String"]:
                raise TokenizerError("tokenizer.json: Replace's pattern String is empty")
            return lambda text: text.replace(pattern["String"], content)
        regex = linear_regex(pattern.get("Regex"))
        return lambda text: regex.sub(lambda _: content, text)
    if kind == "Precompiled":
        charsmap = option(spec, "precompiled_charsmap", str)
        if not charsmap:
            return None
        try:
            return Precompiled(base64.b64decode(charsmap, validate=True))
        except (binascii.Error, TypeError, ValueError) as error:
            if isinstance(error, TokenizerError):
                raise
            raise TokenizerError(f"tokenizer.json: precompiled_charsmap is not base64 ({error})") from error
    if kind == "Strip":
        left, right = option(spec, "strip_left", bool, True), option(spec, "strip_right", bool, True)

        def strip(text: str) -> str:
            text = text.lstrip(WHITESPACE) if left else text
            return text.rstrip(WHITESPACE) if right else text

        return strip
    raise TokenizerError(
        f"tokenizer.json: normalizer {kind!r} is not supported (supported: BertNormalizer, "
        "Sequence, NFD, NFKD, NFC, NFKC, Lowercase, StripAccents, Nmt, Replace, Strip, Precompiled)"
    )


# What linear_regex accepts: characters (a literal, a class, ., \\s, ...) and zero-width anchors.
SINGLE_CHARACTERS = (sre.LITERAL, sre.NOT_LITERAL, sre.ANY, sre.IN, sre.CATEGORY)
REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT)
MAX_PATTERN_WIDTH = 256  # characters a pattern may need before its last repeat: each start position costs that much


def linear_regex(pattern: Any) -> re.Pattern[str]:
    """A Replace pattern compiled, if Python's ``re`` runs it in time linear in the text; else a TokenizerError.

    ``re`` backtracks: ``(a+)+$`` takes time exponential in a run of a's, ``\\s+x`` quadratic in a run of
    spaces (tokenizers' Oniguruma cuts such searches off with an error; ``re`` cannot be cut off). So the
    pattern must be an alternation (or one) of sequences of single characters, each repeated a fixed number
    of times but the last, which may repeat any number: ``" {2,}"``, ``"\\s+"``, ``"[\\n\\r\\t]"``,
    ``"\\s{2,}|[\\n\\r\\t]"`` (the patterns transformers' converters write). A search from any position
    then costs a bounded prefix plus the run the last repeat takes, which the replacement consumes.
    """
    if not isinstance(pattern, str) or not pattern:
        raise TokenizerError(f"tokenizer.json: Replace's pattern must be a String or a Regex, got {pattern!r}")
    try:
        compiled, parsed = re.compile(pattern), sre_parse.parse(pattern)
    except (re.error, RecursionError, OverflowError) as error:
        raise TokenizerError(
            f"tokenizer.json: Replace pattern {pattern!r} does not compile in Python's re ({error})"
        ) from error
    items = list(parsed)
    branches = items[0][1][1] if len(items) == 1 and items[0][0] is sre.BRANCH else [items]
    if not all(_linear_sequence(list(branch)) for branch in branches):
        raise TokenizerError(
            f"tokenizer.json: Replace pattern {pattern!r} could take time exponential or quadratic in the text "
            "(nested or unanchored repeats, backreferences, lookarounds); minibert runs patterns of single "
            "characters whose last one alone may repeat, such as ' {2,}' or '\\s+'"
        )
    return compiled


def _linear_sequence(items: list[tuple[Any, Any]]) -> bool:
    """Whether ``items`` are characters and anchors, each repeated a fixed number of times but the last (see above)."""
    flat: list[tuple[Any, Any]] = []
    for op, argument in items:
        if op is sre.SUBPATTERN:  # a group: its items in place, if it holds no alternation
            inner = list(argument[-1])
            if not _linear_sequence(inner) or any(o is sre.BRANCH for o, _ in inner):
                return False
            flat += inner
        else:
            flat.append((op, argument))
    width = 0
    for position, (op, argument) in enumerate(flat):
        if op in REPEATS:
            low, high, body = argument
            if not (len(body) == 1 and body[0][0] in SINGLE_CHARACTERS):
                return False
            if low != high and position != len(flat) - 1:  # only the last may repeat a variable number of times
                return False
            width += low
        elif op in SINGLE_CHARACTERS:
            width += 1
        elif op is not sre.AT:
            return False  # backreferences, lookarounds, conditionals
    return width <= MAX_PATTERN_WIDTH
