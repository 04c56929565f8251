"""``python -m protocols models``: the registered models and their search spaces."""
from __future__ import annotations

import argparse

from tabulate import tabulate

from protocols.registry import registered_models

HELP = "list the registered models: family, what they need, stochasticity and search space"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def model_rows() -> list[list[str]]:
    rows = []
    for name, cls in registered_models().items():
        space = "; ".join(f"{param}: {dimension}" for param, dimension in cls.search_space.items())
        rows.append([name, cls.family, needs(cls()), _yes_no("seed" in cls.parameter_names()),
                     space or "none (nothing to tune)"])
    return rows


def run(args: argparse.Namespace) -> int:
    headers = ["model", "family", "needs", "stochastic", "search space"]
    print(tabulate(model_rows(), headers=headers, tablefmt="github", disable_numparse=True))
    return 0


def needs(model) -> str:
    """The model's declared requirements in words (its defaults)."""
    declared = model.requirements()
    words = []
    if declared.user_embeddings:
        words.append("user embeddings")
    if declared.item_features is not None:
        words.append("item features" + ("" if declared.item_features == "*" else f" {declared.item_features}"))
    if declared.item_images:
        words.append("item images")
    return ", ".join(words) or "-"


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"
