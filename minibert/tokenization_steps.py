"""The steps of a tokenizer pipeline, as the Rust ``tokenizers`` library defines them.

Normalizers (text to text), pre-tokenizers (text to words), models (word to tokens: WordPiece, BPE,
Unigram), decoders (tokens to text) and templates (special tokens around sequences), each built from its
entry in ``tokenizer.json``. ``minibert.tokenization`` puts them together into tokenizers.

Where Rust and Python define something differently, these follow Rust, since the aim is the ids of
``transformers``' fast tokenizers: whitespace is Unicode's White_Space (not ``str.isspace``), and
lowercasing goes character by character (no word-final ς). One difference remains: the Unicode tables
of each side have their own age (those inside tokenizers predate Unicode 9, Python 3.11's are Unicode
14), so a few hundred rare code points assigned or reclassified since may normalise or split
differently. The tests compare every code point of the blocks text is commonly written in.
"""

from __future__ import annotations

import base64
import functools
import itertools
import re
import struct
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from minibert.errors import TokenizerError

Normalizer = Callable[[str], str]
# A pre-tokenizer splits a text into words; the flag says whether the text opens the input.
PreTokenizer = Callable[[str, bool], list[str]]
Decoder = Callable[[list[str]], str]
TemplateItem = tuple[str | int, int]  # ("A" | "B" | a special token's id, token type id)
CACHE_SIZE = 1 << 16  # entries of each per-word (or per-grapheme) cache


# --- Characters -------------------------------------------------------------------------------------------------

# Rust's char::is_whitespace, Unicode's White_Space. Python's str.isspace() also counts U+001C..U+001F.
WHITESPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
WHITESPACE += "\u2028\u2029\u202f\u205f\u3000"


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


# BERT counts all printable ASCII that is not a letter or digit as punctuation, besides Unicode's P*.
ASCII_PUNCTUATION = "".join(chr(cp) for cp in [*range(33, 48), *range(58, 65), *range(91, 97), *range(123, 127)])


@functools.cache
def major_categories() -> str:
    """The first letter of every code point's Unicode category, indexed by code point (built once)."""
    return "".join([unicodedata.category(char)[0] for char in map(chr, range(0x110000))])


@functools.cache
def category_class(major: str) -> str:
    """A regex character-class body matching one major Unicode category ("L", "N", "P"): re lacks \\p{L}."""
    runs = re.finditer(f"{major}+", major_categories())
    return "".join(
        re.escape(chr(run.start())) + (f"-{re.escape(chr(run.end() - 1))}" if run.end() - run.start() > 1 else "")
        for run in runs
    )


class CharMap(dict):
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


