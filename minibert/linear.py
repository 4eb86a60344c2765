"""``nn.Linear`` variants with the same parameters and state-dict keys, and a joined product, for speed on the CPU.

``PackedLinear`` is what every model's plain ``nn.Linear`` layers become (``PreTrainedModel.post_init``).
A matrix-product kernel reads its weight in blocks laid out for its registers; ``F.linear`` lays
the weight out again on every call, which on few rows (one short text, batch-1 latency) costs
as much as the product. MKL and oneDNN can lay it out once and keep it: at inference on the
CPU, ``PackedLinear`` keeps that packed copy of its weight and multiplies with it.

Which packed product, from ``scripts/bench_linear.py`` on an Intel Xeon (AVX-512, AMX), with
bert-base's 72 weights in turn so that each comes from memory as in a forward (GFLOP/s against
``F.linear``'s):

- float32, one thread: MKL's, with the weight packed for 1,024 rows, at any number of rows:
  1.4x at 16 rows, 1.25x at 128, 1.05x at 1,024;
- float32, more threads: oneDNN's on 2-512 rows (1.1-1.3x); MKL's is slower there with threads,
  and ``F.linear`` is as fast on more rows, except that at two threads MKL's is faster on whole
  multiples of the 1,024 rows it packs for (full batches such as 8 x 128 or 4 x 256: 1.05-1.12x the
  products, 0.92-0.96x the forward at 1,024-2,048 rows, 0.96-0.99x at 4,096) and slower between them,
  and faster on weights at least twice as wide as deep on 32-512 rows (``--by-shape``: bert-base's
  768 -> 3,072 at 128 rows 296 GFLOP/s against oneDNN's 268, the joined 768 -> 2,304 292 against 264,
  where oneDNN's is the faster on 768 -> 768, 234 against 150);
- bfloat16: oneDNN's at any number of rows, 1.2-1.5x.

``JoinedLinear`` multiplies attention's query, key and value as one product, their weights joined
in one packed copy: one call for three, on a wide weight, which the kernels run the faster (bert-base
forward, ``--forward 1x16 1x128 --without joined``: 0.96x and 0.99x the time at one thread, 0.96x
and 0.95x at two).

The cost is memory: each packed copy is as large as the weight, made on a layer's second packable
call (the first runs ``F.linear``: a one-off call does not wait for packing) and remade whenever
the weight changes. A layer keeps one copy per kernel it has used, so a two-thread process that
meets inputs of different sizes (few rows, more rows on wide weights, full batches) holds two (as
does one whose thread count changed: a copy stays until the weight changes).
``set_weight_packing(False)`` turns it off. Autograd, tracing and ``torch.compile`` never see it.

``linear_then`` applies an activation to a layer's output; oneDNN's product applies GELU itself as it
writes its output, one pass over it instead of two, which is the faster way on small weights and
many rows (``FUSED_GELU_MAX_BYTES``, ``FUSED_GELU_MIN_ROWS``).

``Float32Linear`` multiplies bf16 or fp16 weights in float32 (``set_float32_matmuls``).
"""

from __future__ import annotations

import platform
import weakref
from collections.abc import Callable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ONEDNN_FLOAT32_ROWS = range(2, 513)  # rows (tokens) where oneDNN's packed float32 product is the faster
MKL_PACKED_FOR = 1024  # rows MKL packs a weight for; it multiplies any number of rows with it
MKL_BLOCKS_THREADS = 2  # the thread count at which MKL's product is measured faster on multiples of MKL_PACKED_FOR
MKL_WIDE_ROWS = range(32, 513)  # ...and on these rows, on weights at least twice as wide (outputs) as deep (inputs)

# Which packed products this PyTorch has (x86 builds have both; other builds keep F.linear).
ONEDNN = (
    platform.machine().lower() in ("x86_64", "amd64")
    and torch.backends.mkldnn.is_available()
    and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
    and hasattr(torch.ops.mkldnn, "_linear_pointwise")
)
MKL = ONEDNN and torch.backends.mkl.is_available() and hasattr(torch.ops.mkl, "_mkl_linear")
ONEDNN_BFLOAT16 = ONEDNN and torch.ops.mkldnn._is_mkldnn_bf16_supported()

