"""minibert's normalizers and pre-tokenizers answer as ``tokenizers`` does on every assigned code point.

Python's Unicode tables and those compiled into tokenizers have different ages; unicode_overrides.json
(scripts/unicode_tables.py) records where they disagree. These tests take only inputs from that file
(the code points it names), never answers: they run every code point of the planes Unicode assigns in
and strings of marks, Hangul and compatibility characters through minibert and through tokenizers.
"""

import functools
import unicodedata
from collections.abc import Callable
from typing import Any

import pytest
import transformers
from tokenizers import Regex, normalizers, pre_tokenizers

from minibert.cli import default_checkpoint
from minibert.tokenization import AutoTokenizer, TokenizerError
from minibert.tokenization.characters import overrides
from minibert.tokenization.normalizers import normalizer_from_json
from minibert.tokenization.pre_tokenizers import pre_tokenizer_from_json

CHUNK = 2048  # texts per call


@functools.cache
def formerly_differing() -> list[str]:
    """The code points where Python's tables and tokenizers' disagree, but the ~9,000 letters only Oniguruma knows."""
    found = {cp for name, values in overrides().items() if name not in ("letter", "number") for cp in values}
    return [chr(cp) for cp in sorted(found)]


@functools.cache
def assigned() -> list[str]:
    """Every code point of planes 0 to 3, where Unicode 15 and 16 assigned what Python 3.11 does not know yet,
    and beyond them every one Python has assigned (plane 14's tags and selectors, the private use planes)."""
    return [
        chr(cp)
        for cp in range(0x110000)
        if not 0xD800 <= cp <= 0xDFFF and (cp < 0x40000 or unicodedata.category(chr(cp)) != "Cn")
    ]


@functools.cache
def sequences() -> list[str]:
    """Strings whose normal forms depend on more than one character.

    Every mark after a letter with another mark on either side (reordering, composition), Hangul jamo
    that compose into syllables, compatibility characters before a mark, and each formerly differing
    code point between marks and letters.
    """
    chars = assigned()
    marks = [c for c in chars if unicodedata.category(c)[0] == "M" or unicodedata.combining(c)]
    texts = [text for m in marks for text in (f"a{m}\u0301", f"e\u0301{m}", f"o\u031b{m}\u0323\u0345", f"{m}\u0334")]
    leads, vowels, tails = range(0x1100, 0x1113), range(0x1161, 0x1176), range(0x11A8, 0x11C3)
    texts += [
        chr(lead) + chr(vowel) + "".join(map(chr, tail))
        for lead in leads
        for vowel in vowels
        for tail in [(), *[(t,) for t in tails]]
    ]
    texts += [c + "\u0301\u0323" for c in chars if unicodedata.decomposition(c)]
    texts += [
        text
        for c in formerly_differing()
        for text in (f"a{c}", f"a\u0301{c}\u0323", f"{c}\u0301{c}", f"e{c}\u0301", f"{c}A{c}", f"Ä{c}1{c}!{c} {c}")
    ]
    texts += ["\U00011935\U00011930", "\U00011935\U00011930\u0301", "a\U00011938\u0301"]  # Dives Akuru, Unicode 13
    return texts


def differing(ours: Callable[[str], Any], theirs: Callable[[str], Any], texts: list[str]) -> list[str]:
    """The texts on which ``ours`` and ``theirs`` disagree: ``CHUNK`` texts per call, joined by spaces."""
    wrong = []
    for start in range(0, len(texts), CHUNK):
        chunk = texts[start : start + CHUNK]
        if ours(" ".join(chunk)) != theirs(" ".join(chunk)):
            wrong += [ascii(text) for text in chunk if ours(text) != theirs(text)] or [f"chunk at {start}"]
    return wrong[:20]


