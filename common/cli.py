"""Command-line dispatch shared by ``python -m protocols`` and ``python -m reports``."""
from __future__ import annotations

import argparse
import importlib
import sys


def dispatch(prog: str, description: str, commands: dict[str, tuple[str, str]],
             argv: list[str] | None = None) -> int | None:
    """Parse ``argv`` and run one command of ``commands`` (name -> (module, one-line help)).

    Each command module exposes ``HELP``, ``add_arguments(parser)`` and ``run(args)``. Only the
    module of the command being run is imported, so one command's heavy or optional imports
    (Optuna, matplotlib) never slow down or break another.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog=prog, description=description)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = next((word for word in argv if not word.startswith("-")), None)
    modules = {}
    for name, (module_name, summary) in commands.items():
        if name != chosen:
            subparsers.add_parser(name, help=summary)
            continue
        module = importlib.import_module(module_name)
        modules[name] = module
        module.add_arguments(subparsers.add_parser(name, help=module.HELP, description=module.HELP))
    args = parser.parse_args(argv)
    return modules[args.command].run(args)
