"""The character classes several stages share, answered as the Rust ``tokenizers`` library answers them.

``re`` knows neither Unicode's White_Space (its ``\\s`` is ``str.isspace``) nor ``\\p{L}``, so both are
spelt out here, once, for the normalizers, the pre-tokenizers and the added-token splitter.

Python's ``unicodedata`` (Unicode 14 in Python 3.11) and the tables compiled into tokenizers have
different ages: its normal forms and combining marks are Unicode 9's, its control, nonspacing-mark
and punctuation tests Unicode 8's, its lowercasing (Rust's) and byte-level regex (Oniguruma) Unicode
16's. Where the two disagree, ``unicode_overrides.json`` says what tokenizers does, code point by code
point (about 700, and the 9,392 letters and digits of the regex that Python does not know yet);
``scripts/unicode_tables.py`` writes it by asking tokenizers about every code point, and ``--check``
tells whether it is still up to date for the installed tokenizers.
"""

from __future__ import annotations

import functools
import json
import re
import re._constants as sre
import re._parser as sre_parse
import unicodedata
from collections.abc import Iterator
from importlib import resources
from typing import Any

# Rust's char::is_whitespace, Unicode's White_Space. Python's str.isspace() also counts U+001C..U+001F.
WHITESPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
WHITESPACE += "\u2028\u2029\u202f\u205f\u3000"

# What the script checks but minibert takes as given: tokenizers agrees with WHITESPACE and is_cjk everywhere.
FIXED_PROPERTIES = (
    "chinese",
    "bert_lowercase",
    "clean_whitespace",
    "whitespace",
    "whitespace_split",
    "regex_whitespace",
)
# The overrides of the regex classes category_class builds: tokenizers' Oniguruma (L, N), BertPreTokenizer (P).
CLASS_PROPERTIES = {"L": "letter", "N": "number", "P": "punctuation"}
NORMAL_FORM_PROPERTIES = ("nfd", "nfkd", "nfc", "nfkc", "combining_class", "composition")


def key(cp: int) -> str:
    """How unicode_overrides.json names a code point: ``0x1F600`` -> ``"U+1F600"``."""
    return f"U+{cp:04X}"


@functools.cache
def overrides() -> dict[str, dict[int, Any]]:
    """unicode_overrides.json, read once: property -> {code point: what tokenizers does there}."""
    text = resources.files(__package__).joinpath("unicode_overrides.json").read_text(encoding="utf-8")
    return {name: dict(_expand(values)) for name, values in json.loads(text)["properties"].items()}


def _expand(values: dict[str, Any]) -> Iterator[tuple[int, Any]]:
    """``{"U+0041..U+0042": True}`` -> ``(0x41, True), (0x42, True)``."""
    for name, value in values.items():
        first, _, last = name.partition("..")
        for cp in range(int(first[2:], 16), int((last or first)[2:], 16) + 1):
            yield cp, value


def override(name: str, char: str) -> Any:
    """What tokenizers answers for ``char`` where Python's tables answer otherwise, else None."""
    return overrides().get(name, {}).get(ord(char))


# --- Per-character tests (each cached by its caller's CharMap) ---------------------------------------------------


def is_control(char: str) -> bool:
    """BertNormalizer's clean_text drops it: NUL, U+FFFD, and categories Cc, Cf, Co but for \\t \\n \\r."""
    found = override("control", char)
    if found is not None:
        return found
    return char in "\x00\ufffd" or (char not in "\t\n\r" and unicodedata.category(char) in ("Cc", "Cf", "Co"))


def is_mark(char: str) -> bool:
    """StripAccents drops it: a combining mark (Mn, Mc, Me)."""
    found = override("mark", char)
    return unicodedata.category(char)[0] == "M" if found is None else found


def is_nonspacing_mark(char: str) -> bool:
    """BertNormalizer's strip_accents drops it: a nonspacing mark (Mn)."""
    found = override("nonspacing_mark", char)
    return unicodedata.category(char) == "Mn" if found is None else found


def combining_class(char: str) -> int:
    """Its canonical combining class as tokenizers' Unicode 9 tables have it (0 where they lack the mark)."""
    found = override("combining_class", char)
    return unicodedata.combining(char) if found is None else found


def lower(char: str) -> str:
    """One character lowercased, as Rust's char::to_lowercase (its Unicode is newer than Python 3.11's)."""
    found = override("lowercase", char)
    return char.lower() if found is None else found


# --- Regex classes and normal forms -------------------------------------------------------------------------------


@functools.cache
def major_categories() -> str:
    """The first letter of every code point's Unicode category, indexed by code point (built once)."""
    return "".join([unicodedata.category(char)[0] for char in map(chr, range(0x110000))])


