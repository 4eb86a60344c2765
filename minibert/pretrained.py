"""The base class of every minibert model: ``from_pretrained``, ``save_pretrained``, weight init and tying.

Loading runs in four phases, each a function below: build the model on the ``meta`` device
and, once it is known to fit in memory (``check_fits``), *allocate* uninitialised storage for it
(no memory is touched yet); *initialise* only the modules whose tensors the checkpoint lacks;
*read* the checkpoint's tensors in, one at a time, as the model's own (no second copy), noting
any that hold NaN or Inf; *verify* a sample of every loaded tensor against the file.

The rest is what transformers' models do and their users call: the ``return_dict`` and
output-flag conventions, speed switches, and the changes fine-tuning makes to a model (a
resized vocabulary, pruned attention heads, gradient checkpointing).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, Literal, Self, TypedDict

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from minibert.allocator import reuse_freed_memory
from minibert.checkpoint import FLOAT8_DTYPES, Checkpoint, save_safetensors
from minibert.config import MEMORY_LIMIT_VARIABLE, EncoderConfig, format_bytes, memory_limit, memory_limit_source
from minibert.errors import ConfigError
from minibert.hub import CONFIG_FILE, resolve_checkpoint, resolve_config_file
from minibert.linear import Float32Linear, PackedLinear, set_linear_class
from minibert.loading import (
    READ_STATUSES,
    KeyRule,
    LoadReport,
    all_finite,
    check_probes,
    plan_load,
    probe,
    read_tensor,
    same_bits,
)

DTypeLike = torch.dtype | str | None
logger = logging.getLogger(__name__)


class OutputFlags(TypedDict, total=False):
    """What a head passes through to its encoder; None (or absent) means the config's value."""

    output_hidden_states: bool | None
    output_attentions: bool | None


# Inputs of transformers' models that minibert deliberately does not take, and what to use instead.
REFUSED_INPUTS = {
    "head_mask": "minibert has no head_mask; prune_heads() removes heads for good",
    "encoder_hidden_states": "minibert implements encoders only (no cross-attention)",
    "encoder_attention_mask": "minibert implements encoders only (no cross-attention)",
    "past_key_values": "minibert implements encoders only (no cache)",
    "cache": "minibert implements encoders only (no cache)",
}


def check_return_dict(model: nn.Module, return_dict: bool | None) -> None:
    """For forwards that name ``return_dict`` (transformers' MPNet and DeBERTa do): it reaches ``forward``
    only when given by position, since ``PreTrainedModel.__call__`` takes it by keyword and applies it."""
    if return_dict is not None:
        raise TypeError(
            f"{type(model).__name__}: pass return_dict by keyword, e.g. model(input_ids, return_dict=False)"
        )


@cache
def forward_parameters(model_class: type[nn.Module]) -> tuple[str, ...]:
    """The names of ``model_class.forward``'s positional parameters, in order (after ``self``)."""
    parameters = inspect.signature(model_class.forward).parameters.values()
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return tuple(p.name for p in parameters if p.kind in positional)[1:]


