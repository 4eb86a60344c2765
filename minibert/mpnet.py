"""MPNet: RoBERTa's encoder with a learned relative-position bias on the attention scores.

What differs from BERT and RoBERTa, and only this is written here:

* every attention score gets a bias, learned per head, for the bucket of its relative position
  (key position - query position): ``relative_position_bucket`` maps distances to 32 buckets,
  exact near the query and log-spaced further out. The encoder computes the bias once per
  forward pass, adds it to the padding bias, and every layer reads the sum through the
  ``AttentionMask`` (so the padded and unpadded layouts both work unchanged);
* the attention block's modules are named ``attention.attn.q/k/v/o`` and ``attention.LayerNorm``;
* positions count as RoBERTa's do, but from padding id 1 whatever ``pad_token_id`` says, and
  there are no token types: forward takes no ``token_type_ids`` (and drops any it is given, as
  transformers does);
* the heads are RoBERTa's (``lm_head``, the classifier on the first token) and BERT's, called
  with transformers' MPNet inputs, where the output flags are named arguments.

Embeddings, the feed-forward block, ``attend()``, the layer loop and the heads' modules come
from ``minibert.bert``. Mirrors transformers/models/mpnet/modeling_mpnet.py.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, TypedDict, Unpack

import torch
from torch import Tensor, nn

from minibert.bert import (
    AttentionMask,
    BertForMultipleChoice,
    BertForQuestionAnswering,
    BertForTokenClassification,
    BertPreTrainedModel,
    Embeddings,
    Encoder,
    EncoderModel,
    HeadModel,
    Layer,
    Pooler,
    RobertaForMaskedLM,
    RobertaForSequenceClassification,
    SelfAttention,
    embedding,
    keep_features,
)
from minibert.config import EncoderConfig
from minibert.errors import ConfigError
from minibert.outputs import BaseModelOutputWithPooling, LogitsOutput, ModelOutput, QuestionAnsweringModelOutput
from minibert.pretrained import check_return_dict


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


# -- relative positions -------------------------------------------------------------------


def relative_position_bucket(relative_position: Tensor, num_buckets: int = 32, max_distance: int = 128) -> Tensor:
    """The bucket of each relative position (key - query): T5's bidirectional buckets, as MPNet uses them.

    Half the buckets serve keys after the query, half keys at or before it. In each half the
    first ``num_buckets // 4`` buckets are exact distances; the rest are log-spaced up to
    ``max_distance``, and every distance beyond shares the last bucket. With the defaults:
    0 -> 0, -1 -> 1, -7 -> 7, -8 -> 8, -16 -> 10, -64 -> 14, -128 -> 15, -500 -> 15,
    1 -> 17, 8 -> 24, 500 -> 31.

    Mirrors transformers/models/mpnet/modeling_mpnet.py, ``MPNetEncoder.relative_position_bucket``,
    with the same float operations in the same order, so that the bucket edges fall where they do there.
    """
    half = num_buckets // 2
    bucket = (relative_position > 0).long() * half  # (...): keys after the query use the upper half
    distance = relative_position.abs()
    max_exact = half // 2
    # Short distances take the exact branch below; clamping them only keeps log() finite.
    log_ratio = torch.log(distance.clamp(min=max_exact).float() / max_exact) / math.log(max_distance / max_exact)
    far = (max_exact + (log_ratio * (half - max_exact)).long()).clamp(max=half - 1)
    return bucket + torch.where(distance < max_exact, distance, far)


# -- embeddings and attention ---------------------------------------------------------------


class MPNetEmbeddings(Embeddings):
    """RoBERTa's embeddings without token types (``MPNetEmbeddings``).

    transformers pads with id 1 here whatever ``config.pad_token_id`` says: positions count from
    2 over the ids that are not 1, and row 1 of both tables is the padding row.
    """

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__(config.replace(pad_token_id=1), padded_positions=True, token_types=False)


class MPNetSelfAttention(SelfAttention):
    """BERT's self-attention with MPNet's names (q, k, v) and its output projection ``o`` inside.

    The scores' bias (padding plus relative positions) comes in the mask, with a row per head of
    the unpruned layer: a pruned layer reads the rows of the heads it kept.
    """

    projection_names: ClassVar[tuple[str, str, str]] = ("q", "k", "v")

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__(config)
        self.o = nn.Linear(self.num_heads * self.head_size, config.hidden_size)

    def forward(
        self, hidden_states: Tensor, mask: AttentionMask, output_attentions: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        if mask.bias.shape[1] != self.num_heads:  # pruned: (B, nh, T, T) -> (B, kept, T, T)
            mask = dataclasses.replace(mask, bias=mask.bias[:, self.kept_heads])
        context, probs = super().forward(hidden_states, mask, output_attentions)  # (B, T, nh * hs)
        return self.o(context), probs  # (B, T, H)

    def prune_heads(self, heads: Iterable[int]) -> Tensor | None:
        """Remove ``heads`` from q, k and v, and the columns of ``o`` that read them."""
        index = super().prune_heads(heads)
        if index is not None:
            keep_features(self.o, index, dim=1)
        return index


class MPNetAttention(nn.Module):
    """Self-attention (``attn``), then dropout, the residual and LayerNorm (``MPNetAttention``)."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.attn = MPNetSelfAttention(config)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self, hidden_states: Tensor, mask: AttentionMask, output_attentions: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        attended, probs = self.attn(hidden_states, mask, output_attentions)  # (B, T, H)
        return self.LayerNorm(self.dropout(attended) + hidden_states), probs

    def prune_heads(self, heads: Iterable[int]) -> None:
        self.attn.prune_heads(heads)


