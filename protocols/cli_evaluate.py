"""``python -m protocols evaluate``: the final run of a model on a split's test part.

``--model`` is a label of ``params.yaml``'s ``models:`` (or a registered model name). The model
is built from ``--params FILE`` -- a frozen tuning result ``tuned/<dataset>/<split>/<model>.yaml``
(``python -m protocols tune``: its ``params`` are used and its budget is recorded under
``tuning``) or a plain mapping of constructor keywords -- or else from the ``models:`` entry
(``tuning`` null: untuned defaults). It is refitted on what the protocol allows before the test
(train + validation, see ``protocols.split_data``) with the split's item data and the dataset's
extracted features (``--features-root``), and evaluated with ``params.yaml``'s ``evaluation``
settings. The work is :mod:`protocols.runner`'s; this module parses and prints.

A stochastic model (one with a ``seed`` parameter) is fitted and evaluated
``evaluation.seeds`` times (default 1), with seeds ``s, s+1, ..., s+S-1`` from the first seed
``s`` (``--seed``, else the params' ``seed``, else ``params.yaml``'s ``seed``); a
deterministic model runs once. It writes ``<results>/<dataset>/<split>/<model>/``: the
aggregate ``metrics.json`` and ``per_user.parquet`` and, per seed, ``seeds/<seed>/``
(layout and seed conventions in ``protocols.results``). A model that cannot run under the
protocol gets a result with ``status: unsupported``, so the leaderboard shows why it is
missing; that is not an error (exit status 0).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from common.errors import RecAuditError
from protocols.params import DEFAULT_PARAMS, load_params
from protocols.results import SEEDS_DIR
from protocols.runner import DEFAULT_FEATURES_ROOT, DEFAULT_RAW_ROOT, final_run

HELP = "fit a model on a split (train + validation) and evaluate it on the test part (over seeds if stochastic)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--split", metavar="DATASET/NAME", help="split key, as in params.yaml's splits")
    where.add_argument("--dataset", help="dataset name (with --protocol)")
    parser.add_argument("--protocol", metavar="NAME", help="split name under the dataset (with --dataset)")
    parser.add_argument("--model", required=True, help="a label of params.yaml's models, or a registered model name")
    parser.add_argument("--params", type=Path, metavar="FILE",
                        help="tuned file tuned/D/P/M.yaml, or a YAML/JSON mapping of constructor keywords; "
                             "default: params.yaml models.<model>")
    parser.add_argument("--params-yaml", type=Path, default=DEFAULT_PARAMS, metavar="FILE",
                        help="experiment parameters (default: params.yaml)")
    parser.add_argument("--splits-root", type=Path, default=Path("data/splits"))
    parser.add_argument("--features-root", type=Path, default=DEFAULT_FEATURES_ROOT,
                        help="extracted item features, <root>/<dataset>/<extractor>/ (default: %(default)s)")
    parser.add_argument("--raw-root", type=Path, default=DEFAULT_RAW_ROOT,
                        help="raw datasets, where item image paths point (default: %(default)s)")
    parser.add_argument("--results-root", type=Path, default=Path("results"))
    parser.add_argument("--seed", type=int, help="first seed of a stochastic model (default: params.yaml seed)")
    parser.add_argument("--progress", action="store_true", help="show a progress bar while scoring")


def run(args: argparse.Namespace) -> int:
    dataset, split_name = split_key(args)
    outcome = final_run(args.model, load_params(args.params_yaml), args.params, args.seed, args.splits_root,
                        dataset, split_name, args.results_root, args.features_root, args.raw_root, args.progress)
    if outcome.record["status"] != "ok":
        print(f"{outcome.record['model']} on {dataset}/{split_name}: unsupported ({outcome.record['reason']}); "
              f"wrote {outcome.out}")
        return 0
    for seed_record, _ in outcome.seed_runs:
        print("  " + summary_line(seed_record, outcome.out / SEEDS_DIR / str(seed_record["seed"])))
    print(summary_line(outcome.record, outcome.out))
    return 0


def split_key(args: argparse.Namespace) -> tuple[str, str]:
    if args.split is not None:
        if args.protocol is not None:
            raise RecAuditError("give either --split DATASET/NAME or --dataset D --protocol NAME, not both")
        parts = args.split.split("/")
        if len(parts) != 2 or not all(parts):
            raise RecAuditError(f"split key {args.split!r} must look like DATASET/NAME, e.g. movielens-100k/holdout")
        return parts[0], parts[1]
    if not args.protocol:
        raise RecAuditError("--dataset needs --protocol NAME (the split's name, e.g. holdout)")
    return args.dataset, args.protocol


def summary_line(record: dict, out: Path) -> str:
    metrics = record["metrics"]
    label = "ndcg@10" if "ndcg@10" in metrics else next(iter(sorted(metrics)), None)
    shown = f"{label} = {metrics[label]:.4f}" if label is not None and metrics[label] is not None else "no metrics"
    if shown != "no metrics" and len(record["seeds"]) > 1:
        std = (record.get("metrics_std") or {}).get(label)
        shown += f" (mean of {len(record['seeds'])} seeds, sd {std:.4f})" if std is not None else ""
    elif record["seeds"] != [None]:
        shown += f" (seed {record['seed']})"
    sampled = " (sampled)" if record["sampled"] else ""
    return (f"{record['model']} on {record['dataset']}/{record['protocol']}{sampled}: {shown} over "
            f"{record['n_users']} users (fit {record['fit_seconds']:.1f} s, evaluation "
            f"{record['eval_seconds']:.1f} s); wrote {out}")
