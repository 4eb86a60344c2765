"""BERT and RoBERTa, from token ids to logits, in one reading path.

Read top to bottom, the way the data flows: embeddings, attention (where the two layouts
a batch can take are explained), one layer, the stack of layers, the pooler, the base
models, then the heads that turn hidden states into scores. Input checks and small tensor
helpers come last, after what they serve.

RoBERTa is BERT with three named differences: positions count from ``pad_token_id + 1``
and skip padding, its MLM head is called ``lm_head``, and its sentence classifier works on
the first token instead of the pooler. Everything else is the same module, used by both.

Module and attribute names follow the checkpoints' keys (``encoder.layer.0.attention.self.
query``) so that ``state_dict()`` equals transformers' key for key; that is why ``LayerNorm``
is capitalised, as in the original TF code. Mirrors transformers/models/bert/modeling_bert.py
and transformers/models/roberta/modeling_roberta.py.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Unpack

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from minibert.activations import ACTIVATIONS
from minibert.config import BertConfig, EncoderConfig, RobertaConfig
from minibert.errors import ConfigError, InputError, InputTypeError
from minibert.linear import JoinedLinear, linear_then
from minibert.outputs import (
    BaseModelOutputWithPooling,
    LogitsOutput,
    ModelOutput,
    PreTrainingOutput,
    QuestionAnsweringModelOutput,
)
from minibert.pretrained import OutputFlags, PreTrainedModel
from minibert.rotary import RotaryEmbedding, apply_rotary

# -- embeddings ---------------------------------------------------------------------------


class Embeddings(nn.Module):
    """Word + position + token-type embeddings, then LayerNorm and dropout (``BertEmbeddings``).

    With ``padded_positions`` (RoBERTa) positions count from ``pad_token_id + 1`` over real
    tokens only, and padding tokens keep position ``pad_token_id``. ``width`` is the hidden
    size, except in ALBERT, whose narrower embeddings are projected up. Without
    ``token_types`` (MPNet) there is no token-type table; without ``positions`` (NomicBERT, whose
    attention rotates queries and keys instead: ``minibert.rotary``) no position table.
    """

    def __init__(
        self,
        config: EncoderConfig,
        padded_positions: bool = False,
        width: int | None = None,
        token_types: bool = True,
        positions: bool = True,
    ) -> None:
        super().__init__()
        width = width or config.hidden_size
        self.padded_positions = padded_positions
        self.padding_idx = config.pad_token_id
        self.word_embeddings = embedding(config.vocab_size, width, config.pad_token_id)
        self.position_embeddings = (
            embedding(config.max_position_embeddings, width, config.pad_token_id if padded_positions else None)
            if positions
            else None
        )
        self.token_type_embeddings = embedding(config.type_vocab_size, width) if token_types else None
        self.LayerNorm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        # Defaults for position_ids and token_type_ids: computed by reset_buffers (at init), never saved.
        rows = config.max_position_embeddings
        self.register_buffer("position_ids", torch.empty(1, rows, dtype=torch.long), persistent=False)
        if token_types:
            self.register_buffer("token_type_ids", torch.empty(1, rows, dtype=torch.long), persistent=False)

    def forward(
        self,
        input_ids: Tensor | None = None,  # (B, T)
        token_type_ids: Tensor | None = None,  # (B, T)
        position_ids: Tensor | None = None,  # (B, T)
        inputs_embeds: Tensor | None = None,  # (B, T, H)
    ) -> Tensor:
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)  # (B, T, H)
        batch, length = inputs_embeds.shape[:2]
        if position_ids is None and self.position_embeddings is not None:
            if not self.padded_positions:
                position_ids = self.position_ids[:, :length]  # (1, T)
            elif input_ids is not None:
                is_token = input_ids.ne(self.padding_idx).long()  # (B, T)
                position_ids = torch.cumsum(is_token, dim=1) * is_token + self.padding_idx
            else:  # embeddings alone cannot tell padding apart: count every position
                position_ids = self.position_ids[:, 1 + self.padding_idx : 1 + self.padding_idx + length]
        embeddings = inputs_embeds
        if self.token_type_embeddings is not None:
            if token_type_ids is None:  # zeros; new ones past the buffer (rotary models take any length)
                token_type_ids = (
                    self.token_type_ids[:, :length].expand(batch, length)  # (B, T)
                    if length <= self.token_type_ids.shape[1]
                    else torch.zeros(batch, length, dtype=torch.long, device=inputs_embeds.device)
                )
            embeddings = embeddings + self.token_type_embeddings(token_type_ids)
        if self.position_embeddings is not None:
            embeddings = embeddings + self.position_embeddings(position_ids)  # (B, T, H)
        return self.dropout(self.LayerNorm(embeddings))

    def reset_buffers(self) -> None:
        self.position_ids.copy_(torch.arange(self.position_ids.shape[1], device=self.position_ids.device))
        if self.token_type_embeddings is not None:
            self.token_type_ids.zero_()


# -- attention ----------------------------------------------------------------------------


@dataclass
class AttentionMask:
    """What attention needs to know about padding, and the layout the layers work in.

    A batch of B sequences padded to length T can flow through the layers in two layouts:

    * padded, (B, T, H): every position, padding included, as transformers computes it;
    * unpadded, (N, H): only the N real tokens of the batch, one row each, in order. The
      projections, feed-forward blocks and LayerNorms then skip the padding's work.

    Attention is the one step that needs to see sequences, so it puts the rows back into the
    (B, T) layout with ``to_batch`` and returns to (N, H) with ``to_tokens``; in the padded
    layout both are no-ops. ``bias`` (B, 1, 1, T) is added to the attention scores: 0 where a
    token may be attended, the dtype's most negative value at padding. (MPNet adds its relative-
    position bias to it: (B, nh, T, T), still one tensor for the whole batch, in the (B, T) layout.)
    ``rotary`` carries the cos and sin of each position's rotation (``minibert.rotary``) to the
    models that rotate queries and keys, computed once per forward pass for every layer.

    Which layout a forward pass takes is ``unpadded_layout``'s choice (``set_unpadding``: by
    default unpadded for inference batches with enough padding, padded for training).
    """

    bias: Tensor | None
    tokens: Tensor | None = None  # (N,): flat positions of the real tokens in the (B * T) batch; None: padded
    shape: tuple[int, int] = (0, 0)  # (B, T) of the padded batch
    rotary: tuple[Tensor, Tensor] | None = None  # cos, sin: (B or 1, T, hs), in the (B, T) layout
    padding: Tensor | None = None  # (B, 1, T, 1): True at padding keys, in the padded layout; see hide_padding
    lengths: list[int] | None = None  # unpadded, right-padded batches: each sequence's length; see attend_heads

    @classmethod
    def from_padding(
        cls,
        attention_mask: Tensor | None,
        dtype: torch.dtype,
        unpad: bool = False,
        embeddings: Tensor | None = None,  # (B, T, E): the layers' input, to know whether hide_padding is needed
    ) -> AttentionMask:
        """From a (B, T) mask of 0 = padding, anything else = token; ``unpad`` only matters if there is padding.

        Any non-zero value attends, as transformers reads masks (``create_bidirectional_mask`` turns them to
        bool): 0.5, 2 and -1 are tokens, like 1. Padding keys and values are hidden (``hide_padding``) if
        ``embeddings`` hold a NaN or an Inf, or are not given.
        """
        if attention_mask is None:
            return cls(None)
        padding = attention_mask[:, None, None, :] == 0  # (B, 1, 1, T)
        bias = padding.to(dtype) * torch.finfo(dtype).min  # 0 at tokens, the most negative value at padding
        # Unpadding makes shapes depend on the data: compiled graphs keep the padded layout.
        if not unpad or torch.compiler.is_compiling() or bool(attention_mask.all()):
            finite = embeddings is not None and not torch.compiler.is_compiling() and bool(embeddings.isfinite().all())
            return cls(bias, padding=None if finite else padding.transpose(-1, -2))
        real = attention_mask != 0  # (B, T)
        tokens = real.flatten().nonzero().squeeze(1)  # (N,)
        counts = real.sum(dim=1)  # (B,)
        right_padded = bool(torch.equal(real, torch.arange(real.shape[1], device=real.device) < counts[:, None]))
        lengths = counts.tolist() if right_padded else None
        return cls(bias, tokens, tuple(attention_mask.shape), lengths=lengths)  # to_batch puts zeros at padding

    def hide_padding(self, x: Tensor) -> Tensor:
        """(B, nh, T, hs) keys or values with zeros at padding positions.

        The bias gives padding keys a weight of exactly 0, but 0 times a NaN or an Inf is NaN: a NaN in a
        padding embedding would reach every real token of its row (in transformers it does). Zeroed keys
        and values carry nothing, and real tokens' scores and weights are unchanged. Layers keep finite
        inputs finite, so with finite embeddings the bias alone suffices and nothing is hidden (no cost).
        """
        return x if self.padding is None else x.masked_fill(self.padding, 0)

    def to_tokens(self, x: Tensor) -> Tensor:
        """(B, T, F) -> (N, F): keep the real tokens."""
        return x if self.tokens is None else x.flatten(0, -2).index_select(0, self.tokens)

    def to_batch(self, x: Tensor) -> Tensor:
        """(N, F) -> (B, T, F): put the real tokens back in place, zeros at padding."""
        if self.tokens is None:
            return x
        # In place: index_copy (out of place) would first copy the zeros, on every layer's q, k and v.
        batch = x.new_zeros(self.shape[0] * self.shape[1], x.shape[-1]).index_copy_(0, self.tokens, x)
        return batch.view(*self.shape, x.shape[-1])


# Below this fraction of real tokens in a batch, the unpadded layout is the faster one. Measured with
# scripts/bench_unpadding.py (1 thread, 2-core Xeon shared with other jobs: paired medians of 5 rounds),
# time unpadded / padded at 0.50, 0.80, 0.90, 0.95, 0.98 real: MiniLM-L6 32x128 0.53, 0.69, 0.77, 0.96,
# 1.02; bert-base 8x128 0.53, 0.82, 0.93, 0.97, 0.96. The crossover lies between 0.95 and 0.98 (the
# unpadded path also skips the padding's attention scores); below 0.95 unpadding wins by 4% or more.
UNPADDED_BELOW = 0.95


def unpadded_layout(setting: bool | str, attention_mask: Tensor | None, output_attentions: bool) -> bool:
    """Whether a forward pass runs unpadded, for the ``set_unpadding`` setting True, False or ``"auto"``.

    Never without padding, nor when attention maps are asked for: their (B, nh, T, T) rows at padding
    queries are transformers' values, which the unpadded layout does not compute. ``"auto"`` (the
    default) unpads only where it pays: autograd off (``no_grad``, ``inference_mode``: training keeps
    the dense path, its backward unchanged) and fewer than ``UNPADDED_BELOW`` of the positions real.
    ``True`` unpads every batch with padding. Compiled graphs keep the padded layout (shapes would
    depend on the data).
    """
    if setting is False or attention_mask is None or output_attentions or torch.compiler.is_compiling():
        return False
    if setting == "auto":
        if torch.is_grad_enabled():
            return False
        return int(torch.count_nonzero(attention_mask)) < UNPADDED_BELOW * attention_mask.numel()
    return not bool(attention_mask.all())


def attend(
    q: Tensor,  # (B, nh, T, hs)
    k: Tensor,  # (B, nh, T, hs)
    v: Tensor,  # (B, nh, T, hs)
    bias: Tensor | None,  # added to the scores: (B, 1, 1, T) padding, or (B, nh, T, T) with position biases
    dropout: float,
    eager: bool,
    scale: float | None = None,  # None: 1 / sqrt(hs); DeBERTa divides by more
) -> tuple[Tensor, Tensor | None]:
    """softmax(q k^T * scale + bias) v; ``eager`` writes it out and also returns the probabilities.

    Otherwise PyTorch's fused kernel computes the same in one call (and returns no probabilities).
    """
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    if not eager:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout, scale=scale), None
    scores = torch.matmul(q, k.transpose(2, 3)) * scale  # (B, nh, T, T)
    if bias is not None:
        scores = scores + bias
    probs = F.dropout(scores.softmax(dim=-1), p=dropout, training=dropout > 0)  # (B, nh, T, T)
    return torch.matmul(probs, v), probs  # (B, nh, T, hs)


def attend_heads(
    q: Tensor,  # (B, T, nh * hs), or (N, nh * hs) unpadded
    k: Tensor,
    v: Tensor,
    mask: AttentionMask,
    num_heads: int,
    head_size: int,
    dropout: float,
    eager: bool,
) -> tuple[Tensor, Tensor | None]:
    """Attention over the ``num_heads`` heads (0 once all are pruned) of ``q``, ``k``, ``v``; context in their layout.

    Padded, or unpadded with padding inside a sequence: the rows go to the (B, T) layout (``to_batch``), the
    mask's rotation turns queries and keys, ``attend()`` runs over the whole batch, and the context comes back
    (``to_tokens``). Unpadded with right padding on the CPU: ``attend_sequences``, no padding at all.
    """
    if mask.lengths is not None and q.device.type == "cpu":
        return attend_sequences(q, k, v, mask, num_heads, head_size, dropout, eager), None
    q, k, v = (mask.to_batch(x) for x in (q, k, v))  # (B, T, nh * hs)
    batch, length, _ = q.shape
    heads = (batch, length, num_heads, head_size)
    q, k, v = (x.view(heads).transpose(1, 2) for x in (q, k, v))  # (B, nh, T, hs)
    if mask.rotary is not None:  # rotary positions: queries and keys turned by their positions' angles
        q, k = apply_rotary(q, *mask.rotary), apply_rotary(k, *mask.rotary)
    k, v = mask.hide_padding(k), mask.hide_padding(v)  # padding never reaches real tokens, even as NaN
    context, probs = attend(q, k, v, mask.bias, dropout, eager)  # (B, nh, T, hs)
    context = context.transpose(1, 2).reshape(batch, length, -1)  # (B, T, nh * hs)
    return mask.to_tokens(context), probs


def attend_sequences(
    q: Tensor,  # (N, nh * hs): the real tokens of right-padded sequences, sequence after sequence
    k: Tensor,
    v: Tensor,
    mask: AttentionMask,
    num_heads: int,
    head_size: int,
    dropout: float,
    eager: bool,
) -> Tensor:
    """Attention within each sequence of the unpadded layout, sequences of one length at a time: (N, nh * hs).

    Each sequence's rows are contiguous, so a run of G sequences of length L is a (G, nh, L, hs) view: no
    scatter to (B, T), no padding keys (a padding-only bias is 0 over them, and dropped), no scores for
    padding, whose cost grows with T squared. Position biases (MPNet) and rotations are cut to each run.
    On the CPU only: one call per run of lengths would cost a GPU more in launches than it saves.
    """
    bias = None if mask.bias is None or mask.bias.shape[-2] == 1 else mask.bias  # (B or 1, nh, T, T), if any
    contexts, row, start = [], 0, 0
    for length, run in itertools.groupby(mask.lengths):
        count = len(list(run))
        rows, end = slice(row, row + count), start + count * length
        if length:
            q_run, k_run, v_run = (
                x[start:end].view(count, length, num_heads, head_size).transpose(1, 2) for x in (q, k, v)
            )
            if mask.rotary is not None:  # cos, sin: (B or 1, T, hs) -> (G or 1, L, hs)
                cos, sin = (x[rows if x.shape[0] > 1 else slice(None), :length] for x in mask.rotary)
                q_run, k_run = apply_rotary(q_run, cos, sin), apply_rotary(k_run, cos, sin)
            run_bias = None if bias is None else bias[rows if bias.shape[0] > 1 else slice(None), :, :length, :length]
            context, _ = attend(q_run, k_run, v_run, run_bias, dropout, eager)  # (G, nh, L, hs)
            contexts.append(context.transpose(1, 2).reshape(end - start, -1))  # (G * L, nh * hs)
        row, start = row + count, end
    if len(contexts) == 1:
        return contexts[0]
    return torch.cat(contexts) if contexts else q[:0]  # (N, nh * hs); no rows if every sequence is empty


class SelfAttention(nn.Module):
    """Multi-head scaled dot-product attention (``BertSelfAttention``).

    ``attn_implementation`` picks the maths: ``"eager"`` writes it out (and can
    return the attention probabilities), ``"sdpa"`` calls PyTorch's fused kernel.
    """

    # The query, key and value projections' names in the checkpoint (MPNet's are q, k, v).
    projection_names: ClassVar[tuple[str, str, str]] = ("query", "key", "value")

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_size = config.hidden_size // config.num_attention_heads
        self.kept_heads = list(range(self.num_heads))  # numbers, in the unpruned layer, of the heads still here
        for name in self.projection_names:
            self.add_module(name, nn.Linear(config.hidden_size, self.num_heads * self.head_size))
        self.joined = JoinedLinear()  # the three as one product at inference, where that is faster
        self.dropout_prob = config.attention_probs_dropout_prob
        self.attn_implementation = "sdpa"

    def forward(
        self,
        hidden_states: Tensor,  # (B, T, H), or (N, H) unpadded
        mask: AttentionMask,
        output_attentions: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        q, k, v = self.joined(self.projections(), hidden_states)  # (B, T, nh * hs), or (N, nh * hs)
        eager = self.attn_implementation == "eager" or output_attentions
        dropout = self.dropout_prob if self.training else 0.0
        return attend_heads(q, k, v, mask, self.num_heads, self.head_size, dropout, eager)  # rotary positions too (GTE)

    def projections(self) -> list[nn.Linear]:
        """The query, key and value projections, in that order."""
        return [getattr(self, name) for name in self.projection_names]

    def prune_heads(self, heads: Iterable[int]) -> Tensor | None:
        """Remove ``heads`` (numbered as in the unpruned layer) from query, key and value.

        Returns the indices of the features kept, for the caller to cut the output projection's
        inputs, or None if none of ``heads`` is still here (pruning twice is harmless).
        """
        drop = set(heads) & set(self.kept_heads)
        if not drop:
            return None
        keep = [i for i, head in enumerate(self.kept_heads) if head not in drop]
        device = self.projections()[0].weight.device
        index = torch.tensor(keep, dtype=torch.long, device=device)[:, None] * self.head_size
        index = (index + torch.arange(self.head_size, device=device)).flatten()  # (kept * hs,)
        for projection in self.projections():
            keep_features(projection, index, dim=0)
        self.kept_heads = [self.kept_heads[i] for i in keep]
        self.num_heads = len(keep)
        return index


class AddAndNorm(nn.Module):
    """Project, dropout, add the residual, LayerNorm (``BertSelfOutput`` and ``BertOutput``)."""

    def __init__(self, config: EncoderConfig, in_features: int) -> None:
        super().__init__()
        self.dense = nn.Linear(in_features, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: Tensor, residual: Tensor) -> Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + residual)  # (B, T, H)


class Attention(nn.Module):
    """Self-attention and its output projection (``BertAttention``)."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.self = SelfAttention(config)
        self.output = AddAndNorm(config, config.hidden_size)

    def forward(
        self, hidden_states: Tensor, mask: AttentionMask, output_attentions: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        context, probs = self.self(hidden_states, mask, output_attentions)
        return self.output(context, hidden_states), probs

    def prune_heads(self, heads: Iterable[int]) -> None:
        """Remove ``heads``: their query, key and value rows, and the output projection's columns that read them."""
        index = self.self.prune_heads(heads)
        if index is not None:
            keep_features(self.output.dense, index, dim=1)


# -- one layer, and the stack of layers ----------------------------------------------------


class Intermediate(nn.Module):
    """The feed-forward block's widening projection and activation (``BertIntermediate``)."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.activation = ACTIVATIONS[config.hidden_act]

    def forward(self, hidden_states: Tensor) -> Tensor:
        return linear_then(self.dense, hidden_states, self.activation)  # (B, T, intermediate_size)


class Layer(nn.Module):
    """One transformer block: attention, then feed-forward, each with residual and LayerNorm.

    ``attention`` is BERT's block unless given (MPNet brings its own).
    """

    def __init__(self, config: EncoderConfig, attention: nn.Module | None = None) -> None:
        super().__init__()
        self.attention = Attention(config) if attention is None else attention
        self.intermediate = Intermediate(config)
        self.output = AddAndNorm(config, config.intermediate_size)

    def forward(
        self, hidden_states: Tensor, mask: AttentionMask, output_attentions: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        attended, probs = self.attention(hidden_states, mask, output_attentions)  # (B, T, H)
        return self.output(self.intermediate(attended), attended), probs  # (B, T, H)


class Encoder(nn.Module):
    """The stack of layers (``BertEncoder``); ``layer`` builds each one (DistilBERT brings its own block)."""

    def __init__(self, config: EncoderConfig, layer: Callable[[EncoderConfig], nn.Module] = Layer) -> None:
        super().__init__()
        self.layer = nn.ModuleList(layer(config) for _ in range(config.num_hidden_layers))
        self.gradient_checkpointing: dict[str, Any] | None = None  # see PreTrainedModel.gradient_checkpointing_enable

    def forward(
        self, hidden_states: Tensor, mask: AttentionMask, output_hidden_states: bool, output_attentions: bool
    ) -> BaseModelOutputWithPooling:
        recompute = self.gradient_checkpointing if self.training else None
        return run_layers(self.layer, hidden_states, mask, output_hidden_states, output_attentions, recompute)


def run_layers(
    layers: Iterable[nn.Module],
    hidden_states: Tensor,  # (B, T, H)
    mask: AttentionMask,
    output_hidden_states: bool,
    output_attentions: bool,
    recompute: dict[str, Any] | None = None,
) -> BaseModelOutputWithPooling:
    """Run ``layers`` in order, collecting every hidden state and attention map if asked.

    With ``recompute`` (gradient checkpointing: the keyword arguments of torch's ``checkpoint``)
    autograd keeps only each layer's input and runs the layer again during backward, with the
    same dropout masks (the RNG state is replayed). The mask's bias goes in as an input of its
    own: reentrant checkpointing passes gradients only to inputs, and MPNet's bias is learned.
    """
    hidden_states = mask.to_tokens(hidden_states)  # (N, H) if unpadded, else unchanged
    all_hidden = [hidden_states] if output_hidden_states else None
    all_attentions = [] if output_attentions else None
    for layer in layers:
        if recompute is not None and torch.is_grad_enabled():
            args = (layer, hidden_states, mask, mask.bias, output_attentions)
            hidden_states, probs = checkpoint(run_with_bias, *args, **recompute)
        else:
            hidden_states, probs = layer(hidden_states, mask, output_attentions)
        if all_hidden is not None:
            all_hidden.append(hidden_states)
        if all_attentions is not None:
            all_attentions.append(probs)
    return BaseModelOutputWithPooling(
        last_hidden_state=mask.to_batch(hidden_states),
        hidden_states=tuple(mask.to_batch(h) for h in all_hidden) if all_hidden is not None else None,
        attentions=tuple(all_attentions) if all_attentions is not None else None,
    )


def run_with_bias(
    layer: nn.Module, hidden_states: Tensor, mask: AttentionMask, bias: Tensor | None, output_attentions: bool
) -> tuple[Tensor, Tensor | None]:
    """``layer`` with ``bias`` in place of the mask's: what gradient checkpointing runs (see run_layers)."""
    return layer(hidden_states, dataclasses.replace(mask, bias=bias), output_attentions)


class Pooler(nn.Module):
    """Dense + tanh on the first token: the sentence vector NSP and BERT's classifier read."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden_states: Tensor) -> Tensor:
        return torch.tanh(self.dense(hidden_states[:, 0]))  # (B, H)


# -- the base models ----------------------------------------------------------------------


class EncoderModel(PreTrainedModel):
    """The forward pass every BERT-family base model shares: check, embed, mask, encode, pool.

    An architecture's base model (``BertModel``, ``AlbertModel``) only builds, in ``__init__``,
    the three modules this calls: ``embeddings``, ``encoder`` and ``pooler`` (None without one),
    and may change ``embed``, the step from ids to the encoder's input. A model with rotary
    positions also sets ``rotary_emb``: the mask then carries every position's rotation.

    Inference batches with padding run unpadded by default (``unpadded_layout`` says when), and
    then ``last_hidden_state`` and ``hidden_states`` hold zeros at padding positions, where
    transformers holds values computed from padding that no real token reads. Outputs that read
    padding run padded: attention maps, a pooler or first-token classifier on a sequence that
    starts with padding (here), and heads whose loss reads padding (``PreTrainedModel.reads_padding``).
    ``set_unpadding(False)`` computes every position as transformers does.
    """

    # RoBERTa's positions start after the padding id: Embeddings' ``padded_positions``.
    padded_positions: ClassVar[bool] = False
    embeddings: Embeddings
    encoder: nn.Module
    pooler: nn.Module | None

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__(config)
        self.unpad: bool | Literal["auto"] = "auto"  # see PreTrainedModel.set_unpadding
        self.rotary_emb: RotaryEmbedding | None = None

    def forward(
        self,
        input_ids: Tensor | None = None,  # (B, T)
        attention_mask: Tensor | None = None,  # (B, T): 1 = token, 0 = padding
        token_type_ids: Tensor | None = None,  # (B, T)
        position_ids: Tensor | None = None,  # (B, T)
        inputs_embeds: Tensor | None = None,  # (B, T, E)
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
    ) -> BaseModelOutputWithPooling:
        config = self.config
        output_hidden_states = config.output_hidden_states if output_hidden_states is None else output_hidden_states
        output_attentions = config.output_attentions if output_attentions is None else output_attentions
        offset = self.embeddings.padding_idx + 1 if self.padded_positions else 0
        width = self.embeddings.word_embeddings.embedding_dim
        inputs = (input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds)
        dtype = self.embeddings.word_embeddings.weight.dtype
        bounded = self.rotary_emb is None
        input_ids, token_type_ids, position_ids = check_inputs(
            config, *inputs, offset, width, bounded_positions=bounded, dtype=dtype
        )
        embeddings = self.embed(input_ids, token_type_ids, position_ids, inputs_embeds)  # (B, T, E)
        unpad = unpadded_layout(self.unpad, attention_mask, output_attentions) and bool(attention_mask[:, 0].all())
        mask = AttentionMask.from_padding(attention_mask, embeddings.dtype, unpad=unpad, embeddings=embeddings)
        if self.rotary_emb is not None:  # positions 0, 1, ... whatever the padding, unless given
            if position_ids is None:
                position_ids = torch.arange(embeddings.shape[1], device=embeddings.device)[None]  # (1, T)
            mask.rotary = self.rotary_emb(position_ids, embeddings.dtype)  # cos, sin: (B or 1, T, hs)
        outputs = self.encoder(embeddings, mask, output_hidden_states, output_attentions)
        if self.pooler is not None:
            outputs.pooler_output = self.pooler(outputs.last_hidden_state)  # (B, H)
        return outputs

    def embed(
        self,
        input_ids: Tensor | None,
        token_type_ids: Tensor | None,
        position_ids: Tensor | None,
        inputs_embeds: Tensor | None,
    ) -> Tensor:
        """The encoder's input: the embeddings (ELECTRA projects them up to the hidden size first)."""
        return self.embeddings(input_ids, token_type_ids, position_ids, inputs_embeds)  # (B, T, E)


class BertPreTrainedModel(PreTrainedModel):
    """What BERT's models share: the config class, the encoder's name in a head model, and init."""

    config_class: ClassVar[type[EncoderConfig]] = BertConfig
    base_model_prefix: ClassVar[str] = "bert"  # head models hold their encoder as self.bert

    @classmethod
    def base_model_class(cls) -> type[EncoderModel]:
        return BertModel

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, MLMHead | RobertaLMHead):
            module.bias.zero_()
        elif isinstance(module, Embeddings):
            module.reset_buffers()

    def attention_blocks(self) -> list[nn.Module]:
        return [layer.attention for layer in self.base_model.encoder.layer]


class BertModel(BertPreTrainedModel, EncoderModel):
    """Embeddings, encoder and (optionally) pooler: ``transformers.BertModel``.

    Head models build it with ``init_weights=False`` and initialise the whole model once.
    """

    def __init__(self, config: EncoderConfig, add_pooling_layer: bool = True, init_weights: bool = True) -> None:
        super().__init__(config)
        self.embeddings = Embeddings(config, padded_positions=self.padded_positions)
        self.encoder = Encoder(config)
        self.pooler = Pooler(config) if add_pooling_layer else None
        if init_weights:
            self.post_init()


class RobertaPreTrainedModel(BertPreTrainedModel):
    config_class: ClassVar[type[EncoderConfig]] = RobertaConfig
    base_model_prefix: ClassVar[str] = "roberta"

    @classmethod
    def base_model_class(cls) -> type[EncoderModel]:
        return RobertaModel


class RobertaModel(RobertaPreTrainedModel, BertModel):
    """BERT with RoBERTa's positions: ``transformers.RobertaModel``."""

    padded_positions: ClassVar[bool] = True


# -- heads --------------------------------------------------------------------------------
#
# A head model builds its encoder with add_base_model() (as self.bert, self.roberta, ...:
# the class's base_model_prefix) and runs it through self.base_model. Its forward takes
# transformers' inputs by name and in transformers' order, so calls, Trainer's column
# filtering and exports by position work as they do there; most heads inherit it from
# HeadModel and write only head(), the few lines that make them a head.


class HeadModel(PreTrainedModel):
    """A head on an encoder: ``forward`` runs the encoder on transformers' inputs, then ``head()``.

    ``head()`` is what makes each head what it is: the scores it computes from the encoder's
    outputs, and its loss when given labels. Heads that take other labels (span positions, two
    label sets) or reshape their inputs (multiple choice) write their own ``forward``.
    """

    def forward(
        self,
        input_ids: Tensor | None = None,  # (B, T)
        attention_mask: Tensor | None = None,  # (B, T)
        token_type_ids: Tensor | None = None,  # (B, T)
        position_ids: Tensor | None = None,  # (B, T)
        inputs_embeds: Tensor | None = None,  # (B, T, E)
        labels: Tensor | None = None,  # what head() reads: see each head
        **flags: Unpack[OutputFlags],
    ) -> ModelOutput:
        inputs = (input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds)
        return self.head(self.base_model(*inputs, return_dict=True, **flags), labels)

    def head(self, outputs: BaseModelOutputWithPooling, labels: Tensor | None) -> ModelOutput:
        """Scores from the encoder's ``outputs``, and the loss if ``labels`` are given."""
        raise NotImplementedError(f"{type(self).__name__} computes no head")


class HeadTransform(nn.Module):
    """Dense, activation, LayerNorm before the vocabulary scores (``BertPredictionHeadTransform``)."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = ACTIVATIONS[config.hidden_act]
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states: Tensor) -> Tensor:
        return self.LayerNorm(self.activation(self.dense(hidden_states)))  # (B, T, H)


class MLMHead(nn.Module):
    """Scores over the vocabulary for every token (``BertLMPredictionHead``).

    The decoder's weight is the word embedding matrix and its bias is ``bias``: tied, one tensor each.
    """

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.transform = HeadTransform(config)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, hidden_states: Tensor) -> Tensor:
        return self.decoder(self.transform(hidden_states))  # (B, T, V)


class BertHeads(nn.Module):
    """BERT's pre-training heads under ``cls``: masked-token ``predictions``, next-sentence ``seq_relationship``."""

    def __init__(self, config: EncoderConfig, mlm: bool = True, nsp: bool = True) -> None:
        super().__init__()
        if mlm:
            self.predictions = MLMHead(config)
        if nsp:
            self.seq_relationship = nn.Linear(config.hidden_size, 2)


def masked_lm_loss(logits: Tensor, labels: Tensor | None) -> Tensor | None:
    """Cross-entropy over the vocabulary; labels of -100 (unmasked tokens) are ignored."""
    if labels is None:
        return None
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))


