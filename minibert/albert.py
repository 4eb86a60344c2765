"""ALBERT: BERT with factorised embeddings and layers shared across depth.

Two differences from BERT, and only these are written here:

* the embeddings are ``embedding_size`` wide (e.g. 128) and projected up to the hidden
  size by ``encoder.embedding_hidden_mapping_in``; the MLM head projects back down;
* the encoder holds ``num_hidden_groups`` groups of ``inner_group_num`` layers and runs
  them ``num_hidden_layers`` times: step ``i`` of depth runs group
  ``int(i / (num_hidden_layers / num_hidden_groups))``. The checkpoint therefore holds far
  fewer layer tensors than the model runs; ``AlbertTransformer.schedule()`` says which
  tensor serves which steps.

Attention, the embeddings, the forward pass (``EncoderModel``) and the heads shared with
BERT come from ``minibert.bert``. Mirrors transformers/models/albert/modeling_albert.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Unpack

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from minibert.activations import ACTIVATIONS
from minibert.bert import (
    AttentionMask,
    BertForMultipleChoice,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertPreTrainedModel,
    Embeddings,
    EncoderModel,
    HeadModel,
    SelfAttention,
    keep_features,
    masked_lm_loss,
    run_layers,
)
from minibert.config import EncoderConfig
from minibert.errors import ConfigError
from minibert.linear import linear_then
from minibert.outputs import BaseModelOutputWithPooling, LogitsOutput, SOPPreTrainingOutput
from minibert.pretrained import OutputFlags


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


class AlbertAttention(SelfAttention):
    """Self-attention, then its output projection, residual and LayerNorm, all in one module."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__(config)
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.output_dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self, hidden_states: Tensor, mask: AttentionMask, output_attentions: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        context, probs = super().forward(hidden_states, mask, output_attentions)  # (B, T, H)
        return self.LayerNorm(hidden_states + self.output_dropout(self.dense(context))), probs

    def prune_heads(self, heads: Iterable[int]) -> Tensor | None:
        """Remove ``heads`` from query, key and value, and the columns of ``dense`` that read them."""
        index = super().prune_heads(heads)
        if index is not None:
            keep_features(self.dense, index, dim=1)
        return index


class AlbertLayer(nn.Module):
    """Attention, then feed-forward with residual and LayerNorm (no dropout after it, as in transformers)."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.full_layer_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attention = AlbertAttention(config)
        self.ffn = nn.Linear(config.hidden_size, config.intermediate_size)
        self.ffn_output = nn.Linear(config.intermediate_size, config.hidden_size)
        self.activation = ACTIVATIONS[config.hidden_act]

    def forward(
        self, hidden_states: Tensor, mask: AttentionMask, output_attentions: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        attended, probs = self.attention(hidden_states, mask, output_attentions)  # (B, T, H)
        feed_forward = self.ffn_output(linear_then(self.ffn, attended, self.activation))  # (B, T, H)
        return self.full_layer_layer_norm(feed_forward + attended), probs


class AlbertLayerGroup(nn.Module):
    """``inner_group_num`` layers with weights of their own: the unit that is shared across depth."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.albert_layers = nn.ModuleList(AlbertLayer(config) for _ in range(config.inner_group_num))


class AlbertTransformer(nn.Module):
    """Project the embeddings up to the hidden size, then run the shared groups ``num_hidden_layers`` times."""

    def __init__(self, config: AlbertConfig) -> None:
        super().__init__()
        self.num_hidden_layers = config.num_hidden_layers
        self.num_hidden_groups = config.num_hidden_groups
        self.embedding_hidden_mapping_in = nn.Linear(config.embedding_size, config.hidden_size)
        self.albert_layer_groups = nn.ModuleList(AlbertLayerGroup(config) for _ in range(config.num_hidden_groups))
        self.gradient_checkpointing: dict[str, Any] | None = None  # see PreTrainedModel.gradient_checkpointing_enable

    def schedule(self) -> list[tuple[int, int]]:
        """(group, inner layer) for every layer the model runs, in order."""
        # transformers picks the group with float division; integer arithmetic would differ
        # for some shapes (e.g. 18 layers in 14 groups), so the same formula is used here.
        layers_per_group = self.num_hidden_layers / self.num_hidden_groups
        runs = []
        for step in range(self.num_hidden_layers):
            group = int(step / layers_per_group)
            runs += [(group, inner) for inner in range(len(self.albert_layer_groups[group].albert_layers))]
        return runs

    def forward(
        self,
        embeddings: Tensor,  # (B, T, E)
        mask: AttentionMask,
        output_hidden_states: bool,
        output_attentions: bool,
    ) -> BaseModelOutputWithPooling:
        # As in transformers, hidden_states holds the projected embeddings, then every layer run.
        layers = [self.albert_layer_groups[group].albert_layers[inner] for group, inner in self.schedule()]
        hidden_states = self.embedding_hidden_mapping_in(embeddings)  # (B, T, H)
        recompute = self.gradient_checkpointing if self.training else None
        return run_layers(layers, hidden_states, mask, output_hidden_states, output_attentions, recompute)


class AlbertPooler(nn.Linear):
    """Dense + tanh on the first token; a bare Linear in the checkpoint (``pooler.weight``)."""

    def forward(self, hidden_states: Tensor) -> Tensor:
        return torch.tanh(super().forward(hidden_states[:, 0]))  # (B, H)


