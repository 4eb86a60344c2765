"""The process's memory, set for speed: freed memory kept for the next forward (glibc), large tensors in huge pages.

A forward allocates its activations, frees them, and the next forward allocates the same sizes
again. glibc's ``malloc`` gives a block larger than its mmap threshold (128 KiB at first, raised
to the largest block freed so far, up to 32 MiB) back to the kernel as soon as it is freed, and
trims the heap's free top once it passes its trim threshold (twice the mmap threshold). The next
forward's blocks are then fresh pages, which the kernel zeroes at one page fault per 4 KiB: on
bert-base at one thread, about 40,000 faults and 4-6% of the time of a forward on 8 x 128 tokens,
89,000-153,000 and 4-9% on 32 texts of 16-128 tokens (``scripts/bench_allocator.py``, each setting
in processes of its own).

``reuse_freed_memory`` raises both thresholds to ``KEPT_BYTES`` (1 GiB): blocks up to that size
come from the heap, and the heap's free top is kept until it passes that size. The cost is memory
the process holds after its forwards, where glibc alone would give it back: the free top (up to
1 GiB), and freed blocks below live ones whatever their size, as with any heap (up to 140 MiB more
resident memory on the benchmark's batches). It is the whole process's setting: other libraries'
tensors get the same reuse, and forked workers inherit it, each keeping its own working set.

Where it does not reach: a thread other than the main one allocates from an arena of its own,
whose heaps hold at most 64 MiB, so its larger blocks are still fresh pages; calls traced by
``torch.compile`` skip it (a compiled module's eager first call, ``model.compile()``, applies it).
It changes nothing where the C library is not glibc (macOS, Windows, musl), where glibc refuses
the values, or where the process's own settings (``MALLOC_MMAP_THRESHOLD_``,
``MALLOC_TRIM_THRESHOLD_``, ``GLIBC_TUNABLES`` with ``glibc.malloc``) say otherwise.

The first call of a model on the CPU applies it (``PreTrainedModel.__call__``);
``set_memory_reuse(False)`` before then leaves glibc as it is, and after then sets glibc's starting
thresholds back and returns the heap's free memory to the kernel (``malloc_trim``).

Huge pages. A forward streams every weight from memory; on a few tokens, little work per weight
row, the CPU's page-table lookups for 4 KiB pages are part of the cost. PyTorch places CPU tensors
of 2 MiB or more in the kernel's transparent huge pages (2 MiB) where ``THP_MEM_ALLOC_ENABLE=1``,
which it reads once, at the process's first CPU tensor. Importing minibert sets it, as NumPy asks
for huge pages for its large arrays by default. bert-base's forward at one thread, fresh processes
with and without, alternating (``scripts/bench_allocator.py --setting huge-pages``, Intel Xeon VM
on a busy host): 0.93-0.98x the time on 1 x 16 tokens (four runs of 6-8 pairs, 8 of 8 pairs faster
in three), 0.98-1.00x on 8 x 128, 0.98x on 32 texts of 16-128 tokens; at two threads 0.99x and 0.98x;
all-MiniLM-L6-v2's embeddings (90 MB of weights) 1.01x; loading unchanged.
``THP_MEM_ALLOC_ENABLE=0`` in the environment keeps 4 KiB pages (unless the kernel gives huge pages
to every large mapping: ``/sys/kernel/mm/transparent_hugepage/enabled`` set to always). It takes no
effect in a process that made a CPU tensor before importing minibert, nor where the kernel gives no
huge pages (never); ``huge_pages()`` says whether large tensors get them. It is set in
``os.environ``, so processes started from this one (DataLoader workers, subprocesses) inherit it.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import platform
import sys
from pathlib import Path

import torch
from torch import nn

logger = logging.getLogger(__name__)

KEPT_BYTES = 1 << 30  # the largest block taken from the heap, and the largest free top kept: 1 GiB
OLD_GLIBC_MMAP_BYTES = 32 << 20  # the highest mmap threshold older glibc releases accept (HEAP_MAX_SIZE / 2)
GLIBC_START_BYTES = 128 * 1024  # glibc's starting mmap and trim thresholds
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (glibc's malloc.h)
OWN_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")  # glibc's variables for the same

HUGE_PAGES_SWITCH = "THP_MEM_ALLOC_ENABLE"  # PyTorch's: CPU tensors of 2 MiB or more madvised for huge pages
HUGE_PAGE_BYTES = 2 << 20

os.environ.setdefault(HUGE_PAGES_SWITCH, "1")  # at import: PyTorch reads it at the process's first CPU tensor

wanted = True  # set_memory_reuse
applied = False  # whether glibc took minibert's thresholds in this process


@functools.cache
def glibc() -> ctypes.CDLL | None:
    """The process's glibc, or None where the C library is another one."""
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return None
    return ctypes.CDLL(None)


