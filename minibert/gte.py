"""GTE (the "new" GTE of gte-base/large-en-v1.5, mGTE, snowflake-arctic-embed-m-v2.0): BERT's post-LayerNorm
encoder with rotary positions and a gated feed-forward block.

What differs from BERT, and only this is written here:

* no position table: queries and keys are rotated by their positions' angles (``minibert.rotary``),
  as ``rope_parameters`` says (default, linear, or dynamic NTK beyond ``max_position_embeddings``);
  sequences may be longer than ``max_position_embeddings``;
* token types are optional: with ``type_vocab_size`` 0 (gte-base-en-v1.5) there is no table, and
  ``token_type_ids`` are ignored, as transformers ignores them;
* each layer, directly under ``layers.N`` (there is no ``encoder`` module), is attention
  (``self_attn.q_proj/k_proj/v_proj/o_proj``), dropout, residual, ``post_attention_layernorm``,
  then the feed-forward block (``mlp``), dropout, residual, ``post_mlp_layernorm``;
* the feed-forward block is gated (GLU): ``down_proj(act(gate_proj(x)) * up_proj(x))``, with a bias on
  ``down_proj`` only;
* ``GteModel`` has no pooler unless asked (the sequence classifier asks); the masked-LM head is
  dense, exact GELU, ``layer_norm``, and a decoder with its own bias.

GTE's checkpoint files spell the same weights otherwise: the layout of GTE's remote code (the Hub
repository Alibaba-NLP/new-impl, read here and never run), which transformers itself still writes
(its conversion mapping runs backwards on saving): ``encoder.layer.N``, a fused
``attention.qkv_proj`` (rows q, then k, then v), ``mlp.up_gate_proj`` (rows up, then gate: the
second half is the one activated), ``attn_ln``, ``mlp_ln``, ``lm_head.norm``, and ``new.`` for the
encoder of the remote code's head models. ``FILE_LAYOUT_KEYS`` reads those keys (the load report
names each rule), ``GteConfig`` reads the remote code's config.json (model_type "new"), and
``NewModel``, ``NewForMaskedLM``... are the names its users call. minibert saves its own state-dict
keys, which transformers reads as well. Mirrors transformers/models/gte/modeling_gte.py, and the
"gte" entry of transformers/conversion_mapping.py for the file layout.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from minibert.activations import ACTIVATIONS
from minibert.bert import (
    AttentionMask,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertPreTrainedModel,
    EncoderModel,
    HeadModel,
    Pooler,
    SelfAttention,
    embedding,
    keep_features,
    masked_lm_loss,
    run_layers,
)
from minibert.config import CONFIG_CLASSES, EncoderConfig
from minibert.errors import ConfigError
from minibert.loading import KeyRule
from minibert.nomic_bert import NomicBertLayer
from minibert.outputs import BaseModelOutputWithPooling, LogitsOutput
from minibert.rotary import RotaryConfig, RotaryEmbedding


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


# -- embeddings ---------------------------------------------------------------------------


class GteEmbeddings(nn.Module):
    """Word and (if the model has them) token-type embeddings, LayerNorm, dropout (``GteEmbeddings``).

    There is no position table: attention rotates queries and keys by their positions instead.
    """

    def __init__(self, config: GteConfig) -> None:
        super().__init__()
        self.padding_idx = config.pad_token_id
        self.word_embeddings = embedding(config.vocab_size, config.hidden_size, config.pad_token_id)
        types = config.type_vocab_size
        self.token_type_embeddings = embedding(types, config.hidden_size) if types else None
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        input_ids: Tensor | None = None,  # (B, T)
        token_type_ids: Tensor | None = None,  # (B, T); ignored without a table
        position_ids: Tensor | None = None,  # read by attention, not here
        inputs_embeds: Tensor | None = None,  # (B, T, H)
    ) -> Tensor:
        embeddings = self.word_embeddings(input_ids) if inputs_embeds is None else inputs_embeds  # (B, T, H)
        if self.token_type_embeddings is not None:
            if token_type_ids is None:  # type 0 for every token, at any length (no buffer to outgrow)
                embeddings = embeddings + self.token_type_embeddings.weight[0]
            else:
                embeddings = embeddings + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(embeddings))


# -- attention and the feed-forward block ---------------------------------------------------


class GteAttention(SelfAttention):
    """Rotary self-attention with its output projection inside (``GteAttention``).

    BERT's attention under GTE's names (``q_proj``, ``k_proj``, ``v_proj``); the queries and keys are
    rotated by the rotation the mask carries (``AttentionMask.rotary``), in the model's dtype.
    """

    projection_names: ClassVar[tuple[str, str, str]] = ("q_proj", "k_proj", "v_proj")

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__(config)
        self.o_proj = nn.Linear(self.num_heads * self.head_size, config.hidden_size)

    def forward(
        self, hidden_states: Tensor, mask: AttentionMask, output_attentions: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        context, probs = super().forward(hidden_states, mask, output_attentions)  # (B, T, nh * hs)
        return self.o_proj(context), probs  # (B, T, H)

    def prune_heads(self, heads: Iterable[int]) -> Tensor | None:
        """Remove ``heads`` from the projections, and the columns of ``o_proj`` that read them."""
        index = super().prune_heads(heads)
        if index is not None:
            keep_features(self.o_proj, index, dim=1)
        return index


class GteMLP(nn.Module):
    """The gated feed-forward block (``GteMLP``): ``down_proj(dropout(act(gate_proj(x)) * up_proj(x)))``.

    GTE's files stack ``up_proj``'s rows, then ``gate_proj``'s, in one ``up_gate_proj``: the loader
    splits it in that order, so the activated (gate) half is the second.
    """

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size)
        self.activation = ACTIVATIONS[config.hidden_act]
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: Tensor) -> Tensor:
        gated = self.activation(self.gate_proj(hidden_states)) * self.up_proj(hidden_states)  # (B, T, I)
        return self.down_proj(self.dropout(gated))  # (B, T, H)


class GteLayer(NomicBertLayer):
    """NomicBERT's layer (post-LayerNorm attention, gated feed-forward) with GTE's attention and MLP."""

    attention_class = GteAttention
    mlp_class = GteMLP


# -- the keys of GTE's files ------------------------------------------------------------------

_LAYER = r"encoder\.layer\.(\d+)\."
_FILE = "GTE's file layout"
# transformers' conversion_mapping.py "gte" entry, key by key (its renames are substrings; these match whole keys).
FILE_LAYOUT_KEYS: tuple[KeyRule, ...] = (
    KeyRule(
        _LAYER + r"attention\.qkv_proj\.(weight|bias)",
        tuple(rf"layers.\1.self_attn.{name}.\2" for name in ("q_proj", "k_proj", "v_proj")),
        f"{_FILE}: fused attention.qkv_proj, rows q|k|v -> self_attn.q_proj, k_proj, v_proj",
    ),
    KeyRule(
        _LAYER + r"attention\.([qkvo])_proj\.(weight|bias)",
        (r"layers.\1.self_attn.\2_proj.\3",),
        f"{_FILE}: encoder.layer.N.attention.*_proj -> layers.N.self_attn.*_proj",
    ),
    KeyRule(
        _LAYER + r"mlp\.up_gate_proj\.weight",
        (r"layers.\1.mlp.up_proj.weight", r"layers.\1.mlp.gate_proj.weight"),
        f"{_FILE}: fused mlp.up_gate_proj, rows up|gate (the gated half second) -> mlp.up_proj, mlp.gate_proj",
    ),
    KeyRule(
        _LAYER + r"mlp\.down_proj\.(weight|bias)",
        (r"layers.\1.mlp.down_proj.\2",),
        f"{_FILE}: encoder.layer.N.mlp.down_proj -> layers.N.mlp.down_proj",
    ),
    KeyRule(
        _LAYER + r"attn_ln\.(weight|bias)",
        (r"layers.\1.post_attention_layernorm.\2",),
        f"{_FILE}: encoder.layer.N.attn_ln -> layers.N.post_attention_layernorm",
    ),
    KeyRule(
        _LAYER + r"mlp_ln\.(weight|bias)",
        (r"layers.\1.post_mlp_layernorm.\2",),
        f"{_FILE}: encoder.layer.N.mlp_ln -> layers.N.post_mlp_layernorm",
    ),
    KeyRule(
        r"lm_head\.norm\.(weight|bias)", (r"lm_head.layer_norm.\1",), f"{_FILE}: lm_head.norm -> lm_head.layer_norm"
    ),
)


# -- the base model ---------------------------------------------------------------------------


class GtePreTrainedModel(BertPreTrainedModel):
    """What GTE's models share: the config class, the encoder's name (``gte``, the remote code's ``new``), its keys."""

    config_class: ClassVar[type[EncoderConfig]] = GteConfig
    base_model_prefix: ClassVar[str] = "gte"
    checkpoint_key_rules: ClassVar[tuple[KeyRule, ...]] = FILE_LAYOUT_KEYS
    checkpoint_prefixes: ClassVar[tuple[str, ...]] = ("new",)

    @classmethod
    def base_model_class(cls) -> type[EncoderModel]:
        return GteModel

    def attention_blocks(self) -> list[nn.Module]:
        return [layer.self_attn for layer in self.base_model.layers]


class GteModel(GtePreTrainedModel, EncoderModel):
    """Embeddings, the layers, and (only if asked) a pooler: ``transformers.GteModel``.

    Its forward pass is BERT's (``EncoderModel.forward``), the mask carrying each position's
    rotation. transformers keeps the layers on the model itself (``layers.N``): ``encoder`` is
    the method that runs them.
    """

    def __init__(self, config: GteConfig, add_pooling_layer: bool = False, init_weights: bool = True) -> None:
        super().__init__(config)
        self.embeddings = GteEmbeddings(config)
        self.layers = nn.ModuleList(GteLayer(config) for _ in range(config.num_hidden_layers))
        rope = config.rope_parameters
        self.rotary_emb = RotaryEmbedding(
            config.hidden_size // config.num_attention_heads,
            rope["rope_theta"],
            rope["rope_type"],
            rope.get("factor", 1.0),
            config.max_position_embeddings,
        )
        self.pooler = Pooler(config) if add_pooling_layer else None
        self.gradient_checkpointing: dict[str, Any] | None = None  # see PreTrainedModel.gradient_checkpointing_enable
        if init_weights:
            self.post_init()

    def forward(
        self,
        input_ids: Tensor | None = None,  # (B, T)
        attention_mask: Tensor | None = None,  # (B, T): 1 = token, 0 = padding
        token_type_ids: Tensor | None = None,  # (B, T)
        position_ids: Tensor | None = None,  # (B, T): the rotations' positions; default 0, 1, ... in every row
        inputs_embeds: Tensor | None = None,  # (B, T, H)
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
    ) -> BaseModelOutputWithPooling:
        if self.embeddings.token_type_embeddings is None:
            token_type_ids = (
                None  # no table (gte-base-en-v1.5): ignored as in transformers, though tokenizers send them
            )
        inputs = (input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds)
        return super().forward(*inputs, output_hidden_states, output_attentions)

    def encoder(
        self, hidden_states: Tensor, mask: AttentionMask, output_hidden_states: bool, output_attentions: bool
    ) -> BaseModelOutputWithPooling:
        """The layers in order, as BERT's encoder runs them (and checkpoints them, in training)."""
        recompute = self.gradient_checkpointing if self.training else None
        return run_layers(self.layers, hidden_states, mask, output_hidden_states, output_attentions, recompute)


# -- heads ------------------------------------------------------------------------------------


class GteLMHead(nn.Module):
    """Dense, exact GELU (whatever ``hidden_act`` says), ``layer_norm``, then the vocabulary scores (``GteLMHead``).

    The decoder has a bias of its own; its weight is the word embedding matrix, if tied.
    """

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)

    def forward(self, hidden_states: Tensor) -> Tensor:
        return self.decoder(self.layer_norm(F.gelu(self.dense(hidden_states))))  # (B, T, V)


