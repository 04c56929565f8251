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

import pandas as pd
import yaml

from datasets.errors import RecAuditError
from protocols.contract import UnsupportedProtocolError
from protocols.params import DEFAULT_PARAMS, load_params
from protocols.registry import get_model_class, make_model
from protocols.results import SEEDS_DIR, TUNING_KEYS, UNSUPPORTED, result_dir, short_reason, write_run
from protocols.runner import (DEFAULT_FEATURES_ROOT, DEFAULT_RAW_ROOT, check_task, combine_seeds, evaluate_seeds,
                              is_tuned_record, model_entry, peak_rss_mb, run_seeds, training_inputs)
from protocols.split_data import Split, load_split

HELP = "fit a model on a split (train + validation) and evaluate it on the test part (over seeds if stochastic)"
DEFAULT_CUTOFFS = (10, 20)


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
    settings = load_params(args.params_yaml)
    entry = model_entry(settings, args.model)
    params, tuning = model_params(entry, settings, args.params, args.seed)
    model = make_model(entry.model, params)
    evaluation = evaluation_settings(settings)
    seeds = run_seeds(model, evaluation["seeds"])
    split = find_split(args.splits_root, dataset, split_name)
    out = result_dir(args.results_root, dataset, split_name, entry.label)
    base = {"dataset": dataset, "protocol": split_name, "split_protocol": split.protocol, "model": entry.label,
            "model_class": entry.model, "family": type(model).family, "params": model.get_params(),
            "seed": model.get_params().get("seed"), "seeds": seeds, "metrics_std": None, "tuning": tuning,
            "sampled": bool(split.is_sampled), "cutoffs": evaluation["cutoffs"]}
    if tuning is not None and tuning.get("status") == UNSUPPORTED:
        # The tuning already found that the model cannot run here: no refit just to learn it again.
        record = {**base, "seeds": [], **not_run_record(tuning["status"], tuning_reason(args.params))}
        write_run(out, record, pd.DataFrame({"user": pd.Series([], dtype="int64")}))
        print(f"{entry.label} on {dataset}/{split_name}: not run ({record['detail']}); wrote {out}")
        return 0
    data, task = training_inputs(split, "final", "ndcg@10", args.features_root, args.raw_root)
    try:
        check_task(model, data, task, f"the test part of {dataset}/{split_name}")
        runs = evaluate_seeds(entry.model, params, seeds, data, task, evaluation, args.progress)
    except UnsupportedProtocolError as refusal:
        record = {**base, "seeds": [], **unsupported_record(refusal)}
        write_run(out, record, pd.DataFrame({"user": pd.Series([], dtype="int64")}))
        print(f"{entry.label} on {dataset}/{split_name}: unsupported ({record['reason']}); wrote {out}")
        return 0
    seed_runs = [({**base, **record, "params": run_params, "seed": seed, "seeds": [seed]}, per_user)
                 for seed, run_params, record, per_user in runs]
    if model.is_stochastic:
        record, per_user = combine_seeds(base, seed_runs)
        write_run(out, record, per_user, seed_runs)
        for seed_record, _ in seed_runs:
            print("  " + summary_line(seed_record, out / SEEDS_DIR / str(seed_record["seed"])))
    else:
        (record, per_user), = seed_runs
        write_run(out, record, per_user)
    print(summary_line(record, out))
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


def read_params_file(path: Path) -> dict:
    """A YAML (or JSON, which YAML reads) mapping: constructor keywords or a tuning result."""
    if not path.exists():
        raise RecAuditError(f"no params file at {path}; pass a YAML/JSON file of model constructor keywords "
                            "or a tuned file from `python -m protocols tune`")
    try:
        params = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise RecAuditError(f"{path} is not valid YAML/JSON ({str(error).splitlines()[0]}); fix the file") from None
    params = {} if params is None else params
    if not isinstance(params, dict):
        raise RecAuditError(f"{path} must hold a mapping of constructor keywords, got {type(params).__name__}")
    return params


