"""Memory a fit needs against memory the machine has, checked before the work starts.

A fit killed by the kernel's out-of-memory killer leaves no message and, under DVC, a stage
that failed for no stated reason. Models whose working memory is large and predictable (a
dense items x items matrix, a pixel cache) state it through
:meth:`~protocols.contract.Recommender.fit_memory_bytes`; :func:`require_memory` compares it
with what is available (``MemAvailable``, lowered by a cgroup limit when one is set) and
refuses in one line: what is needed, what is available, and which option reduces the need.
"""
from __future__ import annotations

import os
from pathlib import Path

from common.errors import RecAuditError

# Override of the available memory in bytes (tests; a user sharing the machine with others).
LIMIT_VARIABLE = "RECAUDIT_MEMORY_LIMIT"


def human_bytes(n_bytes: int) -> str:
    """Decimal units with one decimal: ``5.5 GB``, ``978.2 kB``, ``12 B``."""
    if n_bytes < 1000:
        return f"{n_bytes} B"
    value = float(n_bytes)
    for unit in ("kB", "MB", "GB", "TB"):
        value /= 1000
        if value < 999.95 or unit == "TB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def _meminfo_available(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_available(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """Room left under a cgroup v2 memory limit, or None when unlimited or unknown."""
    try:
        limit = (root / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(0, int(limit) - int((root / "memory.current").read_text().strip()))
    except (OSError, ValueError):
        return None


def available_bytes() -> int | None:
    """Memory a new allocation can use now, or None when the platform does not say."""
    override = os.environ.get(LIMIT_VARIABLE)
    if override:
        try:
            return int(float(override))
        except ValueError:
            raise RecAuditError(f"{LIMIT_VARIABLE}={override!r} is not a number of bytes; "
                                f"set it to e.g. 8e9 or unset it") from None
    known = [value for value in (_meminfo_available(), _cgroup_available()) if value is not None]
    return min(known) if known else None


def require_memory(needed: int, what: str, fix: str) -> None:
    """Refuse ``what`` in one line when it needs more than the available memory."""
    available = available_bytes()
    if available is not None and needed > available:
        raise RecAuditError(f"{what} needs about {human_bytes(needed)} of memory but "
                            f"{human_bytes(available)} is available; {fix}")
