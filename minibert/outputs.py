"""What the models return: small dataclasses with transformers' field names.

They behave like transformers' ``ModelOutput``, which much existing code relies on:
fields by attribute (``out.logits``) or by name (``out["logits"]``), and, over the
fields that are set (not None), ``keys()``, ``values()``, ``items()``, ``in``, iteration
over the names, and tuple-style indexing (``out[0]``, ``out[:2]``, ``to_tuple()``).
``return_dict=False`` (a call argument, or the config's) returns ``to_tuple()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

from torch import Tensor

Tensors = tuple[Tensor, ...]


@dataclass
class ModelOutput:
    """A dataclass that also reads as transformers' ordered mapping of its set fields."""

    def keys(self) -> list[str]:
        """Names of the fields that are set, in order."""
        return [f.name for f in fields(self) if getattr(self, f.name) is not None]

    def values(self) -> list[Any]:
        return [getattr(self, name) for name in self.keys()]

    def items(self) -> list[tuple[str, Any]]:
        return [(name, getattr(self, name)) for name in self.keys()]

    def to_tuple(self) -> tuple[Any, ...]:
        """The fields that are set, in order: what ``return_dict=False`` returns."""
        return tuple(self.values())

    def __getitem__(self, key: str | int | slice) -> Any:
        if isinstance(key, str):
            if key not in self.keys():
                raise KeyError(f"{key!r}: {type(self).__name__} has no such field set; set: {', '.join(self.keys())}")
            return getattr(self, key)
        return self.to_tuple()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if key not in {f.name for f in fields(self)}:
            raise KeyError(f"{key!r}: {type(self).__name__} has no such field")
        setattr(self, key, value)

    def __contains__(self, key: object) -> bool:
        return key in self.keys()

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())


@dataclass
class BaseModelOutputWithPooling(ModelOutput):
    """The encoder's output: one vector per token, and the pooled first token (None without a pooler)."""

    last_hidden_state: Tensor  # (B, T, H)
    pooler_output: Tensor | None = None  # (B, H)
    hidden_states: Tensors | None = None  # embeddings output, then each layer's: num_layers + 1 of (B, T, H)
    attentions: Tensors | None = None  # each layer's attention probabilities: (B, heads, T, T)


@dataclass
class LogitsOutput(ModelOutput):
    """A head's scores; transformers names this MaskedLMOutput, SequenceClassifierOutput and so on.

    logits: MLM (B, T, V), sequence (B, labels), token (B, T, labels), choices (B, C).
    """

    loss: Tensor | None = None
    logits: Tensor | None = None
    hidden_states: Tensors | None = None
    attentions: Tensors | None = None


@dataclass
class PreTrainingOutput(ModelOutput):
    """BERT's pre-training heads: masked-token scores and next-sentence scores."""

    loss: Tensor | None = None
    prediction_logits: Tensor | None = None  # (B, T, V)
    seq_relationship_logits: Tensor | None = None  # (B, 2)
    hidden_states: Tensors | None = None
    attentions: Tensors | None = None


@dataclass
class SOPPreTrainingOutput(ModelOutput):
    """ALBERT's pre-training heads: masked-token scores and sentence-order scores."""

    loss: Tensor | None = None
    prediction_logits: Tensor | None = None  # (B, T, V)
    sop_logits: Tensor | None = None  # (B, 2)
    hidden_states: Tensors | None = None
    attentions: Tensors | None = None


@dataclass
class QuestionAnsweringModelOutput(ModelOutput):
    """Span scores: where the answer starts and ends, per token."""

    loss: Tensor | None = None
    start_logits: Tensor | None = None  # (B, T)
    end_logits: Tensor | None = None  # (B, T)
    hidden_states: Tensors | None = None
    attentions: Tensors | None = None
