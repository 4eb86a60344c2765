"""Model configurations: Hugging Face's ``config.json`` as frozen, validated data.

Field names and defaults are those of ``transformers.BertConfig`` and
``transformers.RobertaConfig``, so a ``config.json`` reads the same here and
there. Keys minibert does not use are kept in ``extra`` and written back by
``to_dict``: a load/save round trip loses nothing.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

from minibert.activations import ACTIVATIONS
from minibert.errors import CheckpointNotFoundError, ConfigError
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
    eos_token_id: int | None = None
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

    def __post_init__(self) -> None:
        id2label = self.id2label
        if id2label is None:
            id2label = {i: f"LABEL_{i}" for i in range(self.num_labels)}
        id2label = {int(i): str(label) for i, label in id2label.items()}
        object.__setattr__(self, "id2label", id2label)
        if self.label2id is None:
            object.__setattr__(self, "label2id", {label: i for i, label in id2label.items()})
        try:  # config.json keys are strings; an empty list prunes nothing
            pruned = {int(k): sorted({int(h) for h in heads}) for k, heads in self.pruned_heads.items() if heads}
        except (AttributeError, TypeError, ValueError) as error:
            raise ConfigError(f"pruned_heads must map layers to lists of heads, got {self.pruned_heads!r}") from error
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
        if model_type != cls.model_type:
            warnings.warn(
                f"config has model_type {model_type!r}; reading it as {cls.__name__} ({cls.model_type!r})",
                stacklevel=2,
            )
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        if "num_labels" not in values and values.get("id2label"):
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
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("extra", "num_labels")
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


@dataclass(frozen=True)
class XLMRobertaConfig(RobertaConfig):
    """Mirrors ``transformers.XLMRobertaConfig``: RoBERTa's fields and defaults but the vocabulary size."""

    model_type: ClassVar[str] = "xlm-roberta"

    vocab_size: int = 30522  # transformers' default; real checkpoints set theirs (250002 for xlm-roberta-base)


@dataclass(frozen=True)
class CamembertConfig(RobertaConfig):
    """Mirrors ``transformers.CamembertConfig``: RoBERTa's fields and defaults but the vocabulary size."""

    model_type: ClassVar[str] = "camembert"

    vocab_size: int = 30522  # transformers' default; camembert-base sets 32005


