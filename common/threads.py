"""Torch CPU thread scopes, shared by the neural loop and by iALS (which must not import
``neural/``: editing the neural device code would then rerun iALS)."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def thread_scope(threads: int | None) -> Iterator[None]:
    """Run torch's CPU operations on ``threads`` threads inside the block (None: unchanged).

    Models whose batches are small (NCF, BPR) train on one thread: their per-batch
    operations are too small to split, and on a busy machine waiting for a second,
    descheduled thread costs more than the work (measured 0.7 ms vs 24 ms per NCF batch on a
    loaded 2-core machine). Results on one thread are also independent of the machine's core
    count. The setting is process-wide in torch, so it is restored on exit.
    """
    import torch

    if threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
