"""DeBERTa-v2 and v3: BERT's layers, with attention that sees relative positions in every layer.

What differs from BERT, and only this is written here:

* disentangled attention: to the content term (query . key) each score adds a content-to-position
  term ``c2p`` (the query . the key projection of the relative position's embedding) and a
  position-to-content term ``p2c`` (the key . its query projection), as ``pos_att_type`` lists them,
  all divided by sqrt(head size * number of terms). Relative positions (query - key) are
  log-bucketed (``make_log_bucket_position``); their table (``encoder.rel_embeddings``, optionally
  normalised by ``encoder.LayerNorm``) is projected in each layer by ``pos_key_proj`` and
  ``pos_query_proj``, or by the layer's key and query projections (``share_att_key``). The two terms
  are an additive bias on the scores: eager and SDPA attention both take them with the padding bias;
* padding is masked for queries as well as keys (a padding row attends evenly, as in transformers),
  and the embeddings are zeroed at padding;
* the embeddings: absolute positions only with ``position_biased_input``, no token types with
  ``type_vocab_size`` 0, ``embedding_size`` wide and projected up (``embed_proj``) before the LayerNorm;
* an optional convolution over the first layer's input, added to its output (``encoder.conv``);
* no pooler in the encoder: the sentence heads hold a ``ContextPooler``, and their loss without a
  ``problem_type`` is DeBERTa's own (``deberta_sequence_loss``);
* two masked-LM heads: the legacy ``cls.predictions`` (BERT's, ``embedding_size`` wide) and v3's
  ``lm_predictions.lm_head`` (scores against the word embeddings); ``from_pretrained`` builds the one
  the checkpoint holds (``DebertaV2ForMaskedLM.config_for_checkpoint``);
* every forward takes transformers' DeBERTa inputs, the output flags named, in its order.

The embeddings' tables, the feed-forward block, ``attend()``, the layer loop (``run_layers``), the
forward pass (``EncoderModel``) and the token and span heads come from ``minibert.bert``.
Mirrors transformers/models/deberta_v2/modeling_deberta_v2.py.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from minibert.activations import ACTIVATIONS
from minibert.bert import (
    AddAndNorm,
    Attention,
    AttentionMask,
    BertForQuestionAnswering,
    BertForTokenClassification,
    BertPreTrainedModel,
    Embeddings,
    Encoder,
    EncoderModel,
    HeadModel,
    Layer,
    MLMHead,
    SelfAttention,
    attend,
    embedding,
    keep_features,
    masked_lm_loss,
    run_layers,
    sequence_classification_loss,
)
from minibert.checkpoint import Checkpoint
from minibert.config import EncoderConfig
from minibert.errors import ConfigError
from minibert.outputs import BaseModelOutputWithPooling, LogitsOutput, ModelOutput, QuestionAnsweringModelOutput
from minibert.pretrained import check_return_dict

logger = logging.getLogger(__name__)


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


# -- relative positions -------------------------------------------------------------------


def make_log_bucket_position(relative_pos: Tensor, bucket_size: int, max_position: int) -> Tensor:
    """Relative positions, exact up to ``bucket_size // 2`` either way, log-spaced beyond (signed).

    Distances ``d`` past ``mid = bucket_size // 2`` become ``mid + ceil((mid - 1) * log(d / mid) /
    log((max_position - 1) / mid))``, so ``max_position - 1`` reaches ``bucket_size - 1``; farther ones go
    on growing, and the lookup clamps them. With 256 buckets and 512 positions: 0 -> 0, -1 -> -1,
    128 -> 128, 129 -> 129, 200 -> 169, 511 -> 255, -511 -> -255, 1000 -> 317.

    Not MPNet's ``relative_position_bucket`` (T5's): signed, not folded into [0, buckets), and rounded up.
    Mirrors ``make_log_bucket_position`` in transformers/models/deberta_v2/modeling_deberta_v2.py, with
    the same float operations, so that the bucket edges fall where they do there.
    """
    sign = torch.sign(relative_pos)
    mid = bucket_size // 2
    near = (relative_pos < mid) & (relative_pos > -mid)
    # Near distances take the exact branch below; mid - 1 there only keeps log() finite.
    abs_pos = torch.where(near, torch.tensor(mid - 1).type_as(relative_pos), torch.abs(relative_pos))
    log_ratio = torch.log(abs_pos / mid) / torch.log(torch.tensor((max_position - 1) / mid))
    log_pos = torch.ceil(log_ratio * (mid - 1)) + mid
    return torch.where(abs_pos <= mid, relative_pos.type_as(log_pos), log_pos * sign)


def build_relative_position(length: int, bucket_size: int, max_position: int, device: torch.device) -> Tensor:
    """(T, T): query position - key position, log-bucketed where ``bucket_size`` is positive.

    transformers' ``build_relative_position`` reads the lengths off query and key tensors and returns
    (1, T, T); self-attention needs only the one length.
    """
    positions = torch.arange(length, dtype=torch.long, device=device)
    relative = positions[:, None] - positions[None, :]  # (T, T)
    if bucket_size > 0 and max_position > 0:
        relative = make_log_bucket_position(relative, bucket_size, max_position)
    return relative.long()


# -- embeddings -----------------------------------------------------------------------------


class DebertaV2Embeddings(Embeddings):
    """Word, position and token-type embeddings (each table optional but the first), ``embed_proj``, LayerNorm.

    BERT's tables, added in DeBERTa's order (positions, then token types), then projected up to the
    hidden size if narrower, then normalised at the hidden size (``DebertaV2Embeddings``). The zeroing at
    padding that transformers does here, before dropout, the encoder does after: the two commute.
    """

    def __init__(self, config: DebertaV2Config) -> None:
        tables = {"token_types": config.type_vocab_size > 0, "positions": config.position_biased_input}
        super().__init__(config, width=config.embedding_size, **tables)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        projected = config.embedding_size != config.hidden_size
        self.embed_proj = nn.Linear(config.embedding_size, config.hidden_size, bias=False) if projected else None

    def forward(
        self,
        input_ids: Tensor | None = None,  # (B, T)
        token_type_ids: Tensor | None = None,  # (B, T)
        position_ids: Tensor | None = None,  # (B, T)
        inputs_embeds: Tensor | None = None,  # (B, T, E)
    ) -> Tensor:
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)  # (B, T, E)
        batch, length = inputs_embeds.shape[:2]
        embeddings = inputs_embeds
        if self.position_embeddings is not None:  # else position_ids are ignored, as in transformers
            if position_ids is None:
                position_ids = self.position_ids[:, :length]  # (1, T)
            embeddings = embeddings + self.position_embeddings(position_ids)
        if self.token_type_embeddings is not None:
            if token_type_ids is None:
                token_type_ids = self.token_type_ids[:, :length].expand(batch, length)  # (B, T)
            embeddings = embeddings + self.token_type_embeddings(token_type_ids)
        if self.embed_proj is not None:
            embeddings = self.embed_proj(embeddings)  # (B, T, H)
        return self.dropout(self.LayerNorm(embeddings))


# -- attention ------------------------------------------------------------------------------


@dataclass
class DisentangledMask(AttentionMask):
    """BERT's mask, whose ``bias`` masks padding queries too, (B, 1, T, T), and what DeBERTa's layers read besides.

    ``relative_positions`` (T, T): the bucket of each query - key; ``keep`` (B, T, 1): True at real
    tokens, and ``masked`` (B, 1, T, T): True where the query or the key is padding, both in the (B, T)
    layout; ``rel_embeddings`` (2 * span, H): the relative-position table as the layers read it, set for
    each layer by ``DebertaV2Encoder.run_layer``.
    """

    relative_positions: Tensor | None = None
    keep: Tensor | None = None
    masked: Tensor | None = None
    rel_embeddings: Tensor | None = None


class DisentangledSelfAttention(SelfAttention):
    """Self-attention whose scores add the c2p and p2c terms of relative positions (``DisentangledSelfAttention``).

    BERT's projections under DeBERTa's names (``query_proj``, ``key_proj``, ``value_proj``), and the
    position projections of their own unless ``share_att_key``.

    A padding query's scores are all masked: transformers' ``masked_fill`` makes them constants, so
    that no gradient flows through them. Here the padding queries are zeroed and the position terms
    replaced at masked pairs, which does the same for eager and SDPA alike (the values are unchanged:
    a masked score is the dtype's most negative value either way).
    """

    projection_names: ClassVar[tuple[str, str, str]] = ("query_proj", "key_proj", "value_proj")

    def __init__(self, config: DebertaV2Config) -> None:
        super().__init__(config)
        self.terms = [term for term in ("c2p", "p2c") if term in (config.pos_att_type or [])]
        # Every score is divided by sqrt(hs * (1 + terms)), with or without relative attention, as there.
        self.scale_factor = 1 + len(self.terms)
        self.relative_attention = config.relative_attention
        self.share_att_key = config.share_att_key
        self.span = config.relative_span
        if self.relative_attention:
            self.pos_dropout = nn.Dropout(config.hidden_dropout_prob)
            if not self.share_att_key:
                width = self.num_heads * self.head_size
                if "c2p" in self.terms:
                    self.pos_key_proj = nn.Linear(config.hidden_size, width)
                if "p2c" in self.terms:
                    self.pos_query_proj = nn.Linear(config.hidden_size, width)

    def forward(
        self,
        hidden_states: Tensor,  # (B, T, H), or (N, H) unpadded
        mask: DisentangledMask,
        output_attentions: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        q, k, v = (self.split_heads(mask.to_batch(x)) for x in self.joined(self.projections(), hidden_states))
        bias = mask.bias  # (B, 1, T, T): padding
        if self.relative_attention and self.terms:
            bias = self.position_bias(q, k, mask.rel_embeddings, mask.relative_positions)  # (B, nh, T, T)
            if mask.masked is not None:
                bias = bias.masked_fill(mask.masked, torch.finfo(bias.dtype).min)
        if mask.keep is not None:
            q = q.masked_fill(~mask.keep[:, None], 0.0)  # (B, nh, T, hs)
        eager = self.attn_implementation == "eager" or output_attentions
        dropout = self.dropout_prob if self.training else 0.0
        scale = (self.head_size * self.scale_factor) ** -0.5
        k, v = mask.hide_padding(k), mask.hide_padding(v)  # padding never reaches real tokens, even as NaN
        context, probs = attend(q, k, v, bias, dropout, eager, scale)  # (B, nh, T, hs)
        context = context.transpose(1, 2).flatten(2)  # (B, T, nh * hs)
        return mask.to_tokens(context), probs

    def split_heads(self, x: Tensor) -> Tensor:
        """(B, T, nh * hs) -> (B, nh, T, hs)."""
        return x.view(*x.shape[:2], self.num_heads, self.head_size).transpose(1, 2)

    def position_bias(self, q: Tensor, k: Tensor, rel_embeddings: Tensor, relative: Tensor) -> Tensor:
        """The c2p and p2c terms of every (query i, key j) pair (``disentangled_attention_bias``).

        ``c2p[i, j] = q_i . pos_key[span + r(i, j)]`` and ``p2c[i, j] = k_j . pos_query[span - r(j, i)]``,
        where ``r`` is the bucketed relative position and the row is clamped to the table; each term is
        divided by sqrt(hs * scale_factor). The dot products are taken with all 2 * span rows at once,
        then the row each pair needs is gathered.
        """
        table = self.pos_dropout(rel_embeddings)[: 2 * self.span][None]  # (1, 2 * span, H)
        scale = math.sqrt(self.head_size * self.scale_factor)
        shape = (*q.shape[:2], relative.shape[0], relative.shape[1])  # (B, nh, T, T)
        score = None
        if "c2p" in self.terms:
            pos_key = self.split_heads((self.key_proj if self.share_att_key else self.pos_key_proj)(table))
            c2p = torch.matmul(q, pos_key.transpose(-1, -2))  # (B, nh, T, 2 * span)
            index = torch.clamp(relative + self.span, 0, 2 * self.span - 1).expand(shape)
            score = torch.gather(c2p, -1, index) / scale  # (B, nh, T, T)
        if "p2c" in self.terms:
            pos_query = self.split_heads((self.query_proj if self.share_att_key else self.pos_query_proj)(table))
            p2c = torch.matmul(k, pos_query.transpose(-1, -2))  # (B, nh, T keys, 2 * span)
            index = torch.clamp(-relative + self.span, 0, 2 * self.span - 1).expand(shape)
            p2c = torch.gather(p2c, -1, index).transpose(-1, -2) / scale  # (B, nh, T queries, T keys)
            score = p2c if score is None else score + p2c
        return score

    def prune_heads(self, heads: Iterable[int]) -> Tensor | None:
        """Remove ``heads`` from the query, key and value projections, and from the position projections."""
        index = super().prune_heads(heads)
        if index is not None:
            for name in ("pos_key_proj", "pos_query_proj"):
                if hasattr(self, name):
                    keep_features(getattr(self, name), index, dim=0)
        return index


class DebertaV2Attention(Attention):
    """Disentangled self-attention, then BERT's output projection, residual and LayerNorm (``DebertaV2Attention``)."""

    def __init__(self, config: DebertaV2Config) -> None:
        nn.Module.__init__(self)  # not Attention.__init__, which would build BERT's self-attention first
        self.self = DisentangledSelfAttention(config)
        self.output = AddAndNorm(config, config.hidden_size)


# -- the encoder ----------------------------------------------------------------------------


class ConvLayer(nn.Module):
    """A convolution along each sequence of the first layer's input, added to its output (``ConvLayer``).

    conv, dropout, ``conv_act``, plus the layer's output, LayerNorm, zeros at padding. (transformers also
    zeroes the convolution's padding positions before the activation: a position-wise step that the
    final zeroing overwrites, values and gradients alike.)
    """

    def __init__(self, config: DebertaV2Config) -> None:
        super().__init__()
        kernel, width = config.conv_kernel_size, config.hidden_size
        self.conv = nn.Conv1d(width, width, kernel, padding=(kernel - 1) // 2, groups=config.conv_groups)
        self.LayerNorm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.activation = ACTIVATIONS[config.conv_act]

    def forward(self, hidden_states: Tensor, residual_states: Tensor, mask: DisentangledMask) -> Tensor:
        sequences = mask.to_batch(hidden_states).transpose(1, 2).contiguous()  # (B, H, T)
        out = mask.to_tokens(self.conv(sequences).transpose(1, 2))  # (B, T, H), or (N, H) unpadded
        out = self.activation(self.dropout(out))
        output = self.LayerNorm(residual_states + out)
        return output if mask.keep is None else output.masked_fill(~mask.to_tokens(mask.keep), 0.0)


class DebertaV2Encoder(Encoder):
    """BERT's stack of layers and what they share: the relative-position table, its LayerNorm, the convolution.

    As ``DebertaV2Encoder``: the table (``rel_embeddings``, 2 * span rows) only with relative attention,
    ``LayerNorm`` where ``norm_rel_ebd`` says ``layer_norm``, ``conv`` where ``conv_kernel_size`` > 0.
    """

    def __init__(self, config: DebertaV2Config) -> None:
        super().__init__(config, layer=lambda config: Layer(config, DebertaV2Attention(config)))
        self.relative_attention = config.relative_attention
        self.position_buckets = config.position_buckets
        self.max_relative_positions = config.relative_positions
        if self.relative_attention:
            self.rel_embeddings = embedding(2 * config.relative_span, config.hidden_size)
        normalised = "layer_norm" in config.rel_embedding_norms
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps) if normalised else None
        self.conv = ConvLayer(config) if config.conv_kernel_size > 0 else None

    def forward(
        self, hidden_states: Tensor, mask: AttentionMask, output_hidden_states: bool, output_attentions: bool
    ) -> BaseModelOutputWithPooling:
        """BERT's loop over the layers, on embeddings zeroed at padding, with DeBERTa's mask.

        transformers masks every (query, key) pair where either is padding; so does the bias here, for
        eager and SDPA alike. Real queries see the same scores as with padding keys alone masked.
        """
        keep = bias = masked = relative = None
        if mask.bias is not None:
            keep = (mask.bias[:, 0, 0] == 0)[..., None]  # (B, T, 1): the padding bias is 0 exactly at tokens
            bias = torch.minimum(mask.bias, mask.bias.transpose(-1, -2))  # (B, 1, T, T)
            masked = bias != 0  # (B, 1, T, T)
            hidden_states = hidden_states.masked_fill(~keep, 0.0)
        if self.relative_attention:
            length = hidden_states.shape[1]
            relative = build_relative_position(
                length, self.position_buckets, self.max_relative_positions, hidden_states.device
            )  # (T, T)
        extra = {"relative_positions": relative, "keep": keep, "masked": masked}
        mask = DisentangledMask(**{**vars(mask), "bias": bias}, **extra)
        steps = [functools.partial(self.run_layer, index) for index in range(len(self.layer))]
        recompute = self.gradient_checkpointing if self.training else None
        return run_layers(steps, hidden_states, mask, output_hidden_states, output_attentions, recompute)

    def run_layer(
        self, index: int, hidden_states: Tensor, mask: DisentangledMask, output_attentions: bool
    ) -> tuple[Tensor, Tensor | None]:
        """Layer ``index`` with the relative-position table; after the first, the convolution over its input.

        transformers reads the table once per forward pass; here each layer reads it (the same values):
        with reentrant gradient checkpointing, a tensor several layers share and a gradient must cross
        would be back-propagated through once per layer.
        """
        if self.relative_attention:
            table = self.rel_embeddings.weight  # (2 * span, H)
            mask = dataclasses.replace(mask, rel_embeddings=table if self.LayerNorm is None else self.LayerNorm(table))
        layer_output, probs = self.layer[index](hidden_states, mask, output_attentions)
        if index == 0 and self.conv is not None:
            layer_output = self.conv(hidden_states, layer_output, mask)
        return layer_output, probs


# -- the base model ---------------------------------------------------------------------------


class DebertaV2PreTrainedModel(BertPreTrainedModel):
    """What DeBERTa's models share: the config class, the encoder's name (``deberta``), BERT's init and more.

    transformers' rule covers the convolution too: normal(0, initializer_range) weights, zero bias.
    """

    config_class: ClassVar[type[EncoderConfig]] = DebertaV2Config
    base_model_prefix: ClassVar[str] = "deberta"

    @classmethod
    def base_model_class(cls) -> type[EncoderModel]:
        return DebertaV2Model

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, nn.Conv1d):
            module.weight.normal_(0.0, self.config.initializer_range)
            module.bias.zero_()
        elif isinstance(module, DebertaV2LMPredictionHead):
            module.bias.zero_()


