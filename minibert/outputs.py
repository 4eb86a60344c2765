"""What the models return: small dataclasses with transformers' field names.

Like transformers' ``ModelOutput``, they also index like a tuple of their
non-None fields (``model(...)[0]``), a habit much existing code relies on.
"""

from dataclasses import dataclass, fields
from typing import Any

import torch

Tensors = tuple[torch.Tensor, ...]


@dataclass
class ModelOutput:
    def to_tuple(self) -> tuple[Any, ...]:
        """The fields that are set, in order."""
        return tuple(v for v in (getattr(self, f.name) for f in fields(self)) if v is not None)

    def __getitem__(self, index: int | slice | str) -> Any:
        return getattr(self, index) if isinstance(index, str) else self.to_tuple()[index]


@dataclass
class BaseModelOutputWithPooling(ModelOutput):
    """The encoder's output: one vector per token, and the pooled first token (None without a pooler)."""

    last_hidden_state: torch.Tensor  # (B, T, H)
    pooler_output: torch.Tensor | None = None  # (B, H)
    hidden_states: Tensors | None = None  # embeddings output, then each layer's: num_layers + 1 of (B, T, H)
    attentions: Tensors | None = None  # each layer's attention probabilities: (B, heads, T, T)


@dataclass
class LogitsOutput(ModelOutput):
    """A head's scores; transformers names this MaskedLMOutput, SequenceClassifierOutput and so on.

    logits: MLM (B, T, V), sequence (B, labels), token (B, T, labels), choices (B, C).
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    hidden_states: Tensors | None = None
    attentions: Tensors | None = None


@dataclass
class PreTrainingOutput(ModelOutput):
    """BERT's pre-training heads: masked-token scores and next-sentence scores."""

    loss: torch.Tensor | None = None
    prediction_logits: torch.Tensor | None = None  # (B, T, V)
    seq_relationship_logits: torch.Tensor | None = None  # (B, 2)
    hidden_states: Tensors | None = None
    attentions: Tensors | None = None


@dataclass
class SOPPreTrainingOutput(ModelOutput):
    """ALBERT's pre-training heads: masked-token scores and sentence-order scores."""

    loss: torch.Tensor | None = None
    prediction_logits: torch.Tensor | None = None  # (B, T, V)
    sop_logits: torch.Tensor | None = None  # (B, 2)
    hidden_states: Tensors | None = None
    attentions: Tensors | None = None


@dataclass
class QuestionAnsweringModelOutput(ModelOutput):
    """Span scores: where the answer starts and ends, per token."""

    loss: torch.Tensor | None = None
    start_logits: torch.Tensor | None = None  # (B, T)
    end_logits: torch.Tensor | None = None  # (B, T)
    hidden_states: Tensors | None = None
    attentions: Tensors | None = None
