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
  (``minibert.config.from_nomic_remote_code``). That code is read as data, never run.

The embeddings (without a position table), ``attend()``, the layer loop, the forward pass, the
pooler and the sentence and token heads come from ``minibert.bert``.
Mirrors transformers/models/nomic_bert/modeling_nomic_bert.py.
"""

from __future__ import annotations

import re
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
from minibert.config import EncoderConfig, NomicBertConfig
from minibert.loading import KeyRule
from minibert.outputs import BaseModelOutputWithPooling, LogitsOutput
from minibert.rotary import RotaryEmbedding

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
