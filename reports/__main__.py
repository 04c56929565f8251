"""``python -m reports <command>``: build (the leaderboard), audit (the papers' claims), and more as they arrive.

Each command lives in a module exposing ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int | None``.
"""
from __future__ import annotations

import argparse
import importlib

from datasets.errors import run_cli

COMMANDS = {
    "build": "reports.leaderboard",
    "audit": "reports.audit",
    "site": "reports.site",
    "tables": "reports.export",
    "verdicts": "reports.verdicts",
    "plots": "reports.plots",
}


def main(argv: list[str] | None = None) -> int | None:
    parser = argparse.ArgumentParser(prog="python -m reports", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = {}
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        modules[name] = module
        module.add_arguments(commands.add_parser(name, help=module.HELP, description=module.HELP))
    args = parser.parse_args(argv)
    return modules[args.command].run(args)


if __name__ == "__main__":
    run_cli(main)
