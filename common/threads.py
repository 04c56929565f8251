"""How many CPU threads the numerical libraries use: the command-wide policy
(:func:`apply_thread_policy`) and torch thread scopes, shared by the neural loop and by iALS
(which must not import ``neural/``: editing the neural device code would then rerun iALS).

The policy: every command that computes numbers (``python -m datasets``, ``python -m
protocols``) runs BLAS (numpy's and scipy's OpenBLAS), OpenMP and MKL on
``RECAUDIT_THREADS`` threads, 1 when it is unset. One thread per process keeps a busy
machine's slowdown proportional: an OpenBLAS call on 2 threads of a 2-core machine where
another process holds a core waits on the descheduled thread (measured: EASE's inverse of a
3,000-item Gram matrix 0.29 s on one thread, 0.55 s on two, with one core busy; the issue
that asked for this measured 3.7 s against 16.1 s). A fixed count, never one read from the
machine's load, because results depend on it in the last bits (the same inverse differs by
2e-9 between 1 and 2 threads): the same params give the same numbers on a quiet or a busy
machine. Parallelism comes from running stages side by side (``dvc queue start -j N``, or
tuning workers sharing one study); on a dedicated machine ``RECAUDIT_THREADS=N`` speeds up
large dense fits (EASE at ML-20M shape), and each result records the count it ran with.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

THREADS_VARIABLE = "RECAUDIT_THREADS"
_LIBRARY_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def command_threads() -> int:
    """``RECAUDIT_THREADS`` as a positive integer, 1 when unset; a one-line error otherwise."""
    value = os.environ.get(THREADS_VARIABLE, "").strip()
    if not value:
        return 1
    if not value.isdigit() or int(value) < 1:
        from common.errors import RecAuditError

        raise RecAuditError(f"{THREADS_VARIABLE}={value!r} is not a positive integer; unset it (one thread per "
                            "process) or set a thread count such as 2")
    return int(value)


def apply_thread_policy() -> int:
    """Set the libraries' thread counts for this process to :func:`command_threads`.

    Call it before numpy, scipy or torch is imported: the BLAS libraries read their variables
    when they load. Libraries already loaded are limited too (threadpoolctl), and torch if it
    is imported already. Returns the count.
    """
    threads = command_threads()
    for variable in _LIBRARY_VARIABLES:
        os.environ[variable] = str(threads)
    import sys

    if "numpy" in sys.modules:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    return threads


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
