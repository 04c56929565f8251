"""``python -m protocols evaluate``: the final run of a model on a split's test part.

The model is built from ``--params FILE`` -- a frozen tuning result
``tuned/<dataset>/<split>/<model>.yaml`` (``python -m protocols tune``: its ``params`` are
used and its budget is recorded under ``tuning``) or a plain mapping of constructor
keywords -- or else from ``params.yaml``'s ``models.<model>`` entry (``tuning`` null: untuned
defaults). It is refitted on what the protocol allows before the test (train + validation,
see ``protocols.split_data``) and evaluated with ``params.yaml``'s ``evaluation`` settings.

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
from protocols.repeated_seeds import aggregate_seeds, mean_per_user_over_seeds
from protocols.results import SEEDS_DIR, TIMED_OUT, TUNING_KEYS, UNSUPPORTED, result_dir, short_reason, write_run
from protocols.split_data import Split, load_split

HELP = "fit a model on a split (train + validation) and evaluate it on the test part (over seeds if stochastic)"
DEFAULT_CUTOFFS = (10, 20)
TUNED_FILE_KEYS = ("params", "trials_run")  # what tells a tuning result from plain constructor keywords


def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--split", metavar="DATASET/NAME", help="split key, as in params.yaml's splits")
    where.add_argument("--dataset", help="dataset name (with --protocol)")
    parser.add_argument("--protocol", metavar="NAME", help="split name under the dataset (with --dataset)")
    parser.add_argument("--model", required=True, help="registered model name (`python -m protocols models`)")
    parser.add_argument("--params", type=Path, metavar="FILE",
                        help="tuned file tuned/D/P/M.yaml, or a YAML/JSON mapping of constructor keywords; "
                             "default: params.yaml models.<model>")
    parser.add_argument("--params-yaml", type=Path, default=DEFAULT_PARAMS, metavar="FILE",
                        help="experiment parameters (default: params.yaml)")
    parser.add_argument("--splits-root", type=Path, default=Path("data/splits"))
    parser.add_argument("--results-root", type=Path, default=Path("results"))
    parser.add_argument("--seed", type=int, help="first seed of a stochastic model (default: params.yaml seed)")
    parser.add_argument("--progress", action="store_true", help="show a progress bar while scoring")


def run(args: argparse.Namespace) -> int:
    dataset, split_name = split_key(args)
    settings = load_params(args.params_yaml)
    params, tuning = model_params(args.model, settings, args.params, args.seed)
    model = make_model(args.model, params)
    evaluation = evaluation_settings(settings)
    seeds = run_seeds(model, evaluation["seeds"])
    split = find_split(args.splits_root, dataset, split_name)
    out = result_dir(args.results_root, dataset, split_name, args.model)
    base = {"dataset": dataset, "protocol": split_name, "split_protocol": split.protocol, "model": args.model,
            "family": type(model).family, "params": model.get_params(), "seed": model.get_params().get("seed"),
            "seeds": seeds, "metrics_std": None, "tuning": tuning, "sampled": bool(split.is_sampled),
            "cutoffs": evaluation["cutoffs"]}
    if tuning is not None and tuning.get("status") in (TIMED_OUT, UNSUPPORTED):
        # The tuning already found that the model cannot run here: no refit just to learn it again.
        record = {**base, "seeds": [], **not_run_record(tuning["status"], tuning_reason(args.params))}
        write_run(out, record, pd.DataFrame({"user": pd.Series([], dtype="int64")}))
        print(f"{args.model} on {dataset}/{split_name}: not run ({record['detail']}); wrote {out}")
        return 0
    try:
        model.check_protocol(split.is_strong)
        runs = evaluate_seeds(args.model, params, seeds, split, evaluation, args.progress)
    except UnsupportedProtocolError as refusal:
        record = {**base, "seeds": [], **unsupported_record(refusal)}
        write_run(out, record, pd.DataFrame({"user": pd.Series([], dtype="int64")}))
        print(f"{args.model} on {dataset}/{split_name}: unsupported ({record['reason']}); wrote {out}")
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


def is_tuned_file(content: dict) -> bool:
    return all(key in content for key in TUNED_FILE_KEYS)


def tuned_params(content: dict, path: Path, name: str) -> tuple[dict, dict]:
    """(constructor keywords, ``tuning`` record) of a tuning result read from ``path``."""
    if not isinstance(content["params"], dict):
        raise RecAuditError(f"{path}: 'params' must be a mapping of constructor keywords; rerun the tuning")
    if content.get("model", name) != name:
        raise RecAuditError(f"{path} holds tuned parameters of model {content['model']!r}, not {name!r}; "
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


def model_params(name: str, settings: dict, params_file: Path | None,
                 seed: int | None) -> tuple[dict, dict | None]:
    """(constructor keywords, ``tuning`` record or None). Keywords come from ``params_file``
    (a tuning result's ``params``, or the file itself) or ``settings['models'][name]``; the
    seed of a stochastic model comes from ``seed``, else from those keywords (else a tuned
    file's ``seed``), else from ``settings['seed']``."""
    cls = get_model_class(name)
    tuning = None
    if params_file is not None:
        params = read_params_file(params_file)
        if is_tuned_file(params):
            params, tuning = tuned_params(params, params_file, name)
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
    elif tuning is not None:
        params.pop("seed", None)
    return params, tuning


def build_model(name: str, settings: dict, params_file: Path | None, seed: int | None) -> Recommender:
    """The model :func:`model_params` describes."""
    return make_model(name, model_params(name, settings, params_file, seed)[0])


def run_seeds(model: Recommender, n_seeds: int) -> list[int | None]:
    """``[s, ..., s + n_seeds - 1]`` for a stochastic model seeded ``s``; ``[None]`` otherwise."""
    if not model.is_stochastic:
        return [None]
    first = model.get_params()["seed"]
    if isinstance(first, bool) or not isinstance(first, (int, np.integer)):
        raise RecAuditError(f"model {model.name!r} is stochastic but its seed is {first!r}; set an integer "
                            "seed (params.yaml seed, the model's params or --seed)")
    return [int(first) + offset for offset in range(n_seeds)]


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


def evaluate_seeds(name: str, params: dict, seeds: list[int | None], split: Split, evaluation: dict,
                   progress: bool) -> list[tuple[int | None, dict, dict, pd.DataFrame]]:
    """Fit and evaluate a fresh model per seed: ``(seed, params, record, per_user)`` each."""
    from protocols.evaluation import final_data  # the metrics stack loads only when needed

    side = split.side_information()
    fit_matrix, task = final_data(split)
    runs = []
    for seed in seeds:
        model = make_model(name, params if seed is None else {**params, "seed": seed})
        record, per_user = fit_and_evaluate(model, fit_matrix, task, side, evaluation, progress)
        runs.append((seed, model.get_params(), record, per_user))
        del model  # a large model's memory is free before the next seed's fit
    return runs


def fit_and_evaluate(model: Recommender, fit_matrix, task, side, evaluation: dict,
                     progress: bool = False) -> tuple[dict, pd.DataFrame]:
    from protocols.evaluation import evaluate

    started = time.perf_counter()
    model.fit(fit_matrix, side=side)
    fit_seconds = time.perf_counter() - started
    item_popularity = np.asarray(fit_matrix.getnnz(axis=0)).ravel()
    started = time.perf_counter()
    result = evaluate(model, task, evaluation["cutoffs"], metrics=evaluation["metrics"],
                      batch_size=evaluation["batch_size"], item_popularity=item_popularity,
                      progress=progress)
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


def combine_seeds(base: dict, seed_runs: list[tuple[dict, pd.DataFrame]]) -> tuple[dict, pd.DataFrame]:
    """The aggregate record and per-user frame of a stochastic model's seed runs: metric means
    and standard deviations over seeds (``ddof=1``, null for one seed), per-user means, and the
    mean fit and evaluation seconds per seed."""
    records = [record for record, _ in seed_runs]
    summary = aggregate_seeds(records)
    first = records[0]
    record = {**base, **{key: first[key] for key in ("sampled", "metric_version", "metric_versions",
                                                    "n_dropped_users", "n_users", "status")},
              "params": first["params"], "seed": summary["seeds"][0], "seeds": summary["seeds"],
              "metrics": summary["mean"], "metrics_std": summary["std"] if len(records) > 1 else None,
              "fit_seconds": round(float(np.mean([r["fit_seconds"] for r in records])), 3),
              "eval_seconds": round(float(np.mean([r["eval_seconds"] for r in records])), 3),
              "peak_rss_mb": max(r["peak_rss_mb"] for r in records)}
    return record, mean_per_user_over_seeds([per_user for _, per_user in seed_runs])


def unsupported_record(refusal: UnsupportedProtocolError) -> dict:
    return not_run_record(UNSUPPORTED, str(refusal))


def not_run_record(status: str, detail: str) -> dict:
    return {"metric_version": None, "metrics": {}, "n_users": 0, "fit_seconds": None, "eval_seconds": None,
            "peak_rss_mb": peak_rss_mb(), "status": status, "reason": short_reason(detail), "detail": detail}


def tuning_reason(params_file: Path) -> str:
    return read_params_file(params_file).get("reason") or "the tuning found it cannot run here"


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2 ** 20 if sys.platform == "darwin" else 2 ** 10), 1)


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
