"""``python -m protocols tune``: equal-budget hyperparameter search on a split's validation part.

``--model`` is a label of params.yaml's ``models:`` (or a registered model name). Writes the
frozen parameters ``tuned/<dataset>/<split>/<model>.yaml`` (keys: ``model``, ``split``,
``status``, ``params`` -- every constructor keyword of the winning trial, fixed ones and frozen
``epochs`` included -- ``validation_metric``, ``best_value``, ``best_trial`` (the winning
trial's slot, its place in the budget: its number unless trials were interrupted),
``best_epoch``, ``trials_run``, ``trials_budget``, ``trials_interrupted`` (trials killed or
crashed, not counted, their slots retried), ``budget``, ``startup_trials``, ``searched``,
``fixed``, ``study_name``, ``storage``, ``seed``, ``seconds``) and beside it
``<model>.trials.csv`` (one row per trial of the study, interrupted ones included: ``number``,
``params``, ``value``, ``state``, ``seconds``, ``best_epoch``, ``used``, ``error``, ``slot``).
The table is written first, then the YAML, each atomically: a YAML file always describes a
finished study.

A model whose declared requirements the split does not meet gets ``status: unsupported`` with
its untuned parameters and the reason, so that ``evaluate`` records the refusal; that is not an
error. The work is :mod:`protocols.tuning`'s and :mod:`protocols.runner`'s.

The study persists in ``--storage``, else params.yaml's ``tuning.storage``, else
``sqlite:///<out without .yaml>.db``: a rerun resumes it -- after Ctrl-C or ``kill -9``
anywhere, even while the files are written, it ends with the trials and the result of an
uninterrupted run -- and several workers given one URL share it (see ``protocols.tuning``;
``tuning.storage: postgresql://user@host/db`` points every tune stage at one server). With the
study elsewhere the file ``<out without .yaml>.db`` is still left behind, empty: the tune stage
of ``dvc.yaml`` declares it.
``python -m protocols evaluate --params tuned/D/P/M.yaml`` refits with the frozen parameters
(:func:`load_tuned` reads the file back).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sqlite3
import sys
from pathlib import Path

import yaml
from tqdm import tqdm

from common.atomic import atomic_file, check_writable
from common.errors import RecAuditError
from protocols.contract import UnsupportedProtocolError
from protocols.params import DEFAULT_PARAMS, load_params
from protocols.registry import make_model
from protocols.runner import DEFAULT_FEATURES_ROOT, DEFAULT_RAW_ROOT, model_entry, read_tuned
from protocols.tuning import TuningResult, search_plan, tune, tuning_settings
from protocols.tuning_study import sqlite_path, logger, plain, public_url

HELP = "tune a model's hyperparameters on a split's validation part (equal budget; the test part is never read)"
TUNED_ROOT = Path("tuned")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--split", metavar="DATASET/NAME", help="split key, as in params.yaml's splits")
    where.add_argument("--dataset", help="dataset name (with --protocol)")
    parser.add_argument("--protocol", metavar="NAME", help="split name under the dataset (with --dataset)")
    parser.add_argument("--model", required=True, help="a label of params.yaml's models, or a registered model name")
    parser.add_argument("--params-yaml", type=Path, default=DEFAULT_PARAMS, metavar="FILE",
                        help="experiment parameters: seed, tuning, models.<model> (default: params.yaml)")
    parser.add_argument("--splits-root", type=Path, default=Path("data/splits"))
    parser.add_argument("--features-root", type=Path, default=DEFAULT_FEATURES_ROOT,
                        help="extracted item features, <root>/<dataset>/<extractor>/ (default: %(default)s)")
    parser.add_argument("--raw-root", type=Path, default=DEFAULT_RAW_ROOT,
                        help="raw datasets, where item image paths point (default: %(default)s)")
    parser.add_argument("--out", type=Path, metavar="FILE",
                        help="frozen params file (default: tuned/<dataset>/<split>/<model>.yaml)")
    parser.add_argument("--storage", metavar="URL",
                        help="Optuna storage URL shared by workers, e.g. postgresql://user@host/db "
                             "(default: sqlite:///<out without .yaml>.db)")
    parser.add_argument("--trials", type=int, metavar="N",
                        help="override the budget of params.yaml tuning (recorded as budget 'cli')")
    parser.add_argument("--progress", action="store_true",
                        help="show a progress bar (shown anyway when stderr is a terminal)")


def run(args: argparse.Namespace) -> int:
    from protocols.cli_evaluate import split_key

    dataset, split_name = split_key(args)
    key = f"{dataset}/{split_name}"
    settings_file, params_storage = storage_setting(load_params(args.params_yaml))
    settings = tuning_settings(settings_file, trials=args.trials)
    entry = model_entry(settings_file, args.model)
    split_dir = Path(args.splits_root) / dataset / split_name
    read_card(split_dir, args.splits_root, key)
    out = args.out or TUNED_ROOT / dataset / split_name / f"{entry.label}.yaml"
    # Before any trial: a study whose result cannot be written should not start.
    check_writable(Path(out).parent, "make it writable or pass another --out")
    storage = args.storage or params_storage or default_storage_url(out)
    try:
        with _logging_to_stderr():
            result = tune(entry.model, split_dir, settings, fixed=entry.fixed, split_key=key, storage=storage,
                          label=entry.label, features_root=args.features_root, raw_root=args.raw_root,
                          progress=args.progress or sys.stderr.isatty())
    except UnsupportedProtocolError as refusal:
        result = unsupported_result(entry, key, settings, storage, refusal)
        ensure_study_files(storage, out)  # refused before any trial: the pipeline still expects the file
        write_tuned(result, out)
        print(f"{entry.label} on {key}: unsupported ({refusal}); wrote {out}")
        return 0
    ensure_study_files(storage, out)
    write_tuned(result, out)
    retried = f", {result.trials_interrupted} interrupted and retried" if result.trials_interrupted else ""
    print(f"{entry.label} on {key}: best validation {result.validation_metric} = {result.best_value:.5f} "
          f"(trial {result.best_trial}, {result.trials_run} of {result.trials_budget} trials{retried}, "
          f"{result.seconds:.1f} s); wrote {out}")
    return 0


def read_card(split_dir: Path, splits_root: Path, key: str) -> dict:
    card_path = split_dir / "card.json"
    if not card_path.exists():
        built = sorted(f"{p.parent.parent.name}/{p.parent.name}" for p in Path(splits_root).glob("*/*/card.json"))
        raise RecAuditError(f"no split {key} under {splits_root}; built splits: {', '.join(built) or 'none'}; "
                            f"build it with `python -m protocols split {key}` or `dvc repro`")
    try:
        return json.loads(card_path.read_text())
    except json.JSONDecodeError as error:
        raise RecAuditError(f"{card_path} is not valid JSON ({error}); rebuild the split") from None


def storage_setting(params: dict) -> tuple[dict, str | None]:
    """``params`` without ``tuning.storage``, and that URL (None: unset). Where a study lives
    is no tuning setting: it does not enter the study's fingerprint."""
    section = dict(params.get("tuning") or {})
    storage = section.pop("storage", None)
    return {**params, "tuning": section}, storage


