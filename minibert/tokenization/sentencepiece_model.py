"""SentencePiece's ``.model`` file, read without the ``sentencepiece`` package: one ``ModelProto`` protobuf message.

A protobuf message is a run of fields, each a key (a varint: field number << 3 | wire type) and a value:
a varint (wire type 0), 8 bytes (1), a length-prefixed byte string (2: strings, bytes and nested messages)
or 4 bytes (5). The fields read here are those the tokenizers use, with the numbers and defaults of
sentencepiece_model.proto (sentencepiece's src/, also transformers' utils/sentencepiece_model_pb2.py);
the others are skipped, as any protobuf reader skips fields it does not know.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from minibert.errors import TokenizerError
from minibert.files import MAX_VOCABULARY_BYTES, read_bytes

VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5
# SentencePiece.Type and TrainerSpec.ModelType.
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
MODEL_TYPES = {1: "Unigram", 2: "BPE", 3: "word", 4: "char"}


class WireFormatError(ValueError):
    """The bytes are not a well-formed protobuf message (the reader names the file when it re-raises)."""


def read_varint(data: bytes, position: int) -> tuple[int, int]:
    """A base-128 varint at ``position`` and the position after it: ``b"\\xac\\x02"`` -> ``300`` (0x2C + 0x02 << 7)."""
    value = shift = 0
    while True:
        if position >= len(data):
            raise WireFormatError("the file ends inside a number")
        byte = data[position]
        value |= (byte & 0x7F) << shift
        position += 1
        if byte < 0x80:
            return value, position
        shift += 7
        if shift >= 70:
            raise WireFormatError("a number runs over 10 bytes")


def fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """The ``(field number, wire type, value)`` of each field of a message; a varint is an int, the rest bytes."""
    position = 0
    while position < len(data):
        key, position = read_varint(data, position)
        number, wire_type = key >> 3, key & 7
        if wire_type == VARINT:
            value, position = read_varint(data, position)
        elif wire_type in (FIXED64, FIXED32, LENGTH_DELIMITED):
            if wire_type == LENGTH_DELIMITED:
                size, position = read_varint(data, position)
            else:
                size = 8 if wire_type == FIXED64 else 4
            if position + size > len(data):
                raise WireFormatError(f"field {number} runs {position + size - len(data)} bytes past the end")
            value, position = data[position : position + size], position + size
        else:  # 3 and 4 are the groups of proto2, which no SentencePiece field uses; 6 and 7 do not exist
            raise WireFormatError(f"field {number} has wire type {wire_type}, which SentencePiece files never use")
        if number == 0:
            raise WireFormatError("field number 0 does not exist")
        yield number, wire_type, value


def as_int32(value: int) -> int:
    """A varint read as a signed 32-bit number: protobuf writes -1 as ten bytes, 2**64 - 1."""
    return value - (1 << 64) if value >= 1 << 63 else value


def as_str(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as error:
        raise WireFormatError(f"a text field is not UTF-8 ({error})") from error


# How each kind of field is written (its wire type) and read back; enums are int32.
KINDS: dict[str, tuple[int, Callable[[Any], Any]]] = {
    "string": (LENGTH_DELIMITED, as_str),
    "bytes": (LENGTH_DELIMITED, bytes),
    "int32": (VARINT, as_int32),
    "bool": (VARINT, bool),
    "float": (FIXED32, lambda value: struct.unpack("<f", value)[0]),
}


def decode(data: bytes, schema: dict[int, tuple[str, str]]) -> dict[str, Any]:
    """The fields ``{number: (name, kind)}`` of a message, by name; a field written twice keeps its last value.

    ``decode(b"\\x0a\\x02hi\\x15\\x00\\x00\\x80\\xbf", PIECE_FIELDS)`` -> ``{"piece": "hi", "score": -1.0}``.
    """
    values: dict[str, Any] = {}
    for number, wire_type, value in fields(data):
        if number not in schema:
            continue
        name, kind = schema[number]
        expected_type, convert = KINDS[kind]
        if wire_type != expected_type:
            raise WireFormatError(f"field {number} ({name}) has wire type {wire_type}, not {expected_type}")
        values[name] = convert(value)
    return values


@dataclass(frozen=True)
class Piece:
    """One vocabulary entry: its text, its log-probability (Unigram) or rank (BPE), and its type (NORMAL, ...)."""

    piece: str
    score: float = 0.0
    type: int = NORMAL


@dataclass(frozen=True)
class TrainerSpec:
    """What training chose: the algorithm and the ids and texts of the special pieces (-1: none)."""

    model_type: int = 1  # UNIGRAM
    byte_fallback: bool = False
    unk_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    pad_id: int = -1
    unk_piece: str = "<unk>"
    bos_piece: str = "<s>"
    eos_piece: str = "</s>"
    pad_piece: str = "<pad>"


@dataclass(frozen=True)
class NormalizerSpec:
    """SentencePiece's normalisation: a rule set (``nmt_nfkc``, ...) compiled into a charsmap, and whitespace rules."""

    name: str = ""
    precompiled_charsmap: bytes = b""
    add_dummy_prefix: bool = True
    remove_extra_whitespaces: bool = True
    escape_whitespaces: bool = True