# Where the product then GELU is faster as oneDNN's product with GELU applied in it (float32, Intel Xeon,
# 1 and 2 threads): on weights up to this size (all-MiniLM-L6-v2's 384 -> 1,536, 2.4 MB: 0.87-0.98x the
# time of the chosen product then F.gelu at 128-4,096 rows; bert-base's 768 -> 3,072, 9.4 MB: 1.02-1.08x)
# and from this many rows (MiniLM's forward 0.96-0.99x at 1,024-4,096 rows, 1.01-1.04x at 1 x 128 and one
# thread, where MKL's product is the faster one).
FUSED_GELU_MAX_BYTES = 4 << 20
FUSED_GELU_MIN_ROWS = 1024

Kernel = Literal["mkl", "onednn"]
# kernel -> (each weight's weakref, data_ptr and version when packed; the packed copy)
PackedCopies = dict[Kernel, tuple[tuple[tuple[Any, int, int], ...], Tensor]]


def kernel_for(x: Tensor, weight: Tensor, out_features: int) -> Kernel | None:
    """The packed product a call on ``x`` takes, if any: CPU inference, outside tracing, where it is faster.

    ``weight`` gives the dtype and ``in_features``; ``out_features`` is the width of the product, which
    for joined weights (``JoinedLinear``) is more than ``weight``'s.
    """
    if torch.jit.is_tracing() or torch.compiler.is_compiling() or not torch.backends.mkldnn.enabled:
        return None
    if not ONEDNN or torch.is_grad_enabled() or x.device.type != "cpu" or x.dtype != weight.dtype:
        return None
    if x.numel() == 0 or weight.numel() == 0:  # e.g. every head of a layer pruned
        return None
    if x.shape[-1] != weight.shape[1]:  # F.linear says so; the packed kernels would not
        return None
    if x.dtype == torch.bfloat16:
        return "onednn" if ONEDNN_BFLOAT16 else None
    if x.dtype != torch.float32:
        return None
    threads, rows = torch.get_num_threads(), x.shape[:-1].numel()
    if MKL and threads == 1:
        return "mkl"
    wide = out_features >= 2 * weight.shape[1] and rows in MKL_WIDE_ROWS
    if MKL and threads == MKL_BLOCKS_THREADS and (rows % MKL_PACKED_FOR == 0 or wide):
        return "mkl"
    return "onednn" if rows in ONEDNN_FLOAT32_ROWS else None


def packed_copy(copies: PackedCopies | None, weights: list[Tensor], kernel: Kernel) -> tuple[PackedCopies, Tensor]:
    """``weights`` (their rows joined, if more than one) packed for ``kernel``: the kept copy if it is of
    these weights as they are now, else packed again. Returns the copies to keep, stale ones dropped."""
    entry = (copies or {}).get(kernel)
    if entry is not None and is_current(entry[0], weights):
        return copies, entry[1]
    copies = {k: e for k, e in (copies or {}).items() if is_current(e[0], weights)}
    weight = weights[0].detach() if len(weights) == 1 else torch.cat([w.detach() for w in weights])  # (N, K)
    if kernel == "mkl":
        packed = torch.ops.mkl._mkl_reorder_linear_weight(weight, MKL_PACKED_FOR)
    else:
        packed = torch.ops.mkldnn._reorder_linear_weight(weight, None)
    state = tuple((weakref.ref(w), w.data_ptr(), version_of(w)) for w in weights)
    return {**copies, kernel: (state, packed)}, packed


def is_current(state: tuple[tuple[Any, int, int], ...], weights: list[Tensor]) -> bool:
    """Whether ``state`` is of these very tensors, unchanged since (``is``: ``==`` would compare the tensors)."""
    return len(state) == len(weights) and all(
        ref() is w and ptr == w.data_ptr() and version == version_of(w)
        for (ref, ptr, version), w in zip(state, weights, strict=True)
    )


