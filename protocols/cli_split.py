"""``python -m protocols split KEY``: compute one split named in params.yaml and write it.

KEY is a key of the ``splits`` mapping, e.g. ``movielens-100k/holdout``, whose entry is
``{dataset: NAME, protocol: NAME, [seed: INT], <protocol params>}``; without its own seed the
entry uses the top-level ``seed``. The prepared dataset is read from
``<prepared-root>/<dataset>`` and the split written atomically to ``data/splits/KEY``, with the
dataset's item side information (item table, image table, content feature sets; see
:mod:`protocols.split_data`). Image paths stay relative to the dataset's raw folder; no
machine path enters the card.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from datasets.canonical import load_prepared
from common.errors import RecAuditError
from protocols.params import DEFAULT_PARAMS, load_params, split_entry
from protocols.split_card import summary_line
from protocols.split_data import write_split
from protocols.splits import make_split

HELP = "compute the split KEY of params.yaml's splits mapping and write it to data/splits/KEY"
DEFAULT_PREPARED_ROOT = Path("data/prepared")
DEFAULT_SPLITS_ROOT = Path("data/splits")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("key", metavar="KEY", help="a key of params.yaml's splits mapping, e.g. movielens-100k/holdout")
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS, help="params file (default: %(default)s)")
    parser.add_argument("--prepared-root", type=Path, default=DEFAULT_PREPARED_ROOT,
                        help="folder of prepared datasets (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: data/splits/KEY)")


def run(args: argparse.Namespace) -> int:
    params = load_params(args.params)
    entry = split_entry(params, args.key)
    dataset = entry.pop("dataset")
    protocol = entry.pop("protocol")
    seed = entry.pop("seed", params.get("seed"))
    if seed is None:
        raise RecAuditError(f"no seed for split {args.key!r}; set a top-level 'seed' in {args.params} "
                            "or a 'seed' in its entry")
    data = load_prepared(args.prepared_root / dataset)
    split = make_split(data, protocol, seed, entry)
    out = args.out if args.out is not None else DEFAULT_SPLITS_ROOT / args.key
    write_split(split, out)
    print(f"{summary_line(split.card, args.key)} -> {out}")
    return 0