def span_loss(
    start_logits: Tensor, end_logits: Tensor, start_positions: Tensor | None, end_positions: Tensor | None
) -> Tensor | None:
    """The mean of the start and end cross-entropies over every position (B, T), if both positions are given.

    Positions outside the sequence (answers cut off by truncation) are clamped to T and ignored.
    """
    if start_positions is None or end_positions is None:
        return None
    length = start_logits.shape[1]
    start = start_positions.reshape(-1).clamp(0, length)
    end = end_positions.reshape(-1).clamp(0, length)
    return (
        F.cross_entropy(start_logits, start, ignore_index=length)
        + F.cross_entropy(end_logits, end, ignore_index=length)
    ) / 2


def sequence_classification_loss(logits: Tensor, labels: Tensor | None, config: EncoderConfig) -> Tensor | None:
    """MSE for regression, cross-entropy for one label, BCE for multi-label, as transformers picks them."""
    if labels is None:
        return None
    problem = config.problem_type
    if problem is None:
        if config.num_labels == 1:
            problem = "regression"
        elif labels.dtype in (torch.long, torch.int):
            problem = "single_label_classification"
        else:
            problem = "multi_label_classification"
    if problem == "regression":
        if config.num_labels == 1:
            return F.mse_loss(logits.squeeze(), labels.squeeze().to(logits.dtype))
        return F.mse_loss(logits, labels.to(logits.dtype))
    if problem == "single_label_classification":
        return F.cross_entropy(logits.view(-1, config.num_labels), labels.view(-1))
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