class DebertaV2Model(DebertaV2PreTrainedModel, EncoderModel):
    """Embeddings and encoder, no pooler: ``transformers.DebertaV2Model``.

    Its forward pass is BERT's (``EncoderModel.forward``) on DeBERTa's inputs. ``add_pooling_layer``
    exists only because heads build every encoder the same way.
    """

    def __init__(self, config: DebertaV2Config, add_pooling_layer: bool = False, init_weights: bool = True) -> None:
        if add_pooling_layer:
            raise ConfigError("DeBERTa's encoder has no pooler: its sentence heads hold a ContextPooler of their own")
        super().__init__(config)
        self.embeddings = DebertaV2Embeddings(config)
        self.encoder = DebertaV2Encoder(config)
        self.pooler = None
        if init_weights:
            self.post_init()

    def forward(
        self,
        input_ids: Tensor | None = None,  # (B, T)
        attention_mask: Tensor | None = None,  # (B, T): 1 = token, 0 = padding
        token_type_ids: Tensor | None = None,  # (B, T)
        position_ids: Tensor | None = None,  # (B, T)
        inputs_embeds: Tensor | None = None,  # (B, T, E)
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,  # applied by __call__: see check_return_dict
    ) -> BaseModelOutputWithPooling:
        check_return_dict(self, return_dict)
        if self.embeddings.token_type_embeddings is None:
            token_type_ids = None  # no table (DeBERTa-v3): ignored as in transformers, though its tokenizer sends them
        inputs = (input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds)
        return super().forward(*inputs, output_hidden_states, output_attentions)