# --- Normalizers: text -> text ----------------------------------------------------------------------------------


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

    Enough for the rule above, which only treats clusters under 6 bytes whole.
    """
    return re.compile(f"\r\n|[\x00-\x1f\x7f-\x9f]|.[{category_class('M')}\u200d]*", re.DOTALL)


def normalizer_from_json(spec: dict[str, Any] | None) -> Normalizer | None:
    """The normalizer a ``tokenizer.json`` describes, for the step types BERT, RoBERTa and ALBERT use."""
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
        "Sequence, NFD, NFKD, NFC, NFKC, Lowercase, StripAccents, Replace, Strip, Precompiled)"
    )


# --- Pre-tokenizers: text -> words ------------------------------------------------------------------------------

WHITESPACE_CLASS = "".join(map(re.escape, WHITESPACE))


def _bytes_to_chars() -> list[str]:
    """GPT-2's byte-to-character table: printable bytes stand for themselves, the others move past U+00FF.

    Every byte thus has a visible character, and BPE never meets a space or a control character.
    """
    printable = {*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)}
    moved = iter(range(256, 512))
    return [chr(byte) if byte in printable else chr(next(moved)) for byte in range(256)]


BYTE_TO_CHAR = _bytes_to_chars()
CHAR_TO_BYTE = {char: byte for byte, char in enumerate(BYTE_TO_CHAR)}


class BertPreTokenizer:
    """Split at whitespace, and make every punctuation character a word of its own."""

    def __init__(self) -> None:
        punctuation = category_class("P") + re.escape(ASCII_PUNCTUATION)
        self.pattern = re.compile(f"[^{WHITESPACE_CLASS}{punctuation}]+|[{punctuation}]")

    def __call__(self, text: str, at_start: bool) -> list[str]:
        return self.pattern.findall(text)


class ByteLevelPreTokenizer:
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

    def __call__(self, text: str, at_start: bool) -> list[str]:
        if self.add_prefix_space and not text.startswith(" "):
            text = " " + text
        words = self.pattern.findall(text) if self.use_regex else [text]
        return [word.encode("utf-8").decode("latin-1").translate(BYTE_TO_CHAR) for word in words]


class WhitespaceSplit:
    """Split at whitespace, dropping it."""

    pattern = re.compile(f"[^{WHITESPACE_CLASS}]+")

    def __call__(self, text: str, at_start: bool) -> list[str]:
        return self.pattern.findall(text)


class Metaspace:
    """SentencePiece's view of spaces: each becomes ``▁``, which then starts a new word.

    ``prepend_scheme`` puts a ``▁`` before every text ("always"), only before the start of the input
    ("first"), or nowhere ("never"), so that a word looks the same at the start and inside a sentence.
    """

    def __init__(self, replacement: str = "▁", prepend_scheme: str = "always", split: bool = True) -> None:
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


def pre_tokenizer_sequence(steps: list[PreTokenizer]) -> PreTokenizer:
    """Run each step on every word of the previous one; only a word at offset 0 still opens the input."""

    def pre_tokenize(text: str, at_start: bool) -> list[str]:
        words = [(text, at_start)]
        for step in steps:
            words = [
                (word, opens and i == 0 and piece.startswith(word))
                for piece, opens in words
                for i, word in enumerate(step(piece, opens))
            ]
        return [word for word, _ in words]

    return pre_tokenize


def pre_tokenizer_from_json(spec: dict[str, Any] | None) -> PreTokenizer:
    if spec is None:
        return lambda text, at_start: [text] if text else []
    kind = spec["type"]
    if kind == "Sequence":
        return pre_tokenizer_sequence([pre_tokenizer_from_json(step) for step in spec["pretokenizers"]])
    if kind == "BertPreTokenizer":
        return BertPreTokenizer()
    if kind == "ByteLevel":
        return ByteLevelPreTokenizer(spec.get("add_prefix_space", False), spec.get("use_regex", True))
    if kind == "WhitespaceSplit":
        return WhitespaceSplit()
    if kind == "Metaspace":
        return Metaspace(spec.get("replacement", "▁"), _prepend_scheme(spec), spec.get("split", True))
    raise TokenizerError(
        f"tokenizer.json: pre-tokenizer {kind!r} is not supported "
        "(supported: BertPreTokenizer, ByteLevel, WhitespaceSplit, Metaspace, Sequence)"
    )


def _prepend_scheme(spec: dict[str, Any]) -> str:
    """Metaspace's prepend scheme; files older than tokenizers 0.19 say add_prefix_space instead."""
    if "prepend_scheme" in spec:
        return spec["prepend_scheme"]
    return "always" if spec.get("add_prefix_space", True) else "never"


# --- Models: word -> tokens -------------------------------------------------------------------------------------


class WordPiece:
    """Greedy longest-match-first: take the longest vocabulary entry at the start, continue with ``##`` entries.

    A word with a piece no entry covers, or longer than ``max_input_chars_per_word``, is one unknown token.
    """

    def __init__(
        self, vocab: dict[str, int], unk_token: str, prefix: str = "##", max_input_chars_per_word: int = 100
    ) -> None:
        self.vocab = vocab
        self.unk_token = unk_token
        self.prefix = prefix
        self.max_input_chars_per_word = max_input_chars_per_word
        # The ## entries without their prefix, so that looking one up builds no string.
        self.continuations = {token[len(prefix) :] for token in vocab if token.startswith(prefix)}
        self.longest = max(map(len, vocab), default=0)  # no longer slice can match

    def __call__(self, word: str) -> list[str]:
        if len(word) > self.max_input_chars_per_word:
            return [self.unk_token]
        tokens = []
        start = 0
        while start < len(word):
            entries = self.vocab if start == 0 else self.continuations
            for end in range(min(len(word), start + self.longest), start, -1):
                if word[start:end] in entries:
                    break
            else:
                return [self.unk_token]
            tokens.append(word[start:end] if start == 0 else self.prefix + word[start:end])
            start = end
        return tokens


