"""Checkpoint files: reading tensors one at a time, and writing them back.

A checkpoint folder holds one of the layouts in ``hub.WEIGHT_FILES``: a single
safetensors or pickle (``.bin``) file, or shards listed by an index. Tensors are
read lazily, one key at a time, so loading never holds the file's tensors and
the model's at once. Pickles are read with ``weights_only=True``: a pickle that
tries to run code is refused, never executed. Every file opened is a regular file
inside the folder (``minibert.files``), and in a sharded checkpoint each tensor
comes from the shard its index names.

Writing is all or nothing: the files are written under temporary names, then renamed
into place together (``write_files``), so a failed save leaves the old checkpoint as it was.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor

from minibert.errors import CheckpointError, CheckpointNotFoundError, first_line
from minibert.files import check_regular, confined
from minibert.hub import WEIGHT_FILES, read_index

# The dtypes a safetensors header may name, as torch knows them (torch >= 2.3 has the unsigned ones).
SAFETENSORS_DTYPES: dict[str, torch.dtype] = {
    name: dtype
    for name, dtype in {
        "F64": torch.float64,
        "F32": torch.float32,
        "F16": torch.float16,
        "BF16": torch.bfloat16,
        "I64": torch.int64,
        "I32": torch.int32,
        "I16": torch.int16,
        "I8": torch.int8,
        "U64": getattr(torch, "uint64", None),
        "U32": getattr(torch, "uint32", None),
        "U16": getattr(torch, "uint16", None),
        "U8": torch.uint8,
        "BOOL": torch.bool,
        "C64": torch.complex64,
        "F8_E4M3": getattr(torch, "float8_e4m3fn", None),
        "F8_E4M3FNUZ": getattr(torch, "float8_e4m3fnuz", None),
        "F8_E5M2": getattr(torch, "float8_e5m2", None),
        "F8_E5M2FNUZ": getattr(torch, "float8_e5m2fnuz", None),
        "F8_E8M0": getattr(torch, "float8_e8m0fnu", None),
    }.items()
    if dtype is not None
}
# Quantised checkpoints store float8 weights with scales beside them; minibert does not dequantise.
FLOAT8_DTYPES = frozenset(d for d in SAFETENSORS_DTYPES.values() if d.is_floating_point and d.itemsize == 1)


# Stands for the file name where a checkpoint is a state dict in memory.
STATE_DICT = Path("<state_dict>")


class Checkpoint:
    """The tensors of one checkpoint folder, by key, with the file each comes from.

    In a sharded checkpoint the index is the truth: a tensor is read from the shard the index
    names. A key the index names but its shard lacks, or a key held by two shards, is an error.
    A key a shard holds but the index does not list is read from that shard, as transformers
    reads it, and noted in ``notes``; shard files in the folder that the index does not name are
    never read, and the keys they hold are listed in ``unread``.
    """

    def __init__(self, folder: str | Path, readers: dict[Path, _Reader] | None = None) -> None:
        self.folder = Path(folder)
        self.index: Path | None = None
        self.notes: dict[str, str] = {}  # checkpoint key -> how it departs from the index
        self.unread: dict[str, Path] = {}  # key -> the shard file the index does not name that holds it
        weight_map: dict[str, str] = {}
        if readers is None:
            readers, self.index, weight_map = _open_weight_files(self.folder)
        self._readers = readers
        self.files = list(readers)
        self._key_file: dict[str, Path] = {}
        if self.index is None:
            for path, reader in readers.items():
                for key in reader.keys():
                    self._key_file.setdefault(key, path)
        else:
            self._follow_index(weight_map)
            self.unread = _unindexed_shards(self.folder, self.index, set(readers))

    def _follow_index(self, weight_map: dict[str, str]) -> None:
        index = self.index
        contents = {path: reader.keys() for path, reader in self._readers.items()}
        held = {path: set(keys) for path, keys in contents.items()}
        for key, shard in weight_map.items():
            path = self.folder / shard
            if key not in held[path]:
                raise CheckpointError(f"{index}: entry {key!r} names {shard!r}, which does not hold that tensor")
            self._key_file[key] = path
        for path, keys in contents.items():
            for key in keys:
                owner = self._key_file.setdefault(key, path)
                if owner != path:
                    named = f"the index names {weight_map[key]!r}" if key in weight_map else "the index names neither"
                    raise CheckpointError(
                        f"{index}: tensor {key!r} is in two shards, {owner.name} and {path.name} ({named}); "
                        "a tensor must be in one shard only"
                    )
                if key not in weight_map:
                    self.notes[key] = f"not in {index.name}: read from {path.name}, which holds it"

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, Tensor]) -> Checkpoint:
        """Tensors already in memory (``from_pretrained(..., state_dict=...)``), read as if from a file."""
        return cls(STATE_DICT, {STATE_DICT: _MappingReader(STATE_DICT, state_dict)})

    def keys(self) -> list[str]:
        return list(self._key_file)

    def __contains__(self, key: str) -> bool:
        return key in self._key_file

    def file_of(self, key: str) -> Path:
        return self._key_file[key]

    def shape(self, key: str) -> tuple[int, ...]:
        return self._readers[self._key_file[key]].shape(key)

    def dtype_name(self, key: str) -> str:
        """The tensor's dtype as torch names it (``"float32"``), or as the file does if torch has no such dtype."""
        return self._readers[self._key_file[key]].dtype_name(key)

    def dtype(self, key: str) -> torch.dtype:
        dtype = getattr(torch, self.dtype_name(key), None)
        if not isinstance(dtype, torch.dtype):
            raise CheckpointError(
                f"{self.file_of(key)}: tensor {key!r} has dtype {self.dtype_name(key)}, which torch cannot hold"
            )
        return dtype

    def get(self, key: str) -> Tensor:
        """The tensor stored under ``key``, read from its file now."""
        return self._readers[self._key_file[key]].get(key)