class BertForMaskedLM(BertPreTrainedModel, HeadModel):
    """Scores over the vocabulary for every token: ``transformers.BertForMaskedLM``."""

    _tied_weights_keys: ClassVar[dict[str, str]] = {
        "cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
        "cls.predictions.decoder.bias": "cls.predictions.bias",
    }

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__(config)
        self.add_base_model(add_pooling_layer=False)
        self.cls = BertHeads(config, mlm=True, nsp=False)
        self.post_init()

    def head(self, outputs: BaseModelOutputWithPooling, labels: Tensor | None) -> LogitsOutput:
        """``labels`` (B, T): the true token at masked positions, -100 elsewhere."""
        logits = self.cls.predictions(outputs.last_hidden_state)  # (B, T, V)
        return LogitsOutput(masked_lm_loss(logits, labels), logits, outputs.hidden_states, outputs.attentions)


class BertForPreTraining(BertPreTrainedModel):
    """Masked-token and next-sentence heads together: ``transformers.BertForPreTraining``."""

    _tied_weights_keys = BertForMaskedLM._tied_weights_keys

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__(config)
        self.add_base_model()
        self.cls = BertHeads(config, mlm=True, nsp=True)
        self.post_init()

    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        position_ids: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        labels: Tensor | None = None,  # (B, T), as in BertForMaskedLM
        next_sentence_label: Tensor | None = None,  # (B,): 0 = B follows A, 1 = B is random
        **flags: Unpack[OutputFlags],
    ) -> PreTrainingOutput:
        inputs = (input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds)
        outputs = self.base_model(*inputs, return_dict=True, **flags)
        prediction_logits = self.cls.predictions(outputs.last_hidden_state)  # (B, T, V)
        seq_relationship_logits = self.cls.seq_relationship(outputs.pooler_output)  # (B, 2)
        loss = None
        if labels is not None and next_sentence_label is not None:
            next_sentence_loss = F.cross_entropy(seq_relationship_logits, next_sentence_label.view(-1))
            loss = masked_lm_loss(prediction_logits, labels) + next_sentence_loss
        return PreTrainingOutput(
            loss, prediction_logits, seq_relationship_logits, outputs.hidden_states, outputs.attentions
        )


