"""ModernBERT: pre-LayerNorm blocks, rotary positions, a GLU feed-forward, and sliding-window attention.

What differs from BERT, and only this is written here:

* no position or token-type tables: queries and keys are rotated (``minibert.rotary``), with one
  theta for the global layers and another for the sliding-window ones; inputs carry no token
  types (refused by name, with what to do instead);
* ``config.layer_types`` makes some layers attend to the whole sequence and the others only to
  the tokens within ``local_attention // 2`` positions (``sliding_window_mask``); the mask the
  layers share (``ModernBertMask``) carries both biases and each kind's rotation;
* each block normalises before attention and before the feed-forward and adds the residual
  after (``final_norm`` closes the stack; the first block's ``attn_norm`` is an identity, the
  embeddings having just been normalised); ``Wqkv`` projects queries, keys and values at once;
  the feed-forward is a GLU; LayerNorms and Linears have biases only where the config says;
* it runs unpadded by default, as every minibert model does for inference (``set_unpadding``), the
  way it was designed to. A head whose outputs would read a padding position's hidden state (the
  span loss, a label at padding, the first token of a left-padded sentence) runs that call padded
  (``reads_padding``), so that every output is transformers' own;
* the heads share a ``head`` (dense, activation, norm) before their classifier; sentence heads
  read the first token or the mean of the real tokens (``classifier_pooling``); the MLM
  ``decoder`` is tied to ``tok_embeddings``; weights start truncated-normal, scaled by role.

``attend()``, the layouts (``AttentionMask``), the layer loop (``run_layers``), the input checks
and the losses come from ``minibert.bert``. Mirrors transformers/models/modernbert/modeling_modernbert.py.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Self, TypeVar, Unpack

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from minibert.activations import ACTIVATIONS
from minibert.bert import (
    AttentionMask,
    attend,
    check_inputs,
    embedding,
    masked_lm_loss,
    run_layers,
    sequence_classification_loss,
    span_loss,
    unpadded_layout,
)
from minibert.config import EncoderConfig, OwnNamesConfig, check_field_types, check_size, derived_field
from minibert.errors import ConfigError
from minibert.outputs import BaseModelOutputWithPooling, LogitsOutput, QuestionAnsweringModelOutput
from minibert.pretrained import OutputFlags, PreTrainedModel, labelled_padding
from minibert.rotary import SCALINGS, RotaryEmbedding, apply_rotary

# ModernBERT's two kinds of attention layer, and the rotary theta each uses unless the config says.
MODERNBERT_ROPE_THETA = {"full_attention": 160_000.0, "sliding_attention": 10_000.0}


@dataclass(frozen=True)
class ModernBertConfig(OwnNamesConfig):
    """Mirrors ``transformers.ModernBertConfig`` (ModernBERT-base defaults).

    ``layer_types`` says, layer by layer, whether it attends globally (``"full_attention"``) or
    within ``local_attention // 2`` tokens each side (``"sliding_attention"``); without it, every
    third layer from the first is global. ``rope_parameters`` holds each kind's rotary theta (and
    scaling). transformers 4.x files spell these ``global_attn_every_n_layers``,
    ``global_rope_theta`` and ``local_rope_theta`` (and ``rope_scaling``): ``from_dict`` reads them
    as transformers 5 does (``ModernBertConfig.__post_init__`` and ``convert_rope_params_to_dict``).

    ModernBERT names some shared fields its own way (``hidden_activation``, ``norm_eps``,
    ``attention_dropout``): see ``OwnNamesConfig``.
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

    hidden_act: str = derived_field()
    layer_norm_eps: float = derived_field()
    attention_probs_dropout_prob: float = derived_field()
    hidden_dropout_prob: float = derived_field()
    type_vocab_size: int = derived_field()
    position_embedding_type: str = derived_field()
    is_decoder: bool = derived_field()
    add_cross_attention: bool = derived_field()

    def __post_init__(self) -> None:
        self.set_generic_fields()
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
            if rope["rope_type"] not in SCALINGS:
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
        """As OwnNamesConfig's, reading transformers 4.x's spelling too (4.x keys may also come as overrides).

        ``global_attn_every_n_layers`` gives ``layer_types`` where a file has none (and is kept, as
        transformers keeps it); ``global_rope_theta``, ``local_rope_theta`` and ``rope_scaling`` go
        into ``rope_parameters``, where a theta given there wins. Generic names in a file
        (``position_embedding_type``, ...) are kept in ``extra``.
        """
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
        return super().from_dict(values, **overrides)

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