class _SafetensorsReader:
    """Reads the header at once and each tensor on demand (safetensors never runs code)."""

    def __init__(self, path: Path, real: Path) -> None:
        self.path = path
        try:
            self.file = safe_open(str(real), framework="pt")
        except (SafetensorError, OSError, ValueError) as error:
            raise CheckpointError(f"{path}: not a valid safetensors file ({error})") from error

    def keys(self) -> list[str]:
        return list(self.file.keys())

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self.file.get_slice(key).get_shape())

    def dtype_name(self, key: str) -> str:
        name = self.file.get_slice(key).get_dtype()
        return str(SAFETENSORS_DTYPES[name]).removeprefix("torch.") if name in SAFETENSORS_DTYPES else name

    def get(self, key: str) -> Tensor:
        try:
            return self.file.get_tensor(key)
        except (SafetensorError, OSError, ValueError, RuntimeError, TypeError, KeyError) as error:
            raise CheckpointError(f"{self.path}: cannot read tensor {key!r} ({error})") from error


class _MappingReader:
    """Tensors in a mapping: a state dict passed in, or one unpickled from a file."""

    def __init__(self, path: Path, state: Mapping[str, Tensor]) -> None:
        if not isinstance(state, Mapping):
            raise CheckpointError(f"{path}: expected a mapping of names to tensors, got {type(state).__name__}")
        for key, value in state.items():
            if not isinstance(key, str):
                raise CheckpointError(f"{path}: key {key!r} is not a string; a state dict maps names to tensors")
            if not isinstance(value, Tensor):
                raise CheckpointError(f"{path}: {key!r} holds a {type(value).__name__}, not a tensor")
        self.path = path
        self.state = state

    def keys(self) -> list[str]:
        return list(self.state)

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self.state[key].shape)

    def dtype_name(self, key: str) -> str:
        return str(self.state[key].dtype).removeprefix("torch.")

    def get(self, key: str) -> Tensor:
        return self.state[key].clone()  # a tensor of its own, not a view of the mapped file or the caller's dict


