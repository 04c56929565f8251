"""Write files and folders so that a failure leaves nothing half-written at the destination.

A write stages its result beside the destination, in a hidden
``.<name>.pid<pid>@<host>.<random>.partial`` folder or file, and renames it into place when
complete. A run killed mid-write (``kill -9``) cannot remove its staging copy; the next write of
the same destination does (:func:`remove_stale_staging`): every staging copy of that destination
made on this machine by a process that is gone, and those of older versions, which carried no
pid. Staging copies of a process still running, or made on another machine sharing the folder,
are left alone.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

from common.errors import RecAuditError


@contextlib.contextmanager
def atomic_directory(destination: Path | str) -> Iterator[Path]:
    """Yield a temporary folder beside ``destination``; on success it replaces ``destination``.

    On any exception the temporary folder is removed and ``destination`` is left as it was.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(destination)
    staging = Path(tempfile.mkdtemp(prefix=staging_prefix(destination), suffix=".partial", dir=destination.parent))
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
    remove_stale_staging(destination)
    fd, staging = tempfile.mkstemp(prefix=staging_prefix(destination), suffix=".partial", dir=destination.parent)
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


def staging_prefix(destination: Path) -> str:
    """``.<name>.pid<pid>@<host>.``: the staging copy names its destination and the process writing it."""
    return f".{destination.name}.pid{os.getpid()}@{_host()}."


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:32] or "host"


def remove_stale_staging(destination: Path | str) -> list[Path]:
    """Remove the staging copies of ``destination`` that killed runs left (see the module
    docstring); returns what was removed."""
    destination = Path(destination)
    pattern = re.compile(rf"\.{re.escape(destination.name)}\.(?:pid(\d+)@([A-Za-z0-9-]+)\.)?[A-Za-z0-9_]{{8}}\.partial")
    removed = []
    try:
        candidates = list(destination.parent.iterdir())
    except OSError:
        return removed
    for path in candidates:
        found = pattern.fullmatch(path.name)
        if found is None:
            continue
        pid, host = found.groups()
        if pid is not None and (host != _host() or _process_alive(int(pid))):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        removed.append(path)
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, owned by someone else
        return True
    return True


def check_writable(folder: Path | str, fix: str) -> Path:
    """Make sure files can be written into ``folder`` (or, when it does not exist yet, that it can
    be created), before any long work whose result goes there; else a one-line RecAuditError
    ending with ``fix``. Nothing is left behind: the probe file is removed and no folder is made."""
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise RecAuditError(f"cannot create the output folder {folder}: {existing} is not a folder; {fix}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RecAuditError(f"the output folder {existing} is not writable; {fix}")
    probe_name = existing / "write-probe"
    remove_stale_staging(probe_name)
    try:
        fd, probe = tempfile.mkstemp(prefix=staging_prefix(probe_name), suffix=".partial", dir=existing)
    except OSError as error:
        raise RecAuditError(f"the output folder {existing} is not writable ({error.strerror or error}); {fix}") from None
    os.close(fd)
    os.unlink(probe)
    return folder
