"""Model configurations: Hugging Face's ``config.json`` as frozen, validated data.

``EncoderConfig`` holds the fields every architecture shares; ``BertConfig`` and ``RobertaConfig``
are here too. Every other architecture's config class opens its own module (``AlbertConfig`` in
``albert.py``, ``ModernBertConfig`` in ``modernbert.py``, ...) and registers its ``model_type`` in
``CONFIG_CLASSES``. Field names and defaults are transformers', so a ``config.json`` reads the same
here and there. Keys minibert does not use are kept in ``extra`` and written back by ``to_dict``: a
load/save round trip loses nothing. Each value is checked against its field's type, and the sizes
against the memory they would take, before anything is built from them.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
import types
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

from minibert.activations import ACTIVATIONS
from minibert.checkpoint import parse_size
from minibert.errors import CheckpointNotFoundError, ConfigError
from minibert.files import read_json
from minibert.hub import resolve_config_file

PROBLEM_TYPES = (None, "regression", "single_label_classification", "multi_label_classification")
# model_type -> config class: every EncoderConfig subclass that names a model_type registers itself here.
CONFIG_CLASSES: dict[str, type[EncoderConfig]] = {}


@dataclass(frozen=True)
class EncoderConfig:
    """The fields every BERT-family encoder shares; subclasses set the defaults."""

    model_type: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.model_type:
            CONFIG_CLASSES[cls.model_type] = cls

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072  # width of the feed-forward block
    hidden_act: str = "gelu"  # a key of minibert.activations.ACTIVATIONS
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512  # rows of the position table
    type_vocab_size: int = 2  # segments (token types) the model knows
    initializer_range: float = 0.02  # std of the normal init of Linear and Embedding weights
    layer_norm_eps: float = 1e-12
    pad_token_id: int | None = 0
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None  # a list, as transformers allows (generation models)
    position_embedding_type: str = "absolute"
    classifier_dropout: float | None = None  # None: heads use hidden_dropout_prob
    tie_word_embeddings: bool = True  # the MLM decoder shares the word embedding matrix
    is_decoder: bool = False
    add_cross_attention: bool = False
    # Classification heads: num_labels outputs named by id2label.
    num_labels: int = 2
    id2label: dict[int, str] | None = None  # None: LABEL_0, LABEL_1, ...
    label2id: dict[str, int] | None = None  # None: the inverse of id2label
    problem_type: str | None = None  # None: inferred from num_labels and the labels' dtype
    # Attention heads removed by prune_heads: layer -> sorted heads, numbered as in the unpruned layer.
    # Models are built with these heads already gone, so a pruned checkpoint loads at its own shapes.
    pruned_heads: dict[int, list[int]] = field(default_factory=dict)
    architectures: list[str] | None = None
    # What a forward pass returns when the call does not say: transformers' defaults.
    output_hidden_states: bool = False
    output_attentions: bool = False
    return_dict: bool = True  # False: a tuple of the set fields instead of the output dataclass
    # Keys of config.json that minibert does not use, kept for the round trip.
    extra: dict[str, Any] = field(default_factory=dict)
    # How config.json was read where it is not transformers' spelling (a remote code's): reported, not written.
    renamed_fields: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        check_field_types(self)  # before any field is read: each value against its annotation
        check_size(self)  # before anything is built from the counts: the labels below, a model later
        id2label = self.id2label
        if id2label is None:
            id2label = {i: f"LABEL_{i}" for i in range(self.num_labels)}
        id2label = {int(i): str(label) for i, label in id2label.items()}  # config.json keys are strings
        object.__setattr__(self, "id2label", id2label)
        if self.label2id is None:
            object.__setattr__(self, "label2id", {label: i for i, label in id2label.items()})
        # An empty list prunes nothing.
        pruned = {int(k): sorted(set(heads)) for k, heads in self.pruned_heads.items() if heads}
        object.__setattr__(self, "pruned_heads", dict(sorted(pruned.items())))
        self._validate()

    def _validate(self) -> None:
        """Reject what would otherwise fail deep inside the model, or compute nonsense."""
        for name in (
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "max_position_embeddings",
            "type_vocab_size",
            "num_labels",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"num_attention_heads ({self.num_attention_heads}) must divide hidden_size ({self.hidden_size})"
            )
        if self.hidden_act not in ACTIVATIONS:
            raise ConfigError(f"unknown hidden_act {self.hidden_act!r}; known: {', '.join(sorted(ACTIVATIONS))}")
        for name in ("tie_word_embeddings", "output_hidden_states", "output_attentions", "return_dict"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int | float) and 0 <= value <= 1):
                raise ConfigError(f"{name} must be a probability in [0, 1], got {value!r}")
        if not (isinstance(self.layer_norm_eps, int | float) and self.layer_norm_eps > 0):
            raise ConfigError(f"layer_norm_eps must be positive, got {self.layer_norm_eps!r}")
        if not (isinstance(self.initializer_range, int | float) and self.initializer_range >= 0):
            raise ConfigError(f"initializer_range must be >= 0, got {self.initializer_range!r}")
        if self.pad_token_id is not None and not 0 <= self.pad_token_id < self.vocab_size:
            raise ConfigError(f"pad_token_id {self.pad_token_id} is outside the vocabulary [0, {self.vocab_size})")
        if self.position_embedding_type != "absolute":
            raise ConfigError(
                f"position_embedding_type {self.position_embedding_type!r} is not supported: "
                "minibert implements absolute position embeddings only"
            )
        if self.is_decoder or self.add_cross_attention:
            raise ConfigError("is_decoder / add_cross_attention: minibert implements encoders only")
        if len(self.id2label) != self.num_labels:
            raise ConfigError(f"id2label has {len(self.id2label)} labels but num_labels is {self.num_labels}")
        if self.problem_type not in PROBLEM_TYPES:
            raise ConfigError(f"problem_type must be one of {PROBLEM_TYPES}, got {self.problem_type!r}")
        if self.problem_type == "single_label_classification" and self.num_labels == 1:
            raise ConfigError(
                "problem_type 'single_label_classification' needs num_labels > 1 (as in transformers): "
                "use num_labels=2 for two classes, or problem_type 'regression' for one output"
            )
        for layer, heads in self.pruned_heads.items():
            if not 0 <= layer < self.attention_layers:
                raise ConfigError(f"pruned_heads: layer {layer} is outside [0, {self.attention_layers})")
            if not 0 <= heads[0] <= heads[-1] < self.num_attention_heads:
                raise ConfigError(
                    f"pruned_heads: layer {layer} lists heads {heads}, outside [0, {self.num_attention_heads})"
                )

    # -- reading and writing ------------------------------------------------------

    @classmethod
    def from_dict(cls, values: dict[str, Any], **overrides: Any) -> Self:
        """Build from a ``config.json`` dict; unknown keys go to ``extra``, overrides must be fields."""
        values = dict(values)
        model_type = values.pop("model_type", cls.model_type)
        if not isinstance(model_type, str):
            raise ConfigError(f"model_type must be a string, got {model_type!r}")
        if model_type != cls.model_type:
            warnings.warn(
                f"config has model_type {model_type!r}; reading it as {cls.__name__} ({cls.model_type!r})",
                stacklevel=2,
            )
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        if "num_labels" not in values and isinstance(values.get("id2label"), dict) and values["id2label"]:
            values["num_labels"] = len(values["id2label"])
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ConfigError(f"unknown config field(s) {', '.join(unknown)} for {cls.__name__}")
        if "num_labels" in overrides and "id2label" not in overrides:
            # A new label count means a new head: the checkpoint's label names no longer apply.
            values.pop("id2label", None)
            values.pop("label2id", None)
        values.update(overrides)
        extra = {k: v for k, v in values.items() if k not in names}
        try:
            return cls(**{k: v for k, v in values.items() if k in names}, extra=extra)
        except TypeError as error:  # e.g. id2label is not a mapping
            raise ConfigError(f"invalid {cls.__name__} values: {error}") from error

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data that ``transformers`` reads back as the same config."""
        # num_labels is implied by id2label, as in the files transformers writes.
        values = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("extra", "num_labels", "renamed_fields")
        }
        values["id2label"] = {str(i): label for i, label in self.id2label.items()}
        values["pruned_heads"] = {str(layer): heads for layer, heads in self.pruned_heads.items()}
        return {**self.extra, "model_type": self.model_type, **values}

    @classmethod
    def from_json_file(cls, path: str | Path, **overrides: Any) -> Self:
        values = read_config_json(path)
        if "model_type" in values:  # an unsupported one is an error, whatever the class (old files lack it)
            config_class_for(values, path)
        try:
            return cls.from_dict(values, **overrides)
        except ConfigError as error:
            raise ConfigError(f"{path}: {error}") from error

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | Path,
        *,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        **overrides: Any,
    ) -> Self:
        """Read ``config.json`` from a local folder or a Hub repository."""
        path = resolve_config_file(pretrained_model_name_or_path, revision=revision, cache_dir=cache_dir)
        return cls.from_json_file(path, **overrides)

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed (and validated again)."""
        return dataclasses.replace(self, **changes)

    def override(self, **overrides: Any) -> Self:
        """A copy with ``from_pretrained``'s config overrides applied, as if read with them from the file."""
        return type(self).from_dict(self.to_dict(), **overrides) if overrides else self

    @property
    def attention_layers(self) -> int:
        """Attention blocks with weights of their own: what ``pruned_heads``' layer numbers count."""
        return self.num_hidden_layers

    @property
    def head_dropout(self) -> float:
        """Dropout before a classification head, as transformers picks it."""
        return self.hidden_dropout_prob if self.classifier_dropout is None else self.classifier_dropout


