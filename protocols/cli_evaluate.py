"""``python -m protocols evaluate``: the one final run of a model on a split's test part.

The model is built from ``--params FILE`` (constructor keywords, e.g. frozen tuned
parameters) or else from ``params.yaml``'s ``models.<model>`` entry, refitted on what the
protocol allows before the test (train + validation, see ``protocols.split_data``), and
evaluated once with ``params.yaml``'s ``evaluation`` settings. It writes
``<results>/<dataset>/<split>/<model>/{metrics.json,per_user.parquet}`` (``protocols.results``).
A model that cannot run under the protocol gets a result with ``status: unsupported``,
so the leaderboard shows why it is missing; that is not an error (exit status 0).
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from datasets.errors import RecAuditError
from protocols.contract import Recommender, UnsupportedProtocolError
from protocols.params import DEFAULT_PARAMS, load_params
from protocols.registry import get_model_class, make_model
from protocols.results import result_dir, short_reason, write_result
from protocols.split_data import Split, load_split

HELP = "fit a model on a split (train + validation) and evaluate it once on the test part"
DEFAULT_CUTOFFS = (10, 20)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--split", metavar="DATASET/NAME", help="split key, as in params.yaml's splits")
    where.add_argument("--dataset", help="dataset name (with --protocol)")
    parser.add_argument("--protocol", metavar="NAME", help="split name under the dataset (with --dataset)")
    parser.add_argument("--model", required=True, help="registered model name (`python -m protocols models`)")
    parser.add_argument("--params", type=Path, metavar="FILE",
                        help="YAML/JSON mapping of constructor keywords; default: params.yaml models.<model>")
    parser.add_argument("--params-yaml", type=Path, default=DEFAULT_PARAMS, metavar="FILE",
                        help="experiment parameters (default: params.yaml)")
    parser.add_argument("--splits-root", type=Path, default=Path("data/splits"))
    parser.add_argument("--results-root", type=Path, default=Path("results"))
    parser.add_argument("--seed", type=int, help="seed of a stochastic model (default: params.yaml seed)")
    parser.add_argument("--progress", action="store_true", help="show a progress bar while scoring")


def run(args: argparse.Namespace) -> int:
    dataset, split_name = split_key(args)
    settings = load_params(args.params_yaml)
    model = build_model(args.model, settings, args.params, args.seed)
    evaluation = evaluation_settings(settings)
    split = find_split(args.splits_root, dataset, split_name)
    out = result_dir(args.results_root, dataset, split_name, args.model)
    base = {"dataset": dataset, "protocol": split_name, "split_protocol": split.protocol, "model": args.model,
            "params": model.get_params(), "seed": model.get_params().get("seed"),
            "sampled": bool(split.is_sampled), "cutoffs": evaluation["cutoffs"]}
    try:
        model.check_protocol(split.is_strong)
        record, per_user = fit_and_evaluate(model, split, dataset, args, evaluation)
    except UnsupportedProtocolError as refusal:
        record = unsupported_record(refusal)
        per_user = pd.DataFrame({"user": pd.Series([], dtype="int64")})
        write_result(out, {**base, **record}, per_user)
        print(f"{args.model} on {dataset}/{split_name}: unsupported ({record['reason']}); wrote {out}")
        return 0
    record = {**base, **record}
    write_result(out, record, per_user)
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
    """A YAML (or JSON, which YAML reads) mapping of constructor keywords."""
    if not path.exists():
        raise RecAuditError(f"no params file at {path}; pass a YAML/JSON file of model constructor keywords")
    try:
        params = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise RecAuditError(f"{path} is not valid YAML/JSON ({str(error).splitlines()[0]}); fix the file") from None
    params = {} if params is None else params
    if not isinstance(params, dict):
        raise RecAuditError(f"{path} must hold a mapping of constructor keywords, got {type(params).__name__}")
    return params


def build_model(name: str, settings: dict, params_file: Path | None, seed: int | None) -> Recommender:
    """Constructor keywords from ``params_file`` or ``settings['models'][name]``; the seed of a
    stochastic model comes from ``seed``, else from those keywords, else from ``settings['seed']``."""
    cls = get_model_class(name)
    if params_file is not None:
        params = read_params_file(params_file)
    else:
        entry = (settings.get("models") or {}).get(name) or {}
        if not isinstance(entry, dict):
            raise RecAuditError(f"params.yaml models.{name} must be a mapping of constructor keywords")
        params = dict(entry)
    if "seed" in cls.parameter_names():
        if seed is not None:
            params["seed"] = seed
        elif "seed" not in params and settings.get("seed") is not None:
            params["seed"] = int(settings["seed"])
    return make_model(name, params)


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
    return {"cutoffs": sorted(set(cutoffs)), "metrics": metrics, "batch_size": batch_size}


def find_split(splits_root: Path, dataset: str, split_name: str) -> Split:
    folder = Path(splits_root) / dataset / split_name
    if not (folder / "card.json").exists():
        built = sorted(f"{p.parent.parent.name}/{p.parent.name}" for p in Path(splits_root).glob("*/*/card.json"))
        raise RecAuditError(f"no split {dataset}/{split_name!s} under {splits_root}; built splits: "
                            f"{', '.join(built) or 'none'}; build it with "
                            f"`python -m protocols split {dataset}/{split_name}` or `dvc repro`")
    return load_split(folder)


def fit_and_evaluate(model: Recommender, split: Split, dataset: str, args: argparse.Namespace,
                     evaluation: dict) -> tuple[dict, pd.DataFrame]:
    from protocols.evaluation import evaluate, final_data  # the metrics stack loads only when needed

    side = split.side_information()
    fit_matrix, task = final_data(split)
    started = time.perf_counter()
    model.fit(fit_matrix, side=side)
    fit_seconds = time.perf_counter() - started
    item_popularity = np.asarray(fit_matrix.getnnz(axis=0)).ravel()
    started = time.perf_counter()
    result = evaluate(model, task, evaluation["cutoffs"], metrics=evaluation["metrics"],
                      batch_size=evaluation["batch_size"], item_popularity=item_popularity,
                      progress=args.progress)
    eval_seconds = time.perf_counter() - started
    record = {
        "sampled": bool(result.sampled),
        "metric_version": result.metric_version,
        "metric_versions": dict(result.metric_versions),
        "n_dropped_users": int(result.n_dropped_users),
        "metrics": {str(label).lower(): float(value) for label, value in result.summary.items()},
        "n_users": int(result.n_users),
        "fit_seconds": round(fit_seconds, 3),
        "eval_seconds": round(eval_seconds, 3),
        "peak_rss_mb": peak_rss_mb(),
        "status": "ok",
    }
    return record, result.per_user


def unsupported_record(refusal: UnsupportedProtocolError) -> dict:
    return {"metric_version": None, "metrics": {}, "n_users": 0, "fit_seconds": None, "eval_seconds": None,
            "peak_rss_mb": peak_rss_mb(), "status": "unsupported", "reason": short_reason(str(refusal)),
            "detail": str(refusal)}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2 ** 20 if sys.platform == "darwin" else 2 ** 10), 1)


def summary_line(record: dict, out: Path) -> str:
    metrics = record["metrics"]
    label = "ndcg@10" if "ndcg@10" in metrics else next(iter(sorted(metrics)), None)
    shown = f"{label} = {metrics[label]:.4f}" if label is not None and metrics[label] is not None else "no metrics"
    sampled = " (sampled)" if record["sampled"] else ""
    return (f"{record['model']} on {record['dataset']}/{record['protocol']}{sampled}: {shown} over "
            f"{record['n_users']} users (fit {record['fit_seconds']:.1f} s, evaluation "
            f"{record['eval_seconds']:.1f} s); wrote {out}")
