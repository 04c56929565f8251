"""The one runner behind tuning and the final evaluation: data in, fitted model, metrics out.

Both ``python -m protocols tune`` (every trial) and ``python -m protocols evaluate`` (the
final run) go through here:

1. :func:`model_entry` resolves a ``models:`` label of params.yaml to a registered model and
   its fixed keywords (a label may run a registered model under a name of its own, e.g.
   ``itemknn-cbf-posters: {model: itemknn-cbf, features: efficientnet-lite0}``);
2. :func:`training_inputs` builds the :class:`~datasets.item_data.TrainingData` of a split and
   stage (tuning: train, with the validation data carrying the tuning metric to stop on;
   final: train + validation, no validation data) with the split's carried item data, the
   extracted image features of the dataset (``<features-root>/<dataset>/<extractor>/``) and
   the item images (relative to ``<raw-root>/<dataset>``), and the ranking task;
3. :func:`check_task` checks the model's declared requirements against that task before any
   fit (the one place where "cannot run here" is decided);
4. :func:`fit_and_evaluate` fits and evaluates once; :func:`evaluate_seeds` and
   :func:`combine_seeds` repeat it over the seeds of a stochastic model;
5. :func:`final_run` is the whole final evaluation of one model on one split: parameters and
   seeds resolved (:func:`model_params`), refit on train + validation, test evaluated, seeds
   aggregated, the result folder written.

:func:`read_tuned` is the one reader of a tuned parameters file.
"""
from __future__ import annotations

import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from common.atomic import check_writable
from common.errors import RecAuditError, unknown_name_error
from common.threads import command_threads
from datasets.item_data import FeatureSet, ItemImages, TrainingData, read_feature_set
from protocols.contract import Recommender, TaskProfile, UnsupportedProtocolError, check_requirements
from protocols.registry import check_param_types, get_model_class, make_model, registered_models
from protocols.repeated_seeds import aggregate_seeds, mean_per_user_over_seeds
from protocols.results import STATUSES, TUNING_KEYS, UNSUPPORTED, result_dir, short_reason, write_run
from protocols.split_data import Split, load_split

DEFAULT_FEATURES_ROOT = Path("data/features")
DEFAULT_RAW_ROOT = Path("data/raw")
TUNED_RECORD_KEYS = ("model", "split", "status", "params")
DEFAULT_CUTOFFS = (10, 20)


# ----- which model ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelEntry:
    """A ``models:`` entry: ``label`` (the name in suites, results and reports), the registered
    ``model`` it runs and the constructor keywords held ``fixed``."""

    label: str
    model: str
    fixed: dict


def model_entry(params: dict, label: str) -> ModelEntry:
    """Resolve ``label`` through params.yaml's ``models:`` (an unlisted registered name runs
    with its defaults)."""
    models = params.get("models") or {}
    if not isinstance(models, dict):
        raise RecAuditError("params.yaml models must map model labels to constructor keywords")
    entry = models.get(label)
    if entry is None:
        if label not in registered_models():
            raise unknown_name_error("model", label, sorted(set(models) | set(registered_models())))
        return ModelEntry(label, label, {})
    if not isinstance(entry, dict):
        raise RecAuditError(f"params.yaml models.{label} must be a mapping of constructor keywords")
    fixed = dict(entry)
    model = fixed.pop("model", label)
    if not isinstance(model, str):
        raise RecAuditError(f"params.yaml models.{label}.model must name a registered model, got {model!r}")
    get_model_class(model)  # unknown -> one-line error listing the registered models
    return ModelEntry(label, model, fixed)


# ----- the data a model fits on -----------------------------------------------------------------
def extracted_features(features_root: Path | str | None, dataset: str) -> dict[str, FeatureSet]:
    """Every extracted feature set of ``dataset`` (``<root>/<dataset>/<name>/``), verified."""
    if features_root is None or not dataset:
        return {}
    folder = Path(features_root) / dataset
    if not folder.is_dir():
        return {}
    found = {}
    # Feature sets are written atomically, so a folder without meta.json is a staging leftover
    # or something else, never a feature set.
    for child in sorted(p for p in folder.iterdir() if (p / "meta.json").is_file() and not p.name.startswith(".")):
        features = read_feature_set(child)
        found[features.key] = features
    return found


