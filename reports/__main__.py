"""``python -m reports <command>``: statistics, build (the leaderboard), tables, verdicts, plots, audit, site.

Each command lives in a module exposing ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int | None``. Only the module of the command being run is imported.
"""
from __future__ import annotations

from common.cli import dispatch
from common.errors import run_cli

COMMANDS = {
    "statistics": ("reports.statistics", "compute every report statistic once into reports/statistics.json"),
    "build": ("reports.leaderboard", "write the Markdown leaderboard from the result files and their statistics"),
    "audit": ("reports.audit", "compare the papers' claims with our reproductions and the best baselines"),
    "site": ("reports.site", "write the self-contained leaderboard page"),
    "tables": ("reports.export", "write every split's table as Markdown, LaTeX and CSV"),
    "verdicts": ("reports.verdicts", "write the verdict table: neural methods against the best tuned baseline"),
    "plots": ("reports.plots", "draw the report's figures"),
}


def main(argv: list[str] | None = None) -> int | None:
    return dispatch("python -m reports", __doc__.splitlines()[0], COMMANDS, argv)


if __name__ == "__main__":
    run_cli(main)