@functools.cache
def category_class(major: str) -> str:
    """A regex character-class body matching one major Unicode category ("L", "N", "P"): re lacks \\p{L}.

    Each run of code points in the category becomes a range: ``"N"`` -> ``"0-9²-³¹¼-¾٠-٩..."``. For
    "L" and "N" the category is Oniguruma's (byte-level BPE's regex), for "P" BertPreTokenizer's.
    """
    categories = major_categories()
    if major in CLASS_PROPERTIES:
        table = list(categories)
        for cp, member in overrides().get(CLASS_PROPERTIES[major], {}).items():
            table[cp] = major if member else "-"
        categories = "".join(table)
    runs = re.finditer(f"{major}+", categories)
    return "".join(
        re.escape(chr(run.start())) + (f"-{re.escape(chr(run.end() - 1))}" if run.end() - run.start() > 1 else "")
        for run in runs
    )


@functools.cache
def unknown_to_normal_forms() -> frozenset[str]:
    """The code points tokenizers' Unicode 9 normal forms do not know, while Python's decompose, reorder or
    compose them (U+11938 DIVES AKURU VOWEL SIGN O = U+11935 U+11930 in Unicode 13)."""
    table = overrides()
    unknown = {chr(cp) for name in NORMAL_FORM_PROPERTIES for cp in table.get(name, {})}
    return frozenset(unknown | {char for value in table.get("composition", {}).values() for char in value})


@functools.cache
def _candidates() -> re.Pattern[str]:
    """The characters that may be among them: those in the BMP, and any beyond it.

    re tests a BMP character against a bitmap, but one beyond it against each range of a class in
    turn: a class of all of them would take 30 times as long as the normalisation it guards.
    """
    bmp = "".join(re.escape(char) for char in sorted(unknown_to_normal_forms()) if char <= "\uffff")
    return re.compile(f"[{bmp}]|[\U00010000-\U0010ffff]" if bmp else "[\U00010000-\U0010ffff]")


@functools.cache
def _between_unknown() -> re.Pattern[str]:
    """Splits a text at each of them, keeping them: ``"a\\u0898b"`` -> ``["a", "\\u0898", "b"]``."""
    return re.compile("([" + "".join(map(re.escape, sorted(unknown_to_normal_forms()))) + "])")


def normalize(form: str, text: str) -> str:
    """``unicodedata.normalize``, as tokenizers' NFD, NFKD, NFC and NFKC normalise.

    A code point tokenizers does not know is, to it, a starter that neither decomposes nor composes:
    nothing reorders or composes across it, so the text between two such code points normalises on
    its own, and they stay as they are (scripts/unicode_tables.py checks that this holds for each).
    A text already in Python's normal form is thus in tokenizers' too.
    """
    normal = unicodedata.normalize(form, text)
    if normal == text or not any(char in unknown_to_normal_forms() for char in _candidates().findall(text)):
        return normal
    pieces = _between_unknown().split(text)  # (text, unknown, text, ..., text)
    return "".join(piece if i % 2 else unicodedata.normalize(form, piece) for i, piece in enumerate(pieces))


# --- Regexes of tokenizer.json ------------------------------------------------------------------------------------


def oniguruma_classes(items: sre_parse.SubPattern) -> None:
    """A parsed regex made to match as tokenizers' Oniguruma does, in place: ``\\s`` becomes White_Space.

    re's ``\\s`` is str.isspace, which also counts U+001C..U+001F. ``\\w``, ``\\d`` and ``\\b`` differ more
    (Oniguruma's ``\\w`` takes combining marks, and its Unicode is newer): a ValueError names them.
    """
    for i, (op, argument) in enumerate(items):
        if op is sre.IN:
            items[i] = (sre.IN, _white_space_members(argument))
        elif op is sre.AT and argument in (sre.AT_BOUNDARY, sre.AT_NON_BOUNDARY):
            raise ValueError("\\b or \\B")
        elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT, sre.SUBPATTERN):
            oniguruma_classes(argument[-1])
        elif op is sre.BRANCH:
            for branch in argument[1]:
                oniguruma_classes(branch)


def _white_space_members(members: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """A character class's members with ``\\s`` spelt out, as a new list (re's parser shares its own)."""
    if members == [(sre.CATEGORY, sre.CATEGORY_NOT_SPACE)]:  # \S
        members = [(sre.NEGATE, None), (sre.CATEGORY, sre.CATEGORY_SPACE)]
    elif (sre.CATEGORY, sre.CATEGORY_NOT_SPACE) in members:
        raise ValueError("\\S inside a character class")
    spelt = []
    for member in members:
        spelt += (
            [(sre.LITERAL, ord(char)) for char in WHITESPACE]
            if member == (sre.CATEGORY, sre.CATEGORY_SPACE)
            else [member]
        )
    if any(op is sre.CATEGORY for op, _ in spelt):
        raise ValueError("\\w or \\d")
    return spelt
