"""Where Python's Unicode database and the tables compiled into ``tokenizers`` disagree, over all of Unicode.

    .venv/bin/python scripts/unicode_tables.py           # rewrite minibert/tokenization/unicode_overrides.json
    .venv/bin/python scripts/unicode_tables.py --check   # exit 1 if the shipped file is not what this finds

minibert's normalizers and pre-tokenizers ask Python's ``unicodedata`` (Unicode 14 in Python 3.11);
``tokenizers`` 0.23 asks tables of other ages: Unicode 9 for its normal forms and StripAccents'
combining marks (the unicode-normalization-alignments crate), Unicode 8 for BertNormalizer's control
and nonspacing-mark tests and BertPreTokenizer's punctuation (unicode_categories), Unicode 16 for
whitespace and lowercasing (Rust's standard library) and byte-level BPE's ``\\p{L}``, ``\\p{N}``, ``\\s``
(Oniguruma). Every code point but the surrogates goes through each property minibert consults, asked
of ``tokenizers`` itself, thousands of code points per call; each answer that differs from Python's is
written down as what ``tokenizers`` does, and ``minibert.tokenization.characters`` answers from the file.
"""

import argparse
import json
import sys
import unicodedata
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import tokenizers
from tokenizers import normalizers, pre_tokenizers

from minibert.tokenization.characters import FIXED_PROPERTIES, WHITESPACE, key
from minibert.tokenization.normalizers import is_cjk

TABLE = Path(__file__).resolve().parent.parent / "minibert" / "tokenization" / "unicode_overrides.json"
CODE_POINTS = [cp for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF]
CHARS = [chr(cp) for cp in CODE_POINTS]
CHUNK = 4096  # texts per call
FORMS = ("NFD", "NFKD", "NFC", "NFKC")


def each(normalize: Callable[[str], str], texts: list[str], separator: str = "\n") -> list[str]:
    """``normalize`` of each text, ``CHUNK`` texts per call joined by ``separator``.

    A chunk whose output does not split back into as many pieces (a text holds the separator, or one
    turns into it) is redone one text per call.
    """
    results = []
    for start in range(0, len(texts), CHUNK):
        chunk = texts[start : start + CHUNK]
        pieces = normalize(separator.join(chunk)).split(separator)
        if len(pieces) != len(chunk) or any(separator in text for text in chunk):
            pieces = [normalize(text) for text in chunk]
        results += pieces
    return results


def joined(pre_tokenizer: Any, texts: list[str]) -> list[bool]:
    """Whether the pre-tokenizer keeps the first two characters of each text in one word (``"a" + c``).

    The texts are joined by newlines; a word starts at each text's first character, which is a letter,
    digit or ``!`` after a newline.
    """
    results = []
    for start in range(0, len(texts), CHUNK):
        chunk = texts[start : start + CHUNK]
        starts, position = [], 0
        for text in chunk:
            starts.append(position)
            position += len(text) + 1
        ends = {begin: end for _, (begin, end) in pre_tokenizer.pre_tokenize_str("\n".join(chunk))}
        results += [ends.get(begin, begin) >= begin + 2 for begin in starts]
    return results


def word_class(pre_tokenizer: Any, chars: list[str]) -> list[str]:
    """How a pre-tokenizer treats each character between two letters: ``a c a`` -> "space", "alone" or "joined"."""
    results = []
    for start in range(0, len(chars), CHUNK):
        chunk = chars[start : start + CHUNK]
        words = {begin: end for _, (begin, end) in pre_tokenizer.pre_tokenize_str(" ".join(f"a{c}a" for c in chunk))}
        for i in range(len(chunk)):
            begin = 4 * i
            results.append("joined" if words.get(begin) == begin + 3 else "alone" if begin + 1 in words else "space")
    return results


def bert_step(**options: bool) -> Callable[[str], str]:
    """One of BertNormalizer's four steps alone."""
    steps = {"clean_text": False, "handle_chinese_chars": False, "strip_accents": False, "lowercase": False}
    return normalizers.BertNormalizer(**(steps | options)).normalize_str


def python_control(char: str) -> bool:
    """BertNormalizer's clean_text drops a character, by Python's tables (see normalizers.BertNormalizer)."""
    return char in "\x00\ufffd" or (char not in "\t\n\r" and unicodedata.category(char) in ("Cc", "Cf", "Co"))