class BPE:
    """Byte-pair encoding: start from characters, and keep merging the adjacent pair with the lowest merge rank.

    Where several pairs share that rank the leftmost merges first, as in tokenizers. Characters outside the
    vocabulary become ``unk_token`` (consecutive ones fused into one if ``fuse_unk``), or vanish without one.
    """

    def __init__(
        self,
        vocab: dict[str, int],
        merges: list[tuple[str, str]],
        unk_token: str | None = None,
        fuse_unk: bool = False,
        ignore_merges: bool = False,
    ) -> None:
        self.vocab = vocab
        self.ranks = {pair: rank for rank, pair in enumerate(merges)}
        self.unk_token = unk_token
        self.fuse_unk = fuse_unk
        self.ignore_merges = ignore_merges  # a word found whole in the vocabulary skips the merges

    def __call__(self, word: str) -> list[str]:
        if self.ignore_merges and word in self.vocab:
            return [word]
        parts = [char for char in word if char in self.vocab or self.unk_token is not None]
        no_merge = len(self.ranks)
        ranks = [self.ranks.get(pair, no_merge) for pair in itertools.pairwise(parts)]  # ranks[i]: parts i, i + 1
        while ranks and (rank := min(ranks)) != no_merge:
            i = ranks.index(rank)  # the leftmost
            parts[i : i + 2] = [parts[i] + parts[i + 1]]
            del ranks[i]  # only the merged part's pairs with its neighbours change
            if i > 0:
                ranks[i - 1] = self.ranks.get((parts[i - 1], parts[i]), no_merge)
            if i < len(ranks):
                ranks[i] = self.ranks.get((parts[i], parts[i + 1]), no_merge)
        tokens: list[str] = []
        for part in parts:
            if part in self.vocab:
                tokens.append(part)
            elif not (self.fuse_unk and tokens and tokens[-1] == self.unk_token):
                tokens.append(self.unk_token)
        return tokens


class Unigram:
    """SentencePiece's unigram model: the segmentation whose pieces' log-probabilities sum highest (Viterbi).

    A character no piece covers becomes ``unk`` (scored below every piece); neighbouring unknowns are fused.
    With ``byte_fallback`` an unknown span is spelt as ``<0xNN>`` byte pieces instead, when they all exist.
    """

    unk_penalty = 10.0  # how far below the rarest piece an unknown character scores

    def __init__(self, pieces: list[tuple[str, float]], unk_id: int | None, byte_fallback: bool = False) -> None:
        self.pieces = {piece: (id, score) for id, (piece, score) in enumerate(pieces)}
        self.vocab = {piece: id for piece, (id, _) in self.pieces.items()}
        # Every beginning of a piece: the search for pieces at a position stops where none begins (a trie's job).
        self.prefixes = {piece[:end] for piece in self.pieces for end in range(1, len(piece) + 1)}
        self.unk_id = unk_id
        self.unk_token = None if unk_id is None else pieces[unk_id][0]
        self.unk_score = min(score for _, score in pieces) - self.unk_penalty
        self.byte_fallback = byte_fallback

    def __call__(self, word: str) -> list[str]:
        # best[end] = (score of the best segmentation of word[:end], start of its last piece, that piece's id)
        best: list[tuple[float, int, int] | None] = [None] * (len(word) + 1)
        best[0] = (0.0, 0, 0)
        pieces, prefixes = self.pieces, self.prefixes  # locals: this loop is the hot path
        for start in range(len(word)):
            score_so_far = best[start][0]
            has_single_character_piece = False
            end = start + 1
            while end <= len(word) and word[start:end] in prefixes:  # pieces from shortest to longest
                if (entry := pieces.get(word[start:end])) is not None:
                    id, score = entry
                    if best[end] is None or score + score_so_far > best[end][0]:
                        best[end] = (score + score_so_far, start, id)
                    has_single_character_piece |= end == start + 1
                end += 1
            if not has_single_character_piece:
                if self.unk_id is None:
                    raise TokenizerError(f"Unigram: no piece covers {word[start]!r} and the model has no unk_id")
                if best[start + 1] is None or self.unk_score + score_so_far > best[start + 1][0]:
                    best[start + 1] = (self.unk_score + score_so_far, start, self.unk_id)
        tokens: list[str] = []
        end = len(word)
        unknown_run = ""  # consecutive unknown pieces, fused into one token
        while end > 0:
            _, start, id = best[end]
            if id == self.unk_id:
                unknown_run = word[start:end] + unknown_run
            else:
                if unknown_run:
                    tokens.append(unknown_run)
                    unknown_run = ""
                tokens.append(word[start:end])
            end = start
        if unknown_run:
            tokens.append(unknown_run)
        tokens.reverse()
        return [byte for token in tokens for byte in self.spell_unknown(token)] if self.byte_fallback else tokens

    def spell_unknown(self, token: str) -> list[str]:
        """A token as it is if it is a piece; else its ``<0xNN>`` byte pieces, if the vocabulary has them all."""
        if token in self.vocab:
            return [token]
        pieces = [f"<0x{byte:02X}>" for byte in token.encode("utf-8")]
        return pieces if all(piece in self.vocab for piece in pieces) else [token]