def packed_product(x: Tensor, kernel: Kernel, packed: Tensor, bias: Tensor | None, like: Tensor) -> Tensor:
    """``x @ W.T + bias`` with ``W`` packed for ``kernel``; ``like`` is ``W`` or any tensor of its shape (MKL's
    product reads only the shape of the unpacked weight it is given)."""
    if kernel == "mkl":
        return torch.ops.mkl._mkl_linear(x, packed, like, bias, x.shape[:-1].numel())
    return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")


class PackedLinear(nn.Linear):
    """An ``nn.Linear`` that, at inference on the CPU, multiplies with a packed copy of its weight."""

    packed: PackedCopies | None = None
    warm = False  # whether this layer had a call the packed product could take

    def forward(self, x: Tensor) -> Tensor:
        kernel = kernel_for(x, self.weight, self.out_features)
        packed = None if kernel is None else self.packed_weight(kernel)
        if packed is None:
            return F.linear(x, self.weight, self.bias)
        return packed_product(x, kernel, packed, self.bias, self.weight)

    def packed_weight(self, kernel: Kernel) -> Tensor | None:
        """The weight packed for ``kernel``, packed again if it was replaced or changed in place since.

        None on the layer's first such call: packing every weight takes longer than a forward on a short
        text, which a one-off call (a command-line run, a model's first output) should not wait for.
        """
        if not self.warm:
            self.warm = True
            return None
        self.packed, packed = packed_copy(self.packed, [self.weight], kernel)
        return packed

    def __getstate__(self) -> dict[str, Any]:
        """Copies and pickles leave the packed weight behind (a weakref pickles not); it is remade on use."""
        state = self.__dict__.copy()
        state.pop("packed", None)
        state.pop("warm", None)
        return state


class JoinedLinear:
    """``PackedLinear`` layers that read one input (attention's query, key and value), multiplied as one.

    At inference on the CPU, one product with their weights' rows joined in one packed copy instead of
    one per layer: one call instead of three, and a product three times as wide, which the kernels run
    faster (bert-base, 2 threads: 1.2-1.3x at 16-128 rows, ``scripts/bench_linear.py --by-shape``). Each
    output is the same dot product as the layer's own, within float rounding (to the bit where both
    take the same kernel); the outputs are views of the joined product's columns. Where a layer has a
    hook (which must see its own call), or the packed path does not apply (training, tracing, another
    device or class), each layer is called as usual. The joined copy replaces the layers' own (unless a
    layer is also called alone: DeBERTa's query and key on its relative positions), and follows every
    change to their weights that PyTorch counts (not one made through ``.data``).
    """

    warm = False  # whether these layers had a call the joined product could take

    def __init__(self) -> None:
        self.packed: PackedCopies | None = None

    def __call__(self, layers: list[nn.Linear], x: Tensor) -> list[Tensor]:
        """Each layer's output on ``x``."""
        if any(type(layer) is not PackedLinear for layer in layers):  # packing off, or int8 (quantize)
            self.packed = None  # a copy of weights no longer multiplied here would only hold memory
            return [layer(x) for layer in layers]
        kernel = self.kernel(layers, x)
        weights = [layer.weight for layer in layers]
        if kernel is None or not self.warm:  # a first call runs each layer: a one-off call never packs
            self.warm = self.warm or kernel is not None
            if self.packed and not any(is_current(state, weights) for state, _ in self.packed.values()):
                self.packed = None  # of weights since moved (another device, dtype) or replaced
            return [layer(x) for layer in layers]
        copies, packed = packed_copy(self.packed, weights, kernel)
        if copies is not self.packed:  # packed now: copies the layers made alone (a hook kept them apart) go
            for layer in layers:
                layer.packed = None
        self.packed = copies
        biases = [layer.bias for layer in layers]
        bias = None if biases[0] is None else torch.cat(biases)  # (sum N,): read anew, so changes show
        widths = [layer.out_features for layer in layers]
        like = x.new_empty(()).expand(sum(widths), layers[0].in_features)  # the joined weight's shape, no memory
        return list(packed_product(x, kernel, packed, bias, like).split(widths, dim=-1))

    @staticmethod
    def kernel(layers: list[nn.Linear], x: Tensor) -> Kernel | None:
        """The packed product the joined call takes, or None where the layers must be called one by one."""
        if not joinable(layers):
            return None
        return kernel_for(x, layers[0].weight, sum(layer.out_features for layer in layers))

    def __getstate__(self) -> dict[str, Any]:
        """Copies and pickles leave the joined copy behind; it is remade on use."""
        return {"packed": None}