def derived_field() -> Any:
    """An EncoderConfig field that an ``OwnNamesConfig`` computes from fields of its own: not an argument,
    never written to config.json."""
    return field(init=False, repr=False, compare=False)


@dataclass(frozen=True)
class OwnNamesConfig(EncoderConfig):
    """The config of an architecture that names some of EncoderConfig's fields its own way (DistilBERT, ModernBERT).

    Its own names (DistilBERT's ``dim``, ModernBERT's ``norm_eps``, ...) are the arguments and what
    config.json holds. EncoderConfig's generic names, which the shared modules read, are
    ``derived_field()``s: copied from the own ones (``GENERIC_NAMES``) or fixed where transformers
    hard-codes them (``FIXED``), first thing in ``__post_init__``. A generic name
    in a file means nothing to the architecture (in transformers either): it is kept in ``extra``.
    Given as an override, it is refused with the field to use.
    """

    GENERIC_NAMES: ClassVar[dict[str, str]] = {}  # EncoderConfig's name -> the architecture's
    FIXED: ClassVar[dict[str, Any]] = {}  # EncoderConfig's name -> the value the architecture hard-codes

    def __post_init__(self) -> None:
        self.set_generic_fields()
        super().__post_init__()

    def set_generic_fields(self) -> None:
        """Fill EncoderConfig's generic fields; a subclass that checks values before ``__post_init__`` calls it."""
        for generic, own in self.GENERIC_NAMES.items():
            object.__setattr__(self, generic, getattr(self, own))
        for generic, value in self.FIXED.items():
            object.__setattr__(self, generic, value)

    @classmethod
    def from_dict(cls, values: dict[str, Any], **overrides: Any) -> Self:
        """As EncoderConfig's, with the generic names refused as overrides and kept in ``extra`` from a file."""
        generic = cls.GENERIC_NAMES.keys() | cls.FIXED.keys()
        refused = sorted(generic & overrides.keys())
        if refused:
            name = refused[0]
            use = f"set {cls.GENERIC_NAMES[name]}" if name in cls.GENERIC_NAMES else f"fixed at {cls.FIXED[name]!r}"
            raise ConfigError(f"{name} is not a field of {cls.__name__} ({use})")
        config = super().from_dict({k: v for k, v in values.items() if k not in generic}, **overrides)
        unused = {k: v for k, v in values.items() if k in generic}
        return config.replace(extra={**config.extra, **unused}) if unused else config

    def to_dict(self) -> dict[str, Any]:
        """The architecture's names only, as transformers writes them; generic keys a file held come from ``extra``."""
        generic = self.GENERIC_NAMES.keys() | self.FIXED.keys()
        values = {k: v for k, v in super().to_dict().items() if k not in generic}
        return {**values, **{k: v for k, v in self.extra.items() if k in generic}}