def named_inputs(model_class: type[nn.Module], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """A call's arguments by name: ``model(ids, mask, labels=y)`` -> {"input_ids": ids, "attention_mask": mask, ...}."""
    return {**dict(zip(forward_parameters(model_class), args, strict=False)), **kwargs}


def labelled_padding(attention_mask: Any, labels: Any, ignored: int = -100) -> bool:
    """Whether a (B, T) ``labels`` holds a label other than ``ignored`` at a padding position: a loss there reads it."""
    if not isinstance(labels, Tensor) or not isinstance(attention_mask, Tensor) or labels.shape != attention_mask.shape:
        return False
    return bool(((labels != ignored) & (attention_mask == 0)).any())


class PreTrainedModel(nn.Module):
    """What every model shares; subclasses set ``config_class`` and ``base_model_prefix``."""

    config_class: ClassVar[type[EncoderConfig]] = EncoderConfig
    # The attribute (and state-dict prefix) of the encoder inside a head model: "bert", "roberta".
    base_model_prefix: ClassVar[str] = ""
    main_input_name: ClassVar[str] = "input_ids"
    # Alias key -> key of the tensor it shares; see tied_weights().
    _tied_weights_keys: ClassVar[dict[str, str]] = {}
    # An older layout of this architecture's checkpoints (its original code's), read as well: rules that rename or
    # split its keys, and the names its head models gave the encoder. See minibert.loading.KeyRule.
    checkpoint_key_rules: ClassVar[tuple[KeyRule, ...]] = ()
    checkpoint_prefixes: ClassVar[tuple[str, ...]] = ()
    # Tells transformers' Trainer that forward takes no num_items_in_batch: Trainer scales the loss itself.
    accepts_loss_kwargs: ClassVar[bool] = False
    weight_packing = True  # whether linear layers are PackedLinear: see set_weight_packing

    def __init__(self, config: EncoderConfig) -> None:
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}, got {type(config).__name__}")
        super().__init__()
        self.config = config
        self.load_report: LoadReport | None = None

    def __call__(self, *args: Any, return_dict: bool | None = None, **kwargs: Any) -> Any:
        """Run ``forward``; a tuple of the output's set fields if ``return_dict`` (default: the config's) is False."""
        refused = sorted(REFUSED_INPUTS.keys() & kwargs.keys())
        if refused:
            raise ValueError(f"{refused[0]} is not supported: {REFUSED_INPUTS[refused[0]]}")
        compiling = torch.compiler.is_compiling()
        if not compiling:  # once per process: each forward reuses the memory the one before freed
            reuse_freed_memory(self)
        # Compiled graphs run padded (minibert.bert.unpadded_layout): nothing to ask while tracing.
        reads_padding = not compiling and self.reads_padding(named_inputs(type(self), args, kwargs))
        with self.padded(reads_padding):
            outputs = super().__call__(*args, **kwargs)
        return_dict = self.config.return_dict if return_dict is None else return_dict
        return outputs if return_dict else outputs.to_tuple()

    # -- loading and saving -----------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | Path | None,
        *,
        config: EncoderConfig | None = None,
        state_dict: dict[str, Tensor] | None = None,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        dtype: DTypeLike = None,
        torch_dtype: DTypeLike = None,
        device: torch.device | str | None = None,
        ignore_mismatched_sizes: bool = False,
        attn_implementation: str = "sdpa",
        output_loading_info: bool = False,
        trust_remote_code: bool = False,
        **config_overrides: Any,
    ) -> Self | tuple[Self, dict[str, Any]]:
        """Load a checkpoint from a local folder or a Hub id (or from ``state_dict``, with its config).

        ``dtype``: a torch dtype, ``"auto"`` (the checkpoint's own), or None (torch's default, fp32);
        ``torch_dtype`` is transformers' older name for it. ``config_overrides`` change config
        fields before the model is built, e.g. ``num_labels=5`` or ``output_hidden_states=True``.
        The outcome for every tensor is in ``model.load_report``; ``output_loading_info=True``
        also returns transformers' summary of it (missing, unexpected and mismatched keys).
        Overrides that are arguments of the class itself go to it instead, as in transformers:
        ``BertModel.from_pretrained(path, add_pooling_layer=False)`` builds no pooler, and reports the
        checkpoint's pooler weights as unused. ``trust_remote_code`` is accepted, so that calls written
        for transformers run unchanged, and means nothing: minibert reads remote-code checkpoints
        natively and never runs their code.
        """
        if torch_dtype is not None:
            if dtype is not None:
                raise ValueError("pass dtype or torch_dtype (its older name), not both")
            dtype = torch_dtype
        model, checkpoint, report = cls.plan_pretrained(
            pretrained_model_name_or_path,
            config=config,
            state_dict=state_dict,
            revision=revision,
            cache_dir=cache_dir,
            ignore_mismatched_sizes=ignore_mismatched_sizes,
            **config_overrides,
        )
        dtype = _resolve_dtype(dtype, model.config, report)
        device = torch.device(device or "cpu")
        check_fits(model, dtype, device)
        allocate(model, dtype, device)
        initialise_missing(model, report)
        probes = read_checkpoint(model, checkpoint, report, dtype, device)
        verify(model, checkpoint, report, probes)
        model.set_attn_implementation(attn_implementation)
        model.load_report = report
        model.eval()
        return (model, report.loading_info()) if output_loading_info else model

    @classmethod
    def plan_pretrained(
        cls,
        pretrained_model_name_or_path: str | Path | None,
        *,
        config: EncoderConfig | None = None,
        state_dict: dict[str, Tensor] | None = None,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        ignore_mismatched_sizes: bool = False,
        strict: bool = True,
        **config_overrides: Any,
    ) -> tuple[Self, Checkpoint, LoadReport]:
        """What ``from_pretrained`` would do, without reading a tensor.

        Returns the model built on the meta device (shapes, no storage), the checkpoint, and
        the load plan. ``strict=False`` reports what ``from_pretrained`` would refuse.
        """
        where = {"revision": revision, "cache_dir": cache_dir}
        arguments = {name: config_overrides.pop(name) for name in cls.model_arguments() & config_overrides.keys()}
        if pretrained_model_name_or_path is None and (config is None or state_dict is None):
            raise ValueError("from_pretrained(None, ...) needs both config= and state_dict=")
        if config is None:
            config_file = resolve_config_file(pretrained_model_name_or_path, **where)
            config = cls.config_class.from_json_file(config_file, **config_overrides)
        else:
            config = config.override(**config_overrides)
        if state_dict is None:
            checkpoint = Checkpoint(resolve_checkpoint(pretrained_model_name_or_path, **where))
        else:
            checkpoint = Checkpoint.from_state_dict(state_dict)
        config = cls.config_for_checkpoint(config, checkpoint)
        with torch.device("meta"):
            model = cls(config, **arguments)
        tied = model.tied_weights()
        report = plan_load(
            checkpoint,
            model_shapes={k: tuple(v.shape) for k, v in model.state_dict().items() if k not in tied},
            tied=tied,
            buffers={name for name, _ in model.named_buffers()},
            prefix=cls.base_model_prefix,
            rules=cls.checkpoint_key_rules,
            other_prefixes=cls.checkpoint_prefixes,
            ignore_mismatched_sizes=ignore_mismatched_sizes,
            strict=strict,
        )
        report.config_renames = list(config.renamed_fields)
        return model, checkpoint, report

    @classmethod
    def model_arguments(cls) -> set[str]:
        """The arguments of the class besides its config that ``from_pretrained`` passes on (``add_pooling_layer``)."""
        named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        parameters = inspect.signature(cls.__init__).parameters.values()
        fields = {field.name for field in dataclasses.fields(cls.config_class)}  # config fields stay overrides
        return {p.name for p in parameters if p.kind in named} - {"self", "config", "init_weights"} - fields

    @classmethod
    def config_for_checkpoint(cls, config: EncoderConfig, checkpoint: Checkpoint) -> EncoderConfig:
        """The config to build the model with for ``checkpoint``: ``config`` itself, unless the class reads a
        choice of layout from the checkpoint's keys (DeBERTa's two masked-LM heads). Nothing is read but keys."""
        return config

    def save_pretrained(self, save_directory: str | Path, *, max_shard_size: int | str = "5GB") -> list[Path]:
        """Write ``config.json`` and safetensors weights that both minibert and transformers load.

        The files are written under temporary names and renamed into place together once all are
        complete: a save that fails or is interrupted leaves the checkpoint already in the folder
        loadable, byte for byte as it was. A symlink in the folder is replaced, never written through.
        """
        if getattr(self, "is_quantized", False):  # set by minibert.quantization.quantize
            raise ValueError(
                f"{type(self).__name__} is quantized: its int8 layers are not a transformers checkpoint; "
                "save the model before quantize(), and quantize it again after loading"
            )
        config = self.config.replace(
            architectures=[type(self).__name__],
            extra={**self.config.extra, "dtype": str(self.dtype).removeprefix("torch.")},
        )
        text = json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n"
        # Tied aliases are left out, as transformers does: they are re-tied on loading.
        tied = self.tied_weights()
        state = {k: v for k, v in self.state_dict().items() if k not in tied}
        return save_safetensors(state, Path(save_directory), max_shard_size, texts={CONFIG_FILE: text})

    # -- initialisation and tying ---------------------------------------------------

    def post_init(self) -> None:
        """Remove the config's pruned heads, ``init_weights()``, and pack linear layers; ends each ``__init__``.

        Pruning comes first so that a pruned checkpoint meets its own shapes. Linear layers become
        ``PackedLinear`` (``set_weight_packing``).
        """
        blocks = self.attention_blocks() if self.config.pruned_heads else []
        for layer, heads in self.config.pruned_heads.items():
            blocks[layer].prune_heads(heads)
        self.init_weights()
        set_linear_class(self, (nn.Linear,), PackedLinear)

    def init_weights(self) -> None:
        """Initialise with ``_init_weights`` every module not initialised yet, then tie.

        A module is initialised once: loaded weights, and weights initialised before, are kept,
        so calling this on a loaded model (or after adding a new head) changes only what is new.
        A model built on the meta device (by ``from_pretrained``) has no storage to initialise yet.
        """
        if not next(self.parameters()).is_meta:
            for module in self.modules():
                if not getattr(module, "_initialised", False):
                    self._init_weights(module)
                    module._initialised = True
        self.tie_weights()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """transformers' rule: normal(0, initializer_range) weights, zero biases and padding row, LayerNorm 1/0.

        It touches only ``module``'s own tensors, so the loader can call it on one module.
        """
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            module.weight.normal_(0.0, std)
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, nn.Embedding):
            module.weight.normal_(0.0, std)
            if module.padding_idx is not None:
                module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            module.weight.fill_(1.0)
            module.bias.zero_()

    def tied_weights(self) -> dict[str, str]:
        """Alias key -> shared key for the tensors this model ties: none if the config unties them."""
        return dict(self._tied_weights_keys) if self.config.tie_word_embeddings else {}

    def tie_weights(self) -> None:
        for alias, shared in self.tied_weights().items():
            owner, _, name = alias.rpartition(".")
            setattr(self.get_submodule(owner), name, self.get_parameter(shared))

    # -- the encoder inside a head model ---------------------------------------------

    @classmethod
    def base_model_class(cls) -> type[PreTrainedModel]:
        """The encoder class of this architecture (``BertModel``), which its heads build under ``base_model_prefix``."""
        raise NotImplementedError(f"{cls.__name__} names no encoder class")

    def add_base_model(self, add_pooling_layer: bool = True) -> None:
        """Build the encoder of a head model as ``self.<base_model_prefix>`` (``self.bert``, ``self.roberta``).

        Its weights are initialised with the head's, by the head's ``post_init``.
        """
        encoder = self.base_model_class()(self.config, add_pooling_layer=add_pooling_layer, init_weights=False)
        self.add_module(self.base_model_prefix, encoder)

    @property
    def base_model(self) -> nn.Module:
        """The encoder: ``self.bert`` in a head model, the model itself in a base model."""
        return getattr(self, self.base_model_prefix, self)

    # -- the habits of transformers' models ----------------------------------------

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def num_parameters(self) -> int:
        """Distinct parameters: a tied tensor counts once (``parameters()`` yields it once)."""
        return sum(p.numel() for p in self.parameters())

    def tensor_uses(self) -> dict[str, list[int]]:
        """Module prefix of each layer -> the layer runs (1-based) it serves; only where layers are shared."""
        return {}

    def get_input_embeddings(self) -> nn.Embedding:
        return self.base_model.embeddings.word_embeddings

    def set_input_embeddings(self, embeddings: nn.Embedding) -> None:
        self.base_model.embeddings.word_embeddings = embeddings

    def _decoder_name(self) -> str | None:
        """Module name of the MLM decoder ("cls.predictions.decoder"), None in models without one.

        It is the module whose weight is tied to the word embeddings (ELECTRA's "generator_lm_head").
        """
        tied = self._tied_weights_keys.items()
        weight = next((alias for alias, shared in tied if shared.endswith(".word_embeddings.weight")), None)
        return None if weight is None else weight.removesuffix(".weight")

    def _decoder_bias_name(self, decoder_name: str) -> str:
        """The head bias a tied decoder shares ("cls.predictions.bias"), or the decoder's own (ELECTRA)."""
        return self._tied_weights_keys.get(f"{decoder_name}.bias", f"{decoder_name}.bias")

    def get_output_embeddings(self) -> nn.Linear | None:
        """The MLM decoder of models that have one; its weight is the input embedding matrix if tied."""
        name = self._decoder_name()
        return None if name is None else self.get_submodule(name)

    def set_output_embeddings(self, decoder: nn.Linear) -> None:
        """Put ``decoder`` in place of the MLM decoder.

        As in transformers, nothing is re-tied here: ``tie_weights()`` shares the input embedding
        matrix with the decoder again if the config ties them. So that re-tying keeps the new bias,
        a tied model's head ``bias`` becomes the decoder's.
        """
        name = self._decoder_name()
        if name is None:
            raise AttributeError(f"{type(self).__name__} has no MLM decoder to replace")
        self.set_submodule(name, decoder)
        if self.tied_weights():
            owner, _, attribute = self._decoder_bias_name(name).rpartition(".")
            setattr(self.get_submodule(owner), attribute, decoder.bias)

    # -- speed switches -------------------------------------------------------------------

    def set_unpadding(self, enabled: bool | Literal["auto"] = True) -> None:
        """Whether padded batches run on their real tokens only: a speed-up for batches of mixed lengths.

        Projections, feed-forward blocks and LayerNorms then skip padding, and attention runs within
        each sequence (``minibert.bert.attend_heads``). Outputs at real tokens are unchanged (within
        float rounding); outputs at padding positions, which transformers computes but nothing should
        read, are zeros.
        ``"auto"``, the default, unpads inference batches where it is faster; True unpads every
        batch with padding, in training too; False never unpads (every position as transformers).
        Either way, outputs that read padding run padded (``minibert.bert.unpadded_layout``,
        ``reads_padding``).
        """
        if enabled not in (True, False, "auto"):
            raise ValueError(f"set_unpadding takes True, False or 'auto', got {enabled!r}")
        self.base_model.unpad = enabled

    def reads_padding(self, inputs: dict[str, Any]) -> bool:
        """Whether the outputs of a call with ``inputs`` (by name) read a padding position's hidden state.

        Then the call runs padded (``padded``): on the unpadded path those states are zeros. The span
        loss is a softmax over every position (``span_loss``), and a label at a padding position
        (anything but -100) is scored there. Heads that read padding otherwise say so in their own.
        """
        mask = inputs.get("attention_mask")
        if inputs.get("start_positions") is not None and inputs.get("end_positions") is not None:
            return isinstance(mask, Tensor) and not bool(mask.all())
        return labelled_padding(mask, inputs.get("labels"))

    @contextmanager
    def padded(self, enabled: bool = True) -> Iterator[None]:
        """If ``enabled``, calls inside run padded whatever ``set_unpadding`` says; the setting is put back after."""
        if not enabled:
            yield
            return
        base = self.base_model
        setting, base.unpad = base.unpad, False
        try:
            yield
        finally:
            base.unpad = setting

    def set_float32_matmuls(self, enabled: bool = True) -> None:
        """Keep the weights in their (bf16 or fp16) dtype, but multiply in float32.

        On CPUs without bf16 units (AVX2 only, no AVX512-BF16 or AMX), PyTorch's bf16 matrix
        products run several times slower than float32 ones; converting each weight as it is
        used costs far less. Outputs stay in the model's dtype and are, if anything, more
        accurate. Turns every ``PackedLinear`` (or plain ``nn.Linear``) into a ``Float32Linear``
        (same parameters and state-dict keys) or back (``set_weight_packing`` says which).
        """
        if enabled:
            set_linear_class(self, (nn.Linear, PackedLinear), Float32Linear)
        else:
            set_linear_class(self, (Float32Linear,), PackedLinear if self.weight_packing else nn.Linear)

    def set_weight_packing(self, enabled: bool = True) -> None:
        """Whether linear layers keep a copy of their weight packed for MKL or oneDNN, for CPU inference (the default).

        Faster products (``minibert.linear``), at the cost of a second copy of the weights of the
        layers that use it. False turns every ``PackedLinear`` into a plain ``nn.Linear`` and frees
        the copies; True turns them back.
        """
        self.weight_packing = enabled
        if enabled:
            set_linear_class(self, (nn.Linear,), PackedLinear)
        else:
            set_linear_class(self, (PackedLinear,), nn.Linear)

    def set_attn_implementation(self, name: str) -> None:
        """Switch every attention block to ``"sdpa"`` (default) or ``"eager"`` (the written-out maths)."""
        if name not in ("sdpa", "eager"):
            raise ValueError(f"attn_implementation must be 'sdpa' or 'eager', got {name!r}")
        for module in self.modules():
            if hasattr(module, "attn_implementation"):
                module.attn_implementation = name

    # -- fine-tuning: a new vocabulary size ---------------------------------------------

    @torch.no_grad()
    def resize_token_embeddings(
        self, new_num_tokens: int | None = None, pad_to_multiple_of: int | None = None, mean_resizing: bool = False
    ) -> nn.Embedding:
        """Grow or shrink the vocabulary (e.g. after adding tokens to a tokenizer); returns the input embeddings.

        Rows of the tokens that stay keep their values; new rows start as ``_init_weights`` starts
        them, normal(0, initializer_range), as transformers does with ``mean_resizing=False``. The MLM
        decoder follows: tied, it shares the new matrix; untied, it is resized the same way. Output
        biases keep their values and gain zeros. ``pad_to_multiple_of`` rounds the size up (shapes
        that suit tensor cores); ``config.vocab_size`` becomes the new size.
        """
        if mean_resizing:
            raise ValueError(
                "mean_resizing=True is not supported: new rows start as normal(0, initializer_range); "
                "set them yourself through get_input_embeddings() if they should start elsewhere"
            )
        embeddings = self.get_input_embeddings()
        if new_num_tokens is None and pad_to_multiple_of is None:
            return embeddings
        rows = embeddings.num_embeddings if new_num_tokens is None else new_num_tokens
        if pad_to_multiple_of is not None:
            if not isinstance(pad_to_multiple_of, int) or pad_to_multiple_of < 1:
                raise ValueError(f"pad_to_multiple_of must be a positive integer, got {pad_to_multiple_of!r}")
            rows = -(-rows // pad_to_multiple_of) * pad_to_multiple_of
        if rows == embeddings.num_embeddings:
            return embeddings
        # Validated before anything changes: e.g. a padding id that would fall outside the vocabulary.
        config = self.config.replace(vocab_size=rows)
        self.set_input_embeddings(self._resized_module(embeddings, rows))
        decoder_name = self._decoder_name()
        if decoder_name is not None:
            bias_name = self._decoder_bias_name(decoder_name)
            owner, _, attribute = bias_name.rpartition(".")
            bias = getattr(self.get_submodule(owner), attribute)
            if bias is not None:  # None: a decoder without bias (ModernBERT's decoder_bias=False)
                kept = min(rows, bias.shape[0])
                _set_tensor(self, bias_name, torch.cat([bias[:kept], bias.new_zeros(rows - kept)]))  # (rows,)
            if not config.tie_word_embeddings:
                self.set_submodule(decoder_name, self._resized_module(self.get_submodule(decoder_name), rows))
            self.get_submodule(decoder_name).out_features = rows
        self._set_config(config)
        self.tie_weights()
        return self.get_input_embeddings()

    @torch.no_grad()
    def _resized_module(self, old: nn.Embedding | nn.Linear, rows: int) -> nn.Embedding | nn.Linear:
        """A copy of ``old`` with ``rows`` vocabulary rows: the first ones copied, any new ones initialised."""
        kind = {"dtype": old.weight.dtype, "device": old.weight.device}
        if isinstance(old, nn.Embedding):
            weight = torch.empty(rows, old.embedding_dim, **kind)
            new = nn.Embedding(rows, old.embedding_dim, padding_idx=old.padding_idx, _weight=weight)
        else:
            new = type(old)(old.in_features, rows, bias=old.bias is not None, **kind)  # PackedLinear stays one
        self._init_weights(new)
        new._initialised = True
        kept = min(rows, old.weight.shape[0])
        for name, tensor in new.named_parameters():
            tensor[:kept] = getattr(old, name)[:kept]
            tensor.requires_grad_(getattr(old, name).requires_grad)
        return new

    def _set_config(self, config: EncoderConfig) -> None:
        """Give a changed config to this model and to the models inside it (a head model's encoder)."""
        for module in self.modules():
            if isinstance(module, PreTrainedModel):
                module.config = config

    # -- fine-tuning: pruning attention heads ----------------------------------------------

    def attention_blocks(self) -> list[nn.Module]:
        """The attention block of each distinct layer, in the order ``prune_heads`` numbers them."""
        raise NotImplementedError(f"{type(self).__name__} has no attention blocks to prune")

    def prune_heads(self, heads_to_prune: dict[int, list[int]]) -> None:
        """Remove attention heads for good: ``{layer: [heads]}``, heads numbered as in the unpruned model.

        Each head's query, key and value rows go, and the output projection's columns that read
        them. Layers count from the end when negative, as list indices do. Pruning accumulates;
        ``config.pruned_heads`` lists every head removed so far, so ``save_pretrained`` then
        ``from_pretrained`` rebuilds the same shapes.
        """
        layers = self.config.attention_layers
        heads_to_prune = {
            int(layer) + (layers if int(layer) < 0 else 0): [int(head) for head in heads]
            for layer, heads in heads_to_prune.items()
        }
        pruned = dict(self.config.pruned_heads)
        for layer, heads in heads_to_prune.items():
            pruned[layer] = [*pruned.get(layer, []), *heads]
        config = self.config.replace(pruned_heads=pruned)  # checks layer and head numbers first
        blocks = self.attention_blocks()
        for layer, heads in heads_to_prune.items():
            blocks[layer].prune_heads(heads)
        self._set_config(config)

    # -- fine-tuning: gradient checkpointing and adapters -----------------------------------

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict[str, Any] | None = None) -> None:
        """Trade compute for memory in training: keep each layer's input only, run the layer again in backward.

        Applies in train mode with gradients on; evaluation and inference are unchanged.
        ``gradient_checkpointing_kwargs`` go to ``torch.utils.checkpoint.checkpoint``; the
        default is ``{"use_reentrant": False}``, as in transformers.
        """
        kwargs = {"use_reentrant": False, **(gradient_checkpointing_kwargs or {})}
        for module in self.modules():
            if hasattr(module, "gradient_checkpointing"):
                module.gradient_checkpointing = kwargs

    def gradient_checkpointing_disable(self) -> None:
        for module in self.modules():
            if hasattr(module, "gradient_checkpointing"):
                module.gradient_checkpointing = None

    @property
    def is_gradient_checkpointing(self) -> bool:
        """Whether the layers recompute in backward (in train mode)."""
        return any(getattr(module, "gradient_checkpointing", None) is not None for module in self.modules())

    def enable_input_require_grads(self) -> None:
        """Make the embeddings' output require gradients, even with frozen embeddings.

        Adapters (PEFT) freeze the model and train small added weights; with reentrant gradient
        checkpointing, layers whose inputs need no gradient would give those weights none.
        """
        self.disable_input_require_grads()
        hook = self.get_input_embeddings().register_forward_hook(lambda module, args, output: output.requires_grad_())
        self._require_grads_hook: RemovableHandle | None = hook

    def disable_input_require_grads(self) -> None:
        hook = getattr(self, "_require_grads_hook", None)
        if hook is not None:
            hook.remove()
        self._require_grads_hook = None