def default_storage_url(out: Path) -> str:
    return f"sqlite:///{Path(out).with_suffix('.db')}"


def ensure_sqlite_file(storage: str) -> None:
    """Create the (empty) SQLite file of ``storage`` if it is one and does not exist yet."""
    path = sqlite_path(storage)
    if path is not None and not Path(path).exists():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        sqlite3.connect(path).close()


def ensure_study_files(storage: str, out: Path) -> None:
    """The SQLite file of ``storage`` if it is one, and ``<out without .yaml>.db``, which the tune
    stage of dvc.yaml declares as an output (empty when the study lives elsewhere)."""
    ensure_sqlite_file(storage)
    ensure_sqlite_file(default_storage_url(out))


def trials_path(out: Path) -> Path:
    return Path(out).with_suffix(".trials.csv")


def unsupported_result(entry, key: str, settings, storage: str, refusal) -> TuningResult:
    plan = search_plan(entry.model, entry.fixed, settings.seed)
    return TuningResult(
        model=entry.label, split=key, params=plain(make_model(entry.model, plan.fixed).get_params()),
        validation_metric=settings.metric, best_value=None, best_trial=None, best_epoch=None, trials_run=0,
        trials_budget=plan.budget(settings), budget=settings.budget, study_name=None,
        storage=public_url(storage), seed=settings.seed, seconds=0.0,
        startup_trials=settings.startup_trials, searched=sorted(plan.space), fixed=plain(plan.fixed),
        status="unsupported", reason=str(refusal))


def write_tuned(result: TuningResult, out: Path) -> None:
    """The trials table, then the frozen params file, each atomically."""
    with atomic_file(trials_path(out), mode="w") as handle:
        result.trials.to_csv(handle, index=False)
    with atomic_file(out, mode="w") as handle:
        handle.write(yaml.safe_dump(result.record(), sort_keys=False, allow_unicode=True))


def load_tuned(path: Path | str, model: str | None = None, split: str | None = None) -> dict:
    """Read a frozen params file (:func:`protocols.runner.read_tuned`, the one reader)."""
    return read_tuned(path, model, split)


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time (tests swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)  # keeps an active progress bar intact
        except Exception:  # a logging failure must not end a long study
            self.handleError(record)


@contextlib.contextmanager
def _logging_to_stderr():
    """One line per trial on stderr while the command runs (the library itself stays quiet)."""
    handler, level, propagate = _StderrHandler(), logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
