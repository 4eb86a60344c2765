"""ELECTRA: BERT's encoder, narrower embeddings, and the two heads of replaced-token detection.

ELECTRA pre-trains two BERT encoders together: a small *generator* fills in masked tokens,
and a *discriminator* tells, for every token, whether the generator replaced it. What
differs from BERT, and is written here:

* the embeddings are ``embedding_size`` wide and, where that differs from the hidden size,
  projected up by ``embeddings_project`` (a model-level Linear, not part of the encoder);
  there is no pooler;
* the discriminator head (``discriminator_predictions``) scores each token, and its loss is a
  binary cross-entropy over the real tokens only (``ElectraForPreTraining``);
* the generator head (``generator_predictions``, then ``generator_lm_head`` tied to the word
  embeddings) works at the embedding width and uses exact GELU whatever ``hidden_act`` says;
* the sentence classifier is RoBERTa's two-layer head with GELU in place of tanh, and the
  multiple-choice head reads a configurable ``sequence_summary`` (the ``summary_*`` fields).

Embeddings, attention, layers, the forward pass (``EncoderModel``) and the token and span
heads come from ``minibert.bert``. Mirrors transformers/models/electra/modeling_electra.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Unpack

import torch.nn.functional as F
from torch import Tensor, nn

from minibert.activations import ACTIVATIONS
from minibert.bert import (
    BertForMultipleChoice,
    BertForQuestionAnswering,
    BertForTokenClassification,
    BertPreTrainedModel,
    Embeddings,
    Encoder,
    EncoderModel,
    HeadModel,
    RobertaClassificationHead,
    masked_lm_loss,
    sequence_classification_loss,
)
from minibert.config import EncoderConfig
from minibert.errors import ConfigError
from minibert.outputs import BaseModelOutputWithPooling, LogitsOutput
from minibert.pretrained import OutputFlags, PreTrainedModel


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


# -- the base model -------------------------------------------------------------------------


class ElectraPreTrainedModel(BertPreTrainedModel):
    """What ELECTRA's models share: the config class and the encoder's name; init and pruning are BERT's."""

    config_class: ClassVar[type[EncoderConfig]] = ElectraConfig
    base_model_prefix: ClassVar[str] = "electra"

    @classmethod
    def base_model_class(cls) -> type[EncoderModel]:
        return ElectraModel


class ElectraModel(ElectraPreTrainedModel, EncoderModel):
    """Embeddings, their projection to the hidden size (if needed), BERT's encoder: ``transformers.ElectraModel``.

    ``add_pooling_layer`` exists only because heads build every encoder the same way: ELECTRA has no pooler.
    """

    def __init__(self, config: ElectraConfig, add_pooling_layer: bool = False, init_weights: bool = True) -> None:
        if add_pooling_layer:
            raise ConfigError("ELECTRA has no pooler: read the first token of last_hidden_state instead")
        super().__init__(config)
        self.embeddings = Embeddings(config, width=config.embedding_size)
        self.embeddings_project = (
            nn.Linear(config.embedding_size, config.hidden_size)
            if config.embedding_size != config.hidden_size
            else None
        )
        self.encoder = Encoder(config)
        self.pooler = None
        if init_weights:
            self.post_init()

    def embed(
        self,
        input_ids: Tensor | None,
        token_type_ids: Tensor | None,
        position_ids: Tensor | None,
        inputs_embeds: Tensor | None,
    ) -> Tensor:
        """As in transformers, hidden_states[0] is the projected embeddings: the first layer's input."""
        embeddings = super().embed(input_ids, token_type_ids, position_ids, inputs_embeds)  # (B, T, E)
        return embeddings if self.embeddings_project is None else self.embeddings_project(embeddings)  # (B, T, H)


# -- the discriminator: replaced-token detection ---------------------------------------------------