def differences(name: str, chars: list[str], ours: Iterable[Any], theirs: Iterable[Any]) -> dict[int, Any]:
    """Code point -> tokenizers' answer, where Python's differs."""
    found = {ord(char): their for char, our, their in zip(chars, ours, theirs, strict=True) if our != their}
    print(f"{name:>18}: {len(found):5} code points differ", file=sys.stderr)
    return found


def normal_forms() -> dict[str, dict[int, Any]]:
    """The normal forms, combining classes and compositions where tokenizers' tables disagree with Python's.

    minibert normalises around these code points (characters.normalize), which holds only if tokenizers
    treats each as a starter it leaves alone (not yet in its Unicode 9 tables): checked here.
    """
    nfd = normalizers.NFD().normalize_str
    found = {}
    for form in FORMS:
        theirs = each(getattr(normalizers, form)().normalize_str, CHARS)
        found[form.lower()] = differences(form, CHARS, (unicodedata.normalize(form, c) for c in CHARS), theirs)
    # A mark of class 0 < k < 240 moves in front of U+0345 (class 240): tokenizers' class is Python's or 0.
    results = each(nfd, ["\u0345" + c for c in CHARS])
    moved = {c for c, result in zip(CHARS, results, strict=True) if result[0] != "\u0345"} | {"\u0345"}
    marks = [c for c in CHARS if unicodedata.combining(c) or c in moved]
    theirs = [unicodedata.combining(c) if c in moved else 0 for c in marks]
    found["combining_class"] = differences("combining class", marks, map(unicodedata.combining, marks), theirs)
    check_classes([c for c, k in zip(marks, theirs, strict=True) if k])
    # Each of Python's canonical compositions, decomposed and composed again by tokenizers.
    composites = [c for c in CHARS if unicodedata.decomposition(c) and unicodedata.decomposition(c)[0] != "<"]
    decomposed = [unicodedata.normalize("NFD", c) for c in composites]
    theirs = each(normalizers.NFC().normalize_str, decomposed)
    ours = [unicodedata.normalize("NFC", d) for d in decomposed]
    found["composition"] = differences("composition", composites, ours, theirs)
    inert = {chr(cp) for values in found.values() for cp in values}
    inert |= {c for value in found["composition"].values() for c in value}
    for form in FORMS:
        normalize = getattr(normalizers, form)().normalize_str
        wrong = [c for c in sorted(inert) if normalize(c) != c or normalize("\u0345" + c)[0] != "\u0345"]
        if wrong:
            sys.exit(
                f"tokenizers' {form} changes or reorders {key(ord(wrong[0]))}, which Python's tables treat "
                "otherwise: characters.normalize, which leaves such code points alone, needs extending"
            )
    return found


def check_classes(marks: list[str]) -> None:
    """Every mark tokenizers reorders orders as Python's combining classes say, against one mark of each class."""
    nfd = normalizers.NFD().normalize_str
    probes = {}
    for c in marks:
        probes.setdefault(unicodedata.combining(c), c)
    for c in marks:
        for probe in probes.values():
            swaps = nfd(probe + c) != probe + nfd(c)
            if swaps != (unicodedata.combining(c) < unicodedata.combining(probe)):
                sys.exit(f"tokenizers orders {key(ord(c))} against {key(ord(probe))} otherwise than Python's classes")