# -- heads ------------------------------------------------------------------------------------
#
# Each head runs the encoder on transformers' DeBERTa inputs, the output flags by name and in its
# order; most write only head().


class DebertaV2HeadModel(HeadModel):
    """HeadModel's forward with transformers' DeBERTa inputs: the output flags named, after ``labels``."""

    def forward(
        self,
        input_ids: Tensor | None = None,  # (B, T)
        attention_mask: Tensor | None = None,  # (B, T)
        token_type_ids: Tensor | None = None,  # (B, T)
        position_ids: Tensor | None = None,  # (B, T)
        inputs_embeds: Tensor | None = None,  # (B, T, E)
        labels: Tensor | None = None,  # what head() reads: see each head
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> ModelOutput:
        check_return_dict(self, return_dict)
        inputs = (input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds)
        return self.head(self.base_model(*inputs, output_attentions, output_hidden_states, return_dict=True), labels)


class LegacyPredictionTransform(nn.Module):
    """Dense to the embedding width, ``hidden_act``, LayerNorm (``LegacyDebertaV2PredictionHeadTransform``)."""

    def __init__(self, config: DebertaV2Config) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.embedding_size)
        self.activation = ACTIVATIONS[config.hidden_act]
        self.LayerNorm = nn.LayerNorm(config.embedding_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states: Tensor) -> Tensor:
        return self.LayerNorm(self.activation(self.dense(hidden_states)))  # (B, T, E)