PIECE_FIELDS = {1: ("piece", "string"), 2: ("score", "float"), 3: ("type", "int32")}
TRAINER_FIELDS = {
    3: ("model_type", "int32"),
    35: ("byte_fallback", "bool"),
    40: ("unk_id", "int32"),
    41: ("bos_id", "int32"),
    42: ("eos_id", "int32"),
    43: ("pad_id", "int32"),
    45: ("unk_piece", "string"),
    46: ("bos_piece", "string"),
    47: ("eos_piece", "string"),
    48: ("pad_piece", "string"),
}
NORMALIZER_FIELDS = {
    1: ("name", "string"),
    2: ("precompiled_charsmap", "bytes"),
    3: ("add_dummy_prefix", "bool"),
    4: ("remove_extra_whitespaces", "bool"),
    5: ("escape_whitespaces", "bool"),
}
# ModelProto: 1 pieces (repeated), 2 trainer_spec, 3 normalizer_spec; 4 self_test_data and 5 denormalizer_spec unread.
PIECES, TRAINER_SPEC, NORMALIZER_SPEC = 1, 2, 3


@dataclass(frozen=True)
class SentencePieceModel:
    """A SentencePiece ``.model`` file: its pieces (id = position), trainer spec and normalizer spec."""

    path: Path
    pieces: tuple[Piece, ...]
    trainer_spec: TrainerSpec
    normalizer_spec: NormalizerSpec

    @classmethod
    def read(cls, path: Path) -> SentencePieceModel:
        """Parse ``path``; a file that is not a SentencePiece model is a TokenizerError naming it."""
        data = read_bytes(path, path.parent, TokenizerError, MAX_VOCABULARY_BYTES)
        try:
            pieces: list[Piece] = []
            specs: dict[int, bytes] = {}
            for number, wire_type, value in fields(data):
                if number in (PIECES, TRAINER_SPEC, NORMALIZER_SPEC) and wire_type != LENGTH_DELIMITED:
                    raise WireFormatError(f"field {number} of the model is not a message")
                if number == PIECES:
                    piece = decode(value, PIECE_FIELDS)
                    if "piece" not in piece:
                        raise WireFormatError(f"piece {len(pieces)} has no text")
                    pieces.append(Piece(**piece))
                elif number in (TRAINER_SPEC, NORMALIZER_SPEC):
                    specs[number] = value
            trainer_spec = TrainerSpec(**decode(specs.get(TRAINER_SPEC, b""), TRAINER_FIELDS))
            normalizer_spec = NormalizerSpec(**decode(specs.get(NORMALIZER_SPEC, b""), NORMALIZER_FIELDS))
        except WireFormatError as error:
            raise TokenizerError(f"{path}: not a SentencePiece model, or a damaged one ({error})") from error
        # sentencepiece writes every part; one missing is a file cut short at the end of a field.
        parts = {"pieces": pieces, "trainer_spec": TRAINER_SPEC in specs, "normalizer_spec": NORMALIZER_SPEC in specs}
        missing = [name for name, present in parts.items() if not present]
        if missing:
            raise TokenizerError(
                f"{path}: not a SentencePiece model, or a damaged one (it has no {', '.join(missing)})"
            )
        return cls(path, tuple(pieces), trainer_spec, normalizer_spec)

    @property
    def model_kind(self) -> str:
        """``"Unigram"``, or another SentencePiece algorithm, prefixed so that it matches no tokenizer.json model."""
        kind = MODEL_TYPES.get(self.trainer_spec.model_type, str(self.trainer_spec.model_type))
        return kind if kind == "Unigram" else f"SentencePiece {kind}"
