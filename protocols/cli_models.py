"""``python -m protocols models``: the registered models and their search spaces."""
from __future__ import annotations

import argparse

from tabulate import tabulate

from protocols.registry import registered_models

HELP = "list the registered models: family, fold-in, stochasticity and search space"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def model_rows() -> list[list[str]]:
    rows = []
    for name, cls in registered_models().items():
        space = "; ".join(f"{param}: {dimension}" for param, dimension in cls.search_space.items())
        rows.append([name, cls.family, _yes_no(cls.folds_in_users), _yes_no("seed" in cls.parameter_names()),
                     space or "none (nothing to tune)"])
    return rows


def run(args: argparse.Namespace) -> int:
    headers = ["model", "family", "folds in users", "stochastic", "search space"]
    print(tabulate(model_rows(), headers=headers, tablefmt="github", disable_numparse=True))
    return 0


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"