class ElectraDiscriminatorPredictions(nn.Module):
    """Was each token replaced? Dense, ``hidden_act``, dense to one score (``ElectraDiscriminatorPredictions``)."""

    def __init__(self, config: ElectraConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = ACTIVATIONS[config.hidden_act]
        self.dense_prediction = nn.Linear(config.hidden_size, 1)

    def forward(self, hidden_states: Tensor) -> Tensor:
        return self.dense_prediction(self.activation(self.dense(hidden_states))).squeeze(-1)  # (B, T)


def replaced_token_loss(logits: Tensor, labels: Tensor | None, attention_mask: Tensor | None) -> Tensor | None:
    """Binary cross-entropy of the replaced-token scores, averaged over the real tokens.

    As ``ElectraForPreTraining.forward`` computes it: with an attention mask only positions where
    it is 1 count (padding is skipped, not given label 0); without one, every position counts.
    """
    if labels is None:
        return None
    labels = labels.to(logits.dtype)  # (B, T): 1 = replaced, 0 = original
    if attention_mask is not None:
        real = attention_mask == 1  # (B, T)
        logits, labels = logits[real], labels[real]  # (N,)
    return F.binary_cross_entropy_with_logits(logits, labels)


class ElectraForPreTraining(ElectraPreTrainedModel):
    """The discriminator: a replaced-token score per token, ``transformers.ElectraForPreTraining``.

    Returns transformers' ``ElectraForPreTrainingOutput`` fields: loss, logits (B, T), hidden_states, attentions.
    """

    def __init__(self, config: ElectraConfig) -> None:
        super().__init__(config)
        self.add_base_model(add_pooling_layer=False)
        self.discriminator_predictions = ElectraDiscriminatorPredictions(config)
        self.post_init()

    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        position_ids: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        labels: Tensor | None = None,  # (B, T): 1 where the token was replaced, 0 where original
        **flags: Unpack[OutputFlags],
    ) -> LogitsOutput:
        inputs = (input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds)
        outputs = self.base_model(*inputs, return_dict=True, **flags)
        logits = self.discriminator_predictions(outputs.last_hidden_state)  # (B, T)
        loss = replaced_token_loss(logits, labels, attention_mask)
        return LogitsOutput(loss, logits, outputs.hidden_states, outputs.attentions)


# -- the generator: masked-token prediction --------------------------------------------------------


class ElectraGeneratorPredictions(nn.Module):
    """Dense to the embedding width, exact GELU (not ``hidden_act``), LayerNorm (``ElectraGeneratorPredictions``)."""

    def __init__(self, config: ElectraConfig) -> None:
        super().__init__()
        self.LayerNorm = nn.LayerNorm(config.embedding_size, eps=config.layer_norm_eps)
        self.dense = nn.Linear(config.hidden_size, config.embedding_size)

    def forward(self, hidden_states: Tensor) -> Tensor:
        return self.LayerNorm(F.gelu(self.dense(hidden_states)))  # (B, T, E)


class ElectraForMaskedLM(ElectraPreTrainedModel, HeadModel):
    """The generator: scores over the vocabulary for every token, ``transformers.ElectraForMaskedLM``.

    ``generator_lm_head`` is a plain Linear whose weight is the word embedding matrix (tied) and
    whose bias is its own: nothing else shares it.
    """

    _tied_weights_keys: ClassVar[dict[str, str]] = {
        "generator_lm_head.weight": "electra.embeddings.word_embeddings.weight",
    }

    def __init__(self, config: ElectraConfig) -> None:
        super().__init__(config)
        self.add_base_model(add_pooling_layer=False)
        self.generator_predictions = ElectraGeneratorPredictions(config)
        self.generator_lm_head = nn.Linear(config.embedding_size, config.vocab_size)
        self.post_init()

    def head(self, outputs: BaseModelOutputWithPooling, labels: Tensor | None) -> LogitsOutput:
        """``labels`` (B, T): the true token at masked positions, -100 elsewhere."""
        logits = self.generator_lm_head(self.generator_predictions(outputs.last_hidden_state))  # (B, T, V)
        return LogitsOutput(masked_lm_loss(logits, labels), logits, outputs.hidden_states, outputs.attentions)


class ElectraClassificationHead(RobertaClassificationHead):
    """RoBERTa's classifier on the first token with exact GELU in place of tanh (``ElectraClassificationHead``)."""

    def forward(self, hidden_states: Tensor) -> Tensor:
        x = self.dropout(hidden_states[:, 0])  # (B, H): the [CLS] token
        return self.out_proj(self.dropout(F.gelu(self.dense(x))))  # (B, num_labels)