class AlbertMLMHead(nn.Module):
    """Dense down to the embedding width, activation, LayerNorm, then scores over the vocabulary.

    The decoder's weight is the word embedding matrix and its bias is ``bias``: tied.
    """

    def __init__(self, config: AlbertConfig) -> None:
        super().__init__()
        self.LayerNorm = nn.LayerNorm(config.embedding_size, eps=config.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.dense = nn.Linear(config.hidden_size, config.embedding_size)
        self.decoder = nn.Linear(config.embedding_size, config.vocab_size)
        self.activation = ACTIVATIONS[config.hidden_act]

    def forward(self, hidden_states: Tensor) -> Tensor:
        return self.decoder(self.LayerNorm(self.activation(self.dense(hidden_states))))  # (B, T, V)


class AlbertSOPHead(nn.Module):
    """Sentence-order prediction: are the two segments in their original order?"""

    def __init__(self, config: AlbertConfig) -> None:
        super().__init__()
        self.dropout = nn.Dropout(config.head_dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, pooled: Tensor) -> Tensor:
        return self.classifier(self.dropout(pooled))  # (B, num_labels)


class AlbertPreTrainedModel(BertPreTrainedModel):
    config_class: ClassVar[type[EncoderConfig]] = AlbertConfig
    base_model_prefix: ClassVar[str] = "albert"

    @classmethod
    def base_model_class(cls) -> type[EncoderModel]:
        return AlbertModel

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, AlbertMLMHead):
            module.bias.zero_()

    def attention_blocks(self) -> list[nn.Module]:
        """Each distinct layer's attention, group by group: transformers 4.x numbered them so for pruning."""
        groups = self.base_model.encoder.albert_layer_groups
        return [layer.attention for group in groups for layer in group.albert_layers]

    def tensor_uses(self) -> dict[str, list[int]]:
        """Module prefix of each shared layer -> the layer runs (1-based, as in hidden_states) it serves."""
        prefix = "" if self.base_model is self else f"{self.base_model_prefix}."
        uses: dict[str, list[int]] = {}
        for step, (group, inner) in enumerate(self.base_model.encoder.schedule(), start=1):
            uses.setdefault(f"{prefix}encoder.albert_layer_groups.{group}.albert_layers.{inner}.", []).append(step)
        return uses


class AlbertModel(AlbertPreTrainedModel, EncoderModel):
    """Factorised embeddings, the shared encoder and (optionally) the pooler: ``transformers.AlbertModel``.

    Its forward pass is BERT's (``EncoderModel.forward``): only the modules differ.
    """

    def __init__(self, config: AlbertConfig, add_pooling_layer: bool = True, init_weights: bool = True) -> None:
        super().__init__(config)
        self.embeddings = Embeddings(config, width=config.embedding_size)
        self.encoder = AlbertTransformer(config)
        self.pooler = AlbertPooler(config.hidden_size, config.hidden_size) if add_pooling_layer else None
        if init_weights:
            self.post_init()


class AlbertForMaskedLM(AlbertPreTrainedModel, HeadModel):
    """Scores over the vocabulary for every token: ``transformers.AlbertForMaskedLM``."""

    _tied_weights_keys: ClassVar[dict[str, str]] = {
        "predictions.decoder.weight": "albert.embeddings.word_embeddings.weight",
        "predictions.decoder.bias": "predictions.bias",
    }

    def __init__(self, config: AlbertConfig) -> None:
        super().__init__(config)
        self.add_base_model(add_pooling_layer=False)
        self.predictions = AlbertMLMHead(config)
        self.post_init()

    def head(self, outputs: BaseModelOutputWithPooling, labels: Tensor | None) -> LogitsOutput:
        """``labels`` (B, T): the true token at masked positions, -100 elsewhere."""
        logits = self.predictions(outputs.last_hidden_state)  # (B, T, V)
        return LogitsOutput(masked_lm_loss(logits, labels), logits, outputs.hidden_states, outputs.attentions)


class AlbertForPreTraining(AlbertPreTrainedModel):
    """Masked-token and sentence-order heads together: ``transformers.AlbertForPreTraining``."""

    _tied_weights_keys = AlbertForMaskedLM._tied_weights_keys

    def __init__(self, config: AlbertConfig) -> None:
        super().__init__(config)
        self.add_base_model()
        self.predictions = AlbertMLMHead(config)
        self.sop_classifier = AlbertSOPHead(config)
        self.post_init()

    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        position_ids: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        labels: Tensor | None = None,  # (B, T), as in AlbertForMaskedLM
        sentence_order_label: Tensor | None = None,  # (B,): 0 = segments in order, 1 = swapped
        **flags: Unpack[OutputFlags],
    ) -> SOPPreTrainingOutput:
        inputs = (input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds)
        outputs = self.base_model(*inputs, return_dict=True, **flags)
        prediction_logits = self.predictions(outputs.last_hidden_state)  # (B, T, V)
        sop_logits = self.sop_classifier(outputs.pooler_output)  # (B, 2)
        loss = None
        if labels is not None and sentence_order_label is not None:
            loss = masked_lm_loss(prediction_logits, labels) + F.cross_entropy(
                sop_logits.view(-1, sop_logits.shape[-1]), sentence_order_label.view(-1)
            )
        return SOPPreTrainingOutput(loss, prediction_logits, sop_logits, outputs.hidden_states, outputs.attentions)


class AlbertForSequenceClassification(AlbertPreTrainedModel, BertForSequenceClassification):
    """BertForSequenceClassification on ALBERT's encoder."""


class AlbertForTokenClassification(AlbertPreTrainedModel, BertForTokenClassification):
    """BertForTokenClassification on ALBERT's encoder."""


class AlbertForQuestionAnswering(AlbertPreTrainedModel, BertForQuestionAnswering):
    """BertForQuestionAnswering on ALBERT's encoder."""


class AlbertForMultipleChoice(AlbertPreTrainedModel, BertForMultipleChoice):
    """BertForMultipleChoice on ALBERT's encoder."""
