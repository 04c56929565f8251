"""Where neural models run: device choice, and determinism scoped to one fit.

Importing this module does not import torch (the model registry imports every module of
``neural/`` just to list models, which must stay cheap and work without a GPU).
"""
from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Iterator

from common.errors import RecAuditError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N")
_CUDA_NAME = re.compile(r"^cuda(:\d+)?$")


class DeviceFallbackWarning(UserWarning):
    """``device="cuda"`` was asked for on a machine without CUDA; the model runs on the CPU."""


def check_device_name(name) -> None:
    """Raise RecAuditError unless ``name`` is one of ``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""
    if not isinstance(name, str) or not (name in ("auto", "cpu") or _CUDA_NAME.match(name)):
        raise RecAuditError(f"unknown device {name!r}; use one of {', '.join(DEVICE_CHOICES)}")


def resolve_device(name: str):
    """The ``torch.device`` a model with ``device=name`` trains on.

    ``auto`` picks CUDA when ``torch.cuda.is_available()``, else the CPU. An explicit
    ``cuda`` on a machine without CUDA warns (:class:`DeviceFallbackWarning`) and falls back
    to the CPU, so that one params file runs everywhere; a CUDA index beyond the machine's
    devices is an error.
    """
    import torch

    check_device_name(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        warnings.warn(f"device={name!r} was asked for but CUDA is not available; running on the CPU",
                      DeviceFallbackWarning, stacklevel=3)
        return torch.device("cpu")
    device = torch.device(name)
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise RecAuditError(f"device {name!r} does not exist; this machine has "
                            f"{torch.cuda.device_count()} CUDA device(s): use cuda:0 .. "
                            f"cuda:{torch.cuda.device_count() - 1}")
    return device


@contextlib.contextmanager
def deterministic_scope(device) -> Iterator[None]:
    """Ask torch for deterministic CUDA kernels for the duration of one fit on a GPU.

    ``torch.use_deterministic_algorithms`` is process-wide, so it is restored on exit rather
    than set globally. It is enabled with ``warn_only=True`` (kernels without a deterministic
    version warn instead of failing; cuBLAS is deterministic only when
    ``CUBLAS_WORKSPACE_CONFIG`` was set before CUDA started), so GPU runs are reproducible
    on a best-effort basis. On the CPU it is left alone: the CPU kernels these models use
    are deterministic for a fixed number of threads (the tests check bit-identical scores),
    and the first call of the switch imports torch's compiler, about 3 s.
    """
    import torch

    if device.type == "cpu":
        yield
        return
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