def model_type(spec: dict[str, Any]) -> str | None:
    """The type of a ``tokenizer.json`` model; some files written by early tokenizers versions leave it out."""
    if "type" in spec:
        return spec["type"]
    if "merges" in spec:
        return "BPE"
    if "unk_id" in spec:
        return "Unigram"
    return "WordPiece" if "max_input_chars_per_word" in spec else None


def model_from_json(spec: dict[str, Any]) -> WordPiece | BPE | Unigram:
    """The model of a ``tokenizer.json``: its vocabulary and how it splits a word."""
    kind = model_type(spec)
    if kind == "WordPiece":
        return WordPiece(
            spec["vocab"],
            spec["unk_token"],
            spec.get("continuing_subword_prefix", "##"),
            spec.get("max_input_chars_per_word", 100),
        )
    if kind == "BPE":
        unsupported = {key: spec.get(key) for key in ("dropout", "continuing_subword_prefix", "end_of_word_suffix")}
        if any(unsupported.values()):
            raise TokenizerError(f"tokenizer.json: BPE options {unsupported} are not supported")
        merges = [tuple(merge.split(" ", 1)) if isinstance(merge, str) else tuple(merge) for merge in spec["merges"]]
        return BPE(
            spec["vocab"], merges, spec.get("unk_token"), spec.get("fuse_unk", False), spec.get("ignore_merges", False)
        )
    if kind == "Unigram":
        pieces = [(piece, float(score)) for piece, score in spec["vocab"]]
        return Unigram(pieces, spec.get("unk_id"), spec.get("byte_fallback", False))
    raise TokenizerError(f"tokenizer.json: model {kind!r} is not supported (supported: WordPiece, BPE, Unigram)")


# --- Decoders: tokens -> text -----------------------------------------------------------------------------------


def wordpiece_decoder(prefix: str = "##", cleanup: bool = True) -> Decoder:
    """Glue ``##`` pieces to the token before, put a space before the others.

    ``cleanup`` removes the space before . ? ! , and a few English contractions, token by token as tokenizers
    does (so " ' " across tokens is left alone).
    """

    def decode(tokens: list[str]) -> str:
        pieces = []
        for i, token in enumerate(tokens):
            if i > 0:
                token = token.replace(prefix, "", 1) if token.startswith(prefix) else " " + token
            pieces.append(clean_up_tokenization(token, WORDPIECE_CLEANUPS) if cleanup else token)
        return "".join(pieces)

    return decode