class MPNetEncoder(Encoder):
    """BERT's layers around MPNet's attention, and the relative-position bias they share (``MPNetEncoder``)."""

    def __init__(self, config: MPNetConfig) -> None:
        super().__init__(config, layer=lambda config: Layer(config, MPNetAttention(config)))
        self.relative_attention_bias = embedding(config.relative_attention_num_buckets, config.num_attention_heads)
        self.position_buckets = config.position_buckets

    def forward(
        self, hidden_states: Tensor, mask: AttentionMask, output_hidden_states: bool, output_attentions: bool
    ) -> BaseModelOutputWithPooling:
        """BERT's encoder, with the relative-position bias computed once here and added to every layer's scores.

        transformers (eager only for MPNet) adds the position bias, then the padding mask, to the
        scores in each layer; here their sum goes in the mask, for eager and sdpa alike. Both give
        the same scores at real keys, where the padding term is 0, and none survive the softmax at padding.
        """
        position_bias = self.position_bias(hidden_states.shape[1], hidden_states.device)  # (1, nh, T, T)
        bias = position_bias if mask.bias is None else mask.bias + position_bias  # (B, nh, T, T)
        return super().forward(
            hidden_states, dataclasses.replace(mask, bias=bias), output_hidden_states, output_attentions
        )

    def position_bias(self, length: int, device: torch.device) -> Tensor:
        """Each head's bias for every (query, key) pair: ``MPNetEncoder.compute_position_bias``.

        It depends on the positions' indices only: neither padding nor ``position_ids`` move it.
        """
        positions = torch.arange(length, device=device)
        relative = positions[None, :] - positions[:, None]  # (T, T): key - query
        buckets = relative_position_bucket(relative, num_buckets=self.position_buckets)  # (T, T)
        return self.relative_attention_bias(buckets).permute(2, 0, 1).unsqueeze(0)  # (1, nh, T, T)


# -- the base model ---------------------------------------------------------------------------


class IgnoredInputs(TypedDict, total=False):
    """What transformers' MPNet classes take in ``**kwargs`` and do not use: so do these."""

    token_type_ids: Tensor | None  # MPNet has no token types; tokenizers of other models send them


def check_call(model: nn.Module, return_dict: bool | None, ignored: dict[str, Any]) -> None:
    """Refuse keyword arguments MPNet has no use for, but ``token_type_ids``: transformers drops those, and so do these;
    and a ``return_dict`` given by position (``check_return_dict``)."""
    unknown = sorted(ignored.keys() - IgnoredInputs.__optional_keys__)
    if unknown:
        raise TypeError(f"{type(model).__name__}.forward() got an unexpected keyword argument {unknown[0]!r}")
    check_return_dict(model, return_dict)


class MPNetPreTrainedModel(BertPreTrainedModel):
    """What MPNet's models share: the config class, the encoder's name in a head model (``mpnet``), BERT's init."""

    config_class: ClassVar[type[EncoderConfig]] = MPNetConfig
    base_model_prefix: ClassVar[str] = "mpnet"

    @classmethod
    def base_model_class(cls) -> type[EncoderModel]:
        return MPNetModel