class _PickleReader(_MappingReader):
    """A ``torch.save`` state dict, memory-mapped where the format allows, loaded with weights_only."""

    def __init__(self, path: Path, real: Path) -> None:
        try:
            try:
                state = torch.load(real, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as error:
                if "mmap" not in str(error):
                    raise
                # Files from torch < 1.6 use the legacy (non-zip) format, which cannot be mapped.
                state = torch.load(real, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            # weights_only stops at anything but tensors and plain containers; say where it stopped.
            lines = [line.strip() for line in str(error).splitlines() if line.strip()]
            refused = next((line for line in lines if "GLOBAL" in line), None)
            if refused is not None:
                raise CheckpointError(
                    f"{path}: refused to unpickle: the file asks to run code on loading ({refused}); "
                    "nothing was executed. Convert it to safetensors on a machine that trusts its source."
                ) from error
            reason = next((line for line in lines if line.startswith("Unsupported")), "corrupt pickle data")
            raise CheckpointError(
                f"{path}: not a PyTorch checkpoint that can be read safely ({reason}); nothing was executed"
            ) from error
        except Exception as error:  # torch raises many types for truncated or corrupt archives
            raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({first_line(error)})") from error
        super().__init__(path, state)


_Reader = _SafetensorsReader | _MappingReader


def _open(path: Path, folder: Path, entry: str | None = None) -> _Reader:
    """A reader for one weight file, once it is known to be a regular file inside ``folder``."""
    real = confined(path, folder, CheckpointError, entry)
    check_regular(path, real, CheckpointError)
    return _SafetensorsReader(path, real) if path.suffix == ".safetensors" else _PickleReader(path, real)


def _open_weight_files(folder: Path) -> tuple[dict[Path, _Reader], Path | None, dict[str, str]]:
    """A reader for each weight file of the folder's layout, the index (None without one), and its weight_map."""
    # exists() or is_symlink(): a link that leads out, or a FIFO, is refused when opened, with its reason.
    present = (name for name in WEIGHT_FILES if (folder / name).exists() or (folder / name).is_symlink())
    layout = next(present, None)
    if layout is None:
        raise CheckpointNotFoundError(f"{folder}: no weights found (looked for {', '.join(WEIGHT_FILES)})")
    if not layout.endswith(".index.json"):
        return {folder / layout: _open(folder / layout, folder)}, None, {}
    index = folder / layout
    weight_map = read_index(index)
    readers: dict[Path, _Reader] = {}
    for key, shard in weight_map.items():  # each shard opened once, in the index's order
        if folder / shard not in readers:
            readers[folder / shard] = _open(folder / shard, folder, f"{index}: entry {key!r} names {shard!r}")
    return readers, index, weight_map


def _unindexed_shards(folder: Path, index: Path, indexed: set[Path]) -> dict[str, Path]:
    """Keys of the shard files in ``folder`` that ``index`` does not name (left by an older save, say).

    They are never loaded; their keys are listed so that the load report can say why a tensor in
    them was not used. A file that cannot be read is passed over: it is not part of the checkpoint.
    """
    weights = index.name.removesuffix(".index.json")  # model.safetensors
    stem, suffix = weights.rsplit(".", 1)
    pattern = re.compile(rf"{re.escape(stem)}-\d+-of-\d+\.{re.escape(suffix)}")
    unread: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if pattern.fullmatch(path.name) and folder / path.name not in indexed:
            try:
                reader = _open(folder / path.name, folder)
            except CheckpointError:
                continue
            unread.update(dict.fromkeys(reader.keys(), folder / path.name))
    return unread


# -- writing --------------------------------------------------------------------

_SIZE_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}
_SHARD_NAME = re.compile(r"model-\d{5}-of-\d{5}\.safetensors")


def parse_size(size: int | str) -> int:
    """Bytes in ``size``: an int, or a string such as ``"5GB"`` or ``"500MiB"`` (transformers' spelling)."""
    if isinstance(size, int):
        return size
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]I?B|B)\s*", size.upper())
    if match is None:
        raise ValueError(f"max_shard_size: cannot read {size!r}; write e.g. 5GB, 500MB or 100MiB")
    return int(float(match[1]) * _SIZE_UNITS[match[2]])


