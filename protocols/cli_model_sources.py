"""``python -m protocols model-sources``: one source manifest per registered model.

Writes ``<out>/<model>.txt`` for every registered model and params label, and
``<inputs-out>/<dataset>/<split>/<label>.txt`` for every split and label of the suite (see
:mod:`protocols.model_sources`); each folder is assembled aside and renamed into place, so a
failure leaves the old one whole.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from common.atomic import atomic_directory
from protocols.model_sources import input_manifests, manifests
from protocols.params import DEFAULT_PARAMS, load_params

HELP = "write model_sources/<model>.txt: the hash of every source file each model can import"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("model_sources"), metavar="DIR",
                        help="folder of the source manifests (default: model_sources)")
    parser.add_argument("--inputs-out", type=Path, default=None, metavar="DIR",
                        help="folder of the per-split input manifests (e.g. model_inputs; default: none)")
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS, help="params file (default: %(default)s)")
    parser.add_argument("--features-root", type=Path, default=Path("data/features"),
                        help="extracted item features (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    params = load_params(args.params) if args.params.exists() else {}
    texts = manifests(params)
    with atomic_directory(args.out) as staging:
        for model, text in texts.items():
            (staging / f"{model}.txt").write_text(text, encoding="utf-8")
    print(f"wrote {len(texts)} model source manifests to {args.out}")
    if args.inputs_out is not None:
        inputs = input_manifests(params, args.features_root)
        with atomic_directory(args.inputs_out) as staging:
            for key, text in inputs.items():
                (staging / f"{key}.txt").parent.mkdir(parents=True, exist_ok=True)
                (staging / f"{key}.txt").write_text(text, encoding="utf-8")
        print(f"wrote {len(inputs)} model input manifests to {args.inputs_out}")
    return 0