def training_inputs(split: Split, stage: str, metric: str, features_root: Path | str | None = DEFAULT_FEATURES_ROOT,
                    raw_root: Path | str | None = DEFAULT_RAW_ROOT):
    """(TrainingData, RankingTask) of ``split`` for ``stage`` ``"tuning"`` or ``"final"``."""
    from protocols.evaluation import final_data, fit_parts, interaction_times, tuning_data

    if stage not in ("tuning", "final"):
        raise ValueError(f"stage must be 'tuning' or 'final', got {stage!r}")
    fit_matrix, task = tuning_data(split) if stage == "tuning" else final_data(split)
    dataset = str(split.card.get("dataset", ""))
    features = {**split.item_features, **extracted_features(features_root, dataset)}
    images = None
    if split.item_images is not None and raw_root is not None:
        images = ItemImages.from_table(split.item_images, split.n_items, Path(raw_root) / dataset)
    validation = task.validation_data(metric) if stage == "tuning" else None
    times = interaction_times(fit_parts(split, stage), split.n_users, split.n_items)
    data = TrainingData(interactions=fit_matrix, validation=validation, item_features=features, images=images,
                        items=split.items, timestamps=times)
    return data, task


def check_task(model: Recommender, data: TrainingData, task, where: str) -> None:
    """Refuse (UnsupportedProtocolError) a model whose requirements the task does not meet."""
    check_requirements(model, TaskProfile.of(data, task.users, where, truth=task.truth))


def inputs_read(model: Recommender, data: TrainingData, searched: tuple = ()) -> dict:
    """The item data a model reads, by hash: what a tuning study's name must change with.
    A model whose ``features`` keyword is searched may read any set."""
    needs = model.requirements()
    read = {}
    if needs.item_features is not None or "features" in searched:
        wanted = None if needs.item_features in (None, "*") or "features" in searched else needs.item_features
        read.update({key: features.sha256 for key, features in data.item_features.items()
                     if wanted is None or features.name == wanted or key == wanted})
    if needs.item_images and data.images is not None:
        read["images"] = data.images.manifest_sha256
    return dict(sorted(read.items()))


# ----- fitting and evaluating -------------------------------------------------------------------
def fit_and_evaluate(model: Recommender, data: TrainingData, task, evaluation: dict,
                     progress: bool = False) -> tuple[dict, pd.DataFrame]:
    """Fit ``model`` on ``data`` and evaluate it on ``task``: (record, per-user frame)."""
    from protocols.evaluation import evaluate

    started = time.perf_counter()
    model.fit(data)
    fit_seconds = time.perf_counter() - started
    item_popularity = np.asarray(data.interactions.getnnz(axis=0)).ravel()
    started = time.perf_counter()
    result = evaluate(model, task, evaluation["cutoffs"], metrics=evaluation["metrics"],
                      batch_size=evaluation["batch_size"], item_popularity=item_popularity, progress=progress)
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
        "threads": command_threads(),
        "status": "ok",
    }
    features_key = getattr(model, "features_key_", None)
    if features_key is not None:
        record["features"] = features_key
    return record, result.per_user


def evaluate_seeds(model_name: str, params: dict, seeds: list[int | None], data: TrainingData, task,
                   evaluation: dict, progress: bool) -> list[tuple[int | None, dict, dict, pd.DataFrame]]:
    """Fit and evaluate a fresh model per seed: ``(seed, params, record, per_user)`` each."""
    runs = []
    for seed in seeds:
        model = make_model(model_name, params if seed is None else {**params, "seed": seed})
        record, per_user = fit_and_evaluate(model, data, task, evaluation, progress)
        runs.append((seed, model.get_params(), record, per_user))
        del model  # a large model's memory is free before the next seed's fit
    return runs


def combine_seeds(base: dict, seed_runs: list[tuple[dict, pd.DataFrame]]) -> tuple[dict, pd.DataFrame]:
    """The aggregate record and per-user frame of a stochastic model's seed runs: metric means
    and standard deviations over seeds (``ddof=1``, null for one seed), per-user means, and the
    mean fit and evaluation seconds per seed."""
    records = [record for record, _ in seed_runs]
    summary = aggregate_seeds(records)
    first = records[0]
    record = {**base, **{key: first[key] for key in ("sampled", "metric_version", "metric_versions",
                                                    "n_dropped_users", "n_users", "threads", "status")
                         if key in first},
              "params": first["params"], "seed": summary["seeds"][0], "seeds": summary["seeds"],
              "metrics": summary["mean"], "metrics_std": summary["std"] if len(records) > 1 else None,
              "fit_seconds": round(float(np.mean([r["fit_seconds"] for r in records])), 3),
              "eval_seconds": round(float(np.mean([r["eval_seconds"] for r in records])), 3),
              "peak_rss_mb": max(r["peak_rss_mb"] for r in records)}
    if "features" in first:
        record["features"] = first["features"]
    return record, mean_per_user_over_seeds([per_user for _, per_user in seed_runs])