def linear_then(layer: nn.Linear, x: Tensor, activation: Callable[[Tensor], Tensor]) -> Tensor:
    """``activation(layer(x))``; GELU applied by oneDNN's product where that is the faster way (see module doc).

    Within float rounding of the product then ``F.gelu`` (equal to the bit in the forwards measured).
    """
    if (
        activation is F.gelu
        and x.shape[:-1].numel() >= FUSED_GELU_MIN_ROWS
        and type(layer) is PackedLinear
        and layer.weight.dtype == torch.float32
        and layer.weight.numel() * layer.weight.element_size() <= FUSED_GELU_MAX_BYTES
        and not hooked(layer)
        and kernel_for(x, layer.weight, layer.out_features) is not None
    ):
        packed = layer.packed_weight("onednn")
        if packed is None:  # the layer's first such call, as PackedLinear's: F.linear's product, nothing packed
            return activation(F.linear(x, layer.weight, layer.bias))
        return torch.ops.mkldnn._linear_pointwise(x, packed, layer.bias, "gelu", [], "none")
    return activation(layer(x))


def hooked(layer: nn.Module) -> bool:
    """Whether a forward hook (the layer's own or a global one) must see the layer's own call."""
    module = nn.modules.module
    return bool(
        layer._forward_hooks
        or layer._forward_pre_hooks
        or module._global_forward_hooks
        or module._global_forward_pre_hooks
    )


def joinable(layers: list[nn.Module]) -> bool:
    """Whether ``layers`` (of one class) can be multiplied as one: the same inputs, weights of one dtype
    and device, all with a bias or none, and no hook, which must see each layer's own call."""
    if len(layers) < 2:
        return False
    first = layers[0]
    return all(
        not hooked(layer)
        and layer.weight.dtype == first.weight.dtype
        and layer.weight.device == first.weight.device
        and layer.in_features == first.in_features
        and (layer.bias is None) == (first.bias is None)
        for layer in layers
    )


def version_of(tensor: Tensor) -> int:
    """How many times ``tensor`` was changed in place; -1 for a tensor made in inference mode, which keeps no count."""
    return -1 if tensor.is_inference() else tensor._version


class Float32Linear(nn.Linear):
    """An ``nn.Linear`` that multiplies in float32 whatever dtype it stores: see ``set_float32_matmuls``."""

    def forward(self, x: Tensor) -> Tensor:
        bias = None if self.bias is None else self.bias.float()
        return F.linear(x.float(), self.weight.float(), bias).to(x.dtype)


def set_linear_class(model: nn.Module, old: tuple[type[nn.Linear], ...], new: type[nn.Linear]) -> None:
    """Turn every layer of exactly one of the classes ``old`` into ``new``: same parameters, same keys."""
    for module in model.modules():
        if type(module) in old:
            module.__dict__.pop("packed", None)
            module.__dict__.pop("warm", None)
            module.__class__ = new
    drop_joined_copies(model)


def drop_joined_copies(model: nn.Module) -> None:
    """Free every ``JoinedLinear``'s copy in ``model`` now, when its layers change class (packing off, int8)."""
    for module in model.modules():
        if isinstance(getattr(module, "joined", None), JoinedLinear):
            module.joined = type(module.joined)()
