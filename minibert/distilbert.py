"""DistilBERT: BERT distilled to fewer layers, under names of its own and with a simpler block.

What differs from BERT, and only this is written here:

* the names: the config says ``dim``, ``n_layers``, ``n_heads``, ``activation`` (``DistilBertConfig``
  maps them to the generic ones), the checkpoint ``transformer.layer.N.attention.q_lin``,
  ``sa_layer_norm``, ``ffn.lin1``, ``output_layer_norm``;
* no token types and no pooler; every LayerNorm uses eps 1e-12, whatever the config says;
* the position table may start as fixed sinusoids (``sinusoidal_pos_embds``); after that it is an
  ordinary weight, saved, loaded and trained as in transformers 5;
* the block: attention with its output projection inside, then residual and LayerNorm (no dropout
  after the projection, unlike BERT); feed-forward, dropout, residual and LayerNorm;
* the heads: the MLM head is flat (``vocab_transform``, ``vocab_layer_norm``, ``vocab_projector``,
  whose weight, not its bias, is tied to the word embeddings); sentence heads read the first token
  through ``pre_classifier`` and ReLU; each head has its own dropout (``seq_classif_dropout``,
  ``qa_dropout``, ``dropout``); and every forward takes transformers' DistilBERT inputs, in its order.

The embeddings, attention maths and layouts, the layer loop, the forward pass (``EncoderModel``)
and the token and span heads come from ``minibert.bert``.
Mirrors transformers/models/distilbert/modeling_distilbert.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Self, Unpack

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from minibert.activations import ACTIVATIONS
from minibert.bert import (
    AttentionMask,
    BertForQuestionAnswering,
    BertForTokenClassification,
    BertPreTrainedModel,
    Embeddings,
    Encoder,
    EncoderModel,
    HeadModel,
    SelfAttention,
    keep_features,
    masked_lm_loss,
    sequence_classification_loss,
)
from minibert.config import EncoderConfig, OwnNamesConfig, derived_field
from minibert.errors import ConfigError
from minibert.linear import linear_then
from minibert.outputs import BaseModelOutputWithPooling, LogitsOutput, QuestionAnsweringModelOutput
from minibert.pretrained import OutputFlags


@dataclass(frozen=True)
class DistilBertConfig(OwnNamesConfig):
    """Mirrors ``transformers.DistilBertConfig`` (distilbert-base-uncased defaults).

    DistilBERT names its fields its own way (``dim``, ``n_layers``, ``activation``, ...): see
    ``OwnNamesConfig``. ``vocab_size``, ``max_position_embeddings``, ``initializer_range``, the token
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

    hidden_size: int = derived_field()
    num_hidden_layers: int = derived_field()
    num_attention_heads: int = derived_field()
    intermediate_size: int = derived_field()
    hidden_act: str = derived_field()
    hidden_dropout_prob: float = derived_field()
    attention_probs_dropout_prob: float = derived_field()
    layer_norm_eps: float = derived_field()
    type_vocab_size: int = derived_field()
    position_embedding_type: str = derived_field()
    classifier_dropout: float | None = derived_field()
    is_decoder: bool = derived_field()
    add_cross_attention: bool = derived_field()

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
        """As OwnNamesConfig's, reading transformers' aliases as DistilBERT's names (``hidden_size`` -> ``dim``).

        Other generic names in a file (``layer_norm_eps``, ...) are kept in ``extra``.
        """
        values = {cls.attribute_map.get(k, k): v for k, v in values.items()}
        overrides = {cls.attribute_map.get(k, k): v for k, v in overrides.items()}
        return super().from_dict(values, **overrides)


# -- embeddings -----------------------------------------------------------------------------


