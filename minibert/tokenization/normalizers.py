"""Normalizers, text -> text: BERT's cleaning, Unicode normal forms, lowercasing, accents, SentencePiece's rules
(its Nmt cleaning and its compiled charsmaps).

Each is a function of a text (a ``Normalizer``), built from its entry in ``tokenizer.json`` by
``normalizer_from_json``, as tokenizers' ``normalizers`` module defines it. Lowercasing goes character
by character, as in Rust: a word-final Σ never becomes ς.

For character offsets, ``align(normalizer, text, origins)`` also says where each normalised character
comes from: ``origins[i]`` is the index of the original character behind character ``i`` (-1: none), as
tokenizers' ``NormalizedString`` keeps its alignments. Most normalizers map each character (or each
character with its combining marks) on its own, and ``align_locally`` finds that out by itself; the
others (Sequence, Replace, Strip, Precompiled) have an ``aligned`` method that mirrors tokenizers' rules.
"""

from __future__ import annotations

import base64
import binascii
import functools
import itertools
import re
import re._compiler as sre_compile
import re._constants as sre
import re._parser as sre_parse
import struct
import unicodedata
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from minibert.errors import TokenizerError
from minibert.tokenization.characters import (
    WHITESPACE,
    category_class,
    combining_class,
    is_control,
    is_mark,
    is_nonspacing_mark,
    lower,
    normalize,
    oniguruma_classes,
)
from minibert.tokenization.files import entry_type, option, steps

Normalizer = Callable[[str], str]
Origins = list[int]  # for each character of a normalised text, the index of the original one it comes from
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
LOWERCASE = CharMap(lower)
DROP_NONSPACING_MARKS = CharMap(lambda c: "" if is_nonspacing_mark(c) else c)
DROP_MARKS = CharMap(lambda c: "" if is_mark(c) else c)


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
            if is_control(char):
                return ""
            if char in WHITESPACE:
                return " "
        if handle_chinese_chars and is_cjk(ord(char)):
            return f" {char} "
        return char

    def __call__(self, text: str) -> str:
        text = text.translate(self.chars)
        if self.strip_accents and not text.isascii():
            text = normalize("NFD", text).translate(DROP_NONSPACING_MARKS)
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

    def aligned(self, text: str, origins: Origins) -> tuple[str, Origins]:
        """``__call__`` with alignments, as tokenizers' Precompiled builds its changes (normalizers/precompiled.rs).

        A replacement longer than what it replaces marks its last characters as inserted; a shorter one
        removes characters after the last change so far, even a previous grapheme's (at the very start,
        none: tokenizers then shifts the alignments of what follows, and so does this).
        """
        changes: list[tuple[str, int]] = []

        def replace(old: str, new: str) -> None:
            changes.extend((char, 0) for char in new)
            diff = len(new) - len(old)
            if diff > 0:
                changes[-diff:] = [(char, 1) for char, _ in changes[-diff:]]
            elif diff < 0 and changes:
                changes[-1] = (changes[-1][0], changes[-1][1] + diff)

        for grapheme in grapheme_pattern().findall(text):
            if len(grapheme.encode("utf-8")) < 6 and (rule := self.rule(grapheme)) is not None:
                replace(grapheme, rule)
                continue
            for char in grapheme:
                if (rule := self.rule(char)) is None:
                    changes.append((char, 0))
                else:
                    replace(char, rule)
        return transform(origins, changes)


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


class Chain:
    """Normalizers applied in turn. Having no ``aligned`` of its own, it is aligned at once by ``align_locally``."""

    def __init__(self, parts: list[Normalizer]) -> None:
        self.parts = parts

    def __call__(self, text: str) -> str:
        for part in self.parts:
            text = part(text)
        return text


class NormalizerSequence(Chain):
    """Each normalizer in turn (tokenizers' Sequence), aligned part by part, each run of local parts at once."""

    def __init__(self, parts: list[Normalizer]) -> None:
        super().__init__(parts)
        runs = itertools.groupby(parts, key=lambda part: hasattr(part, "aligned"))
        self.stages = [stage for explicit, run in runs for stage in (run if explicit else [Chain(list(run))])]

    def aligned(self, text: str, origins: Origins) -> tuple[str, Origins]:
        for stage in self.stages:
            text, origins = align(stage, text, origins)
        return text, origins