# -- the phases of from_pretrained ---------------------------------------------------------


def check_fits(model: PreTrainedModel, dtype: torch.dtype, device: torch.device) -> None:
    """Refuse to allocate a model larger than the memory it may take: its exact size, in the dtype it loads in.

    The limit is ``MINIBERT_MAX_MODEL_SIZE`` if set, else the memory available now (on a GPU, its free memory).
    """
    tied = model.tied_weights()
    tensors = [t for name, t in [*model.named_parameters(), *model.named_buffers()] if name not in tied]
    needed = sum(t.numel() * (dtype.itemsize if t.is_floating_point() else t.element_size()) for t in tensors)
    on_gpu = device.type == "cuda" and not os.environ.get(MEMORY_LIMIT_VARIABLE)
    limit = torch.cuda.mem_get_info(device)[0] if on_gpu else memory_limit()
    if needed > limit:
        count = sum(t.numel() for t in tensors)
        source = f"free on {device}" if on_gpu else memory_limit_source()
        raise ConfigError(
            f"{type(model).__name__}: {format_bytes(needed)} in {str(dtype).removeprefix('torch.')} ({count:,} "
            f"values), more than the {format_bytes(limit)} limit ({source}); load it in a smaller dtype "
            f"(dtype=torch.bfloat16), or set {MEMORY_LIMIT_VARIABLE} (e.g. 64GB) to allow more"
        )


