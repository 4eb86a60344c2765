"""The character classes several stages share: whitespace and Unicode's major categories, as Rust has them.

``re`` knows neither Unicode's White_Space (its ``\\s`` is ``str.isspace``) nor ``\\p{L}``, so both are
spelt out here, once, for the normalizers, the pre-tokenizers and the added-token splitter.
"""

from __future__ import annotations

import functools
import re
import unicodedata

# Rust's char::is_whitespace, Unicode's White_Space. Python's str.isspace() also counts U+001C..U+001F.
WHITESPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
WHITESPACE += "\u2028\u2029\u202f\u205f\u3000"


@functools.cache
def major_categories() -> str:
    """The first letter of every code point's Unicode category, indexed by code point (built once)."""
    return "".join([unicodedata.category(char)[0] for char in map(chr, range(0x110000))])


@functools.cache
def category_class(major: str) -> str:
    """A regex character-class body matching one major Unicode category ("L", "N", "P"): re lacks \\p{L}.

    Each run of code points in the category becomes a range: ``"N"`` -> ``"0-9²-³¹¼-¾٠-٩..."``.
    """
    runs = re.finditer(f"{major}+", major_categories())
    return "".join(
        re.escape(chr(run.start())) + (f"-{re.escape(chr(run.end() - 1))}" if run.end() - run.start() > 1 else "")
        for run in runs
    )