@dataclass(frozen=True)
class BertConfig(EncoderConfig):
    """Mirrors ``transformers.BertConfig`` (bert-base-uncased defaults)."""

    model_type: ClassVar[str] = "bert"


@dataclass(frozen=True)
class RobertaConfig(EncoderConfig):
    """Mirrors ``transformers.RobertaConfig`` (roberta-base defaults)."""

    model_type: ClassVar[str] = "roberta"

    vocab_size: int = 50265
    pad_token_id: int | None = 1
    bos_token_id: int | None = 0
    eos_token_id: int | None = 2

    def _validate(self) -> None:
        super()._validate()
        # Positions count from pad_token_id + 1, so the padding id is part of the position scheme.
        if self.pad_token_id is None:
            raise ConfigError("RoBERTa needs a pad_token_id: its position ids count from pad_token_id + 1")
        if self.max_position_embeddings <= self.pad_token_id + 1:
            raise ConfigError(
                f"max_position_embeddings ({self.max_position_embeddings}) leaves no positions after "
                f"the padding offset pad_token_id + 1 = {self.pad_token_id + 1}"
            )


def read_config_json(path: str | Path) -> dict[str, Any]:
    """The JSON object in ``path``, or a ConfigError that names the file and the problem.

    The file must be a regular file inside its folder, of bounded size and depth (``minibert.files``).
    """
    path = Path(path)
    if not (path.exists() or path.is_symlink()):
        raise CheckpointNotFoundError(f"{path}: no such file; a checkpoint folder needs its config.json")
    values = read_json(path, path.parent, ConfigError)
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a JSON object, got {type(values).__name__}")
    return values


