"""Decoders, tokens -> text: WordPiece's ``##`` glue, byte-level BPE's bytes, SentencePiece's ``▁``.

Each is a function of a list of tokens (a ``Decoder``), built from the ``decoder`` of ``tokenizer.json``
by ``decoder_from_json``, as tokenizers' ``decoders`` module defines it; each undoes a pre-tokenizer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from minibert.errors import TokenizerError
from minibert.tokenization.files import entry_type, option
from minibert.tokenization.pre_tokenizers import BYTE_TO_CHAR, prepend_scheme_from_json

Decoder = Callable[[list[str]], str]

# transformers' clean_up_tokenization_spaces; tokenizers' WordPiece decoder has one rule more.
CLEANUPS = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"))
CLEANUPS += ((" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))
WORDPIECE_CLEANUPS = (*CLEANUPS[:7], (" do not", " don't"), *CLEANUPS[7:])


def clean_up_tokenization(text: str, rules: tuple[tuple[str, str], ...] = CLEANUPS) -> str:
    """Remove the spaces tokenization put before punctuation and English contractions.

    ``"it is n't here ."`` -> ``"it isn't here."``
    """
    for before, after in rules:
        text = text.replace(before, after)
    return text


def wordpiece_decoder(prefix: str = "##", cleanup: bool = True) -> Decoder:
    """Glue ``##`` pieces to the token before, put a space before the others.

    ``cleanup`` removes the space before . ? ! , and a few English contractions, token by token as tokenizers
    does (so " ' " across tokens is left alone): ``["un", "##aff", "##able", "."]`` -> ``"unaffable."``.
    """

    def decode(tokens: list[str]) -> str:
        pieces = []
        for i, token in enumerate(tokens):
            if i > 0:
                token = token.replace(prefix, "", 1) if token.startswith(prefix) else " " + token
            pieces.append(clean_up_tokenization(token, WORDPIECE_CLEANUPS) if cleanup else token)
        return "".join(pieces)

    return decode


CHAR_TO_BYTE = {char: byte for byte, char in enumerate(BYTE_TO_CHAR)}


def byte_level_decode(tokens: list[str]) -> str:
    """Map characters back to bytes and read them as UTF-8; broken sequences become U+FFFD.

    ``["Hello", "Ġw", "Ã©"]`` -> ``"Hello wé"``. A token with a character outside the byte alphabet
    is text already, kept whole (``[" Zürich"]`` stays, its ü is not read as byte 0xFC), as in
    tokenizers' ``ByteLevel::decode_chain`` (pre_tokenizers/byte_level.rs).
    """
    data = bytearray()
    for token in tokens:
        if all(char in CHAR_TO_BYTE for char in token):
            data += bytes(CHAR_TO_BYTE[char] for char in token)
        else:
            data += token.encode("utf-8")
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
    """The decoder a ``tokenizer.json`` describes; without one, the tokens joined by spaces."""
    if spec is None:
        return " ".join
    kind = entry_type(spec, "decoder")
    if kind == "WordPiece":
        return wordpiece_decoder(option(spec, "prefix", str, "##"), option(spec, "cleanup", bool, True))
    if kind == "ByteLevel":
        return byte_level_decode
    if kind == "Metaspace":
        return metaspace_decoder(option(spec, "replacement", str, "▁"), prepend_scheme_from_json(spec))
    raise TokenizerError(
        f"tokenizer.json: decoder {kind!r} is not supported (supported: WordPiece, ByteLevel, Metaspace)"
    )
