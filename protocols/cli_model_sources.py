"""``python -m protocols model-sources``: one source manifest per registered model.

Writes ``<out>/<model>.txt`` for every registered model (see :mod:`protocols.model_sources`);
the folder is assembled aside and renamed into place, so a failure leaves the old one whole.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from datasets.atomic import atomic_directory
from protocols.model_sources import manifests

HELP = "write model_sources/<model>.txt: the hash of every source file each model can import"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("model_sources"), metavar="DIR",
                        help="folder of the manifests (default: model_sources)")


def run(args: argparse.Namespace) -> int:
    texts = manifests()
    with atomic_directory(args.out) as staging:
        for model, text in texts.items():
            (staging / f"{model}.txt").write_text(text, encoding="utf-8")
    print(f"wrote {len(texts)} model source manifests to {args.out}")
    return 0