def config_class_for(values: dict[str, Any], source: str | Path = "config") -> type[EncoderConfig]:
    """The config class for a ``config.json`` dict, chosen by its ``model_type``."""
    model_type = values.get("model_type")
    if model_type is None:
        raise ConfigError(
            f"{source}: no model_type; load it with a model class (BertModel, ...) instead of an Auto one"
        )
    if not isinstance(model_type, str):
        raise ConfigError(f"{source}: model_type must be a string, got {model_type!r}")
    if model_type not in CONFIG_CLASSES:
        raise ConfigError(
            f"{source}: model_type {model_type!r} is not supported; minibert supports {', '.join(CONFIG_CLASSES)}"
        )
    return CONFIG_CLASSES[model_type]


# -- checking config values before anything is built from them ----------------------------------------------------

# What config.json may hold for fields normalised on construction: label names that are numbers, as
# transformers accepts them (they become strings), and label ids written as strings.
FILE_TYPES: dict[str, Any] = {
    "id2label": dict[int, str | int | float] | None,
    "label2id": dict[str, int | str] | None,
}
INTEGER_KEY = re.compile(r"-?\d+")  # JSON object keys are strings: {"0": "neg"} has the integer key 0
# How to say what the mappings must be; the other fields' types say it themselves.
DESCRIPTIONS = {
    "id2label": "a mapping from label ids (integers, or strings of them) to label names",
    "label2id": "a mapping from label names to label ids",
    "pruned_heads": "a mapping from layers (integers, or strings of them) to lists of heads",
}


def check_field_types(config: EncoderConfig) -> None:
    """Each field's value against its annotation, or a ConfigError naming the field, the value and the type.

    ``int`` means an int (not a bool, not 1.0); ``float`` a finite int or float; ``bool`` true or false
    (not "false"); a ``dict[int, ...]`` key an int or a string of one, as JSON writes keys. Fields that
    ``__post_init__`` computes (``init=False``) follow from checked ones and are not checked.
    """
    for name, hint in field_types(type(config)).items():
        value = getattr(config, name)
        hint = FILE_TYPES.get(name, hint)
        if not matches(value, hint):
            shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
            raise ConfigError(f"{name} must be {DESCRIPTIONS.get(name) or describe(hint)}, got {shown}")


@functools.cache
def field_types(cls: type[EncoderConfig]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init and f.name != "extra"}


