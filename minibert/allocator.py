"""Freed memory kept for the next forward: the C allocator's limits, set once per process (glibc only).

A forward allocates its activations, frees them, and the next forward allocates the same sizes
again. glibc's ``malloc`` gives a block larger than its mmap threshold (128 KiB at first, raised
to the largest block freed so far, up to 32 MiB) back to the kernel as soon as it is freed, and
trims the heap's free top once it passes its trim threshold (twice the mmap threshold). The next
forward's blocks are then fresh pages, which the kernel zeroes at one page fault per 4 KiB: on
bert-base at one thread, 38,000 faults and 4% of the time of a forward on 8 x 128 tokens, 153,000
and 9% on 32 texts of 16-128 tokens (``scripts/bench_allocator.py``, each setting in processes of
its own).

``reuse_freed_memory`` raises both thresholds to ``KEPT_BYTES``: blocks up to that size come from
the heap, and up to that much freed heap stays with the process for the next forward. The cost is
that memory: after a large batch the process holds on to up to ``KEPT_BYTES`` it has freed (the
working set its forwards needed), where glibc alone would have given it back. The setting is the
whole process's, and transformers' or any other library's tensors in it get the same reuse.

Every model's first call applies it (``PreTrainedModel.__call__``); ``set_memory_reuse(False)``
before then leaves glibc as it is, and after then sets glibc's starting thresholds back. Where the
C library is not glibc (macOS, Windows, musl), nothing changes.
"""

from __future__ import annotations

import ctypes
import logging
import platform
import sys

logger = logging.getLogger(__name__)

KEPT_BYTES = 1 << 30  # the largest block taken from the heap, and the most freed heap kept: 1 GiB
GLIBC_START_BYTES = 128 * 1024  # glibc's starting mmap and trim thresholds
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (glibc's malloc.h)

wanted = True  # set_memory_reuse
applied = False  # whether this process's thresholds are minibert's


def glibc() -> ctypes.CDLL | None:
    """The process's glibc, or None where the C library is another one."""
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return None
    return ctypes.CDLL(None)


def set_thresholds(size: int) -> bool:
    """Set glibc's mmap and trim thresholds to ``size`` bytes; whether glibc took both."""
    libc = glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, size)) and bool(libc.mallopt(M_TRIM_THRESHOLD, size))


def reuse_freed_memory() -> None:
    """Keep freed memory for reuse, once per process, unless ``set_memory_reuse(False)`` came first."""
    global applied
    if applied or not wanted:
        return
    applied = True
    if set_thresholds(KEPT_BYTES):
        logger.info(
            "glibc now keeps up to %d MiB of freed memory for the next forward; "
            "minibert.set_memory_reuse(False) gives it back",
            KEPT_BYTES >> 20,
        )


def set_memory_reuse(enabled: bool = True) -> None:
    """Whether models keep freed memory for their next forward (the default); see this module's docstring.

    Turning it off after a model's first call sets glibc's starting thresholds (128 KiB) back; glibc's
    raising of its mmap threshold as blocks are freed stays off, as after any ``mallopt`` call.
    """
    global wanted, applied
    if not isinstance(enabled, bool):
        raise TypeError(f"set_memory_reuse takes True or False, got {enabled!r}")
    wanted = enabled
    if enabled:
        reuse_freed_memory()
    elif applied:
        set_thresholds(GLIBC_START_BYTES)
        applied = False
