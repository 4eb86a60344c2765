"""Turning a name into files: a local folder as it is, anything else through the Hugging Face Hub.

Only ``config.json`` and the weight files are fetched, through ``huggingface_hub``,
so its cache, ``revision``, tokens and ``HF_HUB_OFFLINE`` behave as users expect.
``huggingface_hub`` is imported only when a Hub id is resolved: local loads skip its import.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from minibert.errors import CheckpointError, CheckpointNotFoundError, first_line
from minibert.files import read_json

CONFIG_FILE = "config.json"
# Weight layouts in order of preference: safetensors never runs code, and one file beats shards.
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def is_local(name_or_path: str | Path) -> bool:
    """True for an existing path or anything spelled like one (so a typo is not sent to the Hub)."""
    text = str(name_or_path)
    return isinstance(name_or_path, Path) or Path(text).exists() or text.startswith(("/", ".", "~"))


def resolve_config_file(
    name_or_path: str | Path, *, revision: str | None = None, cache_dir: str | Path | None = None
) -> Path:
    """The path of ``config.json`` for a local folder or a Hub repository."""
    if is_local(name_or_path):
        return _local_folder(name_or_path) / CONFIG_FILE
    path = hub_download(str(name_or_path), CONFIG_FILE, revision, cache_dir, required=True)
    if path is None:
        raise CheckpointNotFoundError(f"Hub repository {name_or_path!r} has no {CONFIG_FILE}")
    return path


def resolve_checkpoint(
    name_or_path: str | Path, *, revision: str | None = None, cache_dir: str | Path | None = None
) -> Path:
    """A local folder holding ``config.json`` and one weight layout, fetching it from the Hub if needed."""
    if is_local(name_or_path):
        return _local_folder(name_or_path)
    repo_id = str(name_or_path)
    folder = resolve_config_file(repo_id, revision=revision, cache_dir=cache_dir).parent
    for filename in WEIGHT_FILES:
        path = hub_download(repo_id, filename, revision, cache_dir)
        if path is None:
            continue
        if filename.endswith(".index.json"):
            for shard in sorted(set(read_index(path).values())):
                if hub_download(repo_id, shard, revision, cache_dir) is None:
                    raise CheckpointError(f"{path}: names shard {shard!r}, which repository {repo_id!r} lacks")
        return folder
    raise CheckpointNotFoundError(
        f"Hub repository {repo_id!r} (revision {revision or 'main'}) has none of the weight files "
        f"{', '.join(WEIGHT_FILES)}, or they are not in the local cache while HF_HUB_OFFLINE is set"
    )


def _local_folder(name_or_path: str | Path) -> Path:
    folder = Path(name_or_path).expanduser()
    if not folder.is_dir():
        raise CheckpointNotFoundError(f"{folder}: no such checkpoint folder")
    return folder


def hub_download(
    repo_id: str, filename: str, revision: str | None, cache_dir: str | Path | None, required: bool = False
) -> Path | None:
    """One file of a Hub repository, from the cache or the network.

    None if the repository lacks it, or (unless ``required``) if it is neither cached nor reachable.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        return Path(hf_hub_download(repo_id, filename, revision=revision, cache_dir=cache_dir, library_name="minibert"))
    except LocalEntryNotFoundError as error:  # offline, or the Hub unreachable, and not in the cache
        if not required:
            return None
        raise CheckpointNotFoundError(
            f"{repo_id!r} is not a local folder, and its {filename} is neither in the Hub cache nor "
            f"reachable (revision {revision or 'main'}; HF_HUB_OFFLINE and network errors prevent a download)"
        ) from error
    except EntryNotFoundError:
        return None
    except (RepositoryNotFoundError, RevisionNotFoundError, HFValidationError) as error:
        raise CheckpointNotFoundError(
            f"{repo_id!r} is neither a local folder nor a Hub repository minibert can reach "
            f"(revision {revision or 'main'}): {first_line(error)}"
        ) from error
    except OSError as error:  # network failures, permissions
        raise CheckpointError(f"cannot fetch {filename} of Hub repository {repo_id!r}: {first_line(error)}") from error


def read_index(path: Path) -> dict[str, str]:
    """The ``weight_map`` (tensor key -> shard file name) of a sharded checkpoint's index.

    Shard names are relative paths that stay below the index's folder: ``../x`` or ``/etc/x`` is refused
    here, before anything is fetched or opened (a symlink that leads out is refused when it is opened).
    """
    index = read_json(path, path.parent, CheckpointError)
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise CheckpointError(f"{path}: not a valid checkpoint index ('weight_map' must map tensor names to shards)")
    for key, shard in weight_map.items():
        parts = PurePosixPath(shard).parts
        escapes = not parts or shard.startswith("/") or ".." in parts or ":" in parts[0]  # "C:" on Windows
        if escapes or "\\" in shard or "\0" in shard:
            raise CheckpointError(
                f"{path}: entry {key!r} names shard {shard!r}, which is not a file inside the checkpoint folder"
            )
    return weight_map
