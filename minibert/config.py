"""Model configurations: Hugging Face's ``config.json`` as frozen, validated data.

Field names and defaults are those of ``transformers.BertConfig`` and
``transformers.RobertaConfig``, so a ``config.json`` reads the same here and
there. Keys minibert does not use are kept in ``extra`` and written back by
``to_dict``: a load/save round trip loses nothing.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
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

logger = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class DebertaV2Config(EncoderConfig):
    """Mirrors ``transformers.DebertaV2Config`` (deberta-v2-xlarge defaults, as there).

    The fields transformers' DeBERTa reads with ``getattr`` are declared here with its defaults
    (``share_att_key``, ``position_buckets``, ``norm_rel_ebd``, ``embedding_size``, ``conv_*``,
    ``cls_dropout``), so they are validated and always written. ``pos_att_type`` is read from a list or
    from the Hub's ``"p2c|c2p"``; ``type_vocab_size`` 0 means no token-type table; ``None`` for
    ``embedding_size`` or ``pooler_hidden_size`` means the hidden size.
    """

    model_type: ClassVar[str] = "deberta-v2"

    vocab_size: int = 128100
    hidden_size: int = 1536
    num_hidden_layers: int = 24
    num_attention_heads: int = 24
    intermediate_size: int = 6144
    type_vocab_size: int = 0  # 0: no token-type table, and token_type_ids are ignored, as in transformers
    layer_norm_eps: float = 1e-7
    relative_attention: bool = False  # add the c2p / p2c terms of relative positions to the scores
    pos_att_type: list[str] | None = None  # which terms: "c2p" (content to position), "p2c" (position to content)
    max_relative_positions: int = -1  # the relative distances told apart; < 1: max_position_embeddings
    position_buckets: int = -1  # > 0: distances are log-bucketed into this many per side
    share_att_key: bool = False  # positions projected by query_proj / key_proj, not by pos_*_proj of their own
    norm_rel_ebd: str = "none"  # "layer_norm": the relative-position table goes through encoder.LayerNorm first
    position_biased_input: bool = True  # absolute position embeddings added to the input
    embedding_size: int | None = None  # narrower embeddings are projected up (embed_proj)
    conv_kernel_size: int = 0  # > 0: a convolution over the first layer's input joins its output
    conv_groups: int = 1
    conv_act: str = "tanh"
    pooler_hidden_size: int | None = None  # the sentence heads' ContextPooler
    pooler_dropout: float = 0.0
    pooler_hidden_act: str = "gelu"
    cls_dropout: float | None = None  # before the sentence classifiers; None: hidden_dropout_prob
    legacy: bool = True  # masked-LM head layout: cls.predictions (legacy) or v3's lm_predictions.lm_head

    def __post_init__(self) -> None:
        if isinstance(self.pos_att_type, str):  # the Hub's "p2c|c2p", read as transformers reads it
            object.__setattr__(self, "pos_att_type", [term.strip() for term in self.pos_att_type.lower().split("|")])
        for name in ("embedding_size", "pooler_hidden_size"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, self.hidden_size)
        super().__post_init__()

    def _validate(self) -> None:
        if self.type_vocab_size == 0:  # no token-type table: the other fields are checked on a copy with one
            self.replace(type_vocab_size=1)
            return
        super()._validate()
        for name in ("relative_attention", "share_att_key", "position_biased_input", "legacy"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        for name in ("max_relative_positions", "position_buckets", "conv_kernel_size", "embedding_size", "conv_groups"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"{name} must be an integer, got {value!r}")
        for name in ("embedding_size", "conv_groups"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if not isinstance(self.pos_att_type, list | None) or set(self.pos_att_type or []) - {"c2p", "p2c"}:
            raise ConfigError(
                f"pos_att_type must list the terms 'c2p' and/or 'p2c' (or be a string such as 'p2c|c2p'), "
                f"got {self.pos_att_type!r}"
            )
        if not isinstance(self.norm_rel_ebd, str) or self.rel_embedding_norms - {"none", "layer_norm"}:
            raise ConfigError(f"norm_rel_ebd must be 'none' or 'layer_norm', got {self.norm_rel_ebd!r}")
        mid = self.position_buckets // 2
        if self.relative_attention and self.position_buckets > 0 and self.relative_positions - 1 <= mid:
            raise ConfigError(
                f"position_buckets {self.position_buckets} needs max_relative_positions - 1 above half of it "
                f"(got {self.relative_positions}): the log buckets divide by log((max_relative_positions - 1) / {mid})"
            )
        if self.conv_kernel_size < 0 or (self.conv_kernel_size > 0 and self.conv_kernel_size % 2 == 0):
            raise ConfigError(
                f"conv_kernel_size must be 0 (no convolution) or odd, got {self.conv_kernel_size}: "
                "an even kernel changes the sequence length"
            )
        if self.hidden_size % self.conv_groups:
            raise ConfigError(f"conv_groups ({self.conv_groups}) must divide hidden_size ({self.hidden_size})")
        for name in ("conv_act", "pooler_hidden_act"):
            if getattr(self, name) not in ACTIVATIONS:
                raise ConfigError(f"unknown {name} {getattr(self, name)!r}; known: {', '.join(sorted(ACTIVATIONS))}")
        if self.pooler_hidden_size != self.hidden_size:
            raise ConfigError(
                f"pooler_hidden_size ({self.pooler_hidden_size}) must equal hidden_size ({self.hidden_size}): "
                "the ContextPooler reads and writes hidden-size vectors (transformers fails on any other)"
            )
        for name in ("pooler_dropout", "cls_dropout"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int | float) and 0 <= value <= 1):
                raise ConfigError(f"{name} must be a probability in [0, 1], got {value!r}")
        head_size = self.extra.get("attention_head_size", self.hidden_size // self.num_attention_heads)
        if head_size != self.hidden_size // self.num_attention_heads:
            raise ConfigError(
                f"attention_head_size {head_size} is not supported: heads must split hidden_size "
                f"({self.hidden_size} / {self.num_attention_heads} heads), as the output projection expects"
            )

    @property
    def relative_positions(self) -> int:
        """``max_relative_positions``, or ``max_position_embeddings`` where it is below 1."""
        return self.max_relative_positions if self.max_relative_positions >= 1 else self.max_position_embeddings

    @property
    def relative_span(self) -> int:
        """Rows of the relative-position table on each side of 0 (transformers' ``pos_ebd_size``)."""
        return self.position_buckets if self.position_buckets > 0 else self.relative_positions

    @property
    def rel_embedding_norms(self) -> set[str]:
        """``norm_rel_ebd``'s steps: ``"layer_norm|none"`` -> ``{"layer_norm", "none"}``."""
        return {step.strip() for step in self.norm_rel_ebd.lower().split("|")}

    @property
    def head_dropout(self) -> float:
        """transformers' DeBERTa token classifier uses ``hidden_dropout_prob``; ``classifier_dropout`` is not read."""
        return self.hidden_dropout_prob

    @property
    def pooled_head_dropout(self) -> float:
        """Dropout before the sentence and choice classifiers: ``cls_dropout``, else ``hidden_dropout_prob``."""
        return self.hidden_dropout_prob if self.cls_dropout is None else self.cls_dropout


@dataclass(frozen=True)
class RotaryConfig(EncoderConfig):
    """What the rotary encoders' configs share (GTE, NomicBERT): ``rope_parameters`` and other spellings.

    Positions are rotary, with no position table: ``rope_parameters`` says how queries and keys
    turn (``rope_type`` "default", "linear" or "dynamic" NTK, ``rope_theta``, ``factor``; see
    ``minibert.rotary``), and inputs of any length are taken, as in transformers. A subclass
    reads its remote code's spelling of ``config.json`` in ``from_other_spelling``.
    """

    default_theta: ClassVar[float] = 10000.0
    rope_types: ClassVar[tuple[str, ...]] = ("default", "linear", "dynamic")

    rope_parameters: dict[str, Any] | None = None  # None: {"rope_type": "default", "rope_theta": default_theta}

    def __post_init__(self) -> None:
        if self.rope_parameters is None or isinstance(self.rope_parameters, dict):
            # transformers' standardize_rope_params: "type" is rope_type's older name; theta has a default.
            rope = dict(self.rope_parameters or {})
            rope.setdefault("rope_type", rope.pop("type", "default"))
            rope.setdefault("rope_theta", self.default_theta)
            object.__setattr__(self, "rope_parameters", rope)
        super().__post_init__()

    def _validate_rope(self) -> None:
        rope = self.rope_parameters
        if not isinstance(rope, dict):
            raise ConfigError(f"rope_parameters must be a mapping, got {rope!r}")
        kind, theta, factor = rope["rope_type"], rope["rope_theta"], rope.get("factor")
        if kind not in self.rope_types:
            raise ConfigError(
                f"rope_parameters: rope_type {kind!r} is not supported; minibert's {type(self).__name__} supports "
                f"{', '.join(self.rope_types)}"
            )
        if not (isinstance(theta, int | float) and not isinstance(theta, bool) and theta > 0):
            raise ConfigError(f"rope_parameters: rope_theta must be a positive number, got {theta!r}")
        if kind != "default" and not (isinstance(factor, int | float) and not isinstance(factor, bool) and factor > 0):
            raise ConfigError(f"rope_parameters: rope_type {kind!r} needs a positive factor, got {factor!r}")
        if rope.get("partial_rotary_factor", 1.0) != 1.0:
            raise ConfigError(
                f"rope_parameters: partial_rotary_factor {rope['partial_rotary_factor']!r} is not supported: "
                "every feature of a head is turned, as in transformers"
            )

    @classmethod
    def from_other_spelling(cls, values: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """A remote code's ``config.json`` in transformers' spelling, and a line per field read another way."""
        return values, []

    @classmethod
    def from_dict(cls, values: dict[str, Any], **overrides: Any) -> Self:
        """As EncoderConfig's, once other spellings are read as transformers reads them.

        * a remote code's config: ``from_other_spelling``;
        * top-level ``rope_theta`` and ``rope_scaling`` (configs from before ``rope_parameters``)
          become ``rope_parameters``, as transformers' ``convert_rope_params_to_dict`` reads them;
        * ``position_embedding_type``, which these models never read (they are rotary whatever the
          field says), is kept in ``extra`` as it was.

        Each such reading is logged (logging.INFO) and listed in ``renamed_fields``, which the load report prints.
        """
        values, renamed = cls.from_other_spelling(dict(values))
        scaling, theta = values.pop("rope_scaling", None), values.pop("rope_theta", None)
        if scaling or theta is not None:
            rope = dict(scaling or values.get("rope_parameters") or {})
            if theta is not None:
                rope.setdefault("rope_theta", theta)
            renamed.append(f"rope_theta {theta!r}, rope_scaling {scaling!r} -> rope_parameters {rope!r}")
            values["rope_parameters"] = rope
        for line in renamed:
            logger.info("%s: %s", cls.__name__, line)
        kept = {name: values.pop(name) for name in ("position_embedding_type", "renamed_fields") if name in values}
        config = super().from_dict(values, **overrides)
        if not (kept or renamed):
            return config
        return config.replace(extra={**config.extra, **kept}, renamed_fields=tuple(renamed))

    def to_dict(self) -> dict[str, Any]:
        """No ``position_embedding_type`` (these models are rotary), unless the file had one."""
        values = {k: v for k, v in super().to_dict().items() if k != "position_embedding_type"}
        return {**values, **{k: v for k, v in self.extra.items() if k == "position_embedding_type"}}


@dataclass(frozen=True)
class GteConfig(RotaryConfig):
    """Mirrors ``transformers.GteConfig`` (gte-multilingual-base defaults, as there).

    Positions are rotary and there is no position table: ``rope_parameters`` says how queries and
    keys turn (``rope_type`` "default", "linear" or "dynamic" NTK, ``rope_theta``, ``factor``; see
    ``minibert.rotary``). ``type_vocab_size`` 0 means no token-type table (gte-base-en-v1.5). A
    ``config.json`` of GTE's remote code (model_type "new") reads as this spelling: see
    ``from_remote_code``; ``renamed_fields`` lists every field it read another way.
    """

    model_type: ClassVar[str] = "gte"
    default_theta: ClassVar[float] = 160_000.0  # transformers' GteConfig.default_theta

    vocab_size: int = 250048
    attention_probs_dropout_prob: float = 0.0
    max_position_embeddings: int = 8192  # the trained length, which dynamic NTK stretches beyond (no table)
    type_vocab_size: int = 1  # 0: no token-type table, and token_type_ids are ignored, as in transformers
    pad_token_id: int | None = 1

    def _validate(self) -> None:
        if self.type_vocab_size == 0:  # no token-type table: the other fields are checked on a copy with one
            self.replace(type_vocab_size=1)
            return
        super()._validate()
        head_size = self.hidden_size // self.num_attention_heads
        if head_size % 2:
            raise ConfigError(
                f"rotary attention turns pairs of features: the head size (hidden_size / num_attention_heads "
                f"= {head_size}) must be even"
            )
        if self.rope_parameters["rope_type"] == "ntk":
            raise ConfigError(
                "rope_parameters: rope_type 'ntk' is the remote code's fixed NTK scaling, which transformers' GTE "
                "does not know (it fails with a KeyError); a config.json with model_type 'new' is converted to "
                "its exact 'linear' equivalent, a 'gte' one must say 'default', 'linear' or 'dynamic'"
            )
        self._validate_rope()

    @classmethod
    def from_other_spelling(cls, values: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """model_type "new" (GTE's remote code) is converted: ``from_remote_code``."""
        return from_remote_code(values) if values.get("model_type") == "new" else (values, [])


# GTE's remote code (the Hub repository Alibaba-NLP/new-impl, model_type "new"), read, never run:
# its NewConfig defaults where GteConfig's differ (pad_token_id: transformers 4's PretrainedConfig default).
REMOTE_CODE_DEFAULTS: dict[str, Any] = {
    "vocab_size": 30528,
    "max_position_embeddings": 2048,
    "pad_token_id": None,
    "rope_theta": 10000.0,
}
# The remote code's own options, and the value each must have for transformers' GTE to compute the same.
REMOTE_CODE_REQUIRED: dict[str, Any] = {
    "position_embedding_type": "rope",  # "absolute": a BERT position table, which transformers' GTE has not
    "layer_norm_type": "layer_norm",  # "rms_norm": RMSNorm in every layer
    "logn_attention_scale": False,  # True: queries scaled by log(length) / log(max_position_embeddings)
}
# Options that change only the remote code's key layout (pack_qkv: handled by the loader), kernels or
# Auto classes: nothing minibert computes. auto_map is dropped so that a saved copy never points at code
# that expects the remote layout.
REMOTE_CODE_DROPPED = ("pack_qkv", "unpad_inputs", "use_memory_efficient_attention", "logn_attention_clip1", "auto_map")


def from_remote_code(values: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A ``config.json`` of GTE's remote code (model_type "new") in transformers' GTE spelling, and each change made.

    Mirrors ``NewConfig`` (configuration.py) and ``NewEmbeddings._init_rope`` and
    ``NTKScalingRotaryEmbedding`` (modeling.py) of Alibaba-NLP/new-impl. Its ``rope_scaling``
    ``{"type": "ntk", "factor": f}`` is a *fixed* NTK scaling, the same at every length (its cos/sin
    cache is built once, for ``max_position_embeddings * f`` positions): theta becomes ``theta * f``
    and every frequency is then divided by ``f ** (2 / dim)``. That is transformers' "linear" rope
    type exactly, with ``rope_theta = theta * f`` and ``factor = f ** (2 / dim)``: the same float
    operations in the same order. E.g. theta 100, f 4, dim 4 -> frequencies [0.5, 0.025].
    Its mixed NTK (``mixed_b``), other scaling types (which it refuses too), and the options that
    transformers' GTE lacks are refused.
    """
    values = {**REMOTE_CODE_DEFAULTS, **values, "model_type": "gte"}
    renamed = ["model_type 'new' (GTE's remote code) -> 'gte'"]

    def converted(name: str, before: Any, after: Any) -> None:
        renamed.append(f"{name} {before!r} -> {after!r}")

    for name, needed in REMOTE_CODE_REQUIRED.items():
        value = values.pop(name, needed)
        if value != needed:
            raise ConfigError(
                f"model_type 'new' with {name}={value!r} is not supported: transformers' GTE computes "
                f"{name}={needed!r} only"
            )
    for name in REMOTE_CODE_DROPPED:
        if name in values:
            converted(name, values.pop(name), "dropped (no effect on what is computed)")
    theta, scaling = values.pop("rope_theta"), values.pop("rope_scaling", None)
    if "rope_parameters" in values:  # the remote code reads rope_theta and rope_scaling only
        converted("rope_parameters", values.pop("rope_parameters"), "dropped (the remote code does not read it)")
    try:
        dim = int(values.get("hidden_size", 768) / values.get("num_attention_heads", 12))
    except (TypeError, ZeroDivisionError) as error:
        raise ConfigError(f"model_type 'new': cannot compute the head size ({error})") from error
    if scaling is None:
        rope = {"rope_type": "default", "rope_theta": theta}
    elif not isinstance(scaling, dict) or scaling.get("type") != "ntk":
        raise ConfigError(f"model_type 'new': rope_scaling {scaling!r} is unknown to the remote code (only 'ntk')")
    elif scaling.get("mixed_b") is not None:
        raise ConfigError(
            f"model_type 'new': rope_scaling {scaling!r} (mixed NTK, mixed_b) has no transformers rope type "
            "and is not supported"
        )
    else:
        factor = scaling.get("factor")
        if not (isinstance(factor, int | float) and not isinstance(factor, bool) and factor >= 1):
            raise ConfigError(
                f"model_type 'new': rope_scaling factor must be a number >= 1, got {factor!r} (below 1 the "
                "remote code's frequencies depend on the lengths it has seen)"
            )
        rope = {"rope_type": "linear", "rope_theta": theta * factor, "factor": factor ** (2 / dim)}
    how = "" if scaling is None else f" (fixed NTK: theta * factor, frequencies / factor ** (2 / {dim}))"
    renamed.append(f"rope_theta {theta!r}, rope_scaling {scaling!r} -> rope_parameters {rope!r}{how}")
    values["rope_parameters"] = rope
    if values.get("hidden_act", "gelu") != "gelu":
        warnings.warn(
            f"model_type 'new' with hidden_act {values['hidden_act']!r}: the remote code's masked-LM head "
            "applies it, transformers' GTE (and minibert) apply exact GELU there, so masked-LM scores differ; "
            "the encoder is unaffected",
            stacklevel=3,
        )
    architectures = values.get("architectures")
    if isinstance(architectures, list):
        names = [f"Gte{name.removeprefix('New')}" if name.startswith("New") else name for name in architectures]
        converted("architectures", architectures, names)
        values["architectures"] = names
    return values, renamed


CONFIG_CLASSES["new"] = GteConfig  # GTE's remote-code spelling: GteConfig.from_dict converts it


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


@dataclass(frozen=True)
class NomicBertConfig(RotaryConfig):
    """Mirrors ``transformers.NomicBertConfig`` (nomic-embed-text-v1.5 defaults, as there).

    Positions are rotary, with no position table: ``rope_parameters`` as in ``GteConfig``
    (``rope_type`` "default", "linear" or "dynamic", which stretches inputs longer than
    ``max_position_embeddings``; inputs of any length are taken, as in transformers).
    ``head_dim`` may differ from ``hidden_size / num_attention_heads``. The feed-forward block is
    gated: ``hidden_act(gate_proj(x)) * up_proj(x)``. A ``config.json`` of the original remote code
    (GPT-2's spelling: ``n_embd``, ``n_head``, ``rotary_emb_base``, ...) is read as this spelling:
    see ``from_nomic_remote_code``; ``renamed_fields`` lists every field it read another way.
    """

    model_type: ClassVar[str] = "nomic_bert"
    default_theta: ClassVar[float] = 1000.0  # transformers' NomicBertConfig.default_theta

    vocab_size: int = 30528
    hidden_act: str = "silu"  # the gate's activation
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    max_position_embeddings: int = 2048  # no table: the trained length, which dynamic NTK stretches beyond
    head_dim: int | None = None  # None: hidden_size // num_attention_heads

    def __post_init__(self) -> None:
        if self.head_dim is None and _is_count(self.hidden_size) and _is_count(self.num_attention_heads):
            object.__setattr__(self, "head_dim", self.hidden_size // self.num_attention_heads)
        super().__post_init__()

    def _validate(self) -> None:
        for name in ("hidden_size", "num_attention_heads", "head_dim"):
            if not _is_count(getattr(self, name)):
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.hidden_size % self.num_attention_heads:
            # EncoderConfig asks the heads to divide hidden_size, BERT's head size; here head_dim is the
            # head size, whatever hidden_size is: the other fields are checked on a copy where they divide it.
            self.replace(hidden_size=self.num_attention_heads * self.head_dim)
            return
        super()._validate()
        if self.head_dim % 2:
            raise ConfigError(f"head_dim must be even, got {self.head_dim}: rotary attention turns pairs of features")
        if not isinstance(self.pad_token_id, int):
            raise ConfigError(
                f"pad_token_id must be an integer, as in transformers' NomicBertConfig; got {self.pad_token_id!r}"
            )
        if self.pruned_heads:
            raise ConfigError("pruned_heads: NomicBERT's heads cannot be pruned (nor can transformers')")
        self._validate_rope()

    @classmethod
    def from_other_spelling(cls, values: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """The original remote code's config (``n_embd`` and no ``hidden_size``): ``from_nomic_remote_code``."""
        return from_nomic_remote_code(values) if "n_embd" in values and "hidden_size" not in values else (values, [])


# NomicBERT's original remote code (nomic-ai/contrastors, configuration_hf_nomic_bert.py: a GPT2Config,
# and modeling_hf_nomic_bert.py), read, never run. Its defaults, where a config.json leaves a field out:
NOMIC_REMOTE_DEFAULTS: dict[str, Any] = {
    "vocab_size": 50257,
    "n_embd": 768,
    "n_layer": 12,
    "n_head": 12,
    "n_inner": None,  # the gated MLP's width: int(8 * n_embd / 3), rounded up to a multiple of 256
    "n_positions": 1024,
    "activation_function": "gelu_new",
    "resid_pdrop": 0.1,
    "embd_pdrop": 0.1,
    "attn_pdrop": 0.1,
    "layer_norm_epsilon": 1e-5,
    "rotary_emb_base": 10_000,
    "pad_vocab_size_multiple": 1,
}
# GPT-2's names that mean what transformers' names mean.
NOMIC_REMOTE_NAMES = {
    "n_embd": "hidden_size",
    "n_layer": "num_hidden_layers",
    "n_head": "num_attention_heads",
    "layer_norm_epsilon": "layer_norm_eps",
    "resid_pdrop": "hidden_dropout_prob",  # every dropout of the blocks and embeddings
    "attn_pdrop": "attention_probs_dropout_prob",
}
# The remote code's options, with their defaults, and the value each must have for transformers' NomicBERT
# to compute the same: the remote code's default is often another model (learned positions, biases).
NOMIC_REMOTE_REQUIRED: dict[str, tuple[Any, Any, str]] = {
    "rotary_emb_fraction": (0.0, 1.0, "rotary positions on every feature of a head (0: a learned position table)"),
    "rotary_emb_interleaved": (False, False, "rotation of (first half, second half) pairs, not interleaved ones"),
    "rotary_emb_scale_base": (None, None, "plain rotary positions, without xPos scaling"),
    "rotary_scaling_factor": (None, None, "no NTK scaling above max_trained_positions, a threshold it has not"),
    "rotary_head_dim": (False, False, "rotation along the sequence, not along the heads"),
    "qkv_proj_bias": (True, False, "no bias in Wqkv and out_proj"),
    "mlp_fc1_bias": (True, False, "no bias in fc11 and fc12"),
    "mlp_fc2_bias": (True, False, "no bias in fc2"),
    "prenorm": (False, False, "LayerNorm after each residual sum (post-norm)"),
    "parallel_block": (False, False, "attention, then the MLP"),
    "use_rms_norm": (False, False, "LayerNorm, not RMSNorm"),
    "norm_mlp": (False, False, "no LayerNorm inside the MLP"),
    "causal": (False, False, "an encoder: every token sees every token"),
    "last_layer_subset": (False, False, "a fused Wqkv in every layer"),
}
# Options of the remote code's kernels, and GPT-2 fields its NomicBERT never reads: no effect, kept in extra.
NOMIC_REMOTE_UNUSED = (
    "fused_bias_fc",
    "fused_dropout_add_ln",
    "use_flash_attn",
    "use_xentropy",
    "dense_seq_output",
    "max_trained_positions",
    "parallel_block_tied_norm",
    "scale_attn_weights",
    "scale_attn_by_inverse_layer_idx",
    "reorder_and_upcast_attn",
    "use_cache",
    "summary_type",
    "summary_use_proj",
    "summary_activation",
    "summary_proj_to_labels",
    "summary_first_dropout",
)
# activation_function -> hidden_act for the remote code's gated MLP: fc2(fc11(x) * act(fc12(x))).
NOMIC_REMOTE_GATES = {"swiglu": "silu", "geglu": "gelu"}


def from_nomic_remote_code(values: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A ``config.json`` of NomicBERT's remote code in transformers' spelling, and a line for each field read.

    Mirrors ``NomicBertConfig`` (a ``GPT2Config``) and ``NomicBertModel``, ``NomicBertBlock``,
    ``NomciBertGatedMLP``, ``NomicBertAttention`` of nomic-ai/contrastors'
    src/contrastors/models/huggingface/: what that code computes with these values is what
    transformers' NomicBERT computes with the values returned (or a ConfigError says why it cannot).
    E.g. ``{"n_embd": 768, "n_inner": 3000, "activation_function": "swiglu", ...}`` ->
    ``{"hidden_size": 768, "intermediate_size": 3072, "hidden_act": "silu", ...}``.
    """
    values = {**NOMIC_REMOTE_DEFAULTS, **values}
    renamed = []
    for old, new in NOMIC_REMOTE_NAMES.items():
        value = values.pop(old)
        if new in values and values[new] != value:
            raise ConfigError(f"NomicBERT remote-code config: {old} {value!r} and {new} {values[new]!r} disagree")
        values[new] = value
        renamed.append(f"{old} {value!r} -> {new}")
    checked = []
    for name, (default, needed, meaning) in NOMIC_REMOTE_REQUIRED.items():
        value = values.pop(name, default)
        if value != needed and (needed or value):  # None and False both mean "off"
            raise ConfigError(
                f"NomicBERT remote-code config: {name}={value!r} is not supported: transformers' NomicBERT "
                f"computes {meaning} only ({name}={needed!r})"
            )
        checked.append(f"{name}={value!r}")
    renamed.append(f"{', '.join(checked)}: what transformers' NomicBERT computes (checked)")
    kv_heads = values.pop("num_heads_kv", None)
    if kv_heads is not None and kv_heads != values["num_attention_heads"]:
        raise ConfigError(f"NomicBERT remote-code config: num_heads_kv={kv_heads!r} (grouped queries) is not supported")
    activation = values.pop("activation_function")
    if activation not in NOMIC_REMOTE_GATES:
        raise ConfigError(
            f"NomicBERT remote-code config: activation_function {activation!r} is not supported: transformers' "
            f"NomicBERT has the gated MLP only, {' or '.join(map(repr, NOMIC_REMOTE_GATES))} ('glu' gates with "
            "a sigmoid but its masked-LM head uses GELU)"
        )
    values["hidden_act"] = NOMIC_REMOTE_GATES[activation]
    renamed.append(
        f"activation_function {activation!r} -> hidden_act {values['hidden_act']!r}: "
        "fc11 is up_proj, fc12 the gated gate_proj"
    )
    inner, width = values.pop("n_inner"), values["hidden_size"]
    try:
        hidden_features = int(8 * width / 3) if inner is None else inner
        values["intermediate_size"] = (hidden_features + 255) // 256 * 256
    except TypeError as error:
        raise ConfigError(f"NomicBERT remote-code config: n_inner {inner!r} with n_embd {width!r}: {error}") from error
    renamed.append(
        f"n_inner {inner!r} -> intermediate_size {values['intermediate_size']} (the remote code's gated MLP rounds "
        "its width up to a multiple of 256)"
    )
    positions = values.pop("n_positions")
    values["max_position_embeddings"] = 2048 if isinstance(positions, int) and positions <= 0 else positions
    renamed.append(f"n_positions {positions!r} -> max_position_embeddings {values['max_position_embeddings']!r}")
    multiple, vocab = values.pop("pad_vocab_size_multiple"), values["vocab_size"]
    if _is_count(multiple) and _is_count(vocab) and vocab % multiple:
        values["vocab_size"] = vocab + multiple - vocab % multiple
    renamed.append(f"vocab_size {vocab!r} -> {values['vocab_size']!r} (pad_vocab_size_multiple {multiple!r})")
    theta = values.pop("rotary_emb_base")
    values["rope_parameters"] = {"rope_type": "default", "rope_theta": theta}
    renamed.append(f"rotary_emb_base {theta!r} -> rope_parameters {values['rope_parameters']!r}")
    dropout = values.pop("embd_pdrop")
    if "classifier_dropout" not in values:  # the remote classifier: getattr(config, "classifier_dropout", embd_pdrop)
        values["classifier_dropout"] = dropout
        renamed.append(f"embd_pdrop {dropout!r} -> classifier_dropout")
    if values.get("pad_token_id") is None:
        values["pad_token_id"] = 0
        renamed.append(
            "pad_token_id None (the remote code's embeddings have no padding row) -> 0, as transformers' "
            "NomicBertConfig needs one: only row 0's gradient differs (zero) in training"
        )
    if values.get("type_vocab_size") == 0:
        raise ConfigError("NomicBERT remote-code config: type_vocab_size 0 (no token types) is not supported")
    architectures = values.get("architectures")
    if isinstance(architectures, list) and "NomicBertForPreTraining" in architectures:
        values["architectures"] = [
            "NomicBertForMaskedLM" if a == "NomicBertForPreTraining" else a for a in architectures
        ]
        renamed.append(f"architectures {architectures!r} -> {values['architectures']!r}")
    if values.pop("auto_map", None) is not None:
        renamed.append("auto_map dropped: minibert runs no remote code, and saves transformers' key layout")
    unused = [name for name in NOMIC_REMOTE_UNUSED if name in values]
    if unused:
        renamed.append(f"kept in extra, no effect on what is computed: {', '.join(unused)}")
    return values, renamed


# ModernBERT's two kinds of attention layer, and the rotary theta each uses unless the config says.
MODERNBERT_ROPE_THETA = {"full_attention": 160_000.0, "sliding_attention": 10_000.0}


@dataclass(frozen=True)
class ModernBertConfig(EncoderConfig):
    """Mirrors ``transformers.ModernBertConfig`` (ModernBERT-base defaults).

    ``layer_types`` says, layer by layer, whether it attends globally (``"full_attention"``) or
    within ``local_attention // 2`` tokens each side (``"sliding_attention"``); without it, every
    third layer from the first is global. ``rope_parameters`` holds each kind's rotary theta (and
    scaling). transformers 4.x files spell these ``global_attn_every_n_layers``,
    ``global_rope_theta`` and ``local_rope_theta`` (and ``rope_scaling``): ``from_dict`` reads them
    as transformers 5 does (``ModernBertConfig.__post_init__`` and ``convert_rope_params_to_dict``).

    As in DistilBertConfig, ModernBERT names some shared fields its own way (``hidden_activation``,
    ``norm_eps``, ``attention_dropout``): EncoderConfig's generic names are computed from them
    (``GENERIC_NAMES``) or fixed (``FIXED``), and never written.
    """

    model_type: ClassVar[str] = "modernbert"
    # EncoderConfig's name -> ModernBERT's.
    GENERIC_NAMES: ClassVar[dict[str, str]] = {
        "hidden_act": "hidden_activation",
        "layer_norm_eps": "norm_eps",
        "attention_probs_dropout_prob": "attention_dropout",
    }
    # No single hidden dropout (embedding_dropout, mlp_dropout), no token types, an encoder; positions
    # are rotary, not a table, but "absolute" is what EncoderConfig's check (and ModernBERT's 4.x files) say.
    FIXED: ClassVar[dict[str, Any]] = {
        "hidden_dropout_prob": 0.0,
        "type_vocab_size": 1,
        "position_embedding_type": "absolute",
        "is_decoder": False,
        "add_cross_attention": False,
    }
    # The 4.x spelling of rope_parameters: read by from_dict, never written.
    ROPE_KEYS: ClassVar[dict[str, str]] = {
        "global_rope_theta": "full_attention",
        "local_rope_theta": "sliding_attention",
    }

    vocab_size: int = 50368
    intermediate_size: int = 1152  # width of each half of the GLU's input projection
    num_hidden_layers: int = 22
    hidden_activation: str = "gelu"  # the GLU's activation: a key of minibert.activations.ACTIVATIONS
    max_position_embeddings: int = 8192
    initializer_cutoff_factor: float | None = 2.0  # weights start truncated at this many stds (None: 3)
    norm_eps: float = 1e-5
    norm_bias: bool = False  # LayerNorms with a bias
    pad_token_id: int | None = 50283
    bos_token_id: int | None = 50281
    eos_token_id: int | None = 50282
    attention_bias: bool = False  # Wqkv and Wo with biases
    attention_dropout: float = 0.0
    layer_types: list[str] | None = None  # None: every third layer global, from the first
    rope_parameters: dict[str, dict[str, Any]] | None = None  # layer type -> rope_type, rope_theta (, factor)
    local_attention: int = 128  # sliding-window width: local_attention // 2 tokens each side
    embedding_dropout: float = 0.0
    mlp_bias: bool = False  # Wi and Wo with biases
    mlp_dropout: float = 0.0
    decoder_bias: bool = True
    classifier_pooling: str = "cls"  # the sentence vector: the first token ("cls") or the tokens' mean ("mean")
    classifier_dropout: float = 0.0
    classifier_bias: bool = False  # the heads' dense layer with a bias (their classifier always has one)
    classifier_activation: str = "gelu"
    sparse_prediction: bool = False  # MLM with labels: scores for the labelled tokens only, (M, V)
    sparse_pred_ignore_index: int = -100  # the label of the tokens sparse prediction leaves out

    hidden_act: str = _generic()
    layer_norm_eps: float = _generic()
    attention_probs_dropout_prob: float = _generic()
    hidden_dropout_prob: float = _generic()
    type_vocab_size: int = _generic()
    position_embedding_type: str = _generic()
    is_decoder: bool = _generic()
    add_cross_attention: bool = _generic()

    def __post_init__(self) -> None:
        for generic, own in self.GENERIC_NAMES.items():
            object.__setattr__(self, generic, getattr(self, own))
        for generic, value in self.FIXED.items():
            object.__setattr__(self, generic, value)
        check_field_types(self)  # before a list of num_hidden_layers entries is built from the count
        check_size(self)
        if self.layer_types is None and isinstance(self.num_hidden_layers, int):
            object.__setattr__(self, "layer_types", every_nth_layer_global(self.num_hidden_layers, 3))
        object.__setattr__(self, "rope_parameters", modernbert_rope_parameters(self.rope_parameters))
        super().__post_init__()

    def _validate(self) -> None:
        # ModernBERT's names first, so that an error names the field the user wrote.
        for name in ("hidden_activation", "classifier_activation"):
            if getattr(self, name) not in ACTIVATIONS:
                raise ConfigError(f"unknown {name} {getattr(self, name)!r}; known: {', '.join(sorted(ACTIVATIONS))}")
        for name in ("attention_dropout", "embedding_dropout", "mlp_dropout", "classifier_dropout"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0 <= value <= 1):
                raise ConfigError(f"{name} must be a probability in [0, 1], got {value!r}")
        if not (isinstance(self.norm_eps, int | float) and self.norm_eps > 0):
            raise ConfigError(f"norm_eps must be positive, got {self.norm_eps!r}")
        for name in ("norm_bias", "attention_bias", "mlp_bias", "decoder_bias", "classifier_bias", "sparse_prediction"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        window = self.local_attention
        if not isinstance(window, int) or isinstance(window, bool) or window < 1:
            raise ConfigError(f"local_attention must be a positive integer, got {window!r}")
        if self.classifier_pooling not in ("cls", "mean"):
            raise ConfigError(f"classifier_pooling must be 'cls' or 'mean', got {self.classifier_pooling!r}")
        cutoff = self.initializer_cutoff_factor
        if cutoff is not None and not (isinstance(cutoff, int | float) and cutoff > 0):
            raise ConfigError(f"initializer_cutoff_factor must be positive (or null: 3), got {cutoff!r}")
        super()._validate()
        if (self.hidden_size // self.num_attention_heads) % 2:
            raise ConfigError(
                f"hidden_size / num_attention_heads ({self.hidden_size} / {self.num_attention_heads}) must be even: "
                "rotary positions turn the features of each head in pairs"
            )
        kinds = MODERNBERT_ROPE_THETA.keys()
        if not isinstance(self.layer_types, list) or any(kind not in kinds for kind in self.layer_types):
            raise ConfigError(
                f"layer_types must list 'full_attention' or 'sliding_attention' per layer, got {self.layer_types!r}"
            )
        if len(self.layer_types) != self.num_hidden_layers:
            raise ConfigError(
                f"layer_types has {len(self.layer_types)} entries, but num_hidden_layers is {self.num_hidden_layers}"
            )
        for kind, rope in self.rope_parameters.items():
            if rope["rope_type"] not in ("default", "linear", "dynamic"):  # minibert.rotary.SCALINGS
                raise ConfigError(
                    f"rope_parameters[{kind!r}]: rope_type {rope['rope_type']!r} is not supported; "
                    "minibert supports default, linear, dynamic"
                )
            theta, factor = rope["rope_theta"], rope.get("factor")
            if not (isinstance(theta, int | float) and not isinstance(theta, bool) and theta > 0):
                raise ConfigError(f"rope_parameters[{kind!r}]: rope_theta must be a positive number, got {theta!r}")
            if rope["rope_type"] != "default" and not (isinstance(factor, int | float) and factor > 0):
                raise ConfigError(f"rope_parameters[{kind!r}]: rope_type {rope['rope_type']!r} needs a positive factor")
            if rope.get("partial_rotary_factor", 1.0) != 1.0:
                raise ConfigError(
                    f"rope_parameters[{kind!r}]: partial_rotary_factor is not supported: minibert turns every feature"
                )
        if self.pruned_heads:
            raise ConfigError("pruned_heads: ModernBERT's heads cannot be pruned (nor in transformers): Wqkv is fused")

    @classmethod
    def from_dict(cls, values: dict[str, Any], **overrides: Any) -> Self:
        """As EncoderConfig's, reading transformers 4.x's spelling too (4.x keys may also come as overrides).

        ``global_attn_every_n_layers`` gives ``layer_types`` where a file has none (and is kept, as
        transformers keeps it); ``global_rope_theta``, ``local_rope_theta`` and ``rope_scaling`` go
        into ``rope_parameters``, where a theta given there wins. Generic names in a file
        (``position_embedding_type``, ...) mean nothing to ModernBERT: they are kept in ``extra``;
        given as overrides, they are refused with the field to use.
        """
        generic = cls.GENERIC_NAMES.keys() | cls.FIXED.keys()
        refused = sorted(generic & overrides.keys())
        if refused:
            name = refused[0]
            use = f"set {cls.GENERIC_NAMES[name]}" if name in cls.GENERIC_NAMES else f"fixed at {cls.FIXED[name]!r}"
            raise ConfigError(f"{name} is not a field of {cls.__name__} ({use})")
        # 4.x keys are not fields: given as overrides, they are read as the file's.
        old = ("global_attn_every_n_layers", *cls.ROPE_KEYS, "rope_scaling")
        values = {**values, **{k: overrides.pop(k) for k in old if k in overrides}}
        merged = {**values, **overrides}
        every = values.get("global_attn_every_n_layers")
        if every is not None and merged.get("layer_types") is None:
            if not isinstance(every, int) or isinstance(every, bool) or every < 1:
                raise ConfigError(f"global_attn_every_n_layers must be a positive integer, got {every!r}")
            layers = merged.get("num_hidden_layers", cls.num_hidden_layers)
            values["layer_types"] = every_nth_layer_global(layers, every) if isinstance(layers, int) else None
        thetas = {kind: values.pop(key) for key, kind in cls.ROPE_KEYS.items() if key in values}
        scaling = values.pop("rope_scaling", None)
        if thetas or scaling is not None:
            values["rope_parameters"] = modernbert_rope_parameters(merged.get("rope_parameters"), thetas, scaling)
            overrides.pop("rope_parameters", None)
        unused = {k: values.pop(k) for k in generic & values.keys()}
        config = super().from_dict(values, **overrides)
        return config.replace(extra={**config.extra, **unused}) if unused else config

    def to_dict(self) -> dict[str, Any]:
        """ModernBERT's names only, as transformers writes them; generic keys a file held come back from ``extra``."""
        generic = self.GENERIC_NAMES.keys() | self.FIXED.keys()
        values = {k: v for k, v in super().to_dict().items() if k not in generic}
        return {**values, **{k: v for k, v in self.extra.items() if k in generic}}

    @property
    def sliding_window(self) -> int:
        """How far a sliding-window layer sees on each side of a token: ``local_attention // 2``."""
        return self.local_attention // 2


def every_nth_layer_global(layers: int, every: int) -> list[str]:
    """``layer_types`` from 4.x's ``global_attn_every_n_layers``: layers 0, n, 2n, ... global, e.g. (5, 2) ->
    full, sliding, full, sliding, full."""
    return ["sliding_attention" if i % every else "full_attention" for i in range(layers)]


def modernbert_rope_parameters(
    rope_parameters: dict[str, Any] | None, thetas: dict[str, float] | None = None, scaling: dict | None = None
) -> dict[str, dict[str, Any]]:
    """Each layer type's rotary parameters, completed as ``ModernBertConfig.convert_rope_params_to_dict`` does.

    ``scaling`` (4.x's ``rope_scaling``) updates both kinds; a theta missing from a kind comes
    from ``thetas`` (4.x's ``global_rope_theta`` / ``local_rope_theta``), else from ModernBERT's default.
    """
    if rope_parameters is not None and not isinstance(rope_parameters, dict):
        raise ConfigError(f"rope_parameters must map layer types to dicts, got {rope_parameters!r}")
    rope = {}
    for kind, theta in MODERNBERT_ROPE_THETA.items():
        params = dict((rope_parameters or {}).get(kind) or {}, **(scaling or {}))
        params.setdefault("rope_type", params.get("type", "default"))
        params.setdefault("rope_theta", (thetas or {}).get(kind, theta))
        rope[kind] = params
    return rope


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