def allocate(model: PreTrainedModel, dtype: torch.dtype, device: torch.device) -> None:
    """Give the meta-device model fresh storage: untouched, so it costs no memory yet."""
    tied = model.tied_weights()
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if name not in tied:
            kind = dtype if tensor.is_floating_point() else tensor.dtype
            _set_tensor(model, name, torch.empty(tensor.shape, dtype=kind, device=device))
    model.tie_weights()


def initialise_missing(model: PreTrainedModel, report: LoadReport) -> None:
    """Run ``_init_weights`` on the modules whose tensors the checkpoint lacks, and on those with buffers.

    The tensors initialised are logged as a warning, as transformers logs them: they hold random values.
    """
    initialised = [r.model_key for r in report.records if r.status in ("missing", "mismatched")]
    if initialised:
        logger.warning(
            "%s: %d tensor(s) of %s are not in the checkpoint (or do not fit it) and were initialised at random: "
            "%s; train the model before using its outputs",
            report.source,
            len(initialised),
            type(model).__name__,
            ", ".join(initialised),
        )
    owners = {r.model_key.rpartition(".")[0] for r in report.records if r.status in ("missing", "mismatched")}
    owners |= {name.rpartition(".")[0] for name, _ in model.named_buffers()}
    for owner in sorted(owners):
        model._init_weights(model.get_submodule(owner))