@dataclass(frozen=True)
class AlbertConfig(EncoderConfig):
    """Mirrors ``transformers.AlbertConfig`` (albert-xxlarge defaults, as there).

    Embeddings are ``embedding_size`` wide and projected up to ``hidden_size``; the
    ``num_hidden_layers`` steps of depth run ``num_hidden_groups`` groups of weights, each
    group a stack of ``inner_group_num`` layers.
    """

    model_type: ClassVar[str] = "albert"

    vocab_size: int = 30000
    embedding_size: int = 128
    hidden_size: int = 4096
    num_hidden_layers: int = 12
    num_hidden_groups: int = 1
    num_attention_heads: int = 64
    intermediate_size: int = 16384
    inner_group_num: int = 1
    hidden_act: str = "gelu_new"
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    classifier_dropout_prob: float | None = 0.1
    pad_token_id: int | None = 0
    bos_token_id: int | None = 2
    eos_token_id: int | None = 3

    def _validate(self) -> None:
        super()._validate()
        for name in ("embedding_size", "num_hidden_groups", "inner_group_num"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.classifier_dropout_prob is not None and not 0 <= self.classifier_dropout_prob <= 1:
            raise ConfigError(
                f"classifier_dropout_prob must be a probability in [0, 1], got {self.classifier_dropout_prob!r}"
            )

    @property
    def attention_layers(self) -> int:
        """Distinct layers, numbered group by group: ``group * inner_group_num + inner`` (transformers 4.x)."""
        return self.num_hidden_groups * self.inner_group_num

    @property
    def head_dropout(self) -> float:
        return self.hidden_dropout_prob if self.classifier_dropout_prob is None else self.classifier_dropout_prob


@dataclass(frozen=True)
class ElectraConfig(EncoderConfig):
    """Mirrors ``transformers.ElectraConfig`` (electra-small-discriminator defaults, as there).

    Embeddings are ``embedding_size`` wide, projected up to ``hidden_size`` where the two differ.
    The ``summary_*`` fields shape the multiple-choice head's one vector per sequence.
    """

    model_type: ClassVar[str] = "electra"

    embedding_size: int = 128
    hidden_size: int = 256
    num_attention_heads: int = 4
    intermediate_size: int = 1024
    summary_type: str = "first"  # the token read: "first", "last", "mean" (over all positions), "cls_index"
    summary_use_proj: bool = True  # then a Linear (sequence_summary.summary)
    summary_activation: str | None = "gelu"  # then this activation; "" or None: none
    summary_last_dropout: float = 0.1

    def _validate(self) -> None:
        super()._validate()
        if not isinstance(self.embedding_size, int) or isinstance(self.embedding_size, bool) or self.embedding_size < 1:
            raise ConfigError(f"embedding_size must be a positive integer, got {self.embedding_size!r}")
        if not isinstance(self.summary_use_proj, bool):
            raise ConfigError(f"summary_use_proj must be true or false, got {self.summary_use_proj!r}")
        if not (isinstance(self.summary_last_dropout, int | float) and 0 <= self.summary_last_dropout <= 1):
            raise ConfigError(
                f"summary_last_dropout must be a probability in [0, 1], got {self.summary_last_dropout!r}"
            )


def _generic() -> Any:
    """An EncoderConfig field that DistilBertConfig computes from its own: not an argument, never written."""
    return field(init=False, repr=False, compare=False)


@dataclass(frozen=True)
class DistilBertConfig(EncoderConfig):
    """Mirrors ``transformers.DistilBertConfig`` (distilbert-base-uncased defaults).

    DistilBERT names its fields its own way (``dim``, ``n_layers``, ``activation``, ...): those are the
    arguments and what config.json holds. EncoderConfig's generic names, which the shared modules
    read, are computed from them (``GENERIC_NAMES``) or fixed where transformers' DistilBERT hard-codes
    them (``FIXED``). ``vocab_size``, ``max_position_embeddings``, ``initializer_range``, the token
    ids and ``tie_word_embeddings`` are EncoderConfig's, with the same defaults.
    """

    model_type: ClassVar[str] = "distilbert"
    # EncoderConfig's name -> DistilBERT's.
    GENERIC_NAMES: ClassVar[dict[str, str]] = {
        "hidden_size": "dim",
        "num_hidden_layers": "n_layers",
        "num_attention_heads": "n_heads",
        "intermediate_size": "hidden_dim",
        "hidden_act": "activation",
        "hidden_dropout_prob": "dropout",
        "attention_probs_dropout_prob": "attention_dropout",
    }
    # LayerNorm eps, no token-type table, absolute positions, an encoder; heads pick their own dropouts.
    FIXED: ClassVar[dict[str, Any]] = {
        "layer_norm_eps": 1e-12,
        "type_vocab_size": 1,
        "position_embedding_type": "absolute",
        "classifier_dropout": None,
        "is_decoder": False,
        "add_cross_attention": False,
    }
    # The generic names transformers' DistilBertConfig also reads as its own (its attribute_map).
    attribute_map: ClassVar[dict[str, str]] = {
        "hidden_size": "dim",
        "num_attention_heads": "n_heads",
        "num_hidden_layers": "n_layers",
    }

    sinusoidal_pos_embds: bool = False  # positions start as a fixed sin/cos table (then train like any weight)
    n_layers: int = 6
    n_heads: int = 12
    dim: int = 768  # the hidden size
    hidden_dim: int = 3072  # width of the feed-forward block
    dropout: float = 0.1  # embeddings, feed-forward output, token classifier
    attention_dropout: float = 0.1
    activation: str = "gelu"  # feed-forward and MLM head: a key of minibert.activations.ACTIVATIONS
    qa_dropout: float = 0.1  # before the span scores
    seq_classif_dropout: float = 0.2  # sequence classification and multiple choice heads

    hidden_size: int = _generic()
    num_hidden_layers: int = _generic()
    num_attention_heads: int = _generic()
    intermediate_size: int = _generic()
    hidden_act: str = _generic()
    hidden_dropout_prob: float = _generic()
    attention_probs_dropout_prob: float = _generic()
    layer_norm_eps: float = _generic()
    type_vocab_size: int = _generic()
    position_embedding_type: str = _generic()
    classifier_dropout: float | None = _generic()
    is_decoder: bool = _generic()
    add_cross_attention: bool = _generic()

    def __post_init__(self) -> None:
        for generic, own in self.GENERIC_NAMES.items():
            object.__setattr__(self, generic, getattr(self, own))
        for generic, value in self.FIXED.items():
            object.__setattr__(self, generic, value)
        super().__post_init__()

    def _validate(self) -> None:
        # DistilBERT's names first, so that an error names the field the user wrote.
        for name in ("dim", "n_layers", "n_heads", "hidden_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.dim % self.n_heads:
            raise ConfigError(f"n_heads ({self.n_heads}) must divide dim ({self.dim})")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"unknown activation {self.activation!r}; known: {', '.join(sorted(ACTIVATIONS))}")
        for name in ("dropout", "attention_dropout", "qa_dropout", "seq_classif_dropout"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0 <= value <= 1):
                raise ConfigError(f"{name} must be a probability in [0, 1], got {value!r}")
        if not isinstance(self.sinusoidal_pos_embds, bool):
            raise ConfigError(f"sinusoidal_pos_embds must be true or false, got {self.sinusoidal_pos_embds!r}")
        super()._validate()

    @classmethod
    def from_dict(cls, values: dict[str, Any], **overrides: Any) -> Self:
        """As EncoderConfig's, reading transformers' aliases as DistilBERT's names (``hidden_size`` -> ``dim``).

        Other generic names in a file (``layer_norm_eps``, ...) mean nothing to DistilBERT, in transformers
        either: they are kept in ``extra``. Given as overrides, they are refused with the field to use.
        """
        generic = cls.GENERIC_NAMES.keys() | cls.FIXED.keys()
        values = {cls.attribute_map.get(k, k): v for k, v in values.items()}
        overrides = {cls.attribute_map.get(k, k): v for k, v in overrides.items()}
        refused = sorted(generic & overrides.keys())
        if refused:
            name = refused[0]
            use = f"set {cls.GENERIC_NAMES[name]}" if name in cls.GENERIC_NAMES else f"fixed at {cls.FIXED[name]!r}"
            raise ConfigError(f"{name} is not a field of {cls.__name__} ({use})")
        config = super().from_dict({k: v for k, v in values.items() if k not in generic}, **overrides)
        unused = {k: v for k, v in values.items() if k in generic}
        return config.replace(extra={**config.extra, **unused}) if unused else config

    def to_dict(self) -> dict[str, Any]:
        """DistilBERT's names only, as transformers writes them; generic keys a file held come back from ``extra``."""
        generic = self.GENERIC_NAMES.keys() | self.FIXED.keys()
        values = {k: v for k, v in super().to_dict().items() if k not in generic}
        return {**values, **{k: v for k, v in self.extra.items() if k in generic}}


@dataclass(frozen=True)
class MPNetConfig(EncoderConfig):
    """Mirrors ``transformers.MPNetConfig`` (mpnet-base defaults).

    Attention scores get a learned bias per head and relative-position bucket, from a table of
    ``relative_attention_num_buckets`` rows. There are no token types, and the embeddings pad
    with id 1 whatever ``pad_token_id`` says, as in transformers.
    """

    model_type: ClassVar[str] = "mpnet"
    # transformers' MPNetEncoder.compute_position_bias always computes this many buckets (its
    # default argument), whatever relative_attention_num_buckets says: the table needs as many rows.
    position_buckets: ClassVar[int] = 32

    vocab_size: int = 30527
    relative_attention_num_buckets: int = 32
    type_vocab_size: int = 1  # not a field of transformers' MPNetConfig: MPNet reads no token types
    pad_token_id: int | None = 1
    bos_token_id: int | None = 0
    eos_token_id: int | None = 2

    def _validate(self) -> None:
        super()._validate()
        buckets = self.relative_attention_num_buckets
        if not isinstance(buckets, int) or isinstance(buckets, bool) or buckets < self.position_buckets:
            raise ConfigError(
                f"relative_attention_num_buckets must be an integer >= {self.position_buckets}, got {buckets!r}: "
                f"transformers' MPNet looks up {self.position_buckets} buckets whatever this says"
            )
        if self.max_position_embeddings <= 2:
            raise ConfigError(
                f"max_position_embeddings ({self.max_position_embeddings}) leaves no positions: "
                "MPNet's positions count from 2 (after its padding id, 1)"
            )

    @property
    def head_dropout(self) -> float:
        """transformers' MPNet heads use ``hidden_dropout_prob``; ``classifier_dropout`` is not read."""
        return self.hidden_dropout_prob


def read_config_json(path: str | Path) -> dict[str, Any]:
    """The JSON object in ``path``, or a ConfigError that names the file and the problem."""
    path = Path(path)
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise CheckpointNotFoundError(f"{path}: no such file; a checkpoint folder needs its config.json") from error
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"{path}: cannot read config ({error})") from error
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
    if model_type not in CONFIG_CLASSES:
        raise ConfigError(
            f"{source}: model_type {model_type!r} is not supported; minibert supports {', '.join(CONFIG_CLASSES)}"
        )
    return CONFIG_CLASSES[model_type]