class ElectraForSequenceClassification(ElectraPreTrainedModel, HeadModel):
    """A classifier (or regressor) on the first token: ``transformers.ElectraForSequenceClassification``."""

    def __init__(self, config: ElectraConfig) -> None:
        super().__init__(config)
        self.add_base_model(add_pooling_layer=False)
        self.classifier = ElectraClassificationHead(config)
        self.post_init()

    def head(self, outputs: BaseModelOutputWithPooling, labels: Tensor | None) -> LogitsOutput:
        """``labels`` as in BertForSequenceClassification."""
        logits = self.classifier(outputs.last_hidden_state)  # (B, num_labels)
        loss = sequence_classification_loss(logits, labels, self.config)
        return LogitsOutput(loss, logits, outputs.hidden_states, outputs.attentions)


class ElectraForTokenClassification(ElectraPreTrainedModel, BertForTokenClassification):
    """BertForTokenClassification on ELECTRA's encoder."""


class ElectraForQuestionAnswering(ElectraPreTrainedModel, BertForQuestionAnswering):
    """BertForQuestionAnswering on ELECTRA's encoder."""


class ElectraSequenceSummary(nn.Module):
    """One vector per sequence, as the ``summary_*`` fields say (``ElectraSequenceSummary``, XLM's).

    Pick a token (or the mean over every position, padding included), then dropout, an optional
    projection (``summary``), an activation, dropout again. The multiple-choice head never passes
    transformers' ``cls_index``, so ``"cls_index"`` reads the last position, like ``"last"``.
    """

    def __init__(self, config: ElectraConfig) -> None:
        super().__init__()
        if config.summary_type not in ("first", "last", "mean", "cls_index"):
            raise ConfigError(
                f"summary_type {config.summary_type!r} is not supported (transformers implements no 'attn' "
                "either): use 'first', 'last', 'mean' or 'cls_index'"
            )
        if config.summary_activation and config.summary_activation not in ACTIVATIONS:
            raise ConfigError(
                f"unknown summary_activation {config.summary_activation!r}; known: {', '.join(sorted(ACTIVATIONS))}"
            )
        # XLM's summary fields that ElectraConfig does not declare: transformers reads them if present.
        if config.extra.get("summary_proj_to_labels"):
            raise ConfigError(
                "summary_proj_to_labels is not supported: ELECTRA's multiple-choice classifier reads hidden_size "
                "features, so set it to false"
            )
        self.summary_type = config.summary_type
        self.first_dropout = nn.Dropout(config.extra.get("summary_first_dropout", 0.0))
        hidden = config.hidden_size
        self.summary = nn.Linear(hidden, hidden) if config.summary_use_proj else nn.Identity()
        self.activation = ACTIVATIONS[config.summary_activation or "linear"]
        self.last_dropout = nn.Dropout(config.summary_last_dropout)

    def forward(self, hidden_states: Tensor) -> Tensor:
        if self.summary_type == "first":
            x = hidden_states[:, 0]  # (B, H)
        elif self.summary_type == "mean":
            x = hidden_states.mean(dim=1)  # (B, H)
        else:  # "last", and "cls_index" without an index
            x = hidden_states[:, -1]  # (B, H)
        return self.last_dropout(self.activation(self.summary(self.first_dropout(x))))  # (B, H)


class ElectraForMultipleChoice(ElectraPreTrainedModel, BertForMultipleChoice):
    """Scores each of C candidate sequences from its summary: BertForMultipleChoice's forward, its own modules."""

    def __init__(self, config: ElectraConfig) -> None:
        PreTrainedModel.__init__(self, config)  # not BertForMultipleChoice.__init__: no pooler, no dropout here
        self.add_base_model(add_pooling_layer=False)
        self.sequence_summary = ElectraSequenceSummary(config)
        self.classifier = nn.Linear(config.hidden_size, 1)
        self.post_init()

    def head(self, outputs: BaseModelOutputWithPooling, labels: Tensor | None, choices: int) -> LogitsOutput:
        """As BertForMultipleChoice's, from the sequence summary instead of the pooler."""
        logits = self.classifier(self.sequence_summary(outputs.last_hidden_state)).view(-1, choices)  # (B, C)
        loss = None if labels is None else F.cross_entropy(logits, labels)
        return LogitsOutput(loss, logits, outputs.hidden_states, outputs.attentions)

    def reads_padding(self, inputs: dict[str, Any]) -> bool:
        """The "last" and "mean" summaries read padding positions (transformers' mean counts them): run padded."""
        mask = inputs.get("attention_mask")
        return self.sequence_summary.summary_type != "first" and isinstance(mask, Tensor) and not bool(mask.all())