class BertForNextSentencePrediction(BertPreTrainedModel, HeadModel):
    """Is sentence B the continuation of sentence A? ``transformers.BertForNextSentencePrediction``."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__(config)
        self.add_base_model()
        self.cls = BertHeads(config, mlm=False, nsp=True)
        self.post_init()

    def head(self, outputs: BaseModelOutputWithPooling, labels: Tensor | None) -> LogitsOutput:
        """``labels`` (B,): 0 = sentence B follows A, 1 = B is random."""
        logits = self.cls.seq_relationship(outputs.pooler_output)  # (B, 2)
        loss = None if labels is None else F.cross_entropy(logits, labels.view(-1))
        return LogitsOutput(loss, logits, outputs.hidden_states, outputs.attentions)


class BertForSequenceClassification(BertPreTrainedModel, HeadModel):
    """A linear classifier (or regressor) on the pooled first token."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__(config)
        self.add_base_model()
        self.dropout = nn.Dropout(config.head_dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def head(self, outputs: BaseModelOutputWithPooling, labels: Tensor | None) -> LogitsOutput:
        """``labels``: (B,) class ids, (B,) targets (regression) or (B, num_labels) multi-label targets."""
        logits = self.classifier(self.dropout(outputs.pooler_output))  # (B, num_labels)
        loss = sequence_classification_loss(logits, labels, self.config)
        return LogitsOutput(loss, logits, outputs.hidden_states, outputs.attentions)


class BertForTokenClassification(BertPreTrainedModel, HeadModel):
    """A label per token (e.g. named entities): linear classifier on every hidden state."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__(config)
        self.add_base_model(add_pooling_layer=False)
        self.dropout = nn.Dropout(config.head_dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def head(self, outputs: BaseModelOutputWithPooling, labels: Tensor | None) -> LogitsOutput:
        """``labels`` (B, T): a label id per token, -100 where none."""
        logits = self.classifier(self.dropout(outputs.last_hidden_state))  # (B, T, num_labels)
        loss = None if labels is None else F.cross_entropy(logits.view(-1, self.config.num_labels), labels.view(-1))
        return LogitsOutput(loss, logits, outputs.hidden_states, outputs.attentions)


class BertForQuestionAnswering(BertPreTrainedModel):
    """Extractive QA: a start score and an end score for every token."""

    def __init__(self, config: EncoderConfig) -> None:
        if config.num_labels != 2:
            raise ConfigError(
                f"{type(self).__name__} scores a start and an end per token: it needs "
                f"num_labels=2, got {config.num_labels}"
            )
        super().__init__(config)
        self.add_base_model(add_pooling_layer=False)
        self.qa_outputs = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        position_ids: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        start_positions: Tensor | None = None,  # (B,): the answer's first token
        end_positions: Tensor | None = None,  # (B,): the answer's last token
        **flags: Unpack[OutputFlags],
    ) -> QuestionAnsweringModelOutput:
        inputs = (input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds)
        return self.head(self.base_model(*inputs, return_dict=True, **flags), start_positions, end_positions)

    def head(
        self, outputs: BaseModelOutputWithPooling, start_positions: Tensor | None, end_positions: Tensor | None
    ) -> QuestionAnsweringModelOutput:
        """Span scores from the encoder's ``outputs``, and the loss if both positions are given."""
        logits = self.qa_outputs(outputs.last_hidden_state)  # (B, T, 2)
        start_logits, end_logits = (x.squeeze(-1).contiguous() for x in logits.split(1, dim=-1))  # (B, T) each
        loss = span_loss(start_logits, end_logits, start_positions, end_positions)
        return QuestionAnsweringModelOutput(loss, start_logits, end_logits, outputs.hidden_states, outputs.attentions)


class BertForMultipleChoice(BertPreTrainedModel):
    """Scores each of C candidate sequences: inputs are (B, C, T), logits (B, C)."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__(config)
        self.add_base_model()
        self.dropout = nn.Dropout(config.head_dropout)
        self.classifier = nn.Linear(config.hidden_size, 1)
        self.post_init()

    def forward(
        self,
        input_ids: Tensor | None = None,  # (B, C, T)
        attention_mask: Tensor | None = None,  # (B, C, T)
        token_type_ids: Tensor | None = None,  # (B, C, T)
        position_ids: Tensor | None = None,  # (B, C, T)
        inputs_embeds: Tensor | None = None,  # (B, C, T, H)
        labels: Tensor | None = None,  # (B,): the right choice
        **flags: Unpack[OutputFlags],
    ) -> LogitsOutput:
        inputs = (input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds)
        flat = (None if x is None else x.reshape(-1, *x.shape[2:]) for x in inputs)  # (B * C, T, ...)
        outputs = self.base_model(*flat, return_dict=True, **flags)  # checks first that one of the two is given
        choices = (input_ids if input_ids is not None else inputs_embeds).shape[1]
        return self.head(outputs, labels, choices)

    def head(self, outputs: BaseModelOutputWithPooling, labels: Tensor | None, choices: int) -> LogitsOutput:
        """A score per choice from the encoder's ``outputs`` over all B * C sequences; the loss if given labels."""
        logits = self.classifier(self.dropout(outputs.pooler_output)).view(-1, choices)  # (B, C)
        loss = None if labels is None else F.cross_entropy(logits, labels)
        return LogitsOutput(loss, logits, outputs.hidden_states, outputs.attentions)


class RobertaLMHead(nn.Module):
    """RoBERTa's MLM head (``lm_head``): as BERT's, with exact GELU whatever ``hidden_act`` says."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, hidden_states: Tensor) -> Tensor:
        return self.decoder(self.layer_norm(F.gelu(self.dense(hidden_states))))  # (B, T, V)


class RobertaClassificationHead(nn.Module):
    """RoBERTa's sentence classifier: dense + tanh + out_proj on the first token (no pooler)."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.head_dropout)
        self.out_proj = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, hidden_states: Tensor) -> Tensor:
        x = self.dropout(hidden_states[:, 0])  # (B, H): the <s> token
        return self.out_proj(self.dropout(torch.tanh(self.dense(x))))  # (B, num_labels)