@functools.cache
def adjustable() -> bool:
    """Whether minibert may set the thresholds: the C library is glibc, and the process was not started with
    malloc settings of its own (glibc reads them at start, so the answer holds for the process's life)."""
    own = any(name in os.environ for name in OWN_SETTINGS) or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", "")
    return glibc() is not None and not own


def set_thresholds(size: int) -> bool:
    """Set glibc's trim and mmap thresholds to ``size`` bytes (the mmap one to 32 MiB if glibc refuses more).

    Returns whether glibc took either.
    """
    libc = glibc()
    if libc is None:
        return False
    trim = libc.mallopt(M_TRIM_THRESHOLD, size)
    mmap = libc.mallopt(M_MMAP_THRESHOLD, size) or libc.mallopt(M_MMAP_THRESHOLD, min(size, OLD_GLIBC_MMAP_BYTES))
    return bool(trim or mmap)


def reuse_freed_memory(model: nn.Module | None = None) -> None:
    """Keep freed memory for reuse, once per process, unless ``set_memory_reuse(False)`` came first.

    With ``model``, only if its weights are on the CPU: a GPU's activations are not glibc's.
    """
    global applied
    if applied or not wanted or not adjustable():  # every call of every model asks: the common answers first
        return
    weight = None if model is None else next(model.parameters(), None)
    if weight is not None and weight.device.type != "cpu":
        return
    applied = set_thresholds(KEPT_BYTES)
    if applied:
        logger.info(
            "glibc now keeps freed memory for the next forward (blocks up to %d MiB); "
            "minibert.set_memory_reuse(False) turns it off",
            KEPT_BYTES >> 20,
        )


def set_memory_reuse(enabled: bool = True) -> None:
    """Whether models keep freed memory for their next forward (the default); see this module's docstring.

    Turning it off after a model's first call sets glibc's starting thresholds (128 KiB) back and
    gives the heap's free memory back to the kernel; glibc's raising of its mmap threshold as
    blocks are freed stays off, as after any ``mallopt`` call.
    """
    global wanted, applied
    if not isinstance(enabled, bool):
        raise ValueError(f"set_memory_reuse takes True or False, got {enabled!r}")
    wanted = enabled
    if enabled:
        reuse_freed_memory()
    elif applied:
        set_thresholds(GLIBC_START_BYTES)
        glibc().malloc_trim(0)
        applied = False


def huge_pages() -> bool:
    """Whether this process's CPU tensors of 2 MiB or more may get huge pages: PyTorch asks, the kernel may give."""
    probe = torch.empty(HUGE_PAGE_BYTES // 2, dtype=torch.float32)  # 4 MiB: a whole aligned huge page inside
    return mapping_of(probe.data_ptr()).get("THPeligible") == "1"


def mapping_of(address: int) -> dict[str, str]:
    """The fields of ``/proc/self/smaps`` for the mapping that holds ``address`` (none off Linux)."""
    smaps = Path("/proc/self/smaps")
    fields: dict[str, str] = {}
    inside = False
    for line in smaps.read_text().splitlines() if smaps.is_file() else []:
        name, _, value = line.partition(" ")
        if not name.endswith(":"):  # a mapping's first line: start-end permissions offset device inode path
            if inside:
                break
            start, end = (int(bound, 16) for bound in name.split("-"))
            inside = start <= address < end
        elif inside:
            fields[name[:-1]] = value.strip()
    return fields
