"""User-facing errors and the command-line wrapper that prints them as one line."""
from __future__ import annotations

import errno
import sys
from collections.abc import Callable, Iterable


class RecAuditError(Exception):
    """An error caused by the user's input or environment, not by a bug.

    The message is a single line that names the problem and the fix. Command-line
    entry points print it without a traceback and exit with status 2.
    """


def unknown_name_error(kind: str, name: str, known: Iterable[str]) -> RecAuditError:
    """The standard error for an unknown dataset, protocol, model, metric, ..."""
    choices = ", ".join(sorted(known))
    return RecAuditError(f"unknown {kind} {name!r}; known {kind}s: {choices}")


def run_cli(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> None:
    """Run a command-line main function, turning RecAuditError, and errors of the machine such as
    a full disk (:func:`environment_error`), into a one-line message."""
    try:
        status = main(argv)
    except RecAuditError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except BrokenPipeError:
        # Output piped into `head` and closed early: not an error worth a traceback.
        sys.stderr.close()
        sys.exit(0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as error:  # noqa: BLE001 - re-raised unless the environment caused it
        message = environment_error(error)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
    sys.exit(status or 0)


# Errors of the machine rather than of the input or the code: a full disk or a folder the run
# may not write. Every writer writes atomically (common.atomic), so nothing half-written stays.
FULL_DISK_ERRNOS = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})
READ_ONLY_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
SQLITE_FULL = "database or disk is full"


def environment_error(error: BaseException) -> str | None:
    """The one-line message for an error the machine caused (found anywhere in the chain of
    causes, as when SQLAlchemy or Optuna wrap SQLite's), or None for any other error."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in FULL_DISK_ERRNOS:
            where = f" while writing {error.filename}" if error.filename else ""
            return f"no space left on the device{where}; free some disk space and run the command again"
        if isinstance(error, OSError) and error.errno in READ_ONLY_ERRNOS and error.filename:
            return (f"cannot write {error.filename} ({error.strerror}); make the folder writable or choose "
                    "another output folder")
        if isinstance(error, MemoryError):
            # Models that can estimate their need refuse before the work (common.memory); this
            # is the allocation none predicted.
            return ("the machine ran out of memory during the work (MemoryError); run it on a machine with "
                    "more memory, or use smaller data or a model setting that needs less")
        if SQLITE_FULL in str(error).lower():
            return f"the disk is full (SQLite: {SQLITE_FULL}); free some disk space and run the command again"
        error = error.__cause__ or error.__context__
    return None