def run_seeds(model: Recommender, n_seeds: int) -> list[int | None]:
    """``[s, ..., s + n_seeds - 1]`` for a stochastic model seeded ``s``; ``[None]`` otherwise."""
    if not model.is_stochastic:
        return [None]
    first = model.get_params()["seed"]
    if isinstance(first, bool) or not isinstance(first, (int, np.integer)):
        raise RecAuditError(f"model {model.name!r} is stochastic but its seed is {first!r}; set an integer "
                            "seed (params.yaml seed, the model's params or --seed)")
    return [int(first) + offset for offset in range(n_seeds)]


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2 ** 20 if sys.platform == "darwin" else 2 ** 10), 1)


# ----- the tuned parameters file ----------------------------------------------------------------
def read_tuned(path: Path | str, model: str | None = None, split: str | None = None) -> dict:
    """Read a tuned parameters file (``python -m protocols tune``); check that it belongs to
    ``model`` (the label) and ``split`` when given."""
    path = Path(path)
    if not path.exists():
        raise RecAuditError(f"no tuned parameters at {path}; run `python -m protocols tune` first")
    try:
        record = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise RecAuditError(f"{path} is not valid YAML ({str(error).splitlines()[0]}); rerun the tuning") from None
    if not is_tuned_record(record):
        raise RecAuditError(f"{path} is not a tuning result (needs keys {', '.join(TUNED_RECORD_KEYS)}); "
                            "rerun `python -m protocols tune`")
    check_tuned_record(record, path, model, split)
    return record


def check_tuned_record(record: dict, path: Path, model: str | None = None, split: str | None = None) -> None:
    """Refuse a tuning result made for another ``model`` (label) or ``split`` (key), or whose
    fields have the wrong types (one line each, naming the file and the field)."""
    for what, expected in (("model", model), ("split", split)):
        if expected is not None and record.get(what) != expected:
            raise RecAuditError(f"{path} holds tuned parameters of {what} {record.get(what)!r}, not {expected!r}; "
                                "pass the file of the right model and split")
    if record.get("status") not in STATUSES:
        raise RecAuditError(f"{path}: status {record.get('status')!r} is not one of {', '.join(STATUSES)}; "
                            "rerun the tuning")
    best = record.get("best_value")
    if best is not None and (isinstance(best, bool) or not isinstance(best, (int, float)) or not np.isfinite(best)):
        raise RecAuditError(f"{path}: best_value must be a finite number (or null when nothing ran), got {best!r}; "
                            "rerun the tuning")
    for key in ("trials_run", "trials_budget"):
        value = record.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise RecAuditError(f"{path}: {key} must be a non-negative integer, got {value!r}; rerun the tuning")
    for key in ("validation_metric", "budget"):
        value = record.get(key)
        if value is not None and not isinstance(value, str) and not (key == "budget" and isinstance(value, int)
                                                                     and not isinstance(value, bool)):
            raise RecAuditError(f"{path}: {key} must be a name, got {value!r}; rerun the tuning")
    seed = record.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise RecAuditError(f"{path}: seed must be a non-negative integer, got {seed!r}; rerun the tuning")


def is_tuned_record(content) -> bool:
    """Whether a loaded params file is a tuning result rather than plain constructor keywords."""
    return isinstance(content, dict) and all(key in content for key in TUNED_RECORD_KEYS) \
        and isinstance(content.get("params"), dict)


# ----- the final evaluation ---------------------------------------------------------------------
@dataclass
class FinalRun:
    """What :func:`final_run` wrote: the aggregate record, the per-seed records and the folder."""

    record: dict
    seed_runs: list
    out: Path