def matches(value: Any, hint: Any, key: bool = False) -> bool:
    """Whether ``value`` has type ``hint`` (``key``: it is a JSON object key). Forms not listed here pass."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(matches(value, arg, key) for arg in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            key and isinstance(value, str) and INTEGER_KEY.fullmatch(value) is not None
        )
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if hint is str:
        return isinstance(value, str)
    if origin is list or (origin is tuple and args[1:] == (...,)):
        return isinstance(value, origin) and all(matches(item, args[0]) for item in value)
    if origin is dict:
        return isinstance(value, dict) and all(
            matches(k, args[0], key=True) and matches(v, args[1]) for k, v in value.items()
        )
    if origin is typing.Literal:
        return value in args
    return True  # Any, and forms no field uses yet


def describe(hint: Any) -> str:
    """``int | None`` -> ``"an integer or null"``; ``list[str]`` -> ``"a list of strings"``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(arg) for arg in args)
    if origin in (list, tuple):
        return f"a list of {describe(args[0]).removeprefix('an ').removeprefix('a ')}s"
    if origin is dict:
        return f"a mapping of {describe(args[0]).removeprefix('an ').removeprefix('a ')} keys"
    names = {type(None): "null", bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}
    return names.get(hint, str(hint))


MEMORY_LIMIT_VARIABLE = "MINIBERT_MAX_MODEL_SIZE"
LABEL_BYTES = 200  # an id2label entry: its int, its string, the two dicts' slots


def check_size(config: EncoderConfig) -> None:
    """Refuse, in microseconds, a config whose model cannot fit in ``memory_limit()``.

    The bound is from below: the attention and feed-forward weights of each distinct layer, the
    word embeddings and a classifier over ``num_labels``, in half precision, and the label names.
    Any model of the config is larger, so a model that fits is never refused; one with 10**9
    layers or labels is refused before a single one is built (``from_pretrained`` checks the
    exact size, in the dtype it loads, once the model's shapes are known).
    """
    hidden, inner = config.hidden_size, config.intermediate_size
    if not all(isinstance(v, int) and v > 0 for v in (hidden, inner, config.vocab_size, config.num_labels)):
        return  # _validate names the field
    layers, width = config.attention_layers, getattr(config, "embedding_size", None) or hidden
    per_layer = 4 * hidden * hidden + 2 * hidden * inner  # q, k, v and output; the feed-forward block
    parameters = max(layers, 0) * per_layer + config.vocab_size * width + config.num_labels * hidden
    needed = 2 * parameters + LABEL_BYTES * config.num_labels
    limit = memory_limit()
    if needed > limit:
        distinct = f" ({layers:,} with weights of their own)" if layers != config.num_hidden_layers else ""
        raise ConfigError(
            f"a model of this config needs at least {format_bytes(needed)} ({parameters:,} parameters in half "
            f"precision, from num_hidden_layers={config.num_hidden_layers:,}{distinct}, hidden_size={hidden:,}, "
            f"intermediate_size={inner:,}, vocab_size={config.vocab_size:,}, num_labels={config.num_labels:,}), "
            f"more than the {format_bytes(limit)} limit ({memory_limit_source()}); "
            f"set {MEMORY_LIMIT_VARIABLE}, e.g. to 64GB, to allow more"
        )


def format_bytes(count: int) -> str:
    """``81_234`` -> ``"81.2 kB"``; ``14_155_776_000_000`` -> ``"14,155.8 GB"``."""
    for unit, size in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if count >= size:
            return f"{count / size:,.1f} {unit}"
    return f"{count} bytes"


def memory_limit() -> int:
    """Bytes a model may take: ``MINIBERT_MAX_MODEL_SIZE`` (e.g. ``"64GB"``) if set, else the memory available now."""
    text = os.environ.get(MEMORY_LIMIT_VARIABLE)
    if text:
        try:
            return parse_size(text)
        except ValueError as error:
            raise ConfigError(f"{MEMORY_LIMIT_VARIABLE}={text!r}: {error}") from error
    return available_memory()


def memory_limit_source() -> str:
    return f"{MEMORY_LIMIT_VARIABLE}" if os.environ.get(MEMORY_LIMIT_VARIABLE) else "the memory available now"


def available_memory() -> int:
    """The memory the system can give a process now (Linux's MemAvailable, within a cgroup's limit)."""
    available = None
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            line = next((line for line in meminfo if line.startswith("MemAvailable:")), None)
        available = int(line.split()[1]) * 1024 if line else None
    except (OSError, ValueError):
        pass
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, AttributeError):
            return 2**63  # no way to know: no limit
    try:  # a container's own limit (cgroup v2), if it has one
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as cgroup:
            text = cgroup.read().strip()
        if text.isdigit():
            available = min(available, int(text))
    except OSError:
        pass
    return available