class GteForMaskedLM(GtePreTrainedModel, HeadModel):
    """Scores over the vocabulary for every token: ``transformers.GteForMaskedLM``."""

    _tied_weights_keys: ClassVar[dict[str, str]] = {"lm_head.decoder.weight": "gte.embeddings.word_embeddings.weight"}

    def __init__(self, config: GteConfig) -> None:
        super().__init__(config)
        self.add_base_model(add_pooling_layer=False)
        self.lm_head = GteLMHead(config)
        self.post_init()

    def head(self, outputs: BaseModelOutputWithPooling, labels: Tensor | None) -> LogitsOutput:
        """``labels`` (B, T): the true token at masked positions, -100 elsewhere."""
        logits = self.lm_head(outputs.last_hidden_state)  # (B, T, V)
        return LogitsOutput(masked_lm_loss(logits, labels), logits, outputs.hidden_states, outputs.attentions)


class GteForSequenceClassification(GtePreTrainedModel, BertForSequenceClassification):
    """BERT's classifier on the pooled first token (GTE's pooler): ``transformers.GteForSequenceClassification``."""


class GteForTokenClassification(GtePreTrainedModel, BertForTokenClassification):
    """BertForTokenClassification on GTE's encoder: ``transformers.GteForTokenClassification``."""


# The remote code's class names (its config.json's "architectures"), for the code written against them.
NewModel = GteModel
NewForMaskedLM = GteForMaskedLM
NewForSequenceClassification = GteForSequenceClassification
NewForTokenClassification = GteForTokenClassification
