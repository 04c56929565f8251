"""Write files and folders so that a failure leaves nothing half-written at the destination."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_directory(destination: Path | str) -> Iterator[Path]:
    """Yield a temporary folder beside ``destination``; on success it replaces ``destination``.

    On any exception the temporary folder is removed and ``destination`` is left as it was.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", suffix=".partial", dir=destination.parent))
    staging.chmod(0o777 & ~_current_umask())  # mkdtemp makes 0700; the result should look like mkdir's
    try:
        yield staging
        if destination.exists():
            shutil.rmtree(destination)
        os.replace(staging, destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_file(destination: Path | str, mode: str = "wb") -> Iterator:
    """Open a temporary file beside ``destination``; on success rename it onto ``destination``."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, staging = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".partial", dir=destination.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
        os.chmod(staging, 0o666 & ~_current_umask())  # mkstemp makes 0600
        os.replace(staging, destination)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staging)
        raise


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