def sinusoidal_table(rows: int, dim: int) -> Tensor:
    """Row ``pos``, column ``j``: sin (even j) or cos (odd j) of ``pos / 10000 ** (2 * (j // 2) / dim)``.

    Computed in float64, then rounded to float32: bit for bit what transformers' numpy code gives
    (``_create_sinusoidal_embeddings`` in models/distilbert/modeling_distilbert.py).
    """
    positions = torch.arange(rows, dtype=torch.float64)[:, None]  # (rows, 1)
    column = torch.arange(dim)
    angles = positions / torch.pow(10000.0, (2 * (column // 2)).double() / dim)  # (rows, dim)
    return torch.where(column % 2 == 0, angles.sin(), angles.cos()).float()  # (rows, dim)


class SinusoidalPositions(nn.Embedding):
    """The position table of ``sinusoidal_pos_embds=True``: ``_init_weights`` fills it with ``sinusoidal_table``.

    Only its start differs from a learned table: a checkpoint's values are loaded as they are.
    """

    def __init__(self, rows: int, dim: int) -> None:
        super().__init__(rows, dim, _weight=torch.empty(rows, dim))


class DistilBertEmbeddings(Embeddings):
    """Word + position embeddings, LayerNorm and dropout: BERT's, without token types (DistilBERT's ``Embeddings``)."""

    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__(config, token_types=False)
        if config.sinusoidal_pos_embds:
            self.position_embeddings = SinusoidalPositions(config.max_position_embeddings, config.dim)


# -- the block -------------------------------------------------------------------------------


class DistilBertSelfAttention(SelfAttention):
    """BERT's self-attention under DistilBERT's names, with the output projection ``out_lin`` inside.

    There is no dropout after ``out_lin``: the block adds the residual and normalises.
    """

    projection_names: ClassVar[tuple[str, str, str]] = ("q_lin", "k_lin", "v_lin")

    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__(config)
        self.out_lin = nn.Linear(config.dim, config.dim)

    def forward(
        self, hidden_states: Tensor, mask: AttentionMask, output_attentions: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        context, probs = super().forward(hidden_states, mask, output_attentions)  # (B, T, H), or (N, H) unpadded
        return self.out_lin(context), probs

    def prune_heads(self, heads: Iterable[int]) -> Tensor | None:
        """Remove ``heads`` from q_lin, k_lin and v_lin, and the columns of ``out_lin`` that read them."""
        index = super().prune_heads(heads)
        if index is not None:
            keep_features(self.out_lin, index, dim=1)
        return index


class FFN(nn.Module):
    """lin1, activation, lin2, dropout (DistilBERT's ``FFN``)."""

    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__()
        self.dropout = nn.Dropout(config.dropout)
        self.lin1 = nn.Linear(config.dim, config.hidden_dim)
        self.lin2 = nn.Linear(config.hidden_dim, config.dim)
        self.activation = ACTIVATIONS[config.activation]

    def forward(self, hidden_states: Tensor) -> Tensor:
        return self.dropout(self.lin2(linear_then(self.lin1, hidden_states, self.activation)))  # (B, T, H)


class TransformerBlock(nn.Module):
    """Attention, residual, LayerNorm; feed-forward, residual, LayerNorm (DistilBERT's ``TransformerBlock``)."""

    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__()
        self.attention = DistilBertSelfAttention(config)
        self.sa_layer_norm = nn.LayerNorm(config.dim, eps=config.layer_norm_eps)
        self.ffn = FFN(config)
        self.output_layer_norm = nn.LayerNorm(config.dim, eps=config.layer_norm_eps)

    def forward(
        self, hidden_states: Tensor, mask: AttentionMask, output_attentions: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        attended, probs = self.attention(hidden_states, mask, output_attentions)
        attended = self.sa_layer_norm(attended + hidden_states)  # (B, T, H)
        return self.output_layer_norm(self.ffn(attended) + attended), probs  # (B, T, H)


# -- the base model --------------------------------------------------------------------------


class DistilBertPreTrainedModel(BertPreTrainedModel):
    """What DistilBERT's models share: the config class, the encoder's name in a head model, init, no token types."""

    config_class: ClassVar[type[EncoderConfig]] = DistilBertConfig
    base_model_prefix: ClassVar[str] = "distilbert"

    @classmethod
    def base_model_class(cls) -> type[EncoderModel]:
        return DistilBertModel

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """DistilBERT has no token types: all-zero ones (a BERT tokenizer's, for single texts) are dropped, as
        transformers drops any; others would be segments lost without a word, so they are refused."""
        token_type_ids = kwargs.pop("token_type_ids", None)
        if token_type_ids is not None and not torch.compiler.is_compiling() and bool(token_type_ids.any()):
            raise ValueError(
                "token_type_ids: DistilBERT has no token types, and these mark segments it cannot see; "
                "leave them out, e.g. tokenizer(..., return_token_type_ids=False)"
            )
        return super().__call__(*args, **kwargs)

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """BERT's rule, then the sinusoidal table, as ``DistilBertPreTrainedModel._init_weights`` does."""
        super()._init_weights(module)
        if isinstance(module, SinusoidalPositions):
            module.weight.copy_(sinusoidal_table(module.num_embeddings, module.embedding_dim))


class DistilBertModel(DistilBertPreTrainedModel, EncoderModel):
    """Embeddings and the stack of blocks, no pooler: ``transformers.DistilBertModel``.

    Its forward pass is BERT's (``EncoderModel.forward``), on DistilBERT's inputs. ``add_pooling_layer``
    exists only because heads build every encoder the same way.
    """

    def __init__(self, config: DistilBertConfig, add_pooling_layer: bool = False, init_weights: bool = True) -> None:
        if add_pooling_layer:
            raise ConfigError("DistilBERT has no pooler: its sentence heads read the first token of last_hidden_state")
        super().__init__(config)
        self.embeddings = DistilBertEmbeddings(config)
        self.transformer = Encoder(config, layer=TransformerBlock)
        self.pooler = None
        if init_weights:
            self.post_init()

    @property
    def encoder(self) -> Encoder:
        """EncoderModel's name for the stack, which DistilBERT's checkpoints call ``transformer``."""
        return self.transformer

    def forward(
        self,
        input_ids: Tensor | None = None,  # (B, T)
        attention_mask: Tensor | None = None,  # (B, T): 1 = token, 0 = padding
        inputs_embeds: Tensor | None = None,  # (B, T, H)
        position_ids: Tensor | None = None,  # (B, T)
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
    ) -> BaseModelOutputWithPooling:
        inputs = (input_ids, attention_mask, None, position_ids, inputs_embeds)  # no token types
        return super().forward(*inputs, output_hidden_states, output_attentions)


# -- heads -------------------------------------------------------------------------------------


class DistilBertHeadModel(DistilBertPreTrainedModel, HeadModel):
    """HeadModel on DistilBERT's inputs, in transformers' order: no token types, ``position_ids`` last."""

    def forward(
        self,
        input_ids: Tensor | None = None,  # (B, T)
        attention_mask: Tensor | None = None,  # (B, T)
        inputs_embeds: Tensor | None = None,  # (B, T, H)
        labels: Tensor | None = None,  # what head() reads: see each head
        position_ids: Tensor | None = None,  # (B, T)
        **flags: Unpack[OutputFlags],
    ) -> LogitsOutput:
        inputs = (input_ids, attention_mask, inputs_embeds, position_ids)
        return self.head(self.base_model(*inputs, return_dict=True, **flags), labels)


class DistilBertForMaskedLM(DistilBertHeadModel):
    """Scores over the vocabulary for every token: ``transformers.DistilBertForMaskedLM``."""

    _tied_weights_keys: ClassVar[dict[str, str]] = {
        "vocab_projector.weight": "distilbert.embeddings.word_embeddings.weight",
    }

    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__(config)
        self.activation = ACTIVATIONS[config.activation]
        self.add_base_model(add_pooling_layer=False)
        self.vocab_transform = nn.Linear(config.dim, config.dim)
        self.vocab_layer_norm = nn.LayerNorm(config.dim, eps=config.layer_norm_eps)
        self.vocab_projector = nn.Linear(config.dim, config.vocab_size)
        self.post_init()

    def head(self, outputs: BaseModelOutputWithPooling, labels: Tensor | None) -> LogitsOutput:
        """``labels`` (B, T): the true token at masked positions, -100 elsewhere."""
        hidden = self.vocab_layer_norm(self.activation(self.vocab_transform(outputs.last_hidden_state)))  # (B, T, H)
        logits = self.vocab_projector(hidden)  # (B, T, V)
        return LogitsOutput(masked_lm_loss(logits, labels), logits, outputs.hidden_states, outputs.attentions)


class DistilBertForSequenceClassification(DistilBertHeadModel):
    """A classifier (or regressor) on the first token: pre_classifier, ReLU, dropout, classifier (no pooler)."""

    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__(config)
        self.add_base_model(add_pooling_layer=False)
        self.pre_classifier = nn.Linear(config.dim, config.dim)
        self.classifier = nn.Linear(config.dim, config.num_labels)
        self.dropout = nn.Dropout(config.seq_classif_dropout)
        self.post_init()

    def head(self, outputs: BaseModelOutputWithPooling, labels: Tensor | None) -> LogitsOutput:
        """``labels`` as in BertForSequenceClassification."""
        pooled = F.relu(self.pre_classifier(outputs.last_hidden_state[:, 0]))  # (B, H): the [CLS] token
        logits = self.classifier(self.dropout(pooled))  # (B, num_labels)
        loss = sequence_classification_loss(logits, labels, self.config)
        return LogitsOutput(loss, logits, outputs.hidden_states, outputs.attentions)


class DistilBertForTokenClassification(DistilBertHeadModel, BertForTokenClassification):
    """BertForTokenClassification on DistilBERT's encoder; its dropout is ``config.dropout``."""


class DistilBertForQuestionAnswering(DistilBertPreTrainedModel, BertForQuestionAnswering):
    """BertForQuestionAnswering with dropout (``qa_dropout``) before the span scores."""

    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__(config)
        self.dropout = nn.Dropout(config.qa_dropout)  # no weights: nothing for post_init to initialise

    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        start_positions: Tensor | None = None,  # (B,): the answer's first token
        end_positions: Tensor | None = None,  # (B,): the answer's last token
        position_ids: Tensor | None = None,
        **flags: Unpack[OutputFlags],
    ) -> QuestionAnsweringModelOutput:
        inputs = (input_ids, attention_mask, inputs_embeds, position_ids)
        return self.head(self.base_model(*inputs, return_dict=True, **flags), start_positions, end_positions)

    def head(
        self, outputs: BaseModelOutputWithPooling, start_positions: Tensor | None, end_positions: Tensor | None
    ) -> QuestionAnsweringModelOutput:
        """BERT's span scores and loss, on the hidden states after dropout."""
        dropped = dataclasses.replace(outputs, last_hidden_state=self.dropout(outputs.last_hidden_state))
        return super().head(dropped, start_positions, end_positions)


class DistilBertForMultipleChoice(DistilBertPreTrainedModel):
    """Scores each of C candidate sequences with the sentence head: inputs (B, C, T), logits (B, C)."""

    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__(config)
        self.add_base_model(add_pooling_layer=False)
        self.pre_classifier = nn.Linear(config.dim, config.dim)
        self.classifier = nn.Linear(config.dim, 1)
        self.dropout = nn.Dropout(config.seq_classif_dropout)
        self.post_init()

    def forward(
        self,
        input_ids: Tensor | None = None,  # (B, C, T)
        attention_mask: Tensor | None = None,  # (B, C, T)
        inputs_embeds: Tensor | None = None,  # (B, C, T, H)
        labels: Tensor | None = None,  # (B,): the right choice
        position_ids: Tensor | None = None,  # (B, C, T), or (T,) for all
        **flags: Unpack[OutputFlags],
    ) -> LogitsOutput:
        choices = (input_ids if input_ids is not None else inputs_embeds).shape[1]
        ids, mask, positions = (
            None if x is None else x.reshape(-1, x.shape[-1]) for x in (input_ids, attention_mask, position_ids)
        )  # (B * C, T)
        embeds = None if inputs_embeds is None else inputs_embeds.reshape(-1, *inputs_embeds.shape[2:])
        outputs = self.base_model(ids, mask, embeds, positions, return_dict=True, **flags)
        pooled = F.relu(self.pre_classifier(outputs.last_hidden_state[:, 0]))  # (B * C, H)
        logits = self.classifier(self.dropout(pooled)).view(-1, choices)  # (B, C)
        loss = None if labels is None else F.cross_entropy(logits, labels)
        return LogitsOutput(loss, logits, outputs.hidden_states, outputs.attentions)