class LegacyPredictionHead(MLMHead):
    """BERT's MLM head at the embedding width (``LegacyDebertaV2LMPredictionHead``): the decoder is tied as there."""

    def __init__(self, config: DebertaV2Config) -> None:
        nn.Module.__init__(self)  # not MLMHead.__init__, which builds hidden-size modules
        self.transform = LegacyPredictionTransform(config)
        self.decoder = nn.Linear(config.embedding_size, config.vocab_size)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))


class LegacyMLMHead(nn.Module):
    """``cls.predictions``: the masked-LM layout of DeBERTa-v2's checkpoints (``LegacyDebertaV2OnlyMLMHead``)."""

    def __init__(self, config: DebertaV2Config) -> None:
        super().__init__()
        self.predictions = LegacyPredictionHead(config)


class DebertaV2LMPredictionHead(nn.Module):
    """v3's MLM head: dense, ``hidden_act``, LayerNorm, then scores against the word embeddings, plus ``bias``.

    It has no decoder of its own (``DebertaV2LMPredictionHead``), so it needs hidden-size embeddings.
    """

    def __init__(self, config: DebertaV2Config) -> None:
        if config.embedding_size != config.hidden_size:
            raise ConfigError(
                f"the v3 masked-LM head (legacy=False) scores hidden states against the word embeddings: it needs "
                f"embedding_size ({config.embedding_size}) = hidden_size ({config.hidden_size}); use legacy=True"
            )
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = ACTIVATIONS[config.hidden_act]
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, hidden_states: Tensor, word_embeddings: Tensor) -> Tensor:
        hidden_states = self.LayerNorm(self.activation(self.dense(hidden_states)))  # (B, T, H)
        return torch.matmul(hidden_states, word_embeddings.t()) + self.bias  # (B, T, V)