def tuned_params(content: dict, path: Path, label: str) -> tuple[dict, dict]:
    """(constructor keywords, ``tuning`` record) of a tuning result read from ``path``."""
    if content.get("model", label) != label:
        raise RecAuditError(f"{path} holds tuned parameters of model {content['model']!r}, not {label!r}; "
                            "pass the file of the right model")
    tuning = {key: content.get(key) for key in TUNING_KEYS}
    for key in ("trials_run", "trials_budget"):
        value = tuning[key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise RecAuditError(f"{path}: {key} must be a non-negative integer, got {value!r}; rerun the tuning")
    params = dict(content["params"])
    if "seed" not in params and isinstance(content.get("seed"), int):
        params["seed"] = content["seed"]  # dropped again below when the model has no seed
    return params, tuning


def model_params(entry, settings: dict, params_file: Path | None, seed: int | None) -> tuple[dict, dict | None]:
    """(constructor keywords, ``tuning`` record or None). Keywords come from ``params_file``
    (a tuning result's ``params``, or the file itself) or the ``models:`` entry; the seed of a
    stochastic model comes from ``seed``, else from those keywords (else a tuned file's
    ``seed``), else from ``settings['seed']``."""
    cls = get_model_class(entry.model)
    tuning = None
    if params_file is not None:
        params = read_params_file(params_file)
        if is_tuned_record(params):
            params, tuning = tuned_params(params, params_file, entry.label)
    else:
        params = dict(entry.fixed)
    if "seed" in cls.parameter_names():
        if seed is not None:
            params["seed"] = seed
        elif "seed" not in params and settings.get("seed") is not None:
            params["seed"] = int(settings["seed"])
    elif tuning is not None:
        params.pop("seed", None)
    return params, tuning


def evaluation_settings(settings: dict) -> dict:
    section = settings.get("evaluation") or {}
    if not isinstance(section, dict):
        raise RecAuditError("params.yaml evaluation must be a mapping with cutoffs, metrics and batch_size")
    cutoffs = section.get("cutoffs") or list(DEFAULT_CUTOFFS)
    if not isinstance(cutoffs, list) or not all(isinstance(k, int) and k > 0 for k in cutoffs):
        raise RecAuditError(f"params.yaml evaluation.cutoffs must be a list of positive integers, got {cutoffs!r}")
    metrics = section.get("metrics")
    if metrics is not None and not (isinstance(metrics, list) and all(isinstance(m, str) for m in metrics)):
        raise RecAuditError(f"params.yaml evaluation.metrics must be a list of metric names, got {metrics!r}")
    batch_size = section.get("batch_size")
    if batch_size is not None and not (isinstance(batch_size, int) and batch_size > 0):
        raise RecAuditError(f"params.yaml evaluation.batch_size must be a positive integer or null, got {batch_size!r}")
    seeds = section.get("seeds", 1)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise RecAuditError(f"params.yaml evaluation.seeds must be a positive integer (runs per stochastic "
                            f"model), got {seeds!r}")
    return {"cutoffs": sorted(set(cutoffs)), "metrics": metrics, "batch_size": batch_size, "seeds": seeds}


def find_split(splits_root: Path, dataset: str, split_name: str) -> Split:
    folder = Path(splits_root) / dataset / split_name
    if not (folder / "card.json").exists():
        built = sorted(f"{p.parent.parent.name}/{p.parent.name}" for p in Path(splits_root).glob("*/*/card.json"))
        raise RecAuditError(f"no split {dataset}/{split_name!s} under {splits_root}; built splits: "
                            f"{', '.join(built) or 'none'}; build it with "
                            f"`python -m protocols split {dataset}/{split_name}` or `dvc repro`")
    return load_split(folder)


def unsupported_record(refusal: UnsupportedProtocolError) -> dict:
    return not_run_record(UNSUPPORTED, str(refusal))


def not_run_record(status: str, detail: str) -> dict:
    return {"metric_version": None, "metrics": {}, "n_users": 0, "fit_seconds": None, "eval_seconds": None,
            "peak_rss_mb": peak_rss_mb(), "status": status, "reason": short_reason(detail), "detail": detail}


def tuning_reason(params_file: Path) -> str:
    return read_params_file(params_file).get("reason") or "the tuning found it cannot run here"


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
