"""int8 inference, opt-in: the layers' matrix products in 8-bit integers, with their cost in accuracy measured.

``quantize(model)`` puts ``Int8Linear`` layers in place of the ``nn.Linear`` layers of the transformer
blocks (query, key, value, attention output, feed-forward in and out):

* weights: symmetric int8, one scale per output channel (row of ``W``), set once;
* inputs: symmetric int8, one scale per row, i.e. per token, computed at every call (dynamic);
* products: summed exactly in int32, then scaled back: ``y = (q(x) @ q(W).T) * s_x * s_W + b``.

Embeddings, LayerNorms, attention's own products (scores, weighted values), the pooler and the
heads stay in float: a lookup or a LayerNorm has no product to speed up, and the pooler and heads
write the output directly. Keeping more layers in float buys little (``skip``; all-MiniLM-L6-v2,
mean cosine to float32 over 500 real texts): all quantized 0.9976, feed-forward output in float
0.9982, feed-forward input in float 0.9980, the four attention projections in float 0.9990.

Why per row and per channel: a token with a few large activations (BERT-family models have such
outlier dimensions) then costs precision in its own row only, and a token's result does not depend
on the rest of the batch. ``torch.ao.quantization.quantize_dynamic`` shares one activation scale
across the whole batch (asymmetric uint8, 7 bits with ``reduce_range``) and, by default, one weight
scale across the whole matrix: its mean cosine is 0.937 (minimum 0.67), 0.975 with per-channel
weights. CTranslate2's int8 is the scheme followed here: per-row weight scales (``127 / max|row|``,
fixed at conversion), per-row activation scales (the absolute maximum over the last dimension,
at every call: its ``Quantize`` op), int32 GEMMs; LayerNorms, biases and attention's products in
float. It differs in quantizing the embedding tables too (every weight whose spec has a scale is
quantized at conversion), in fusing query, key and value into one GEMM (here they share one
quantized input instead: ``SharedInput``), and, on x86, in shifting activations to uint8 for u8s8
kernels, with a compensation term.

Kernels: on CPU, oneDNN's int8 matmul (``torch.ops.onednn.qlinear_pointwise``, which PyTorch's own
x86 int8 lowering calls; VNNI or AMX where the CPU has them) with the per-channel weight scales
applied in its output stage. It takes one activation scale per tensor, so the per-row ones are
applied after, with the bias, in one ``addcmul``. Elsewhere (GPUs, builds without oneDNN)
``torch._int_mm``: on CPU it takes any shape, but only returns the int32 sums (2048 x 384 -> 1536
on one core: float32 ``Linear`` 13 ms, ``_int_mm`` 2.2 ms before any scaling, oneDNN 1.1 ms with
it); on CUDA it needs more than 16 rows and K, N multiples of 8 (not run here: no GPU).
Either way the integer sums are exact: the only roundings are the quantization and float scaling.
Speed (``scripts/bench_int8.py``, one core of a shared, virtualised Xeon with AMX): single layers
0.05-0.5x the time of float32 and 0.1-0.9x torch.ao's; whole models 0.5x float32 (bert-base, 32
texts of U(16, 128) tokens) and 0.6x (all-MiniLM-L6-v2, real texts), only on par with torch.ao
(paired ratios 0.95-1.02): what remains is float (attention, GELU, LayerNorm) and the first touch
of each fresh activation buffer, which int8 does not shrink.

What a quantized model does not do, with an error that says so: backward (rounding has no useful
gradient: train in float, then quantize), ``save_pretrained`` (int8 tensors are not a transformers
checkpoint: save the float model and quantize after loading), ``prune_heads`` after quantizing,
a second ``quantize``.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Iterable
from fnmatch import fnmatchcase
from typing import Any, Self

import torch
from torch import Tensor, nn

from minibert.linear import PackedLinear, drop_joined_copies
from minibert.pretrained import PreTrainedModel

# Symmetric int8: values in [-127, 127], so that zero is exact and -128 never appears.
QMAX = 127


def quantize_rows(x: Tensor) -> tuple[Tensor, Tensor]:
    """Symmetric int8 values and a float scale per row, ``x ~= values * scale``: each row's largest magnitude -> 127.

    ``[[0.5, -1.0], [0.0, 0.0]] -> [[64, -127], [0, 0]], [[1 / 127], [tiny / 127]]``: an all-zero row keeps a
    tiny positive scale (no division by zero). Rounds half to even (``torch.round``). Two reductions
    (max and min) rather than ``abs()`` first, which would allocate a copy of ``x``.
    """
    largest = torch.maximum(x.amax(dim=-1, keepdim=True), x.amin(dim=-1, keepdim=True).neg_())  # (M, 1)
    scale = largest.clamp_min_(torch.finfo(torch.float32).tiny).div_(QMAX)  # (M, 1)
    values = (x / scale).round_().to(torch.int8)  # (M, K): |x / scale| <= 127 by construction
    return values, scale


@functools.cache
def onednn_int8() -> bool:
    """Whether this PyTorch build has oneDNN's int8 linear (x86 and most ARM CPU builds do)."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.onednn, "qlinear_pointwise")