class DebertaV2OnlyMLMHead(nn.Module):
    """``lm_predictions.lm_head``: the masked-LM layout of DeBERTa-v3's checkpoints (``DebertaV2OnlyMLMHead``)."""

    def __init__(self, config: DebertaV2Config) -> None:
        super().__init__()
        self.lm_head = DebertaV2LMPredictionHead(config)


LEGACY_HEAD, V3_HEAD = "cls.predictions.", "lm_predictions.lm_head."


class DebertaV2ForMaskedLM(DebertaV2PreTrainedModel, DebertaV2HeadModel):
    """Scores over the vocabulary for every token: ``transformers.DebertaV2ForMaskedLM``, in either head layout.

    ``config.legacy`` picks the layout: ``cls.predictions`` (its decoder tied to the word embeddings) or
    v3's ``lm_predictions.lm_head`` (no decoder: nothing to tie, ``get_output_embeddings()`` is None).
    """

    _tied_weights_keys: ClassVar[dict[str, str]] = {
        "cls.predictions.decoder.weight": "deberta.embeddings.word_embeddings.weight",
        "cls.predictions.decoder.bias": "cls.predictions.bias",
    }

    def __init__(self, config: DebertaV2Config) -> None:
        super().__init__(config)
        self.add_base_model(add_pooling_layer=False)
        if config.legacy:
            self.cls = LegacyMLMHead(config)
        else:
            self._tied_weights_keys = {}  # as transformers does: this layout ties nothing
            self.lm_predictions = DebertaV2OnlyMLMHead(config)
        self.post_init()

    @classmethod
    def config_for_checkpoint(cls, config: EncoderConfig, checkpoint: Checkpoint) -> EncoderConfig:
        """The head layout the checkpoint holds: ``legacy`` follows its keys, whatever config.json says.

        transformers builds the layout ``legacy`` names (legacy when config.json has no such key, as in
        microsoft/deberta-v3-*), and initialises it at random if the checkpoint holds the other. Here a
        checkpoint with keys under ``cls.predictions.`` or ``lm_predictions.lm_head.`` decides; one with
        neither (a base model's) or both keeps the config's. The choice is logged (INFO) and kept in the
        config, so ``save_pretrained`` writes it for transformers to read.
        """
        held = {head for head in (LEGACY_HEAD, V3_HEAD) if any(key.startswith(head) for key in checkpoint.keys())}
        legacy = config.legacy if len(held) != 1 else held == {LEGACY_HEAD}
        layout = f"{LEGACY_HEAD if legacy else V3_HEAD}* (legacy={legacy})"
        if len(held) != 1:
            reason = f"the checkpoint holds {'both' if held else 'neither'}: the config's choice"
        elif legacy == config.legacy:
            reason = "the checkpoint's, as the config says"
        else:
            reason = f"the checkpoint's; the config said legacy={config.legacy}"
        logger.info("%s: masked-LM head %s, %s", checkpoint.folder, layout, reason)
        return config.replace(legacy=legacy)

    def head(self, outputs: BaseModelOutputWithPooling, labels: Tensor | None) -> LogitsOutput:
        """``labels`` (B, T): the true token at masked positions, -100 elsewhere."""
        if self.config.legacy:
            logits = self.cls.predictions(outputs.last_hidden_state)  # (B, T, V)
        else:
            word_embeddings = self.get_input_embeddings().weight
            logits = self.lm_predictions.lm_head(outputs.last_hidden_state, word_embeddings)  # (B, T, V)
        return LogitsOutput(masked_lm_loss(logits, labels), logits, outputs.hidden_states, outputs.attentions)

    @torch.no_grad()
    def resize_token_embeddings(
        self, new_num_tokens: int | None = None, pad_to_multiple_of: int | None = None, mean_resizing: bool = False
    ) -> nn.Embedding:
        """As PreTrainedModel's; v3's head has no decoder to follow, only its bias: kept values, then zeros."""
        embeddings = super().resize_token_embeddings(new_num_tokens, pad_to_multiple_of, mean_resizing)
        if not self.config.legacy:
            head = self.lm_predictions.lm_head
            rows, kept = embeddings.num_embeddings, min(embeddings.num_embeddings, head.bias.shape[0])
            bias = torch.cat([head.bias[:kept], head.bias.new_zeros(rows - kept)])  # (rows,)
            head.bias = nn.Parameter(bias, requires_grad=head.bias.requires_grad)
        return embeddings