def character_classes() -> dict[str, dict[int, Any]]:
    """The per-character tests of BertNormalizer, StripAccents, Lowercase and the pre-tokenizers."""
    found = {}
    theirs = each(normalizers.StripAccents().normalize_str, CHARS)
    found["mark"] = differences(
        "StripAccents mark", CHARS, (unicodedata.category(c)[0] == "M" for c in CHARS), (not t for t in theirs)
    )
    # BertNormalizer strips after NFD: its own test shows on the characters NFD leaves alone.
    nfd = each(normalizers.NFD().normalize_str, CHARS)
    kept = [c for c, d in zip(CHARS, nfd, strict=True) if d == c]
    theirs = each(bert_step(strip_accents=True), kept)
    found["nonspacing_mark"] = differences(
        "BertNormalizer Mn", kept, (unicodedata.category(c) == "Mn" for c in kept), (not t for t in theirs)
    )
    cleaned = each(bert_step(clean_text=True), CHARS, separator="q")
    found["control"] = differences("clean_text control", CHARS, map(python_control, CHARS), (not t for t in cleaned))
    ours = (c in WHITESPACE and not python_control(c) for c in CHARS)
    found["clean_whitespace"] = differences("clean_text space", CHARS, ours, (t == " " for t in cleaned))
    theirs = each(bert_step(handle_chinese_chars=True), CHARS, separator="q")
    found["chinese"] = differences(
        "chinese characters", CHARS, (is_cjk(ord(c)) for c in CHARS), map(str.__ne__, theirs, CHARS)
    )
    theirs = each(normalizers.Lowercase().normalize_str, CHARS)
    found["lowercase"] = differences("Lowercase", CHARS, map(str.lower, CHARS), theirs)
    bert_lower = each(bert_step(lowercase=True), CHARS)
    found["bert_lowercase"] = differences("BertNormalizer lower", CHARS, theirs, bert_lower)
    classes = word_class(pre_tokenizers.BertPreTokenizer(), CHARS)
    found["whitespace"] = differences(
        "BertPreTokenizer space", CHARS, (c in WHITESPACE for c in CHARS), (k == "space" for k in classes)
    )
    ours = (
        unicodedata.category(c)[0] == "P" or (c.isascii() and c.isprintable() and not c.isalnum() and c != " ")
        for c in CHARS
    )
    found["punctuation"] = differences("BertPreTokenizer punct", CHARS, ours, (k == "alone" for k in classes))
    classes = word_class(pre_tokenizers.WhitespaceSplit(), CHARS)
    found["whitespace_split"] = differences(
        "WhitespaceSplit", CHARS, (c in WHITESPACE for c in CHARS), (k == "space" for k in classes)
    )
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    letters = joined(byte_level, ["a" + c for c in CHARS])
    numbers = joined(byte_level, ["1" + c for c in CHARS])
    others = joined(byte_level, ["!" + c for c in CHARS])
    found["letter"] = differences(
        "ByteLevel \\p{L}", CHARS, (unicodedata.category(c)[0] == "L" for c in CHARS), letters
    )
    found["number"] = differences(
        "ByteLevel \\p{N}", CHARS, (unicodedata.category(c)[0] == "N" for c in CHARS), numbers
    )
    spaces = (not (a or b or c) for a, b, c in zip(letters, numbers, others, strict=True))
    found["regex_whitespace"] = differences("ByteLevel \\s", CHARS, (c in WHITESPACE for c in CHARS), spaces)
    return found


def ranges(values: dict[int, Any]) -> dict[str, Any]:
    """Runs of consecutive code points with one value as one entry: ``{65: 1, 66: 1, 68: 2}`` ->
    ``{"U+0041..U+0042": 1, "U+0044": 2}``."""
    runs: list[list[Any]] = []
    for cp in sorted(values):
        if runs and runs[-1][1] == cp - 1 and runs[-1][2] == values[cp]:
            runs[-1][1] = cp
        else:
            runs.append([cp, cp, values[cp]])
    return {key(first) if first == last else f"{key(first)}..{key(last)}": value for first, last, value in runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare with the shipped file; exit 1 if stale")
    args = parser.parse_args()
    found = normal_forms() | character_classes()
    fixed = [name for name in FIXED_PROPERTIES if found.pop(name)]
    if fixed:
        sys.exit(
            f"tokenizers {tokenizers.__version__} differs from minibert on {', '.join(fixed)}, which minibert "
            "takes as fixed (characters.FIXED_PROPERTIES): minibert needs to consult them"
        )
    document = {
        "about": "Code points where the Unicode tables of tokenizers disagree with Python's, and what tokenizers "
        "does there, by property; written by scripts/unicode_tables.py, read by minibert.tokenization.characters.",
        "tokenizers": tokenizers.__version__,
        "python_unicode": unicodedata.unidata_version,
        "properties": {name: ranges(values) for name, values in found.items() if values},
    }
    if args.check:
        shipped = json.loads(TABLE.read_text(encoding="utf-8")) if TABLE.exists() else {}
        if shipped.get("properties") != document["properties"]:
            sys.exit(f"{TABLE} is out of date for tokenizers {tokenizers.__version__}: run scripts/unicode_tables.py")
        print(f"{TABLE.name} is up to date for tokenizers {tokenizers.__version__}", file=sys.stderr)
        return
    TABLE.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
