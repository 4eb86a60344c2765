"""NomicBERT (nomic-embed-text v1 and v1.5): BERT's post-norm encoder with rotary positions and a gated MLP.

What differs from BERT, and only this is written here:

* positions are rotary (``minibert.rotary``): there is no position table. The base model's
  ``rotary_emb`` turns each position into the cos and sin of its rotation once per forward pass
  (``EncoderModel.forward``), the ``AttentionMask`` carries them to every layer, and attention
  rotates queries and keys by them in the (B, T) layout, so the unpadded layout works unchanged;
* attention projects with ``q_proj``, ``k_proj``, ``v_proj`` and ``o_proj``, without biases, into
  heads of ``head_dim`` features, which need not be ``hidden_size / num_attention_heads``;
* the feed-forward block is a SwiGLU without biases: ``down_proj(act(gate_proj(x)) * up_proj(x))``;
  ``gate_proj`` is the projection that goes through the activation (SiLU by default);
* LayerNorm comes after each residual sum (post-norm, as BERT): ``post_attention_layernorm``,
  ``post_mlp_layernorm``;
* the layers are the base model's own ``layers`` (no ``encoder`` module), as transformers' keys
  say: ``nomic_bert.layers.0.self_attn.q_proj.weight``; the masked-LM head's norm is ``layer_norm``;
* the checkpoints of the original remote code (the Hub's nomic-embed-text models and their
  ``save_pretrained`` copies) load too: ``emb_ln``, ``encoder.layers.N.attn.Wqkv`` (split into q, k
  and v), ``mlp.fc11`` / ``fc12`` / ``fc2``, ``norm1`` / ``norm2``, head models' ``bert.`` prefix
  (``NomicBertPreTrainedModel.checkpoint_key_rules``), with that code's config spelling
  (``from_nomic_remote_code``, below). That code is read as data, never run.

The embeddings (without a position table), ``attend()``, the layer loop, the forward pass, the
pooler and the sentence and token heads come from ``minibert.bert``.
Mirrors transformers/models/nomic_bert/modeling_nomic_bert.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from minibert.activations import ACTIVATIONS
from minibert.bert import (
    AttentionMask,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertPreTrainedModel,
    Embeddings,
    EncoderModel,
    HeadModel,
    Pooler,
    attend_heads,
    masked_lm_loss,
    run_layers,
)
from minibert.config import EncoderConfig
from minibert.errors import ConfigError
from minibert.loading import KeyRule
from minibert.outputs import BaseModelOutputWithPooling, LogitsOutput
from minibert.rotary import RotaryConfig, RotaryEmbedding


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


@dataclass(frozen=True)
class NomicBertConfig(RotaryConfig):
    """Mirrors ``transformers.NomicBertConfig`` (nomic-embed-text-v1.5 defaults, as there).

    Positions are rotary, with no position table: ``rope_parameters`` as in ``GteConfig``
    (``rope_type`` "default", "linear" or "dynamic", which stretches inputs longer than
    ``max_position_embeddings``; inputs of any length are taken, as in transformers).
    ``head_dim`` may differ from ``hidden_size / num_attention_heads``. The feed-forward block is
    gated: ``hidden_act(gate_proj(x)) * up_proj(x)``. A ``config.json`` of the original remote code
    (GPT-2's spelling: ``n_embd``, ``n_head``, ``rotary_emb_base``, ...) is read as this spelling:
    see ``from_nomic_remote_code``; ``renamed_fields`` lists every field it read another way.
    """

    model_type: ClassVar[str] = "nomic_bert"
    default_theta: ClassVar[float] = 1000.0  # transformers' NomicBertConfig.default_theta

    vocab_size: int = 30528
    hidden_act: str = "silu"  # the gate's activation
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    max_position_embeddings: int = 2048  # no table: the trained length, which dynamic NTK stretches beyond
    head_dim: int | None = None  # None: hidden_size // num_attention_heads

    def __post_init__(self) -> None:
        if self.head_dim is None and _is_count(self.hidden_size) and _is_count(self.num_attention_heads):
            object.__setattr__(self, "head_dim", self.hidden_size // self.num_attention_heads)
        super().__post_init__()

    def _validate(self) -> None:
        for name in ("hidden_size", "num_attention_heads", "head_dim"):
            if not _is_count(getattr(self, name)):
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.hidden_size % self.num_attention_heads:
            # EncoderConfig asks the heads to divide hidden_size, BERT's head size; here head_dim is the
            # head size, whatever hidden_size is: the other fields are checked on a copy where they divide it.
            self.replace(hidden_size=self.num_attention_heads * self.head_dim)
            return
        super()._validate()
        if self.head_dim % 2:
            raise ConfigError(f"head_dim must be even, got {self.head_dim}: rotary attention turns pairs of features")
        if not isinstance(self.pad_token_id, int):
            raise ConfigError(
                f"pad_token_id must be an integer, as in transformers' NomicBertConfig; got {self.pad_token_id!r}"
            )
        if self.pruned_heads:
            raise ConfigError("pruned_heads: NomicBERT's heads cannot be pruned (nor can transformers')")
        self._validate_rope()

    @classmethod
    def from_other_spelling(cls, values: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """The original remote code's config (``n_embd`` and no ``hidden_size``): ``from_nomic_remote_code``."""
        return from_nomic_remote_code(values) if "n_embd" in values and "hidden_size" not in values else (values, [])


# NomicBERT's original remote code (nomic-ai/contrastors, configuration_hf_nomic_bert.py: a GPT2Config,
# and modeling_hf_nomic_bert.py), read, never run. Its defaults, where a config.json leaves a field out:
NOMIC_REMOTE_DEFAULTS: dict[str, Any] = {
    "vocab_size": 50257,
    "n_embd": 768,
    "n_layer": 12,
    "n_head": 12,
    "n_inner": None,  # the gated MLP's width: int(8 * n_embd / 3), rounded up to a multiple of 256
    "n_positions": 1024,
    "activation_function": "gelu_new",
    "resid_pdrop": 0.1,
    "embd_pdrop": 0.1,
    "attn_pdrop": 0.1,
    "layer_norm_epsilon": 1e-5,
    "rotary_emb_base": 10_000,
    "pad_vocab_size_multiple": 1,
}
# GPT-2's names that mean what transformers' names mean.
NOMIC_REMOTE_NAMES = {
    "n_embd": "hidden_size",
    "n_layer": "num_hidden_layers",
    "n_head": "num_attention_heads",
    "layer_norm_epsilon": "layer_norm_eps",
    "resid_pdrop": "hidden_dropout_prob",  # every dropout of the blocks and embeddings
    "attn_pdrop": "attention_probs_dropout_prob",
}
# The remote code's options, with their defaults, and the value each must have for transformers' NomicBERT
# to compute the same: the remote code's default is often another model (learned positions, biases).
NOMIC_REMOTE_REQUIRED: dict[str, tuple[Any, Any, str]] = {
    "rotary_emb_fraction": (0.0, 1.0, "rotary positions on every feature of a head (0: a learned position table)"),
    "rotary_emb_interleaved": (False, False, "rotation of (first half, second half) pairs, not interleaved ones"),
    "rotary_emb_scale_base": (None, None, "plain rotary positions, without xPos scaling"),
    "rotary_scaling_factor": (None, None, "no NTK scaling above max_trained_positions, a threshold it has not"),
    "rotary_head_dim": (False, False, "rotation along the sequence, not along the heads"),
    "qkv_proj_bias": (True, False, "no bias in Wqkv and out_proj"),
    "mlp_fc1_bias": (True, False, "no bias in fc11 and fc12"),
    "mlp_fc2_bias": (True, False, "no bias in fc2"),
    "prenorm": (False, False, "LayerNorm after each residual sum (post-norm)"),
    "parallel_block": (False, False, "attention, then the MLP"),
    "use_rms_norm": (False, False, "LayerNorm, not RMSNorm"),
    "norm_mlp": (False, False, "no LayerNorm inside the MLP"),
    "causal": (False, False, "an encoder: every token sees every token"),
    "last_layer_subset": (False, False, "a fused Wqkv in every layer"),
}
# Options of the remote code's kernels, and GPT-2 fields its NomicBERT never reads: no effect, kept in extra.
NOMIC_REMOTE_UNUSED = (
    "fused_bias_fc",
    "fused_dropout_add_ln",
    "use_flash_attn",
    "use_xentropy",
    "dense_seq_output",
    "max_trained_positions",
    "parallel_block_tied_norm",
    "scale_attn_weights",
    "scale_attn_by_inverse_layer_idx",
    "reorder_and_upcast_attn",
    "use_cache",
    "summary_type",
    "summary_use_proj",
    "summary_activation",
    "summary_proj_to_labels",
    "summary_first_dropout",
)
# activation_function -> hidden_act for the remote code's gated MLP: fc2(fc11(x) * act(fc12(x))).
NOMIC_REMOTE_GATES = {"swiglu": "silu", "geglu": "gelu"}


def from_nomic_remote_code(values: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A ``config.json`` of NomicBERT's remote code in transformers' spelling, and a line for each field read.

    Mirrors ``NomicBertConfig`` (a ``GPT2Config``) and ``NomicBertModel``, ``NomicBertBlock``,
    ``NomciBertGatedMLP``, ``NomicBertAttention`` of nomic-ai/contrastors'
    src/contrastors/models/huggingface/: what that code computes with these values is what
    transformers' NomicBERT computes with the values returned (or a ConfigError says why it cannot).
    E.g. ``{"n_embd": 768, "n_inner": 3000, "activation_function": "swiglu", ...}`` ->
    ``{"hidden_size": 768, "intermediate_size": 3072, "hidden_act": "silu", ...}``.
    """
    values = {**NOMIC_REMOTE_DEFAULTS, **values}
    renamed = []
    for old, new in NOMIC_REMOTE_NAMES.items():
        value = values.pop(old)
        if new in values and values[new] != value:
            raise ConfigError(f"NomicBERT remote-code config: {old} {value!r} and {new} {values[new]!r} disagree")
        values[new] = value
        renamed.append(f"{old} {value!r} -> {new}")
    checked = []
    for name, (default, needed, meaning) in NOMIC_REMOTE_REQUIRED.items():
        value = values.pop(name, default)
        if value != needed and (needed or value):  # None and False both mean "off"
            raise ConfigError(
                f"NomicBERT remote-code config: {name}={value!r} is not supported: transformers' NomicBERT "
                f"computes {meaning} only ({name}={needed!r})"
            )
        checked.append(f"{name}={value!r}")
    renamed.append(f"{', '.join(checked)}: what transformers' NomicBERT computes (checked)")
    kv_heads = values.pop("num_heads_kv", None)
    if kv_heads is not None and kv_heads != values["num_attention_heads"]:
        raise ConfigError(f"NomicBERT remote-code config: num_heads_kv={kv_heads!r} (grouped queries) is not supported")
    activation = values.pop("activation_function")
    if activation not in NOMIC_REMOTE_GATES:
        raise ConfigError(
            f"NomicBERT remote-code config: activation_function {activation!r} is not supported: transformers' "
            f"NomicBERT has the gated MLP only, {' or '.join(map(repr, NOMIC_REMOTE_GATES))} ('glu' gates with "
            "a sigmoid but its masked-LM head uses GELU)"
        )
    values["hidden_act"] = NOMIC_REMOTE_GATES[activation]
    renamed.append(
        f"activation_function {activation!r} -> hidden_act {values['hidden_act']!r}: "
        "fc11 is up_proj, fc12 the gated gate_proj"
    )
    inner, width = values.pop("n_inner"), values["hidden_size"]
    try:
        hidden_features = int(8 * width / 3) if inner is None else inner
        values["intermediate_size"] = (hidden_features + 255) // 256 * 256
    except TypeError as error:
        raise ConfigError(f"NomicBERT remote-code config: n_inner {inner!r} with n_embd {width!r}: {error}") from error
    renamed.append(
        f"n_inner {inner!r} -> intermediate_size {values['intermediate_size']} (the remote code's gated MLP rounds "
        "its width up to a multiple of 256)"
    )
    positions = values.pop("n_positions")
    values["max_position_embeddings"] = 2048 if isinstance(positions, int) and positions <= 0 else positions
    renamed.append(f"n_positions {positions!r} -> max_position_embeddings {values['max_position_embeddings']!r}")
    multiple, vocab = values.pop("pad_vocab_size_multiple"), values["vocab_size"]
    if _is_count(multiple) and _is_count(vocab) and vocab % multiple:
        values["vocab_size"] = vocab + multiple - vocab % multiple
    renamed.append(f"vocab_size {vocab!r} -> {values['vocab_size']!r} (pad_vocab_size_multiple {multiple!r})")
    theta = values.pop("rotary_emb_base")
    values["rope_parameters"] = {"rope_type": "default", "rope_theta": theta}
    renamed.append(f"rotary_emb_base {theta!r} -> rope_parameters {values['rope_parameters']!r}")
    dropout = values.pop("embd_pdrop")
    if "classifier_dropout" not in values:  # the remote classifier: getattr(config, "classifier_dropout", embd_pdrop)
        values["classifier_dropout"] = dropout
        renamed.append(f"embd_pdrop {dropout!r} -> classifier_dropout")
    if values.get("pad_token_id") is None:
        values["pad_token_id"] = 0
        renamed.append(
            "pad_token_id None (the remote code's embeddings have no padding row) -> 0, as transformers' "
            "NomicBertConfig needs one: only row 0's gradient differs (zero) in training"
        )
    if values.get("type_vocab_size") == 0:
        raise ConfigError("NomicBERT remote-code config: type_vocab_size 0 (no token types) is not supported")
    architectures = values.get("architectures")
    if isinstance(architectures, list) and "NomicBertForPreTraining" in architectures:
        values["architectures"] = [
            "NomicBertForMaskedLM" if a == "NomicBertForPreTraining" else a for a in architectures
        ]
        renamed.append(f"architectures {architectures!r} -> {values['architectures']!r}")
    if values.pop("auto_map", None) is not None:
        renamed.append("auto_map dropped: minibert runs no remote code, and saves transformers' key layout")
    unused = [name for name in NOMIC_REMOTE_UNUSED if name in values]
    if unused:
        renamed.append(f"kept in extra, no effect on what is computed: {', '.join(unused)}")
    return values, renamed


# -- one layer ---------------------------------------------------------------------------------


class NomicBertAttention(nn.Module):
    """Rotary multi-head attention without biases (``NomicBertAttention``).

    Queries and keys are rotated after the heads are split, by the angles the mask carries; the
    scale is ``head_dim ** -0.5``, as ``attend()`` computes it from the heads' width.
    """

    def __init__(self, config: NomicBertConfig) -> None:
        super().__init__()
        self.num_heads, self.head_dim = config.num_attention_heads, config.head_dim
        width = self.num_heads * self.head_dim
        self.q_proj = nn.Linear(config.hidden_size, width, bias=False)
        self.k_proj = nn.Linear(config.hidden_size, width, bias=False)
        self.v_proj = nn.Linear(config.hidden_size, width, bias=False)
        self.o_proj = nn.Linear(width, config.hidden_size, bias=False)
        self.dropout_prob = config.attention_probs_dropout_prob
        self.attn_implementation = "sdpa"

    def forward(
        self,
        hidden_states: Tensor,  # (B, T, H), or (N, H) unpadded
        mask: AttentionMask,
        output_attentions: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        q, k, v = (proj(hidden_states) for proj in (self.q_proj, self.k_proj, self.v_proj))  # (B, T, nh * hs)
        eager = self.attn_implementation == "eager" or output_attentions
        dropout = self.dropout_prob if self.training else 0.0
        context, probs = attend_heads(
            q, k, v, mask, self.num_heads, self.head_dim, dropout, eager
        )  # rotated by mask.rotary
        return self.o_proj(context), probs  # (B, T, H), or (N, H)


class NomicBertMLP(nn.Module):
    """SwiGLU without biases (``NomicBertMLP``): the activation gates ``gate_proj``, ``up_proj`` is multiplied in."""

    def __init__(self, config: NomicBertConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)
        self.activation = ACTIVATIONS[config.hidden_act]

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(self.activation(self.gate_proj(x)) * self.up_proj(x))  # (B, T, H)


class NomicBertLayer(nn.Module):
    """Attention, then the MLP, each followed by dropout, the residual sum and LayerNorm (``NomicBertLayer``).

    GTE's layer is this one with its own attention and MLP classes.
    """

    attention_class: ClassVar[type[nn.Module]] = NomicBertAttention
    mlp_class: ClassVar[type[nn.Module]] = NomicBertMLP

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.self_attn = self.attention_class(config)
        self.post_attention_dropout = nn.Dropout(config.hidden_dropout_prob)
        self.post_attention_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = self.mlp_class(config)
        self.post_mlp_dropout = nn.Dropout(config.hidden_dropout_prob)
        self.post_mlp_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(
        self, hidden_states: Tensor, mask: AttentionMask, output_attentions: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        attended, probs = self.self_attn(hidden_states, mask, output_attentions)  # (B, T, H)
        hidden_states = self.post_attention_layernorm(hidden_states + self.post_attention_dropout(attended))
        hidden_states = self.post_mlp_layernorm(hidden_states + self.post_mlp_dropout(self.mlp(hidden_states)))
        return hidden_states, probs  # (B, T, H)


# -- the base model ------------------------------------------------------------------------------

# The original remote code's names (nomic-ai/contrastors, src/contrastors/models/huggingface/
# modeling_hf_nomic_bert.py), as the Hub's checkpoints hold them once its head models' "bert." prefix
# is taken off. transformers 5 reads them with the same renames (conversion_mapping.py), and its
# save_pretrained writes them back, under "nomic_bert.": this is also the layout of transformers' files.
_ORIGINAL = "NomicBERT's original code"
_LAYER_RENAMES = {  # in each layer: encoder.layers.N.<original> -> layers.N.<transformers'>
    "attn.out_proj": "self_attn.o_proj",
    "mlp.fc11": "mlp.up_proj",
    "mlp.fc12": "mlp.gate_proj",  # the one the activation gates: y = fc11(x) * act(fc12(x))
    "mlp.fc2": "mlp.down_proj",
    "norm1": "post_attention_layernorm",
    "norm2": "post_mlp_layernorm",
}
ORIGINAL_KEY_RULES = (
    KeyRule(r"emb_ln\.(weight|bias)", (r"embeddings.LayerNorm.\1",), f"{_ORIGINAL}: emb_ln -> embeddings.LayerNorm"),
    KeyRule(  # Wqkv's rows: the queries of every head, then the keys, then the values
        r"encoder\.layers\.(\d+)\.attn\.Wqkv\.weight",
        tuple(rf"layers.\1.self_attn.{name}_proj.weight" for name in "qkv"),
        f"{_ORIGINAL}: encoder.layers.N.attn.Wqkv split in 3 -> layers.N.self_attn.q_proj, k_proj, v_proj",
    ),
    *(
        KeyRule(
            rf"encoder\.layers\.(\d+)\.{re.escape(old)}\.(weight|bias)",
            (rf"layers.\1.{new}.\2",),
            f"{_ORIGINAL}: encoder.layers.N.{old} -> layers.N.{new}",
        )
        for old, new in _LAYER_RENAMES.items()
    ),
)


class NomicBertPreTrainedModel(BertPreTrainedModel):
    """What NomicBERT's models share: the config, the encoder's name (``nomic_bert``), both key layouts, init."""

    config_class: ClassVar[type[EncoderConfig]] = NomicBertConfig
    base_model_prefix: ClassVar[str] = "nomic_bert"
    checkpoint_key_rules: ClassVar[tuple[KeyRule, ...]] = ORIGINAL_KEY_RULES
    checkpoint_prefixes: ClassVar[tuple[str, ...]] = ("bert",)  # the original code's head models: self.bert

    @classmethod
    def base_model_class(cls) -> type[EncoderModel]:
        return NomicBertModel

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, NomicBertLMPredictionHead):
            module.bias.zero_()


class NomicBertModel(NomicBertPreTrainedModel, EncoderModel):
    """Embeddings, rotary positions, layers and (optionally) pooler: ``transformers.NomicBertModel``.

    Its forward pass is BERT's (``EncoderModel.forward``); without ``add_pooling_layer`` (the
    default, as in transformers) ``pooler_output`` is None.
    """

    def __init__(self, config: NomicBertConfig, add_pooling_layer: bool = False, init_weights: bool = True) -> None:
        super().__init__(config)
        rope = config.rope_parameters
        self.embeddings = Embeddings(config, positions=False)
        self.rotary_emb = RotaryEmbedding(
            config.head_dim,
            rope["rope_theta"],
            rope["rope_type"],
            rope.get("factor", 1.0),
            config.max_position_embeddings,
        )
        self.layers = nn.ModuleList(NomicBertLayer(config) for _ in range(config.num_hidden_layers))
        self.pooler = Pooler(config) if add_pooling_layer else None
        self.gradient_checkpointing: dict[str, Any] | None = None  # see PreTrainedModel.gradient_checkpointing_enable
        if init_weights:
            self.post_init()

    def encoder(
        self, hidden_states: Tensor, mask: AttentionMask, output_hidden_states: bool, output_attentions: bool
    ) -> BaseModelOutputWithPooling:
        """BERT's ``Encoder.forward`` over ``layers``, which transformers' keys put on the model itself."""
        recompute = self.gradient_checkpointing if self.training else None
        return run_layers(self.layers, hidden_states, mask, output_hidden_states, output_attentions, recompute)


# -- heads ------------------------------------------------------------------------------------


class NomicBertPredictionHeadTransform(nn.Module):
    """Dense, activation, LayerNorm before the vocabulary scores, the norm named ``layer_norm``."""

    def __init__(self, config: NomicBertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = ACTIVATIONS[config.hidden_act]
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states: Tensor) -> Tensor:
        return self.layer_norm(self.activation(self.dense(hidden_states)))  # (B, T, H)


class NomicBertLMPredictionHead(nn.Module):
    """Scores over the vocabulary (``NomicBertLMPredictionHead``); tied, the decoder shares the word embeddings."""

    def __init__(self, config: NomicBertConfig) -> None:
        super().__init__()
        self.transform = NomicBertPredictionHeadTransform(config)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, hidden_states: Tensor) -> Tensor:
        return self.decoder(self.transform(hidden_states))  # (B, T, V)


class NomicBertOnlyMLMHead(nn.Module):
    """The masked-LM head under ``cls.predictions``, as the checkpoints name it."""

    def __init__(self, config: NomicBertConfig) -> None:
        super().__init__()
        self.predictions = NomicBertLMPredictionHead(config)


class NomicBertForMaskedLM(NomicBertPreTrainedModel, HeadModel):
    """Scores over the vocabulary for every token: ``transformers.NomicBertForMaskedLM``."""

    _tied_weights_keys: ClassVar[dict[str, str]] = {
        "cls.predictions.decoder.weight": "nomic_bert.embeddings.word_embeddings.weight",
        "cls.predictions.decoder.bias": "cls.predictions.bias",
    }

    def __init__(self, config: NomicBertConfig) -> None:
        super().__init__(config)
        self.add_base_model(add_pooling_layer=False)
        self.cls = NomicBertOnlyMLMHead(config)
        self.post_init()

    def head(self, outputs: BaseModelOutputWithPooling, labels: Tensor | None) -> LogitsOutput:
        """``labels`` (B, T): the true token at masked positions, -100 elsewhere."""
        logits = self.cls.predictions(outputs.last_hidden_state)  # (B, T, V)
        return LogitsOutput(masked_lm_loss(logits, labels), logits, outputs.hidden_states, outputs.attentions)


class NomicBertForSequenceClassification(NomicBertPreTrainedModel, BertForSequenceClassification):
    """BertForSequenceClassification on NomicBERT's encoder: a classifier on the pooled first token."""


class NomicBertForTokenClassification(NomicBertPreTrainedModel, BertForTokenClassification):
    """BertForTokenClassification on NomicBERT's encoder."""
