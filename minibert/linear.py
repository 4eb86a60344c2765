"""Two ``nn.Linear`` variants with the same parameters and state-dict keys, for speed on the CPU.

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
  products, 0.92-0.96x the forward at 1,024-2,048 rows, 0.96-0.99x at 4,096) and slower between them;
- bfloat16: oneDNN's at any number of rows, 1.2-1.5x.

The cost is memory: each packed copy is as large as the weight, made on a layer's second packable
call (the first runs ``F.linear``: a one-off call does not wait for packing) and remade whenever
the weight changes. A layer keeps one copy per kernel it has used, so a two-thread process that
runs both short inputs and full batches holds two (as does one whose thread count changed: a copy
stays until the weight changes).
``set_weight_packing(False)`` turns it off. Autograd, tracing and ``torch.compile`` never see it.

``Float32Linear`` multiplies bf16 or fp16 weights in float32 (``set_float32_matmuls``).
"""

from __future__ import annotations

import platform
import weakref
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ONEDNN_FLOAT32_ROWS = range(2, 513)  # rows (tokens) where oneDNN's packed float32 product is the faster
MKL_PACKED_FOR = 1024  # rows MKL packs a weight for; it multiplies any number of rows with it
MKL_BLOCKS_THREADS = 2  # the thread count at which MKL's product is measured faster on multiples of MKL_PACKED_FOR

# Which packed products this PyTorch has (x86 builds have both; other builds keep F.linear).
ONEDNN = (
    platform.machine().lower() in ("x86_64", "amd64")
    and torch.backends.mkldnn.is_available()
    and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
    and hasattr(torch.ops.mkldnn, "_linear_pointwise")
)
MKL = ONEDNN and torch.backends.mkl.is_available() and hasattr(torch.ops.mkl, "_mkl_linear")
ONEDNN_BFLOAT16 = ONEDNN and torch.ops.mkldnn._is_mkldnn_bf16_supported()

Kernel = Literal["mkl", "onednn"]


class PackedLinear(nn.Linear):
    """An ``nn.Linear`` that, at inference on the CPU, multiplies with a packed copy of its weight."""

    # kernel -> (the weight's weakref, data_ptr and version when packed, the packed copy)
    packed: dict[Kernel, tuple[Any, int, int, Tensor]] | None = None
    warm = False  # whether this layer had a call the packed product could take

    def forward(self, x: Tensor) -> Tensor:
        kernel = self.kernel(x)
        packed = None if kernel is None else self.packed_weight(kernel)
        if packed is None:
            return F.linear(x, self.weight, self.bias)
        if kernel == "mkl":
            return torch.ops.mkl._mkl_linear(x, packed, self.weight, self.bias, x.shape[:-1].numel())
        return torch.ops.mkldnn._linear_pointwise(x, packed, self.bias, "none", [], "")

    def kernel(self, x: Tensor) -> Kernel | None:
        """The packed product this call takes, if any: CPU inference, outside tracing, where it is faster."""
        if torch.jit.is_tracing() or torch.compiler.is_compiling() or not torch.backends.mkldnn.enabled:
            return None
        if not ONEDNN or torch.is_grad_enabled() or x.device.type != "cpu" or x.dtype != self.weight.dtype:
            return None
        if x.numel() == 0 or self.weight.numel() == 0:  # e.g. every head of a layer pruned
            return None
        if x.dtype == torch.bfloat16:
            return "onednn" if ONEDNN_BFLOAT16 else None
        if x.dtype != torch.float32:
            return None
        threads, rows = torch.get_num_threads(), x.shape[:-1].numel()
        if MKL and threads == 1:
            return "mkl"
        if rows in ONEDNN_FLOAT32_ROWS:
            return "onednn"
        return "mkl" if MKL and threads == MKL_BLOCKS_THREADS and rows % MKL_PACKED_FOR == 0 else None

    def packed_weight(self, kernel: Kernel) -> Tensor | None:
        """The weight packed for ``kernel``, packed again if it was replaced or changed in place since.

        None on the layer's first such call: packing every weight takes longer than a forward on a short
        text, which a one-off call (a command-line run, a model's first output) should not wait for.
        """
        if not self.warm:
            self.warm = True
            return None
        weight, packs = self.weight, self.packed or {}
        state = (weight.data_ptr(), version_of(weight))
        entry = packs.get(kernel)
        if entry is not None and entry[0]() is weight and entry[1:3] == state:
            return entry[3]
        packs = {k: e for k, e in packs.items() if e[0]() is weight and e[1:3] == state}  # drop stale copies
        if kernel == "mkl":
            packed = torch.ops.mkl._mkl_reorder_linear_weight(weight.detach(), MKL_PACKED_FOR)
        else:
            packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach(), None)
        self.packed = {**packs, kernel: (weakref.ref(weight), *state, packed)}
        return packed

    def __getstate__(self) -> dict[str, Any]:
        """Copies and pickles leave the packed weight behind (a weakref pickles not); it is remade on use."""
        state = self.__dict__.copy()
        state.pop("packed", None)
        state.pop("warm", None)
        return state


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