def onednn_matmul(values: Tensor, packed: Tensor, weight_scale: Tensor, zero_points: Tensor) -> Tensor:
    """``(values @ W.T) * weight_scale`` in float32, by oneDNN: ``values`` (M, K) int8, ``packed`` is ``W``
    (N, K) int8 after ``qlinear_prepack``. Input scale 1 and zero point 0 (the caller applies the per-row
    scales), then after the weight: no bias, output scale 1 and zero point 0, float32 output, no post-op."""
    return torch.ops.onednn.qlinear_pointwise(
        values, 1.0, 0, packed, weight_scale, zero_points, None, 1.0, 0, torch.float32, "none", [], ""
    )  # (M, N)


class SharedInput:
    """The int8 form of the last input, for layers that read the same tensor: query, key and value.

    Held by weak reference with the tensor's version counter, so a different input, a freed one or
    one changed in place is quantized afresh (inference-mode tensors have no version counter: a
    change in place between two siblings' calls would go unseen, and minibert's layers make none).
    One tuple is swapped at a time: threads sharing a model at worst recompute, never mix values.
    """

    def __init__(self) -> None:
        self.last: tuple[weakref.ref[Tensor], int, Tensor, Tensor] | None = None

    def quantize(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``quantize_rows`` of ``x`` viewed as (M, K) rows, reused if ``x`` is the last input."""
        last, version = self.last, -1 if x.is_inference() else x._version
        if last is not None and last[0]() is x and last[1] == version:
            return last[2], last[3]
        values, scale = quantize_rows(x.reshape(-1, x.shape[-1]).float())  # (M, K), (M, 1)
        self.last = (weakref.ref(x), version, values, scale)
        return values, scale

    def __getstate__(self) -> dict:
        return {"last": None}  # a copy starts empty


class Int8Linear(nn.Module):
    """An ``nn.Linear`` (inference only) computing in int8: per-channel weights, per-row inputs, int32 sums.

    Buffers: ``weight`` (N, K) int8, ``weight_scale`` (N,) and ``bias`` (N,) float32. ``shared`` is
    the input cache of the layers that read the same input (see ``SharedInput``).
    """

    def __init__(self, linear: nn.Linear, shared: SharedInput | None = None) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight, weight_scale = quantize_rows(linear.weight.detach().float())  # (N, K), (N, 1)
        self.register_buffer("weight", weight)
        self.register_buffer("weight_scale", weight_scale.view(-1))
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().float())
        # oneDNN's weight zero points: symmetric weights have none.
        self.register_buffer("zero_points", torch.zeros(self.out_features, dtype=torch.long), persistent=False)
        self.shared = SharedInput() if shared is None else shared
        self.packed: Tensor | None = None  # see onednn_weight

    def forward(self, x: Tensor) -> Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return NoGradient.apply(x, self)  # same values; backward raises
        return self.compute(x)

    def compute(self, x: Tensor) -> Tensor:
        values, scale = self.shared.quantize(x)  # (M, K) int8, (M, 1)
        weight_scale = self.weight_scale.float()  # float32 even after model.to(torch.bfloat16)
        if x.device.type == "cpu" and onednn_int8():
            out = onednn_matmul(values, self.onednn_weight(), weight_scale, self.zero_points)  # (M, N)
        else:
            out = torch._int_mm(values, self.weight.t()) * weight_scale  # (M, N)
        out = out.mul_(scale) if self.bias is None else torch.addcmul(self.bias, out, scale, out=out)  # (M, N)
        return out.view(*x.shape[:-1], self.out_features).to(x.dtype)

    def onednn_weight(self) -> Tensor:
        """``weight`` in oneDNN's blocked layout, packed on first use.

        Kept out of the module's state: oneDNN's tensors cannot be copied or pickled, so copies pack
        again; loading a state dict or moving the module drops it too.
        """
        if self.packed is None:
            self.packed = torch.ops.onednn.qlinear_prepack(self.weight, None)
        return self.packed

    def __getstate__(self) -> dict:
        return {**super().__getstate__(), "packed": None}

    def _apply(self, fn: Callable[..., Any], recurse: bool = True) -> Self:
        self.packed = None
        return super()._apply(fn, recurse)

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        self.packed = None
        super()._load_from_state_dict(*args, **kwargs)

    def register_parameter(self, name: str, param: nn.Parameter | None) -> None:
        """Refused: the weights are int8 buffers. ``prune_heads`` and the like would assign float parameters."""
        raise RuntimeError(
            f"Int8Linear has int8 weights, no parameters to set ({name!r}): prune heads or change layers "
            "on the float model, then quantize() it"
        )

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class NoGradient(torch.autograd.Function):
    """``Int8Linear``'s forward, for inputs that need gradients; backward refuses with a clear error.

    Without it autograd would differentiate through the input's scale alone: gradients silently wrong.
    """

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: Tensor, layer: Int8Linear) -> Tensor:
        return layer.compute(x)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> None:
        raise RuntimeError(
            "minibert.quantization: int8 layers have no gradient, a quantized model is for inference; "
            "train the float model, then quantize() it"
        )


def quantize(model: PreTrainedModel, skip: Iterable[str] = ()) -> PreTrainedModel:
    """Put ``Int8Linear`` layers in place of the ``nn.Linear`` layers of ``model``'s transformer blocks, in place.

    Returns ``model`` itself, changed: its float weights of those layers are released (a quantized
    copy is ``quantize(copy.deepcopy(model))``). The layers are those inside the layer stack (an
    ``nn.ModuleList`` of the encoder): embeddings and their projections, the pooler and the heads
    stay in float. ``skip`` keeps more layers in float: module names, with ``*`` standing for one
    name component, e.g. ``"bert.encoder.layer.*.output.dense"`` (the feed-forward output layers); a
    pattern that matches none is an error. Run it after ``prune_heads``, never before. Raises if
    ``model`` is already quantized.
    """
    if any(isinstance(module, Int8Linear) for module in model.modules()):
        raise ValueError(f"{type(model).__name__} is already quantized: quantize() the float model once")
    patterns = [skip] if isinstance(skip, str) else list(skip)
    stacks = [name for name, module in model.named_modules() if isinstance(module, nn.ModuleList)]
    candidates = [
        name
        for name, module in model.named_modules()
        if type(module) in (nn.Linear, PackedLinear) and any(name.startswith(f"{stack}.") for stack in stacks)
    ]
    if not candidates:
        raise ValueError(f"{type(model).__name__} has no nn.Linear inside a layer stack (an nn.ModuleList) to quantize")
    for pattern in patterns:  # a misspelt pattern would silently keep nothing in float
        if not any(matches(name, pattern) for name in candidates):
            raise ValueError(
                f"skip pattern {pattern!r} matches none of the layers quantize() would change, "
                f"e.g. {candidates[-1]!r} (one '*' stands for one name component)"
            )
    chosen = [name for name in candidates if not any(matches(name, pattern) for pattern in patterns)]
    done: dict[nn.Linear, Int8Linear] = {}  # a layer shared by several blocks (ALBERT) is quantized once
    shared: dict[tuple[str, int], SharedInput] = {}
    for name in chosen:
        linear = model.get_submodule(name)
        if linear not in done:
            # Siblings reading inputs of one width (query, key, value) share a cache: it reuses the int8
            # values when they are handed the same tensor, and costs nothing when they are not.
            sibling = shared.setdefault((name.rpartition(".")[0], linear.in_features), SharedInput())
            done[linear] = Int8Linear(linear, sibling)
        model.set_submodule(name, done[linear])
    drop_joined_copies(model)  # query, key and value are Int8Linear now: their float copy is of no use
    model.is_quantized = True  # transformers' name for it; save_pretrained refuses such a model
    return model


def matches(name: str, pattern: str) -> bool:
    """Whether a dotted module name matches a pattern whose components may use ``*``, one component each.

    ``matches("encoder.layer.3.output.dense", "encoder.layer.*.output.dense") -> True``, and False for
    ``"encoder.layer.3.attention.output.dense"``: one more component.
    """
    parts, wanted = name.split("."), pattern.split(".")
    return len(parts) == len(wanted) and all(fnmatchcase(p, w) for p, w in zip(parts, wanted, strict=True))