class ContextPooler(nn.Module):
    """The sentence heads' pooler: dropout, dense, ``pooler_hidden_act`` on the first token (``ContextPooler``)."""

    def __init__(self, config: DebertaV2Config) -> None:
        super().__init__()
        self.dense = nn.Linear(config.pooler_hidden_size, config.pooler_hidden_size)
        self.dropout = nn.Dropout(config.pooler_dropout)
        self.activation = ACTIVATIONS[config.pooler_hidden_act]

    def forward(self, hidden_states: Tensor) -> Tensor:
        return self.activation(self.dense(self.dropout(hidden_states[:, 0])))  # (B, H)


def deberta_sequence_loss(logits: Tensor, labels: Tensor | None, config: EncoderConfig) -> tuple[Tensor | None, Tensor]:
    """The loss, and the logits to return, as ``DebertaV2ForSequenceClassification.forward`` computes them.

    With a ``problem_type``, the shared ``sequence_classification_loss``. Without one, DeBERTa's own:
    one label: MSE, the logits flattened to (B,) in the labels' dtype (and returned so); labels (B,):
    cross-entropy in float32 over the rows whose label is >= 0 (0 if none is); labels (B, num_labels):
    cross-entropy against those soft targets, ``-sum(targets * log_softmax(logits))``, not BCE.
    """
    if labels is None or config.problem_type is not None:
        return sequence_classification_loss(logits, labels, config), logits
    if config.num_labels == 1:
        logits = logits.view(-1).to(labels.dtype)  # (B,)
        return F.mse_loss(logits, labels.view(-1)), logits
    if labels.dim() == 1 or labels.shape[-1] == 1:
        labelled = labels.reshape(-1) >= 0  # (B,)
        if not labelled.any():
            return torch.tensor(0).to(logits), logits
        return F.cross_entropy(logits[labelled].float(), labels.reshape(-1)[labelled].long()), logits
    return -(F.log_softmax(logits, dim=-1) * labels).sum(-1).mean(), logits