M = TypeVar("M", bound=nn.Module)


def with_init(module: M, role: str) -> M:
    """Tag ``module`` with the role that sets its init std: "in", "out", "embedding", "final_out" (_init_weights)."""
    module.init_role = role
    return module


def layer_norm(config: ModernBertConfig) -> nn.LayerNorm:
    return nn.LayerNorm(config.hidden_size, eps=config.norm_eps, bias=config.norm_bias)


# -- embeddings -------------------------------------------------------------------------------


class ModernBertEmbeddings(nn.Module):
    """Token embeddings, LayerNorm, dropout: no positions (rotary), no token types (``ModernBertEmbeddings``)."""

    def __init__(self, config: ModernBertConfig) -> None:
        super().__init__()
        self.tok_embeddings = with_init(
            embedding(config.vocab_size, config.hidden_size, config.pad_token_id), "embedding"
        )
        self.norm = layer_norm(config)
        self.drop = nn.Dropout(config.embedding_dropout)

    def forward(self, input_ids: Tensor | None, inputs_embeds: Tensor | None) -> Tensor:
        if inputs_embeds is None:
            inputs_embeds = self.tok_embeddings(input_ids)  # (B, T, H)
        return self.drop(self.norm(inputs_embeds))


# -- attention masks: global and sliding-window layers ------------------------------------------


def sliding_window_mask(length: int, window: int, device: torch.device | None = None) -> Tensor:
    """Which keys a query sees in a sliding-window layer: (T, T), True where ``|query - key| <= window``.

    ModernBERT's window is ``local_attention`` tokens wide, ``window = local_attention // 2`` on each
    side of the query (transformers/masking_utils.py, ``sliding_window_bidirectional_overlay``);
    it counts indices in the sequence, whatever ``position_ids`` say. E.g. length 4, window 1::

        [[1, 1, 0, 0],
         [1, 1, 1, 0],
         [0, 1, 1, 1],
         [0, 0, 1, 1]]
    """
    positions = torch.arange(length, device=device)
    return (positions[None, :] - positions[:, None]).abs() <= window  # (T, T)


@dataclass
class ModernBertMask(AttentionMask):
    """AttentionMask, with what ModernBERT's sliding-window layers read instead of ``bias`` and ``rotary``.

    The global layers read ``bias`` (B, 1, 1, T), padding only, and ``rotary``, the cos and sin of
    each position's rotation (B or 1, T, hs) with the global theta. The sliding-window layers read
    ``window_bias`` (B, 1, T, T), padding and the keys outside the window, and ``window_rotary``,
    with the local theta. All are in the (B, T) layout attention works in, in both layouts:
    windows and rotations are counted within each sequence.
    """

    window_bias: Tensor | None = None
    window_rotary: tuple[Tensor, Tensor] | None = None

    @classmethod
    def from_inputs(
        cls,
        attention_mask: Tensor | None,  # (B, T): 1 = token, 0 = padding
        position_ids: Tensor,  # (B, T) or (1, T)
        hidden_states: Tensor,  # (B, T, H): the embeddings, for their length, dtype and device
        config: ModernBertConfig,
        rotary: nn.ModuleDict,
        unpad: bool,
    ) -> ModernBertMask:
        """The mask of one forward pass, computed once for every layer: padding, the window, each kind's rotation."""
        mask = cls.from_padding(attention_mask, hidden_states.dtype, unpad=unpad, embeddings=hidden_states)
        length, dtype, device = hidden_states.shape[1], hidden_states.dtype, hidden_states.device
        window_bias = mask.bias  # a window that spans the whole sequence masks only padding
        if "sliding_attention" in config.layer_types and length - 1 > config.sliding_window:
            keep = sliding_window_mask(length, config.sliding_window, device)[None, None]  # (1, 1, T, T)
            if attention_mask is not None:
                keep = keep & attention_mask[:, None, None, :].bool()  # (B, 1, T, T)
            # 0 or the most negative value, never their sum: a query with no key left keeps finite scores.
            window_bias = torch.zeros(keep.shape, dtype=dtype, device=device).masked_fill(~keep, torch.finfo(dtype).min)
        rotations = {kind: rotate(position_ids, dtype) for kind, rotate in rotary.items()}  # cos, sin: (B or 1, T, hs)
        return dataclasses.replace(
            mask,
            rotary=rotations.get("full_attention"),
            window_bias=window_bias,
            window_rotary=rotations.get("sliding_attention"),
        )