class Replace:
    """Every match of a string or of a regex replaced by ``content`` (tokenizers' Replace)."""

    def __init__(self, pattern: str | re.Pattern[str], content: str) -> None:
        self.pattern = re.compile(re.escape(pattern)) if isinstance(pattern, str) else pattern
        self.literal = pattern if isinstance(pattern, str) else None
        self.content = content

    def __call__(self, text: str) -> str:
        if self.literal is not None:
            return text.replace(self.literal, self.content)
        return self.pattern.sub(lambda _: self.content, text)

    def aligned(self, text: str, origins: Origins) -> tuple[str, Origins]:
        """Each character of ``content`` aligned with the last one it replaces, as ``NormalizedString::replace``.

        ``"a``b"`` with ``"``"`` -> ``'"'``: ``'a"b'``, origins ``[0, 2, 3]``.
        """
        pieces, aligned, done = [], [], 0
        for match in self.pattern.finditer(text):
            start, end = match.span()
            pieces.append(text[done:start])
            aligned += origins[done:start]
            source = origins[end - 1] if end > start else aligned[-1] if aligned else -1
            pieces.append(self.content)
            aligned += [source] * len(self.content)
            done = end
        pieces.append(text[done:])
        return "".join(pieces), aligned + origins[done:]


class Strip:
    """Whitespace removed from the left and/or the right end (tokenizers' Strip)."""

    def __init__(self, left: bool, right: bool) -> None:
        self.left, self.right = left, right

    def __call__(self, text: str) -> str:
        text = text.lstrip(WHITESPACE) if self.left else text
        return text.rstrip(WHITESPACE) if self.right else text

    def aligned(self, text: str, origins: Origins) -> tuple[str, Origins]:
        start = len(text) - len(text.lstrip(WHITESPACE)) if self.left else 0
        end = len(text.rstrip(WHITESPACE)) if self.right else len(text)
        return text[start : max(start, end)], origins[start : max(start, end)]


# --- Alignments -------------------------------------------------------------------------------------------------


def align(normalizer: Normalizer, text: str, origins: Origins) -> tuple[str, Origins]:
    """``normalizer(text)`` and, for each of its characters, the origin of the character it comes from."""
    aligned = getattr(normalizer, "aligned", None)
    return aligned(text, origins) if aligned is not None else align_locally(normalizer, text, origins)


def align_locally(normalizer: Normalizer, text: str, origins: Origins) -> tuple[str, Origins]:
    """Alignments for a normalizer that maps each character, or each cluster of characters, on its own.

    Clusters grow while normalising them whole differs from normalising their parts (``"e\u0301"`` under
    NFC). As the changes of unicode-normalization-alignments (which tokenizers uses) work out: an output
    no longer than its cluster goes position by position, its first character standing for the
    characters lost (NFC's ``"A\u0308\u0323"`` -> ``"\u1ea0\u0308"``, ``[0, 2]``; a reordering keeps
    ``[0, 1, 2]``); in a longer one, a character of the cluster is aligned with itself, any other with
    the last such before it, or the cluster's first (``"北"`` under BertNormalizer -> ``" 北 "``, ``[0, 0, 0]``).

    Most texts take a shortcut: one left as it is, or ASCII kept at its length (lowercased), maps one to one.
    """
    normalized = normalizer(text)
    if normalized == text or (text.isascii() and len(normalized) == len(text)):
        return normalized, origins
    outputs = char_outputs(normalizer)
    for char in set(text).difference(outputs):
        outputs[char] = normalizer(char)
    if "".join(map(outputs.__getitem__, text)) == normalized and not reorders(text):  # all from their own
        return normalized, [origin for char, origin in zip(text, origins, strict=True) for _ in outputs[char]]
    aligned: Origins = []
    start = 0
    for cluster in clusters(normalizer, text):
        end = start + len(cluster)
        output = outputs[cluster] if len(cluster) == 1 else normalizer(cluster)
        if 0 < len(output) <= len(cluster):  # position by position, the first taking what the cluster lost
            aligned += [origins[start], *origins[end - len(output) + 1 : end]]
        else:
            kept = 0  # the characters of the cluster the output has used so far
            for char in output:
                found = cluster.find(char, kept)
                if found >= 0:
                    kept = found + 1
                aligned.append(origins[start + max(kept - 1, 0)])
        start = end
    return normalized, aligned


@functools.cache
def adjacent_marks() -> re.Pattern[str]:
    """Two combining marks in a row (canonical combining class > 0), which the normal forms may reorder.

    Python's classes, whose marks include all of tokenizers': ``reorders`` then asks tokenizers' own.
    """
    marks = "".join(re.escape(chr(cp)) for cp in range(0x110000) if unicodedata.combining(chr(cp)))
    return re.compile(f"[{marks}]{{2}}")