def final_run(label: str, settings: dict, params_file: Path | None, seed: int | None, splits_root: Path,
              dataset: str, split_name: str, results_root: Path, features_root: Path | None = DEFAULT_FEATURES_ROOT,
              raw_root: Path | None = DEFAULT_RAW_ROOT, progress: bool = False) -> FinalRun:
    """Refit the model ``label`` on a split's train + validation, evaluate the test part (over
    seeds if stochastic) and write ``<results_root>/<dataset>/<split>/<label>/``. A model the
    split refuses (its tuning said so, or its requirements are not met) gets a result with
    ``status: unsupported`` and the reason, which is not an error."""
    entry = model_entry(settings, label)
    params, tuning = model_params(entry, settings, params_file, seed, split=f"{dataset}/{split_name}")
    model = make_model(entry.model, params)
    evaluation = evaluation_settings(settings)
    seeds = run_seeds(model, evaluation["seeds"])
    split = find_split(splits_root, dataset, split_name)
    out = result_dir(results_root, dataset, split_name, entry.label)
    # Before the fit, not after it: a run that cannot write its result should not start.
    check_writable(out.parent, "make it writable or pass another --results-root")
    base = {"dataset": dataset, "protocol": split_name, "split_protocol": split.protocol, "model": entry.label,
            "model_class": entry.model, "family": type(model).family, "params": model.get_params(),
            "seed": model.get_params().get("seed"), "seeds": seeds, "metrics_std": None, "tuning": tuning,
            "sampled": bool(split.is_sampled), "cutoffs": evaluation["cutoffs"]}
    empty = pd.DataFrame({"user": pd.Series([], dtype="int64")})
    if tuning is not None and tuning.get("status") == UNSUPPORTED:
        # The tuning already found that the model cannot run here: no refit just to learn it again.
        record = {**base, "seeds": [], **not_run_record(UNSUPPORTED, tuning_reason(params_file))}
        write_run(out, record, empty)
        return FinalRun(record, [], out)
    data, task = training_inputs(split, "final", evaluation.get("metric", "ndcg@10"), features_root, raw_root)
    try:
        check_task(model, data, task, f"the test part of {dataset}/{split_name}")
        runs = evaluate_seeds(entry.model, params, seeds, data, task, evaluation, progress)
    except UnsupportedProtocolError as refusal:
        record = {**base, "seeds": [], **not_run_record(UNSUPPORTED, str(refusal))}
        write_run(out, record, empty)
        return FinalRun(record, [], out)
    seed_runs = [({**base, **record, "params": run_params, "seed": seed, "seeds": [seed]}, per_user)
                 for seed, run_params, record, per_user in runs]
    if model.is_stochastic:
        record, per_user = combine_seeds(base, seed_runs)
        write_run(out, record, per_user, seed_runs)
        return FinalRun(record, seed_runs, out)
    (record, per_user), = seed_runs
    write_run(out, record, per_user)
    return FinalRun(record, [], out)


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


def tuned_params(content: dict, path: Path, label: str, split: str | None = None) -> tuple[dict, dict]:
    """(constructor keywords, ``tuning`` record) of a tuning result read from ``path``, checked
    (:func:`check_tuned_record`) against the model ``label`` and the split key ``split``."""
    check_tuned_record(content, path, label, split)
    tuning = {key: content.get(key) for key in TUNING_KEYS}
    params = dict(content["params"])
    if "seed" not in params and isinstance(content.get("seed"), int):
        params["seed"] = content["seed"]  # dropped again below when the model has no seed
    return params, tuning


def model_params(entry: ModelEntry, settings: dict, params_file: Path | None,
                 seed: int | None, split: str | None = None) -> tuple[dict, dict | None]:
    """(constructor keywords, ``tuning`` record or None). Keywords come from ``params_file``
    (a tuning result's ``params``, made for the split key ``split`` when given, or the file
    itself) or the ``models:`` entry; the seed of a stochastic model comes from ``seed``, else
    from those keywords (else a tuned file's ``seed``), else from ``settings['seed']``. Each
    keyword must be of the kind its default declares (:func:`protocols.registry.check_param_types`)."""
    cls = get_model_class(entry.model)
    tuning = None
    if params_file is not None:
        params = read_params_file(params_file)
        if "params" in params and "trials_run" in params and not isinstance(params["params"], dict):
            raise RecAuditError(f"{params_file}: 'params' must be a mapping of constructor keywords; rerun the tuning")
        if is_tuned_record(params):
            params, tuning = tuned_params(params, params_file, entry.label, split)
        check_param_types(entry.model, params, str(params_file))
    else:
        params = dict(entry.fixed)
        check_param_types(entry.model, params, f"params.yaml models.{entry.label}")
    if "seed" in cls.parameter_names():
        if seed is not None:
            params["seed"] = seed
        elif "seed" not in params and settings.get("seed") is not None:
            params["seed"] = settings["seed"]
        first = params.get("seed")
        if first is not None and (isinstance(first, bool) or not isinstance(first, (int, np.integer)) or first < 0):
            raise RecAuditError(f"the seed of model {entry.label!r} must be a non-negative integer, got {first!r}; "
                                "fix --seed, the params' seed or params.yaml's seed")
    elif tuning is not None:
        params.pop("seed", None)
    return params, tuning


def evaluation_settings(settings: dict) -> dict:
    """The ``evaluation`` section of params.yaml, checked."""
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


def not_run_record(status: str, detail: str) -> dict:
    return {"metric_version": None, "metrics": {}, "n_users": 0, "fit_seconds": None, "eval_seconds": None,
            "peak_rss_mb": peak_rss_mb(), "status": status, "reason": short_reason(detail), "detail": detail}


def tuning_reason(params_file: Path | None) -> str:
    if params_file is None:
        return "the tuning found it cannot run here"
    return read_params_file(params_file).get("reason") or "the tuning found it cannot run here"