class DebertaV2ForSequenceClassification(DebertaV2PreTrainedModel, DebertaV2HeadModel):
    """A classifier (or regressor) on the pooled first token: ``transformers.DebertaV2ForSequenceClassification``."""

    def __init__(self, config: DebertaV2Config) -> None:
        super().__init__(config)
        self.add_base_model(add_pooling_layer=False)
        self.pooler = ContextPooler(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.dropout = nn.Dropout(config.pooled_head_dropout)
        self.post_init()

    def head(self, outputs: BaseModelOutputWithPooling, labels: Tensor | None) -> LogitsOutput:
        """``labels``: (B,) class ids (negative ones left out), (B,) regression targets, (B, labels) soft targets."""
        logits = self.classifier(self.dropout(self.pooler(outputs.last_hidden_state)))  # (B, num_labels)
        loss, logits = deberta_sequence_loss(logits, labels, self.config)
        return LogitsOutput(loss, logits, outputs.hidden_states, outputs.attentions)


class DebertaV2ForTokenClassification(DebertaV2PreTrainedModel, DebertaV2HeadModel, BertForTokenClassification):
    """BertForTokenClassification on DeBERTa's encoder; its dropout is ``hidden_dropout_prob``."""


class DebertaV2ForQuestionAnswering(DebertaV2PreTrainedModel, BertForQuestionAnswering):
    """BertForQuestionAnswering on DeBERTa's encoder, taking its inputs as transformers' class does."""

    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        position_ids: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        start_positions: Tensor | None = None,  # (B,): the answer's first token
        end_positions: Tensor | None = None,  # (B,): the answer's last token
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> QuestionAnsweringModelOutput:
        check_return_dict(self, return_dict)
        inputs = (input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds)
        outputs = self.base_model(*inputs, output_attentions, output_hidden_states, return_dict=True)
        return self.head(outputs, start_positions, end_positions)


class DebertaV2ForMultipleChoice(DebertaV2PreTrainedModel):
    """Scores each of C candidate sequences from its pooled first token: inputs (B, C, T), logits (B, C)."""

    def __init__(self, config: DebertaV2Config) -> None:
        super().__init__(config)
        self.add_base_model(add_pooling_layer=False)
        self.pooler = ContextPooler(config)
        self.classifier = nn.Linear(config.hidden_size, 1)
        self.dropout = nn.Dropout(config.pooled_head_dropout)
        self.post_init()

    def forward(
        self,
        input_ids: Tensor | None = None,  # (B, C, T)
        attention_mask: Tensor | None = None,  # (B, C, T)
        token_type_ids: Tensor | None = None,  # (B, C, T)
        position_ids: Tensor | None = None,  # (B, C, T)
        inputs_embeds: Tensor | None = None,  # (B, C, T, E)
        labels: Tensor | None = None,  # (B,): the right choice
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> LogitsOutput:
        check_return_dict(self, return_dict)
        inputs = (input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds)
        flat = [None if x is None else x.reshape(-1, *x.shape[2:]) for x in inputs]  # (B * C, T, ...)
        outputs = self.base_model(*flat, output_attentions, output_hidden_states, return_dict=True)
        choices = (input_ids if input_ids is not None else inputs_embeds).shape[1]
        return self.head(outputs, labels, choices)

    def head(self, outputs: BaseModelOutputWithPooling, labels: Tensor | None, choices: int) -> LogitsOutput:
        """A score per choice from the encoder's ``outputs`` over all B * C sequences; the loss if given labels."""
        pooled = self.pooler(outputs.last_hidden_state)  # (B * C, H)
        logits = self.classifier(self.dropout(pooled)).view(-1, choices)  # (B, C)
        loss = None if labels is None else F.cross_entropy(logits, labels)
        return LogitsOutput(loss, logits, outputs.hidden_states, outputs.attentions)