def read_checkpoint(
    model: PreTrainedModel, checkpoint: Checkpoint, report: LoadReport, dtype: torch.dtype, device: torch.device
) -> dict[str, Tensor]:
    """Read each loaded tensor from the checkpoint into the model, as its own storage; returns a probe of each.

    A tensor holding NaN or Inf is loaded as the file holds it, marked in the report, and warned about.
    """
    probes = {}
    for record in report.records:
        if record.status in READ_STATUSES:
            tensor = read_tensor(checkpoint, record).to(device=device, dtype=dtype).contiguous()
            probes[record.model_key] = probe(tensor)
            record.finite = all_finite(tensor)
            _set_tensor(model, record.model_key, tensor)
    if report.nonfinite:
        warnings.warn(
            f"{report.source}: NaN or Inf values in {', '.join(report.nonfinite)} (as the checkpoint holds them): "
            "outputs that depend on them will be NaN or Inf",
            stacklevel=3,
        )
    model.tie_weights()
    for module in model.modules():  # nothing is left to initialise: init_weights() keeps it all
        module._initialised = True
    return probes


def verify(model: PreTrainedModel, checkpoint: Checkpoint, report: LoadReport, probes: dict[str, Tensor]) -> None:
    """Check that every loaded tensor still holds the file's values, and warn about tied aliases that differ."""
    check_probes(report, model.state_dict(), probes)
    tied = model.tied_weights()
    for record in report.records:
        if record.status != "tied" or record.checkpoint_key is None:
            continue
        # A tied alias saved with values of its own would be silently replaced by the shared tensor.
        kept, saved = model.get_parameter(tied[record.model_key]), checkpoint.get(record.checkpoint_key)
        if not same_bits(saved.to(kept.dtype), kept.detach()):
            warnings.warn(
                f"{checkpoint.file_of(record.checkpoint_key)}: {record.checkpoint_key} differs from "
                f"{tied[record.model_key]}, but the config ties them (tie_word_embeddings): its values are not used",
                stacklevel=3,
            )


