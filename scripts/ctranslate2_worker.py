"""CTranslate2's encoder in a process of its own, for scripts/bench_engines.py.

In one process with PyTorch, the first forward of a CTranslate2 encoder on two or more threads
leaves PyTorch's later calls ~1.45x slower (measured on bert-base 1x16: 29.7 -> 43.7 ms at two
threads, 50 -> 75 ms at one), although CTranslate2's threads then use no CPU time. Run here, the
encoder cannot touch the benchmark's PyTorch engines. It imports neither torch nor transformers.

``serve`` answers (ids, lengths) int32 arrays with the last hidden states (B, T, H) as float32,
written into a shared-memory block whose name and shape it sends back: a pipe would pickle them
(17 ms for a MiniLM batch of 32 x 128), the copy into shared memory takes ~1 ms.
"""

from __future__ import annotations

from multiprocessing import shared_memory
from multiprocessing.connection import Connection

import numpy as np


def serve(connection: Connection, path: str, threads: int, compute_type: str) -> None:
    """Build the encoder, say "ready" (or the error), then run each batch received until ``None`` arrives."""
    try:
        import ctranslate2

        encoder = ctranslate2.Encoder(
            path, device="cpu", compute_type=compute_type, intra_threads=threads, inter_threads=1
        )
    except Exception as error:  # sent to the benchmark, which reports it in the table
        connection.send(f"{type(error).__name__}: {error}")
        return
    connection.send("ready")
    block: shared_memory.SharedMemory | None = None
    while (batch := connection.recv()) is not None:
        ids, lengths = batch
        output = encoder.forward_batch(
            ctranslate2.StorageView.from_array(ids), ctranslate2.StorageView.from_array(lengths)
        )
        hidden = np.asarray(output.last_hidden_state)  # (B, T, H) float32
        if block is None or block.size < hidden.nbytes:  # a larger batch: a larger block
            if block is not None:
                block.close()
                block.unlink()
            block = shared_memory.SharedMemory(create=True, size=hidden.nbytes)
        np.ndarray(hidden.shape, np.float32, buffer=block.buf)[...] = hidden
        connection.send((block.name, hidden.shape))
    if block is not None:
        block.close()
        block.unlink()