def save_safetensors(
    state: dict[str, Tensor],
    folder: Path,
    max_shard_size: int | str,
    metadata: dict[str, str] | None = None,
    texts: dict[str, str] | None = None,
) -> list[Path]:
    """Write ``texts`` (file name -> content, e.g. config.json) and ``state`` as ``model.safetensors``, or as
    shards plus an index above ``max_shard_size``: all of them, or, if writing fails, none (``write_files``).

    Returns the paths written: the texts', then the index's (if sharded), then the weights'.
    """
    limit = parse_size(max_shard_size)
    shards: list[dict[str, Tensor]] = [{}]
    shard_bytes = 0
    for key, tensor in state.items():
        size = tensor.numel() * tensor.element_size()
        if shards[-1] and shard_bytes + size > limit:
            shards.append({})
            shard_bytes = 0
        shards[-1][key] = tensor.detach().contiguous()
        shard_bytes += size
    metadata = {"format": "pt", **(metadata or {})}
    weights: dict[str, Callable[[Path], None]] = {}
    if len(shards) == 1:
        names = ["model.safetensors"]
    else:
        names = [f"model-{number:05d}-of-{len(shards):05d}.safetensors" for number in range(1, len(shards) + 1)]
    for name, shard in zip(names, shards, strict=True):
        weights[name] = lambda path, shard=shard: save_file(shard, str(path), metadata=metadata)
    texts = dict(texts or {})
    if len(shards) > 1:
        total = sum(t.numel() * t.element_size() for t in state.values())
        weight_map = {key: name for name, shard in zip(names, shards, strict=True) for key in shard}
        index: dict[str, Any] = {"metadata": {"total_size": total}, "weight_map": weight_map}
        weights["model.safetensors.index.json"] = _text_writer(json.dumps(index, indent=2) + "\n")
    # Weights first and config.json last: the renames are quick, but a kill between two of them
    # leaves the old config beside the new weights rather than the reverse.
    writers = {**weights, **{name: _text_writer(text) for name, text in texts.items()}}
    write_files(folder, writers)
    # Old weights of the same layout would be read instead of (or beside) the new ones.
    for stale in folder.glob("model*.safetensors*"):
        if stale.name not in writers and (
            stale.name in ("model.safetensors", "model.safetensors.index.json") or _SHARD_NAME.fullmatch(stale.name)
        ):
            stale.unlink()  # a symlink is removed, not what it points to
    weight_files = [folder / name for name in weights]
    return [*(folder / name for name in texts), *weight_files[len(shards) :], *weight_files[: len(shards)]]


def _text_writer(text: str) -> Callable[[Path], None]:
    return lambda path: path.write_text(text, encoding="utf-8")


def write_files(folder: Path, writers: dict[str, Callable[[Path], None]]) -> list[Path]:
    """Run each writer on a new temporary file in ``folder``, then rename every file into place.

    Nothing in the folder changes until every file is complete and flushed to disk: a failure
    while writing (a full disk, a size limit, an exception) removes the temporary files and
    leaves the folder's files byte for byte as they were. A rename replaces a symlink that
    stood at the name; it never writes through it, so nothing outside ``folder`` is written.
    """
    folder.mkdir(parents=True, exist_ok=True)
    staged: dict[Path, Path] = {}  # final path -> temporary path
    try:
        for name, write in writers.items():
            target = folder / name
            if target.is_dir() and not target.is_symlink():
                raise CheckpointError(f"{target}: is a folder, so the checkpoint cannot be saved there")
            staged[target] = _new_temporary(folder, name)
            write(staged[target])
            _flush(staged[target])
    except BaseException as error:
        for temporary in staged.values():
            temporary.unlink(missing_ok=True)
        if isinstance(error, OSError | SafetensorError):
            raise CheckpointError(
                f"{folder}: saving failed ({first_line(error)}); the files already there are unchanged"
            ) from error
        raise
    for target, temporary in staged.items():
        os.replace(temporary, target)
    _flush(folder)  # the renames themselves
    return list(staged)


def _new_temporary(folder: Path, name: str) -> Path:
    """An empty file of our own in ``folder``, hidden, under a name no loader looks for."""
    path = folder / f".{name}.{secrets.token_hex(6)}.tmp"
    # O_EXCL | O_NOFOLLOW: a new file, never an existing one or a symlink planted at the name.
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666))
    return path


def _flush(path: Path) -> None:
    """Ask the system to put a file's (or a folder's) contents on disk now, not later."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