class MPNetModel(MPNetPreTrainedModel, EncoderModel):
    """Embeddings, encoder and (optionally) pooler: ``transformers.MPNetModel``.

    Its forward pass is BERT's (``EncoderModel.forward``), without token types.
    """

    padded_positions: ClassVar[bool] = True

    def __init__(self, config: MPNetConfig, add_pooling_layer: bool = True, init_weights: bool = True) -> None:
        super().__init__(config)
        self.embeddings = MPNetEmbeddings(config)
        self.encoder = MPNetEncoder(config)
        self.pooler = Pooler(config) if add_pooling_layer else None
        if init_weights:
            self.post_init()

    def forward(
        self,
        input_ids: Tensor | None = None,  # (B, T)
        attention_mask: Tensor | None = None,  # (B, T): 1 = token, 0 = padding
        position_ids: Tensor | None = None,  # (B, T)
        inputs_embeds: Tensor | None = None,  # (B, T, H)
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,  # applied by __call__: see check_call
        **ignored: Unpack[IgnoredInputs],
    ) -> BaseModelOutputWithPooling:
        check_call(self, return_dict, ignored)
        inputs = (input_ids, attention_mask, None, position_ids, inputs_embeds)
        return super().forward(*inputs, output_hidden_states, output_attentions)


# -- heads ------------------------------------------------------------------------------------
#
# RoBERTa's and BERT's heads, each called with transformers' MPNet inputs: the same modules and
# head(), another forward.


class MPNetHeadModel(HeadModel):
    """HeadModel's forward with transformers' MPNet inputs: no token types, the output flags by name."""

    def forward(
        self,
        input_ids: Tensor | None = None,  # (B, T)
        attention_mask: Tensor | None = None,  # (B, T)
        position_ids: Tensor | None = None,  # (B, T)
        inputs_embeds: Tensor | None = None,  # (B, T, H)
        labels: Tensor | None = None,  # what head() reads: see each head
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **ignored: Unpack[IgnoredInputs],
    ) -> ModelOutput:
        check_call(self, return_dict, ignored)
        inputs = (input_ids, attention_mask, position_ids, inputs_embeds, output_attentions, output_hidden_states)
        return self.head(self.base_model(*inputs, return_dict=True), labels)


class MPNetForMaskedLM(MPNetPreTrainedModel, MPNetHeadModel, RobertaForMaskedLM):
    """RoBERTa's ``lm_head`` on MPNet's encoder: ``transformers.MPNetForMaskedLM``."""

    _tied_weights_keys: ClassVar[dict[str, str]] = {
        "lm_head.decoder.weight": "mpnet.embeddings.word_embeddings.weight",
        "lm_head.decoder.bias": "lm_head.bias",
    }


class MPNetForSequenceClassification(MPNetPreTrainedModel, MPNetHeadModel, RobertaForSequenceClassification):
    """RoBERTa's classifier on the first token (no pooler): ``transformers.MPNetForSequenceClassification``."""


class MPNetForTokenClassification(MPNetPreTrainedModel, MPNetHeadModel, BertForTokenClassification):
    """BertForTokenClassification on MPNet's encoder."""


class MPNetForQuestionAnswering(MPNetPreTrainedModel, BertForQuestionAnswering):
    """BertForQuestionAnswering on MPNet's encoder."""

    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        start_positions: Tensor | None = None,  # (B,): the answer's first token
        end_positions: Tensor | None = None,  # (B,): the answer's last token
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **ignored: Unpack[IgnoredInputs],
    ) -> QuestionAnsweringModelOutput:
        check_call(self, return_dict, ignored)
        inputs = (input_ids, attention_mask, position_ids, inputs_embeds, output_attentions, output_hidden_states)
        return self.head(self.base_model(*inputs, return_dict=True), start_positions, end_positions)


class MPNetForMultipleChoice(MPNetPreTrainedModel, BertForMultipleChoice):
    """BertForMultipleChoice on MPNet's encoder (with its pooler): inputs (B, C, T), logits (B, C)."""

    def forward(
        self,
        input_ids: Tensor | None = None,  # (B, C, T)
        attention_mask: Tensor | None = None,  # (B, C, T)
        position_ids: Tensor | None = None,  # (B, C, T)
        inputs_embeds: Tensor | None = None,  # (B, C, T, H)
        labels: Tensor | None = None,  # (B,): the right choice
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **ignored: Unpack[IgnoredInputs],
    ) -> LogitsOutput:
        check_call(self, return_dict, ignored)
        inputs = (input_ids, attention_mask, position_ids, inputs_embeds)
        flat = [None if x is None else x.reshape(-1, *x.shape[2:]) for x in inputs]  # (B * C, T, ...)
        outputs = self.base_model(*flat, output_attentions, output_hidden_states, return_dict=True)
        choices = (input_ids if input_ids is not None else inputs_embeds).shape[1]
        return self.head(outputs, labels, choices)