class RobertaForMaskedLM(RobertaPreTrainedModel, HeadModel):
    """Scores over the vocabulary for every token: ``transformers.RobertaForMaskedLM``."""

    _tied_weights_keys: ClassVar[dict[str, str]] = {
        "lm_head.decoder.weight": "roberta.embeddings.word_embeddings.weight",
        "lm_head.decoder.bias": "lm_head.bias",
    }

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__(config)
        self.add_base_model(add_pooling_layer=False)
        self.lm_head = RobertaLMHead(config)
        self.post_init()

    def head(self, outputs: BaseModelOutputWithPooling, labels: Tensor | None) -> LogitsOutput:
        """``labels`` (B, T): the true token at masked positions, -100 elsewhere."""
        logits = self.lm_head(outputs.last_hidden_state)  # (B, T, V)
        return LogitsOutput(masked_lm_loss(logits, labels), logits, outputs.hidden_states, outputs.attentions)


class RobertaForSequenceClassification(RobertaPreTrainedModel, HeadModel):
    """A classifier (or regressor) on the first token's hidden state: no pooler, a two-layer head."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__(config)
        self.add_base_model(add_pooling_layer=False)
        self.classifier = RobertaClassificationHead(config)
        self.post_init()

    def head(self, outputs: BaseModelOutputWithPooling, labels: Tensor | None) -> LogitsOutput:
        """``labels`` as in BertForSequenceClassification."""
        logits = self.classifier(outputs.last_hidden_state)  # (B, num_labels)
        loss = sequence_classification_loss(logits, labels, self.config)
        return LogitsOutput(loss, logits, outputs.hidden_states, outputs.attentions)


class RobertaForTokenClassification(RobertaPreTrainedModel, BertForTokenClassification):
    """BertForTokenClassification on RoBERTa's encoder."""