def _resolve_dtype(dtype: DTypeLike, config: EncoderConfig, report: LoadReport) -> torch.dtype:
    """The dtype to load in: explicit, the checkpoint's own for "auto", else torch's default."""
    if dtype is None:
        return torch.get_default_dtype()
    if dtype == "auto":  # a floating dtype a model can compute in: not float8
        named = [config.extra.get("dtype"), config.extra.get("torch_dtype")]
        named += [r.dtype for r in report.records if r.status in READ_STATUSES]
        dtypes = [getattr(torch, name, None) if isinstance(name, str) else None for name in named]
        usable = (d for d in dtypes if isinstance(d, torch.dtype) and d.is_floating_point and d not in FLOAT8_DTYPES)
        return next(usable, torch.get_default_dtype())
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype, None)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ConfigError(f"dtype must be a floating torch dtype, 'auto' or None, got {dtype!r}")
    return dtype


def _set_tensor(model: nn.Module, name: str, tensor: Tensor) -> None:
    """Put ``tensor`` in place of the parameter or buffer called ``name``."""
    owner, _, attribute = name.rpartition(".")
    module = model.get_submodule(owner)
    if attribute in module._parameters:
        tensor = nn.Parameter(tensor, requires_grad=module._parameters[attribute].requires_grad)
    setattr(module, attribute, tensor)
