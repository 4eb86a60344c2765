"""Reading the files of a folder minibert does not trust: inside the folder, regular, bounded.

A checkpoint or tokenizer folder may come from anyone, so every file minibert opens in one is
checked here first:

* its path, symlinks followed, lies inside the folder, or, for a Hub snapshot
  (``models--org--name/snapshots/<commit>``, whose files huggingface_hub makes symlinks into
  ``../../blobs/``), inside that repository's ``blobs/``; an index naming ``../x`` or ``/etc/x``,
  or a file linked elsewhere, is refused;
* it is a regular file: not a FIFO (reading one would wait forever), not a device (``/dev/zero``
  never ends);
* it is read up to a size bound, and JSON is nested at most ``MAX_JSON_DEPTH`` levels (Python's
  parser would otherwise raise a bare RecursionError, or leave the depth to whoever walks the value).

Each refusal is an error of the caller's kind (``ConfigError``, ``CheckpointError``,
``TokenizerError``) naming the file.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from minibert.errors import MinibertError

MAX_JSON_BYTES = 64 * 2**20  # config.json, index files, tokenizer_config.json: a few kB to a few MB
MAX_VOCABULARY_BYTES = 256 * 2**20  # tokenizer.json, vocab.txt, merges.txt, SentencePiece models: up to ~50 MB
MAX_JSON_DEPTH = 64  # real files nest 3 (config.json) to 6 (tokenizer.json) levels


def allowed_roots(folder: Path) -> tuple[Path, ...]:
    """Where files read from ``folder`` may resolve to: the folder, and a Hub snapshot's ``blobs/``."""
    folder = folder.resolve()
    repository = folder.parent.parent
    if folder.parent.name == "snapshots" and (repository / "blobs").is_dir():
        return folder, repository / "blobs"
    return (folder,)


def confined(path: Path, folder: Path, error: type[MinibertError], entry: str | None = None) -> Path:
    """``path`` with every symlink resolved, if it lies inside ``folder`` (see ``allowed_roots``); else ``error``.

    ``entry`` names what pointed at the path (an index entry), for the message.
    """
    named = entry or str(path)
    try:
        real = path.resolve(strict=True)
    except FileNotFoundError as cause:
        raise error(f"{named}: no such file") from cause
    except (OSError, RuntimeError, ValueError) as cause:  # a symlink loop, a NUL in the name
        raise error(f"{named}: cannot resolve {path} ({cause})") from cause
    if not any(real.is_relative_to(root) for root in allowed_roots(folder)):
        raise error(
            f"{named}: resolves to {real}, outside {folder}; minibert reads only files inside the checkpoint folder"
        )
    return real


def check_regular(path: Path, real: Path, error: type[MinibertError]) -> None:
    """Refuse what is not a regular file: a FIFO would block the reader, a device would never end."""
    try:
        mode = os.stat(real).st_mode
    except OSError as cause:
        raise error(f"{path}: cannot read ({cause.strerror})") from cause
    if not stat.S_ISREG(mode):
        raise error(f"{path}: not a regular file")


def read_bytes(path: Path, folder: Path, error: type[MinibertError], limit: int | None = None) -> bytes:
    """The bytes of ``path``, a regular file inside ``folder`` of at most ``limit`` bytes (``MAX_JSON_BYTES``)."""
    limit = MAX_JSON_BYTES if limit is None else limit
    real = confined(path, folder, error)
    try:
        # O_NONBLOCK: opening a FIFO returns at once (and is refused below) instead of waiting for a writer.
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as cause:
        raise error(f"{path}: cannot open ({cause.strerror})") from cause
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise error(f"{path}: not a regular file")
    with os.fdopen(fd, "rb") as file:
        data = file.read(limit + 1)
    if len(data) > limit:
        raise error(f"{path}: larger than the {limit:,} bytes minibert reads from such a file")
    return data


def read_text(path: Path, folder: Path, error: type[MinibertError], limit: int | None = None) -> str:
    """``read_bytes`` decoded as UTF-8."""
    try:
        return read_bytes(path, folder, error, limit).decode("utf-8")
    except UnicodeDecodeError as cause:
        raise error(f"{path}: not UTF-8 text ({cause})") from cause


def read_json(path: Path, folder: Path, error: type[MinibertError], limit: int | None = None) -> Any:
    """The JSON value in ``path`` (see ``read_bytes``), nested at most ``MAX_JSON_DEPTH`` levels."""
    text = read_text(path, folder, error, limit)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as cause:
        raise error(f"{path}: not valid JSON ({cause})") from cause
    except RecursionError as cause:
        raise error(f"{path}: JSON nested more than {MAX_JSON_DEPTH} levels deep") from cause
    if not within_depth(value, MAX_JSON_DEPTH):
        raise error(f"{path}: JSON nested more than {MAX_JSON_DEPTH} levels deep")
    return value


def within_depth(value: Any, limit: int) -> bool:
    """Whether lists and objects nest at most ``limit`` levels: ``[[1], {"a": []}]`` has 3."""
    level = [value]
    for _ in range(limit):
        level = [
            child
            for node in level
            if isinstance(node, dict | list)
            for child in (node.values() if isinstance(node, dict) else node)
        ]
        if not level:
            return True
    return not any(isinstance(node, dict | list) for node in level)
