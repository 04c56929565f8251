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
   :func:`combine_seeds` repeat it over the seeds of a stochastic model.

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

from datasets.errors import RecAuditError, unknown_name_error
from datasets.item_data import FeatureSet, ItemImages, TrainingData, read_feature_set
from protocols.contract import Recommender, TaskProfile, check_requirements
from protocols.registry import get_model_class, make_model, registered_models
from protocols.repeated_seeds import aggregate_seeds, mean_per_user_over_seeds
from protocols.split_data import Split

DEFAULT_FEATURES_ROOT = Path("data/features")
DEFAULT_RAW_ROOT = Path("data/raw")
TUNED_RECORD_KEYS = ("model", "split", "status", "params")


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
    if features_root is None:
        return {}
    folder = Path(features_root) / dataset
    if not folder.is_dir():
        return {}
    found = {}
    for child in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        features = read_feature_set(child)
        found[features.key] = features
    return found


def training_inputs(split: Split, stage: str, metric: str, features_root: Path | str | None = DEFAULT_FEATURES_ROOT,
                    raw_root: Path | str | None = DEFAULT_RAW_ROOT):
    """(TrainingData, RankingTask) of ``split`` for ``stage`` ``"tuning"`` or ``"final"``."""
    from protocols.evaluation import final_data, tuning_data

    if stage not in ("tuning", "final"):
        raise ValueError(f"stage must be 'tuning' or 'final', got {stage!r}")
    fit_matrix, task = tuning_data(split) if stage == "tuning" else final_data(split)
    dataset = str(split.card.get("dataset", ""))
    features = {**split.item_features, **extracted_features(features_root, dataset)}
    images = None
    if split.item_images is not None and raw_root is not None:
        images = ItemImages.from_table(split.item_images, split.n_items, Path(raw_root) / dataset)
    validation = task.validation_data(metric) if stage == "tuning" else None
    data = TrainingData(interactions=fit_matrix, validation=validation, item_features=features, images=images,
                        items=split.items)
    return data, task


def check_task(model: Recommender, data: TrainingData, task, where: str) -> None:
    """Refuse (UnsupportedProtocolError) a model whose requirements the task does not meet."""
    check_requirements(model, TaskProfile.of(data, task.users, where))


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
                                                    "n_dropped_users", "n_users", "status") if key in first},
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
    for what, expected in (("model", model), ("split", split)):
        if expected is not None and record[what] != expected:
            raise RecAuditError(f"{path} holds tuned parameters of {what} {record[what]!r}, not {expected!r}; "
                                "pass the file of the right model and split")
    return record


def is_tuned_record(content) -> bool:
    """Whether a loaded params file is a tuning result rather than plain constructor keywords."""
    return isinstance(content, dict) and all(key in content for key in TUNED_RECORD_KEYS) \
        and isinstance(content.get("params"), dict)