def reorders(text: str) -> bool:
    """Whether the canonical ordering of NFD and NFKD would swap two marks of ``text``."""
    if not adjacent_marks().search(text):
        return False
    classes = list(map(combining_class, text))
    return any(first > second > 0 for first, second in itertools.pairwise(classes))


CHAR_OUTPUTS: weakref.WeakKeyDictionary[Any, dict[str, str]] = weakref.WeakKeyDictionary()


def char_outputs(normalizer: Normalizer) -> dict[str, str]:
    """What the normalizer makes of each character met so far: kept as long as the normalizer lives."""
    try:
        return CHAR_OUTPUTS.setdefault(normalizer, {})
    except TypeError:  # a normalizer that takes no weak reference (a builtin) goes without
        return {}


def clusters(normalizer: Normalizer, text: str) -> Iterator[str]:
    """The text cut where normalising the two sides apart gives what normalising them together does.

    The next side is a character with the marks after it (at most 30, as Unicode's stream-safe format):
    NFC composes ``"A\u06df\u0325"`` whole, though neither ``"A\u06df"`` nor ``"\u06df\u0325"`` composes.
    Two marks that a normal form reorders stay together too: tokenizers aligns them position by position,
    even where they normalise apart as they do together (``"\u0670\ua953"`` -> ``"\ua953"``, ``[0]``,
    once accents are stripped).
    """
    start = 0
    for end in range(1, len(text) + 1):
        if end < len(text):
            cluster, char = text[start:end], text[end]
            if combining_class(cluster[-1]) > combining_class(char) > 0:
                continue  # marks out of canonical order
            marks = end + 1
            while marks < min(len(text), end + 31) and combining_class(text[marks]):
                marks += 1
            following = text[end:marks]
            if normalizer(cluster + following) != normalizer(cluster) + normalizer(following):
                continue  # the next character belongs to this cluster
        yield text[start:end]
        start = end


def transform(origins: Origins, changes: list[tuple[str, int]]) -> tuple[str, Origins]:
    """Apply ``(character, change)`` pairs to a text's alignments, as ``NormalizedString::transform`` does.

    ``change`` is 0 for a character that replaces the next original one, 1 for one inserted (aligned with
    the original character before it), ``-n`` for one that replaces the next and removes ``n`` more.
    """
    aligned: Origins = []
    position = 0
    for _, change in changes:
        if change > 0:
            aligned.append(origins[position - 1] if position > 0 else -1)
        else:
            aligned.append(origins[position])
            position += 1 - change
    return "".join(char for char, _ in changes), aligned


def normalizer_from_json(spec: dict[str, Any] | None) -> Normalizer | None:
    """The normalizer a ``tokenizer.json`` describes, for the step types of the BERT family's tokenizers."""
    if spec is None:
        return None
    kind = entry_type(spec, "normalizer")
    if kind == "Sequence":
        parts = [part for part in map(normalizer_from_json, steps(spec, "normalizers", "normalizer")) if part]
        return NormalizerSequence(parts)
    if kind == "BertNormalizer":
        options = {"clean_text": bool, "handle_chinese_chars": bool, "strip_accents": bool | None, "lowercase": bool}
        wrong = next((key for key, kind in options.items() if key in spec and not isinstance(spec[key], kind)), None)
        if wrong is not None:
            raise TokenizerError(f"tokenizer.json: BertNormalizer's {wrong} must be true or false, got {spec[wrong]!r}")
        return BertNormalizer(**{key: spec[key] for key in options if key in spec})
    if kind in ("NFD", "NFKD", "NFC", "NFKC"):
        return functools.partial(normalize, kind)
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
            return Replace(pattern["String"], content)
        return Replace(linear_regex(pattern.get("Regex")), content)
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
        return Strip(option(spec, "strip_left", bool, True), option(spec, "strip_right", bool, True))
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
        re.compile(pattern)  # its errors first; the parse below is checked, adapted and compiled
        parsed = sre_parse.parse(pattern)
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
    try:
        oniguruma_classes(parsed)
    except ValueError as error:
        raise TokenizerError(
            f"tokenizer.json: Replace pattern {pattern!r} uses {error}, which Python's re and tokenizers' "
            "Oniguruma define over different Unicode classes; minibert runs \\s as Oniguruma does, not these"
        ) from error
    return sre_compile.compile(parsed)


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
