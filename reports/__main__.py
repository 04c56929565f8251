"""``python -m reports <command>``: build (the leaderboard), tables, verdicts, plots, audit, site.

Each command lives in a module exposing ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int | None``. Only the module of the command being run is imported.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from datasets.errors import run_cli

COMMANDS = {
    "build": ("reports.leaderboard", "write the Markdown leaderboard from the result files"),
    "audit": ("reports.audit", "compare the papers' claims with our reproductions and the best baselines"),
    "site": ("reports.site", "write the self-contained leaderboard page"),
    "tables": ("reports.export", "write every split's table as Markdown, LaTeX and CSV"),
    "verdicts": ("reports.verdicts", "write the verdict table: neural methods against the best tuned baseline"),
    "plots": ("reports.plots", "draw the report's figures"),
}


def main(argv: list[str] | None = None) -> int | None:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="python -m reports", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = next((word for word in argv if not word.startswith("-")), None)
    modules = {}
    for name, (module_name, summary) in COMMANDS.items():
        if name != chosen:
            commands.add_parser(name, help=summary)
            continue
        module = importlib.import_module(module_name)
        modules[name] = module
        module.add_arguments(commands.add_parser(name, help=module.HELP, description=module.HELP))
    args = parser.parse_args(argv)
    return modules[args.command].run(args)


if __name__ == "__main__":
    run_cli(main)
