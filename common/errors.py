"""User-facing errors and the command-line wrapper that prints them as one line."""
from __future__ import annotations

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
    """Run a command-line main function, turning RecAuditError into a one-line message."""
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
    sys.exit(status or 0)
