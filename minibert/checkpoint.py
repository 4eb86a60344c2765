"""Checkpoint files: reading tensors one at a time, and writing them back.

A checkpoint folder holds one of the layouts in ``hub.WEIGHT_FILES``: a single
safetensors or pickle (``.bin``) file, or shards listed by an index. Tensors are
read lazily, one key at a time, so loading never holds the file's tensors and
the model's at once. Pickles are read with ``weights_only=True``: a pickle that
tries to run code is refused, never executed.
"""

from __future__ import annotations

import json
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor

from minibert.errors import CheckpointError, CheckpointNotFoundError, first_line
from minibert.hub import WEIGHT_FILES, read_index

SAFETENSORS_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


# Stands for the file name where a checkpoint is a state dict in memory.
STATE_DICT = Path("<state_dict>")


class Checkpoint:
    """The tensors of one checkpoint folder, by key, with the file each comes from."""

    def __init__(self, folder: str | Path, readers: dict[Path, _Reader] | None = None) -> None:
        self.folder = Path(folder)
        self._readers = _open_weight_files(self.folder) if readers is None else readers
        self.files = list(self._readers)
        self._key_file: dict[str, Path] = {}
        for path, reader in self._readers.items():
            for key in reader.keys():
                self._key_file.setdefault(key, path)

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

    def dtype(self, key: str) -> torch.dtype:
        return self._readers[self._key_file[key]].dtype(key)

    def get(self, key: str) -> Tensor:
        """The tensor stored under ``key``, read from its file now."""
        return self._readers[self._key_file[key]].get(key)


class _SafetensorsReader:
    """Reads the header at once and each tensor on demand (safetensors never runs code)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.file = safe_open(str(path), framework="pt")
        except (SafetensorError, OSError, ValueError) as error:
            raise CheckpointError(f"{path}: not a valid safetensors file ({error})") from error

    def keys(self) -> list[str]:
        return list(self.file.keys())

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self.file.get_slice(key).get_shape())

    def dtype(self, key: str) -> torch.dtype:
        return SAFETENSORS_DTYPES[self.file.get_slice(key).get_dtype()]

    def get(self, key: str) -> Tensor:
        try:
            return self.file.get_tensor(key)
        except (SafetensorError, OSError, ValueError, RuntimeError) as error:
            raise CheckpointError(f"{self.path}: cannot read tensor {key!r} ({error})") from error


class _MappingReader:
    """Tensors in a mapping: a state dict passed in, or one unpickled from a file."""

    def __init__(self, path: Path, state: Mapping[str, Tensor]) -> None:
        if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
            raise CheckpointError(f"{path}: expected a mapping of names to tensors")
        self.path = path
        self.state = state

    def keys(self) -> list[str]:
        return list(self.state)

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self.state[key].shape)

    def dtype(self, key: str) -> torch.dtype:
        return self.state[key].dtype

    def get(self, key: str) -> Tensor:
        return self.state[key].clone()  # a tensor of its own, not a view of the mapped file or the caller's dict


class _PickleReader(_MappingReader):
    """A ``torch.save`` state dict, memory-mapped where the format allows, loaded with weights_only."""

    def __init__(self, path: Path) -> None:
        try:
            try:
                state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as error:
                if "mmap" not in str(error):
                    raise
                # Files from torch < 1.6 use the legacy (non-zip) format, which cannot be mapped.
                state = torch.load(path, map_location="cpu", weights_only=True)
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


def _open_weight_files(folder: Path) -> dict[Path, _Reader]:
    """A reader for each weight file of the folder's layout (one file, or the shards its index names)."""
    layout = next((name for name in WEIGHT_FILES if (folder / name).is_file()), None)
    if layout is None:
        raise CheckpointNotFoundError(f"{folder}: no weights found (looked for {', '.join(WEIGHT_FILES)})")
    files = [folder / layout]
    if layout.endswith(".index.json"):
        weight_map = read_index(folder / layout)
        for shard in sorted(set(weight_map.values())):
            if not (folder / shard).is_file():
                raise CheckpointError(f"{folder / layout}: names shard {shard!r}, which is not in {folder}")
        files = [folder / shard for shard in dict.fromkeys(weight_map.values())]
    return {path: _SafetensorsReader(path) if path.suffix == ".safetensors" else _PickleReader(path) for path in files}


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
    state: dict[str, Tensor], folder: Path, max_shard_size: int | str, metadata: dict[str, str] | None = None
) -> list[Path]:
    """Write ``state`` as ``model.safetensors``, or as shards plus an index above ``max_shard_size``."""
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
    # Old weights of the same layout would be read instead of (or beside) the new ones.
    for stale in folder.glob("model*.safetensors*"):
        if stale.name in ("model.safetensors", "model.safetensors.index.json") or _SHARD_NAME.fullmatch(stale.name):
            stale.unlink()
    metadata = {"format": "pt", **(metadata or {})}
    if len(shards) == 1:
        path = folder / "model.safetensors"
        save_file(shards[0], str(path), metadata=metadata)
        return [path]
    paths, weight_map = [], {}
    for number, shard in enumerate(shards, start=1):
        path = folder / f"model-{number:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(path), metadata=metadata)
        paths.append(path)
        weight_map.update(dict.fromkeys(shard, path.name))
    total = sum(t.numel() * t.element_size() for t in state.values())
    index: dict[str, Any] = {"metadata": {"total_size": total}, "weight_map": weight_map}
    index_path = folder / "model.safetensors.index.json"
    index_path.write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    return [index_path, *paths]