# -- attention, feed-forward, one layer ---------------------------------------------------------


class ModernBertAttention(nn.Module):
    """Fused ``Wqkv``, rotary queries and keys, global or sliding-window attention, ``Wo`` (``ModernBertAttention``).

    ``attn_implementation``: ``"eager"`` writes the maths out (and can return the probabilities),
    ``"sdpa"`` calls PyTorch's fused kernel. Queries and keys are rotated in float32 and cast back,
    as transformers does (``apply_rotary_pos_emb``): the same in fp32, not quite in bf16.
    """

    def __init__(self, config: ModernBertConfig, layer_type: str) -> None:
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_size = config.hidden_size // config.num_attention_heads
        self.layer_type = layer_type
        self.Wqkv = with_init(nn.Linear(config.hidden_size, 3 * config.hidden_size, bias=config.attention_bias), "in")
        self.Wo = with_init(nn.Linear(config.hidden_size, config.hidden_size, bias=config.attention_bias), "out")
        self.out_drop = nn.Dropout(config.attention_dropout)
        self.dropout_prob = config.attention_dropout
        self.attn_implementation = "sdpa"

    def forward(
        self,
        hidden_states: Tensor,  # (B, T, H), or (N, H) unpadded
        mask: ModernBertMask,
        output_attentions: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        qkv = mask.to_batch(self.Wqkv(hidden_states))  # (B, T, 3 * H)
        batch, length, _ = qkv.shape
        # The 3 * H features are queries, keys, values in turn, each nh heads of hs.
        q, k, v = qkv.view(batch, length, 3, self.num_heads, self.head_size).permute(2, 0, 3, 1, 4)  # (B, nh, T, hs)
        sliding = self.layer_type == "sliding_attention"
        bias, (cos, sin) = (mask.window_bias, mask.window_rotary) if sliding else (mask.bias, mask.rotary)
        q, k = (apply_rotary(x, cos, sin, in_float32=True) for x in (q, k))
        eager = self.attn_implementation == "eager" or output_attentions
        dropout = self.dropout_prob if self.training else 0.0
        k, v = mask.hide_padding(k), mask.hide_padding(v)  # padding never reaches real tokens, even as NaN
        context, probs = attend(q, k, v, bias, dropout, eager)  # (B, nh, T, hs)
        context = context.transpose(1, 2).reshape(batch, length, -1)  # (B, T, H)
        return self.out_drop(self.Wo(mask.to_tokens(context))), probs


class ModernBertMLP(nn.Module):
    """A GLU (``ModernBertMLP``): ``Wi`` widens to an input and a gate, ``Wo`` narrows ``act(input) * gate`` back.

    The first half of ``Wi``'s features is the input, activated; the second half gates it as it is.
    """

    def __init__(self, config: ModernBertConfig) -> None:
        super().__init__()
        self.Wi = with_init(nn.Linear(config.hidden_size, 2 * config.intermediate_size, bias=config.mlp_bias), "in")
        self.act = ACTIVATIONS[config.hidden_activation]
        self.drop = nn.Dropout(config.mlp_dropout)
        self.Wo = with_init(nn.Linear(config.intermediate_size, config.hidden_size, bias=config.mlp_bias), "out")

    def forward(self, hidden_states: Tensor) -> Tensor:
        inputs, gate = self.Wi(hidden_states).chunk(2, dim=-1)  # (B, T, intermediate_size) each, or (N, ...)
        return self.Wo(self.drop(self.act(inputs) * gate))  # (B, T, H)


class ModernBertEncoderLayer(nn.Module):
    """Pre-LayerNorm block: x + attn(attn_norm(x)), then x + mlp(mlp_norm(x)) (``ModernBertEncoderLayer``).

    Layer 0's ``attn_norm`` is an identity: the embeddings end with a LayerNorm already.
    """

    def __init__(self, config: ModernBertConfig, layer_idx: int) -> None:
        super().__init__()
        self.attn_norm = nn.Identity() if layer_idx == 0 else layer_norm(config)
        self.attn = ModernBertAttention(config, config.layer_types[layer_idx])
        self.mlp_norm = layer_norm(config)
        self.mlp = ModernBertMLP(config)

    def forward(
        self, hidden_states: Tensor, mask: ModernBertMask, output_attentions: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        attended, probs = self.attn(self.attn_norm(hidden_states), mask, output_attentions)
        hidden_states = hidden_states + attended  # (B, T, H), or (N, H) unpadded
        return hidden_states + self.mlp(self.mlp_norm(hidden_states)), probs


# -- the base model ---------------------------------------------------------------------------

# Inputs transformers' ModernBERT takes and drops (5.x), or took for its own unpadding (4.x): refused, and why.
REFUSED_INPUTS = {
    "token_type_ids": "ModernBERT has no token types; leave them out, e.g. tokenizer(..., return_token_type_ids=False)",
    "sliding_window_mask": "minibert builds the sliding-window mask from attention_mask and config.local_attention",
    **dict.fromkeys(
        ("indices", "cu_seqlens", "max_seqlen", "batch_size", "seq_len"),
        "minibert unpads from attention_mask itself (see set_unpadding): pass the padded (batch, length) inputs",
    ),
}


class ModernBertPreTrainedModel(PreTrainedModel):
    """What ModernBERT's models share: the config class, the encoder's name (``model``), init, refused inputs."""

    config_class: ClassVar[type[EncoderConfig]] = ModernBertConfig
    base_model_prefix: ClassVar[str] = "model"

    @classmethod
    def base_model_class(cls) -> type[PreTrainedModel]:
        return ModernBertModel

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Refuse by name the inputs of ``REFUSED_INPUTS`` (transformers would drop them); None stands for absent."""
        for name in sorted(REFUSED_INPUTS.keys() & kwargs.keys()):
            if kwargs.pop(name) is not None:
                raise ValueError(f"{name} is not supported: {REFUSED_INPUTS[name]}")
        return super().__call__(*args, **kwargs)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.base_model.embeddings.tok_embeddings

    def set_input_embeddings(self, embeddings: nn.Embedding) -> None:
        self.base_model.embeddings.tok_embeddings = embeddings

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """transformers' ModernBERT rule (``ModernBertPreTrainedModel._init_weights``), by each weight's role.

        Weights start as normal(0, std) truncated at ``initializer_cutoff_factor`` stds: std
        ``initializer_range`` for the input projections (``Wqkv``, ``Wi``) and the token embeddings
        (padding row included), ``initializer_range / sqrt(2 * num_hidden_layers)`` for the output
        projections (``Wo``, the heads' ``dense``, the ``decoder``), ``hidden_size ** -0.5`` for
        the classifiers. Biases start at 0, LayerNorms at 1 (bias 0); untagged modules (a resized
        vocabulary's) follow PreTrainedModel's rule, as there.
        """
        config = self.config
        role = getattr(module, "init_role", None)
        if role is not None:
            std = {
                "in": config.initializer_range,
                "out": config.initializer_range / math.sqrt(2.0 * config.num_hidden_layers),
                "embedding": config.initializer_range,
                "final_out": config.hidden_size**-0.5,
            }[role]
            cutoff = (3 if config.initializer_cutoff_factor is None else config.initializer_cutoff_factor) * std
            nn.init.trunc_normal_(module.weight, mean=0.0, std=std, a=-cutoff, b=cutoff)
            if getattr(module, "bias", None) is not None:
                module.bias.zero_()
        elif isinstance(module, nn.LayerNorm):
            module.weight.fill_(1.0)
            if module.bias is not None:
                module.bias.zero_()
        else:
            super()._init_weights(module)


class ModernBertModel(ModernBertPreTrainedModel):
    """Embeddings, the layers and ``final_norm``: ``transformers.ModernBertModel`` (it has no pooler).

    Unpadded by default for inference (``minibert.bert.unpadded_layout``). Head models build it with
    ``init_weights=False`` and initialise the whole model once; ``add_pooling_layer`` exists only
    because heads build every encoder the same way.
    """

    def __init__(self, config: ModernBertConfig, add_pooling_layer: bool = False, init_weights: bool = True) -> None:
        if add_pooling_layer:
            raise ConfigError("ModernBERT has no pooler: its sentence heads pool last_hidden_state themselves")
        super().__init__(config)
        self.embeddings = ModernBertEmbeddings(config)
        self.layers = nn.ModuleList(ModernBertEncoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.final_norm = layer_norm(config)
        head_size = config.hidden_size // config.num_attention_heads
        self.rotary_emb = nn.ModuleDict(
            {
                kind: RotaryEmbedding(
                    head_size,
                    rope["rope_theta"],
                    rope["rope_type"],
                    rope.get("factor", 1.0),
                    config.max_position_embeddings,
                )
                for kind, rope in config.rope_parameters.items()
                if kind in config.layer_types
            }
        )  # no weights: the rotations are computed from the positions in each forward pass
        self.gradient_checkpointing: dict[str, Any] | None = None  # see PreTrainedModel.gradient_checkpointing_enable
        self.unpad: bool | Literal["auto"] = "auto"  # see PreTrainedModel.set_unpadding
        if init_weights:
            self.post_init()

    def forward(
        self,
        input_ids: Tensor | None = None,  # (B, T)
        attention_mask: Tensor | None = None,  # (B, T): 1 = token, 0 = padding
        position_ids: Tensor | None = None,  # (B, T); default 0, 1, ... in every row, padding or not
        inputs_embeds: Tensor | None = None,  # (B, T, H)
        *,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
    ) -> BaseModelOutputWithPooling:
        config = self.config
        output_hidden_states = config.output_hidden_states if output_hidden_states is None else output_hidden_states
        output_attentions = config.output_attentions if output_attentions is None else output_attentions
        if isinstance(attention_mask, dict):
            raise ValueError(
                "attention_mask: pass the (batch, length) mask of 1 = token, 0 = padding; minibert builds the "
                "global and sliding-window masks from it (masks prepared by layer type are not supported)"
            )
        inputs = (input_ids, attention_mask, None, position_ids, inputs_embeds)
        dtype = self.embeddings.tok_embeddings.weight.dtype
        input_ids, _, position_ids = check_inputs(  # ids of any integer dtype come back as long
            config,
            *inputs,
            0,
            config.hidden_size,
            bounded_positions=False,
            dtype=dtype,  # rotary: any length goes
        )
        hidden_states = self.embeddings(input_ids, inputs_embeds)  # (B, T, H)
        if position_ids is None:
            position_ids = torch.arange(hidden_states.shape[1], device=hidden_states.device)[None]  # (1, T)
        unpad = unpadded_layout(self.unpad, attention_mask, output_attentions)
        mask = ModernBertMask.from_inputs(attention_mask, position_ids, hidden_states, config, self.rotary_emb, unpad)
        recompute = self.gradient_checkpointing if self.training else None
        outputs = run_layers(self.layers, hidden_states, mask, output_hidden_states, output_attentions, recompute)
        # final_norm on the real tokens only, so that padding stays zeros on the unpadded path.
        outputs.last_hidden_state = mask.to_batch(self.final_norm(mask.to_tokens(outputs.last_hidden_state)))
        if outputs.hidden_states is not None:  # transformers' last hidden state is the normalised one
            outputs.hidden_states = (*outputs.hidden_states[:-1], outputs.last_hidden_state)
        return outputs


# -- heads ------------------------------------------------------------------------------------
#
# Every head applies ModernBertPredictionHead (``head``: the checkpoints' name, which is why the
# method that makes a head a head is ``scores()`` here, not ``head()`` as in minibert.bert).


class ModernBertPredictionHead(nn.Module):
    """Dense, activation, LayerNorm: what each head applies before its scores (``ModernBertPredictionHead``)."""

    def __init__(self, config: ModernBertConfig) -> None:
        super().__init__()
        self.dense = with_init(nn.Linear(config.hidden_size, config.hidden_size, bias=config.classifier_bias), "out")
        self.act = ACTIVATIONS[config.classifier_activation]
        self.norm = layer_norm(config)

    def forward(self, hidden_states: Tensor) -> Tensor:
        return self.norm(self.act(self.dense(hidden_states)))  # (..., H)


class ModernBertHeadModel(ModernBertPreTrainedModel):
    """A head on the encoder: ``forward`` takes transformers' inputs in its order, runs the encoder, then ``scores()``.

    A call runs padded if ``reads_padding`` says its outputs read a padding position (on the unpadded
    path those hidden states are zeros, not transformers' values): ``PreTrainedModel.__call__`` asks it.
    """

    def forward(
        self,
        input_ids: Tensor | None = None,  # (B, T)
        attention_mask: Tensor | None = None,  # (B, T)
        position_ids: Tensor | None = None,  # (B, T)
        inputs_embeds: Tensor | None = None,  # (B, T, H)
        labels: Tensor | None = None,  # what scores() reads: see each head
        **flags: Unpack[OutputFlags],
    ) -> LogitsOutput:
        inputs = (input_ids, attention_mask, position_ids, inputs_embeds)
        outputs = self.base_model(*inputs, return_dict=True, **flags)
        return self.scores(outputs, labels, attention_mask)

    def scores(
        self, outputs: BaseModelOutputWithPooling, labels: Tensor | None, attention_mask: Tensor | None
    ) -> LogitsOutput:
        """Scores from the encoder's ``outputs``, and the loss if ``labels`` are given."""
        raise NotImplementedError(f"{type(self).__name__} computes no scores")


class ModernBertForMaskedLM(ModernBertHeadModel):
    """Scores over the vocabulary for every token: ``transformers.ModernBertForMaskedLM``.

    With ``sparse_prediction`` and labels, only the labelled tokens are scored: logits (M, V).
    """

    _tied_weights_keys: ClassVar[dict[str, str]] = {"decoder.weight": "model.embeddings.tok_embeddings.weight"}

    def __init__(self, config: ModernBertConfig) -> None:
        super().__init__(config)
        self.add_base_model(add_pooling_layer=False)
        self.head = ModernBertPredictionHead(config)
        self.decoder = with_init(nn.Linear(config.hidden_size, config.vocab_size, bias=config.decoder_bias), "out")
        self.post_init()

    def _decoder_name(self) -> str:
        return "decoder"

    def reads_padding(self, inputs: dict[str, Any]) -> bool:
        """A label at a padding position; with ``sparse_prediction``, unlabelled is ``sparse_pred_ignore_index``."""
        ignored = self.config.sparse_pred_ignore_index if self.config.sparse_prediction else -100
        return labelled_padding(inputs.get("attention_mask"), inputs.get("labels"), ignored)

    def scores(
        self, outputs: BaseModelOutputWithPooling, labels: Tensor | None, attention_mask: Tensor | None
    ) -> LogitsOutput:
        """``labels`` (B, T): the true token at masked positions, -100 elsewhere."""
        hidden_states = outputs.last_hidden_state  # (B, T, H)
        if self.config.sparse_prediction and labels is not None:
            labels = labels.reshape(-1)  # (B * T,)
            kept = labels != self.config.sparse_pred_ignore_index
            hidden_states, labels = hidden_states.reshape(labels.shape[0], -1)[kept], labels[kept]  # (M, H), (M,)
        logits = self.decoder(self.head(hidden_states))  # (B, T, V), or (M, V)
        return LogitsOutput(masked_lm_loss(logits, labels), logits, outputs.hidden_states, outputs.attentions)


def mean_of_tokens(hidden_states: Tensor, attention_mask: Tensor | None) -> Tensor:
    """(B, T, H) -> (B, H): the mean over each sequence's real tokens (every position without a mask)."""
    if attention_mask is None:
        attention_mask = torch.ones(hidden_states.shape[:2], dtype=torch.bool, device=hidden_states.device)
    return (hidden_states * attention_mask.unsqueeze(-1)).sum(dim=1) / attention_mask.sum(dim=1, keepdim=True)


class ModernBertForSequenceClassification(ModernBertHeadModel):
    """A classifier (or regressor) on the first token, or on the mean of the tokens (``classifier_pooling``)."""

    def __init__(self, config: ModernBertConfig) -> None:
        super().__init__(config)
        self.add_base_model(add_pooling_layer=False)
        self.head = ModernBertPredictionHead(config)
        self.drop = nn.Dropout(config.classifier_dropout)
        self.classifier = with_init(nn.Linear(config.hidden_size, config.num_labels), "final_out")
        self.post_init()

    def reads_padding(self, inputs: dict[str, Any]) -> bool:
        """ "cls" reads position 0, whatever it holds: padding, in a left-padded batch."""
        mask = inputs.get("attention_mask")
        return self.config.classifier_pooling == "cls" and isinstance(mask, Tensor) and not bool(mask[:, 0].all())

    def scores(
        self, outputs: BaseModelOutputWithPooling, labels: Tensor | None, attention_mask: Tensor | None
    ) -> LogitsOutput:
        """``labels``: (B,) class ids, (B,) targets (regression) or (B, num_labels) multi-label targets."""
        hidden_states = outputs.last_hidden_state  # (B, T, H)
        if self.config.classifier_pooling == "cls":
            pooled = hidden_states[:, 0]  # (B, H)
        else:
            pooled = mean_of_tokens(hidden_states, attention_mask)
        logits = self.classifier(self.drop(self.head(pooled)))  # (B, num_labels)
        loss = sequence_classification_loss(logits, labels, self.config)
        return LogitsOutput(loss, logits, outputs.hidden_states, outputs.attentions)


class ModernBertForTokenClassification(ModernBertHeadModel):
    """A label per token (e.g. named entities): head, dropout, classifier on every hidden state."""

    def __init__(self, config: ModernBertConfig) -> None:
        super().__init__(config)
        self.add_base_model(add_pooling_layer=False)
        self.head = ModernBertPredictionHead(config)
        self.drop = nn.Dropout(config.classifier_dropout)
        self.classifier = with_init(nn.Linear(config.hidden_size, config.num_labels), "final_out")
        self.post_init()

    def scores(
        self, outputs: BaseModelOutputWithPooling, labels: Tensor | None, attention_mask: Tensor | None
    ) -> LogitsOutput:
        """``labels`` (B, T): a label id per token, -100 where none."""
        logits = self.classifier(self.drop(self.head(outputs.last_hidden_state)))  # (B, T, num_labels)
        loss = None if labels is None else F.cross_entropy(logits.view(-1, self.config.num_labels), labels.view(-1))
        return LogitsOutput(loss, logits, outputs.hidden_states, outputs.attentions)


class QuestionAnsweringInputs(OutputFlags, total=False):
    """transformers' ModernBertForQuestionAnswering has no ``inputs_embeds`` argument, but passes it on by keyword."""

    inputs_embeds: Tensor | None  # (B, T, H)


class ModernBertForQuestionAnswering(ModernBertPreTrainedModel):
    """Extractive QA: a start and an end score for every token (``transformers.ModernBertForQuestionAnswering``).

    The span loss is a softmax over every position, padding included: a call given span positions
    runs padded (``PreTrainedModel.reads_padding``; inference keeps the unpadded path).
    """

    def __init__(self, config: ModernBertConfig) -> None:
        if config.num_labels != 2:
            raise ConfigError(
                f"{type(self).__name__} scores a start and an end per token: it needs "
                f"num_labels=2, got {config.num_labels}"
            )
        super().__init__(config)
        self.add_base_model(add_pooling_layer=False)
        self.head = ModernBertPredictionHead(config)
        self.drop = nn.Dropout(config.classifier_dropout)
        self.classifier = with_init(nn.Linear(config.hidden_size, config.num_labels), "final_out")
        self.post_init()

    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
        start_positions: Tensor | None = None,  # (B,): the answer's first token
        end_positions: Tensor | None = None,  # (B,): the answer's last token
        **kwargs: Unpack[QuestionAnsweringInputs],
    ) -> QuestionAnsweringModelOutput:
        inputs = (input_ids, attention_mask, position_ids, kwargs.pop("inputs_embeds", None))
        outputs = self.base_model(*inputs, return_dict=True, **kwargs)
        logits = self.classifier(self.drop(self.head(outputs.last_hidden_state)))  # (B, T, 2)
        start_logits, end_logits = (x.squeeze(-1).contiguous() for x in logits.split(1, dim=-1))  # (B, T) each
        loss = span_loss(start_logits, end_logits, start_positions, end_positions)
        return QuestionAnsweringModelOutput(loss, start_logits, end_logits, outputs.hidden_states, outputs.attentions)


class ModernBertForMultipleChoice(ModernBertPreTrainedModel):
    """Scores each of C candidate sequences: inputs (B, C, T), logits (B, C) (``ModernBertForMultipleChoice``).

    ``"cls"`` pooling reads each sequence's first real token (left padding allowed), ``"mean"`` the mean of
    its tokens.
    """

    def __init__(self, config: ModernBertConfig) -> None:
        super().__init__(config)
        self.add_base_model(add_pooling_layer=False)
        self.head = ModernBertPredictionHead(config)
        self.drop = nn.Dropout(config.classifier_dropout)
        self.classifier = with_init(nn.Linear(config.hidden_size, 1), "final_out")
        self.post_init()

    def forward(
        self,
        input_ids: Tensor | None = None,  # (B, C, T)
        attention_mask: Tensor | None = None,  # (B, C, T)
        position_ids: Tensor | None = None,  # (B, C, T)
        inputs_embeds: Tensor | None = None,  # (B, C, T, H)
        labels: Tensor | None = None,  # (B,): the right choice
        **flags: Unpack[OutputFlags],
    ) -> LogitsOutput:
        inputs = (input_ids, attention_mask, position_ids, inputs_embeds)
        ids, mask, positions, embeds = (None if x is None else x.reshape(-1, *x.shape[2:]) for x in inputs)
        outputs = self.base_model(ids, mask, positions, embeds, return_dict=True, **flags)  # (B * C, T, ...)
        choices = (input_ids if input_ids is not None else inputs_embeds).shape[1]
        hidden_states = outputs.last_hidden_state  # (B * C, T, H)
        if self.config.classifier_pooling == "cls":
            first = 0 if mask is None else mask.argmax(dim=-1)  # (B * C,): the first real token
            pooled = hidden_states[torch.arange(hidden_states.shape[0], device=hidden_states.device), first]
        else:
            pooled = mean_of_tokens(hidden_states, mask)  # (B * C, H)
        logits = self.classifier(self.drop(self.head(pooled))).view(-1, choices)  # (B, C)
        loss = None if labels is None else F.cross_entropy(logits, labels)
        return LogitsOutput(loss, logits, outputs.hidden_states, outputs.attentions)