NORMALIZERS = {
    "NFD": ({"type": "NFD"}, normalizers.NFD()),
    "NFKD": ({"type": "NFKD"}, normalizers.NFKD()),
    "NFC": ({"type": "NFC"}, normalizers.NFC()),
    "NFKC": ({"type": "NFKC"}, normalizers.NFKC()),
    "Lowercase": ({"type": "Lowercase"}, normalizers.Lowercase()),
    "StripAccents": ({"type": "StripAccents"}, normalizers.StripAccents()),
    "NFD+StripAccents": (
        {"type": "Sequence", "normalizers": [{"type": "NFD"}, {"type": "StripAccents"}]},
        normalizers.Sequence([normalizers.NFD(), normalizers.StripAccents()]),
    ),
    "Nmt+NFKC": (
        {"type": "Sequence", "normalizers": [{"type": "Nmt"}, {"type": "NFKC"}]},
        normalizers.Sequence([normalizers.Nmt(), normalizers.NFKC()]),
    ),
    "Strip": ({"type": "Strip", "strip_left": True, "strip_right": True}, normalizers.Strip()),
    "Replace-spaces": (  # as transformers' DeBERTa-v2 converter writes it; re's \s also takes U+001C..U+001F
        {"type": "Replace", "pattern": {"Regex": "\\s{2,}|[\n\r\t]"}, "content": " "},
        normalizers.Replace(Regex("\\s{2,}|[\n\r\t]"), " "),
    ),
    "Replace-non-space": (
        {"type": "Replace", "pattern": {"Regex": "[^\\s]"}, "content": "_"},
        normalizers.Replace(Regex("[^\\s]"), "_"),
    ),
    "BertNormalizer": ({"type": "BertNormalizer"}, normalizers.BertNormalizer()),
    "BertNormalizer-cased": (
        {"type": "BertNormalizer", "lowercase": False},
        normalizers.BertNormalizer(lowercase=False),
    ),
    "BertNormalizer-cased-stripped": (
        {"type": "BertNormalizer", "lowercase": False, "strip_accents": True},
        normalizers.BertNormalizer(lowercase=False, strip_accents=True),
    ),
    "BertNormalizer-raw": (
        {"type": "BertNormalizer", "clean_text": False, "handle_chinese_chars": False, "lowercase": False},
        normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=False, lowercase=False),
    ),
}


@pytest.mark.parametrize("name", NORMALIZERS)
def test_normalizers_on_every_code_point_and_sequence(name):
    spec, theirs = NORMALIZERS[name]
    ours = normalizer_from_json(spec)
    assert differing(ours, theirs.normalize_str, assigned()) == []
    assert differing(ours, theirs.normalize_str, sequences()) == []


@pytest.mark.parametrize("pattern", ["\\w+", "[\\d.]", "\\bx", "[\\Sx]"])
def test_replace_patterns_whose_classes_oniguruma_defines_otherwise_are_refused(pattern):
    """re's \\w, \\d and \\b are not Oniguruma's (its \\w takes combining marks): a clear error, not other ids."""
    with pytest.raises(TokenizerError, match="Oniguruma define over different Unicode classes"):
        normalizer_from_json({"type": "Replace", "pattern": {"Regex": pattern}, "content": " "})


PRE_TOKENIZERS = {
    "BertPreTokenizer": ({"type": "BertPreTokenizer"}, pre_tokenizers.BertPreTokenizer()),
    "ByteLevel": ({"type": "ByteLevel", "add_prefix_space": False}, pre_tokenizers.ByteLevel(add_prefix_space=False)),
    "WhitespaceSplit": ({"type": "WhitespaceSplit"}, pre_tokenizers.WhitespaceSplit()),
    "Metaspace": ({"type": "Metaspace", "prepend_scheme": "always"}, pre_tokenizers.Metaspace()),
}


@pytest.mark.parametrize("name", PRE_TOKENIZERS)
def test_pre_tokenizers_on_every_code_point(name):
    """Each code point after a letter, a digit, ``!`` and a space: every class of GPT-2's regex and of BERT's split."""
    spec, theirs = PRE_TOKENIZERS[name]
    ours = pre_tokenizer_from_json(spec)
    texts = [f"a{c}1{c}!{c} {c}" for c in assigned()]
    assert (
        differing(lambda text: ours(text, True), lambda text: [w for w, _ in theirs.pre_tokenize_str(text)], texts)
        == []
    )


def test_minilm_ids_equal_transformers_on_formerly_differing_code_points():
    """The real all-MiniLM-L6-v2 folder (uncased WordPiece: cleaning, accents, punctuation) on each of them."""
    folder = default_checkpoint()
    ours, theirs = AutoTokenizer.from_pretrained(folder), transformers.AutoTokenizer.from_pretrained(folder)
    texts = [f"naïve{c} café {c}word {c}{c}, É{c}1." for c in formerly_differing()]
    assert len(texts) > 500
    assert ours(texts)["input_ids"] == theirs(texts)["input_ids"]