class RobertaForQuestionAnswering(RobertaPreTrainedModel, BertForQuestionAnswering):
    """BertForQuestionAnswering on RoBERTa's encoder."""


class RobertaForMultipleChoice(RobertaPreTrainedModel, BertForMultipleChoice):
    """BertForMultipleChoice on RoBERTa's encoder, taking its inputs in the order transformers' class does."""

    def forward(
        self,
        input_ids: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        labels: Tensor | None = None,
        position_ids: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        **flags: Unpack[OutputFlags],
    ) -> LogitsOutput:
        inputs = (input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds)
        return super().forward(*inputs, labels, **flags)


# -- helpers: input checks, pruning, construction --------------------------------------------


def check_inputs(
    config: EncoderConfig,
    input_ids: Tensor | None,
    attention_mask: Tensor | None,
    token_type_ids: Tensor | None,
    position_ids: Tensor | None,
    inputs_embeds: Tensor | None,
    position_offset: int,
    width: int,
    bounded_positions: bool = True,
    dtype: torch.dtype | None = None,
) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """Refuse inputs that would fail deep inside an embedding lookup, or silently compute nonsense.

    Returns ``input_ids``, ``token_type_ids`` and ``position_ids`` as the lookups take them: ids
    of any integer dtype are accepted (int8, int16, uint8, ... become int64); float and bool ids
    are refused. ``inputs_embeds`` must be floats of the model's ``dtype`` (if given): transformers
    fails on float64 embeddings for a float32 model, here the error says so. Without
    ``bounded_positions`` (rotary models: positions index no table) any length and any position id
    go, as in transformers. Errors are ``InputError`` (a ValueError) or ``InputTypeError`` (a
    TypeError) naming the argument, its shape or value, and what is expected. Each range check is
    one min/max over the ids: microseconds next to a forward pass. Skipped while torch.compile
    traces, where data-dependent checks would break the graph.
    """
    if torch.compiler.is_compiling():
        return input_ids, token_type_ids, position_ids
    if (input_ids is None) == (inputs_embeds is None):
        raise InputError("pass exactly one of input_ids and inputs_embeds")
    if input_ids is not None:
        input_ids = _check_ids("input_ids", input_ids, config.vocab_size, "vocab_size")
        if input_ids.dim() != 2:
            raise InputError(f"input_ids must have shape (batch, length), got {tuple(input_ids.shape)}")
        shape = input_ids.shape
    else:
        if not isinstance(inputs_embeds, Tensor) or not inputs_embeds.is_floating_point():
            kind = inputs_embeds.dtype if isinstance(inputs_embeds, Tensor) else type(inputs_embeds).__name__
            raise InputTypeError(f"inputs_embeds must be a tensor of floats, got {kind}")
        if inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != width:
            raise InputError(
                f"inputs_embeds must have shape (batch, length, {width}), got {tuple(inputs_embeds.shape)}"
            )
        if inputs_embeds.numel() == 0:
            raise InputError(f"inputs_embeds is empty (shape {tuple(inputs_embeds.shape)})")
        if dtype is not None and inputs_embeds.dtype != dtype:
            raise InputTypeError(
                f"inputs_embeds has dtype {inputs_embeds.dtype}, but the model computes in {dtype}: "
                f"pass inputs_embeds.to({dtype})"
            )
        shape = inputs_embeds.shape[:2]
    positions = config.max_position_embeddings - position_offset
    if bounded_positions and position_ids is None and shape[1] > positions:
        offset = f" after the padding offset of {position_offset}" if position_offset else ""
        raise InputError(
            f"input_ids: sequence length {shape[1]} exceeds the {positions} positions the model has "
            f"(max_position_embeddings={config.max_position_embeddings}{offset}); truncate the inputs"
        )
    for name, tensor in (("attention_mask", attention_mask), ("token_type_ids", token_type_ids)):
        if tensor is not None and (not isinstance(tensor, Tensor) or tensor.shape != shape):
            got = tuple(tensor.shape) if isinstance(tensor, Tensor) else type(tensor).__name__
            raise InputError(f"{name} has shape {got}, but the inputs have {tuple(shape)}")
    if token_type_ids is not None:
        token_type_ids = _check_ids("token_type_ids", token_type_ids, config.type_vocab_size, "type_vocab_size")
    if position_ids is not None:
        # (batch, length), or one row for the whole batch, (1, length), as transformers broadcasts it.
        got = tuple(position_ids.shape) if isinstance(position_ids, Tensor) else None
        if got not in (tuple(shape), (1, shape[1])):
            raise InputError(
                f"position_ids has shape {got or type(position_ids).__name__}, expected (batch, length) = "
                f"{tuple(shape)}, or (1, {shape[1]}) for every row"
            )
        if bounded_positions:
            position_ids = _check_ids(
                "position_ids", position_ids, config.max_position_embeddings, "max_position_embeddings"
            )
    return input_ids, token_type_ids, position_ids