# transformers' clean_up_tokenization_spaces; tokenizers' WordPiece decoder has one rule more.
CLEANUPS = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"))
CLEANUPS += ((" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))
WORDPIECE_CLEANUPS = (*CLEANUPS[:7], (" do not", " don't"), *CLEANUPS[7:])


def clean_up_tokenization(text: str, rules: tuple[tuple[str, str], ...] = CLEANUPS) -> str:
    """Remove the spaces tokenization put before punctuation and English contractions."""
    for before, after in rules:
        text = text.replace(before, after)
    return text


def byte_level_decode(tokens: list[str]) -> str:
    """Map characters back to bytes and read them as UTF-8; broken sequences become U+FFFD."""
    data = bytearray()
    for char in "".join(tokens):
        byte = CHAR_TO_BYTE.get(char)
        data += char.encode("utf-8") if byte is None else bytes((byte,))
    return data.decode("utf-8", errors="replace")


def metaspace_decoder(replacement: str = "▁", prepend_scheme: str = "always") -> Decoder:
    """``▁`` back to spaces; the first token loses its ``▁`` when the pre-tokenizer prepended one."""

    def decode(tokens: list[str]) -> str:
        return "".join(
            token.replace(replacement, "" if i == 0 and prepend_scheme != "never" else " ")
            for i, token in enumerate(tokens)
        )

    return decode


def decoder_from_json(spec: dict[str, Any] | None) -> Decoder:
    if spec is None:
        return " ".join
    kind = spec["type"]
    if kind == "WordPiece":
        return wordpiece_decoder(spec.get("prefix", "##"), spec.get("cleanup", True))
    if kind == "ByteLevel":
        return byte_level_decode
    if kind == "Metaspace":
        return metaspace_decoder(spec.get("replacement", "▁"), _prepend_scheme(spec))
    raise TokenizerError(
        f"tokenizer.json: decoder {kind!r} is not supported (supported: WordPiece, ByteLevel, Metaspace)"
    )


# --- Special tokens around sequences ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Template:
    """Where special tokens go around one sequence ``A`` or a pair ``A``, ``B``, and each part's token type.

    Items are ``("A" | "B" | special token id, token type id)``: tokenizers' post-processor. Without special
    tokens, ``B`` gets ``bare_pair_type_id`` (RoBERTa's processor leaves every type 0).
    """

    single: tuple[TemplateItem, ...] = (("A", 0),)
    pair: tuple[TemplateItem, ...] = (("A", 0), ("B", 1))
    bare_pair_type_id: int = 1

    @classmethod
    def bert(cls, cls_id: int, sep_id: int) -> Template:
        """``[CLS] A [SEP]`` and ``[CLS] A [SEP] B [SEP]``, with ``B [SEP]`` of type 1."""
        single = ((cls_id, 0), ("A", 0), (sep_id, 0))
        return cls(single, (*single, ("B", 1), (sep_id, 1)))

    @classmethod
    def roberta(cls, cls_id: int, sep_id: int) -> Template:
        """``<s> A </s>`` and ``<s> A </s></s> B </s>``, all of type 0."""
        single = ((cls_id, 0), ("A", 0), (sep_id, 0))
        return cls(single, (*single, (sep_id, 0), ("B", 0), (sep_id, 0)), bare_pair_type_id=0)

    def apply(
        self, first: list[int], second: list[int] | None, add_special_tokens: bool
    ) -> tuple[list[int], list[int]]:
        """The ids of one or two sequences with special tokens added, and their token type ids."""
        if not add_special_tokens:
            second = second or []
            return first + second, [0] * len(first) + [self.bare_pair_type_id] * len(second)
        ids: list[int] = []
        types: list[int] = []
        for item, type_id in self.single if second is None else self.pair:
            part = first if item == "A" else second if item == "B" else [item]
            ids += part
            types += [type_id] * len(part)
        return ids, types

    def num_special_tokens(self, pair: bool) -> int:
        return sum(item not in ("A", "B") for item, _ in (self.pair if pair else self.single))


def template_from_json(spec: dict[str, Any] | None) -> Template:
    """tokenizers' TemplateProcessing, RobertaProcessing or BertProcessing as a Template."""
    if spec is None:
        return Template()
    kind = spec["type"]
    if kind == "TemplateProcessing":
        ids = {name: token["ids"] for name, token in spec["special_tokens"].items()}

        def items(template: list[dict[str, Any]]) -> tuple[TemplateItem, ...]:
            result: list[TemplateItem] = []
            for piece in template:
                if "Sequence" in piece:
                    result.append((piece["Sequence"]["id"], piece["Sequence"]["type_id"]))
                else:
                    result += [(id, piece["SpecialToken"]["type_id"]) for id in ids[piece["SpecialToken"]["id"]]]
            return tuple(result)

        return Template(items(spec["single"]), items(spec["pair"]))
    if kind == "RobertaProcessing":
        return Template.roberta(spec["cls"][1], spec["sep"][1])
    if kind == "BertProcessing":
        return Template.bert(spec["cls"][1], spec["sep"][1])
    raise TokenizerError(
        f"tokenizer.json: post-processor {kind!r} is not supported "
        "(supported: TemplateProcessing, RobertaProcessing, BertProcessing)"
    )