def _check_ids(name: str, ids: Tensor, limit: int, field: str) -> Tensor:
    """Integer ids within [0, limit), as a tensor the lookup takes; else an error naming the argument and the value.

    ``nn.Embedding`` takes int32 and int64 ids only: other integer dtypes are converted to int64.
    """
    if not isinstance(ids, Tensor):
        raise InputTypeError(f"{name} must be a tensor of integer ids, got {type(ids).__name__}")
    if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
        raise InputTypeError(f"{name} must hold integer ids, got dtype {ids.dtype}")
    if ids.numel() == 0:
        raise InputError(f"{name} is empty (shape {tuple(ids.shape)})")
    if ids.dtype not in (torch.int32, torch.int64):
        ids = ids.long()
    low, high = (int(x) for x in torch.aminmax(ids))
    if low < 0 or high >= limit:
        raise InputError(f"{name} holds {low if low < 0 else high}, outside [0, {limit}) ({field}={limit})")
    return ids


@torch.no_grad()
def keep_features(linear: nn.Linear, index: Tensor, dim: int) -> None:
    """Keep only the output features (``dim=0``) or input features (``dim=1``) of ``linear`` listed in ``index``."""
    linear.weight = nn.Parameter(linear.weight.index_select(dim, index), linear.weight.requires_grad)
    if dim == 0 and linear.bias is not None:
        linear.bias = nn.Parameter(linear.bias.index_select(0, index), linear.bias.requires_grad)
    linear.out_features, linear.in_features = linear.weight.shape


def embedding(rows: int, width: int, padding_idx: int | None = None) -> nn.Embedding:
    """An ``nn.Embedding`` without torch's own init: ``_init_weights`` sets it (or the checkpoint does).

    Besides wasted work, torch's ``normal_`` on the meta device (used while loading) imports
    torch._dynamo on first use, which costs over a second.
    """
    return nn.Embedding(rows, width, padding_idx=padding_idx, _weight=torch.empty(rows, width))
