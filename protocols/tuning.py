"""Equal-budget hyperparameter tuning on the validation part only (``python -m protocols tune``).

Why: Ferrari Dacrema et al. (RecSys 2019; TOIS 2021) found neural recommenders compared with
baselines left untuned, and test data used for model selection. Here every model of a suite
gets the same number of trials of the same search (Optuna's TPE sampler, seeded); each trial
fits on ``train`` and is scored on ``validation`` (:func:`protocols.evaluation.tuning_data`).
:func:`tune` reads a split folder itself, and only its ``TUNING_PARTS``: the test parts are
never opened.

The search:

- The model class declares ``search_space`` (``protocols.space`` dimensions). Keywords set in
  ``params.yaml`` ``models.<model>`` are held fixed and not searched; a stochastic model's
  ``seed`` is fixed to ``params.yaml``'s ``seed`` unless that entry sets it.
- The objective, maximised, is ``tuning.metric`` on validation (default ``ndcg@10``; a suite
  reproducing a paper may use the paper's target metric).
- The budget is ``tuning.budgets[tuning.budget].trials`` (or a plain ``tuning.trials``), the
  same for every model; a model with nothing to search runs one trial. The first
  ``startup_trials`` are drawn at random, the rest by TPE (default: a third of the budget,
  the rule of the TOIS study's released search code: 16 random of 50 cases).
- A trial whose model raises a RecAuditError (diverged, invalid value) is spent, without a
  value. Budgets are deterministic: trials, and each model's epochs (its ``models:`` entry);
  never seconds, so the same params and seed give the same study on a fast or a busy machine.
- The model's declared requirements are checked against the validation task before the first
  trial (:func:`protocols.runner.check_task`): a refused model spends no trial.
- Iterative models early-stop on the validation data passed to ``fit`` (its ``metric`` is
  ``tuning.metric``)
  (``protocols.early_stopping``). The tuner stores each trial's ``best_epoch_`` and freezes
  ``epochs = best_epoch_`` and ``patience = None`` in the winning parameters, so the final
  refit on train + validation trains exactly that long. A model with inner training runs
  (NeuMF's pre-training) names their lengths in ``frozen_params_``, frozen the same way.

Determinism and resume: each trial takes a *slot*, its place in the budget (0 .. budget - 1):
the lowest one no spent or running trial holds. The trial in slot ``s`` samples with a fresh
TPE sampler seeded from ``(seed, s)`` that sees only the trials of slots below ``s``, so its
parameters are a function of the seed and the completed history alone. A trial interrupted
at any point (Ctrl-C, ``kill -9``, a crash) is not counted, and its slot is free again: the
resumed study's next trial takes it, with the same seed and history, hence the same
parameters (copied from the interrupted trial as well, and marked ``retry_of``). So a study
run by one worker at a time, interrupted anywhere and resumed any number of times, ends with
the same trials in the same slots and the same result as an uninterrupted run of the same
seed; only trial numbers, seconds and ``trials_interrupted`` tell them apart (tested in
``tests/test_tuning_resume.py``). A resumed run fails the trial of a dead process of the same
machine at once; a trial whose worker died before recording itself (a window of a few SQL
statements) is failed after ``2 x grace_period`` seconds, and the resumed run waits for that
first. Several workers draw distinct trials but not a reproducible sequence. Ties in the best
value go to the lower slot.

Persistence and several workers: the study lives in an Optuna RDB storage (by default the
SQLite file ``tuned/<dataset>/<split>/<model>.db`` beside the output) under the name
``<dataset>/<split>/<model>#<fingerprint>``. The fingerprint hashes what makes trials
comparable (model, fixed keywords, search space, metric, seed, startup trials, the split's
card and the hashes of the item data the model reads), so a changed setting starts a fresh study and an unchanged one resumes:
a rerun counts the trials already spent and runs only the remainder. Any SQLAlchemy URL
Optuna accepts works, e.g. ``--storage postgresql://user@host/recaudit``: start the same
command on several machines and they share one study. A worker claims a trial only while
fewer than ``budget`` trials are spent or running (the storage numbers trials, so the claim
is exact), then waits for the other workers' running trials, and every worker writes the
same result. Heartbeats fail the trial of a killed worker of another machine after
``grace_period`` seconds of silence; such a trial is not counted and another trial retries its
slot. A claim lost to a race stays in the storage as a failed trial marked ``surplus`` (Optuna
cannot delete trials) and is never counted. The mechanics live in :mod:`protocols.tuning_study`.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState

from common.errors import RecAuditError, unknown_name_error
from protocols.contract import UnsupportedProtocolError
from protocols.early_stopping import DEFAULT_METRIC, metric_label, parse_metric, validation_value
from protocols.registry import get_model_class, make_model
from protocols.runner import DEFAULT_FEATURES_ROOT, DEFAULT_RAW_ROOT, check_task, inputs_read, training_inputs
from protocols.split_data import TUNING_PARTS, load_split
from protocols.tuning_study import (ERROR, INTERRUPTED, OK, OUTCOME_ATTR, RUNNING, SPENT, SURPLUS, SpentFailure,
                                    SurplusTrial, TrialSeededTPE, close_storage, open_storage, plain, public_url,
                                    run_trials, spent_trials, trial_outcome, trial_slot, trials_table)

DEFAULT_TRIALS = 20
STARTUP_DIVISOR = 3
SETTING_KEYS = ("metric", "budget", "budgets", "trials", "startup_trials")


# ----- settings -------------------------------------------------------------------------------
@dataclass(frozen=True)
class TuningSettings:
    """The ``tuning`` block of params.yaml, resolved (see :func:`tuning_settings`)."""

    metric: str = DEFAULT_METRIC
    trials: int = DEFAULT_TRIALS
    budget: str = "default"
    startup_trials: int = 6
    seed: int = 0


def tuning_settings(params: dict, trials: int | None = None) -> TuningSettings:
    """Resolve ``params['tuning']`` and ``params['seed']``; ``trials`` (``--trials``) overrides
    the budget, which is then recorded as ``"cli"``."""
    section = params.get("tuning") or {}
    if not isinstance(section, dict):
        raise RecAuditError("params.yaml tuning must be a mapping (metric, budget, budgets)")
    unknown = sorted(set(section) - set(SETTING_KEYS))
    if unknown:
        raise RecAuditError(f"params.yaml tuning has unknown key(s) {', '.join(unknown)}; "
                            f"known keys: {', '.join(SETTING_KEYS)}")
    name, k = parse_metric(section.get("metric", DEFAULT_METRIC))
    if "budget" in section and "trials" in section:
        raise RecAuditError("params.yaml tuning sets both budget and trials; keep one of them")
    entry: dict = {}
    if "budget" in section:
        budgets = section.get("budgets") or {}
        budget = str(section["budget"])
        if budget not in budgets:
            raise unknown_name_error("tuning budget", budget, budgets)
        entry = budgets[budget]
        if not isinstance(entry, dict) or "trials" not in entry:
            raise RecAuditError(f"params.yaml tuning.budgets.{budget} must be a mapping with 'trials'")
        n_trials = entry["trials"]
    else:
        budget, n_trials = ("custom", section["trials"]) if "trials" in section else ("default", DEFAULT_TRIALS)
    if trials is not None:
        budget, n_trials = "cli", trials
    _require_int("tuning trials", n_trials, 1)
    startup = entry.get("startup_trials", section.get("startup_trials"))
    if startup is None:
        startup = max(1, int(n_trials) // STARTUP_DIVISOR)
    _require_int("tuning startup_trials", startup, 1)
    seed = params.get("seed", 0)
    _require_int("seed", seed, 0)
    return TuningSettings(metric=metric_label(name, k), trials=int(n_trials), budget=budget,
                          startup_trials=int(startup), seed=int(seed))


def _require_int(what: str, value, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise RecAuditError(f"params.yaml {what} must be an integer >= {low}, got {value!r}")


# ----- what is searched -----------------------------------------------------------------------
@dataclass(frozen=True)
class SearchPlan:
    """``fixed``: constructor keywords held fixed; ``space``: the dimensions searched."""

    model: str
    fixed: dict
    space: dict

    def budget(self, settings: TuningSettings) -> int:
        return settings.trials if self.space else 1


def search_plan(model: str, fixed: dict | None, seed: int) -> SearchPlan:
    cls = get_model_class(model)
    if fixed is not None and not isinstance(fixed, dict):
        raise RecAuditError(f"params.yaml models.{model} must be a mapping of constructor keywords")
    fixed = dict(fixed or {})
    names = cls.parameter_names()
    wrong = sorted(set(fixed) - set(names))
    if wrong:
        raise RecAuditError(f"params.yaml models.{model} sets unknown parameter(s) {', '.join(map(repr, wrong))}; "
                            f"{model}'s parameters are: {', '.join(sorted(names)) or 'none'}")
    undeclared = sorted(set(cls.search_space) - set(names))
    if undeclared:
        raise RecAuditError(f"model {model!r} declares search dimensions {undeclared} that are not constructor "
                            "keywords; fix its search_space")
    if "seed" in names and "seed" not in fixed:
        fixed["seed"] = int(seed)
    space = {name: dim for name, dim in cls.search_space.items() if name not in fixed}
    return SearchPlan(model=model, fixed=fixed, space=space)


def study_fingerprint(plan: SearchPlan, settings: TuningSettings, card: dict, inputs: dict | None = None) -> str:
    """Hash of everything that makes two trials comparable (not the budget: raising it resumes):
    ``inputs`` are the hashes of the item data the model reads (:func:`protocols.runner.inputs_read`)."""
    payload = {"model": plan.model, "fixed": plan.fixed, "space": {n: repr(d) for n, d in plan.space.items()},
               "metric": settings.metric, "seed": settings.seed, "startup_trials": settings.startup_trials,
               "split_card": card, "inputs": dict(inputs or {})}
    text = json.dumps(payload, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# ----- the objective ----------------------------------------------------------------------------
class _Objective:
    def __init__(self, plan: SearchPlan, settings: TuningSettings, budget: int, data, task):
        self.plan, self.settings, self.budget = plan, settings, budget
        self.data, self.task = data, task
        self.last_number: int | None = None

    def __call__(self, trial: optuna.Trial) -> float:
        self.last_number = trial.number  # its heartbeat, worker and slot are recorded (TrialSeededTPE)
        earlier = [t for t in trial.study.get_trials(deepcopy=False)
                   if t.number < trial.number and trial_outcome(t) in SPENT | {RUNNING}]
        if len(earlier) >= self.budget:
            trial.set_user_attr(OUTCOME_ATTR, SURPLUS)
            raise SurplusTrial
        params = {**self.plan.fixed, **{name: dim.suggest(trial, name) for name, dim in self.plan.space.items()}}
        started = time.perf_counter()
        try:
            model = make_model(self.plan.model, params)
            model.fit(self.data)
            value = validation_value(model, self.task, self.settings.metric)
        except UnsupportedProtocolError as refusal:
            # A searched parameter refused the task (e.g. a feature set the split lacks): no
            # other trial can do better, so the whole study stops here.
            trial.set_user_attr("error", str(refusal).splitlines()[0][:500])
            trial.set_user_attr(OUTCOME_ATTR, ERROR)
            raise
        except RecAuditError as error:
            self._fail(trial, ERROR, str(error), started)
        if not math.isfinite(value):
            self._fail(trial, ERROR, f"validation {self.settings.metric} is {value}", started)
        best_epoch = getattr(model, "best_epoch_", None)
        trial.set_user_attr("seconds", round(time.perf_counter() - started, 3))
        trial.set_user_attr("best_epoch", None if best_epoch is None else int(best_epoch))
        trial.set_user_attr("frozen", plain(getattr(model, "frozen_params_", None) or {}))
        trial.set_user_attr(OUTCOME_ATTR, OK)
        return value

    @staticmethod
    def _fail(trial: optuna.Trial, outcome: str, message: str, started: float):
        trial.set_user_attr("seconds", round(time.perf_counter() - started, 3))
        trial.set_user_attr("error", message.splitlines()[0][:500] if message else outcome)
        trial.set_user_attr(OUTCOME_ATTR, outcome)
        raise SpentFailure(message)


# ----- the study --------------------------------------------------------------------------------
@dataclass
class TuningResult:
    """What one tuning run decided; :meth:`record` is the frozen params file."""

    model: str
    split: str
    params: dict
    validation_metric: str
    best_value: float | None
    best_trial: int | None
    best_epoch: int | None
    trials_run: int
    trials_budget: int
    budget: str
    study_name: str | None
    storage: str | None
    seed: int
    seconds: float
    startup_trials: int
    searched: list[str]
    fixed: dict
    status: str = "ok"
    reason: str | None = None
    trials_interrupted: int = 0
    trials: pd.DataFrame = field(default_factory=pd.DataFrame)

    def record(self) -> dict:
        keys = ("model", "split", "status", "params", "validation_metric", "best_value", "best_trial", "best_epoch",
                "trials_run", "trials_budget", "trials_interrupted", "budget", "startup_trials", "searched",
                "fixed", "study_name", "storage", "seed", "seconds")
        record = {key: plain(getattr(self, key)) for key in keys}
        if self.reason is not None:
            record["reason"] = self.reason
        return record


def tune(model: str, split_dir: Path | str, settings: TuningSettings, *, fixed: dict | None = None,
         split_key: str | None = None, storage: str | None = None, label: str | None = None,
         features_root: Path | str | None = DEFAULT_FEATURES_ROOT, raw_root: Path | str | None = DEFAULT_RAW_ROOT,
         progress: bool = False, heartbeat_interval: int = 10, grace_period: int = 30,
         poll_seconds: float = 2.0) -> TuningResult:
    """Tune the registered ``model`` (shown as ``label``) on the split in ``split_dir`` (see
    the module docstring).

    ``storage`` is an SQLAlchemy URL (``None``: in memory, nothing persists). Raises
    UnsupportedProtocolError before any trial if the model's requirements are not met by
    the validation task (held-out users without embeddings, a missing feature set, ...)."""
    split_dir = Path(split_dir)
    split_key = split_key or f"{split_dir.parent.name}/{split_dir.name}"
    label = label or model
    split = load_split(split_dir, parts=TUNING_PARTS)
    plan = search_plan(model, fixed, settings.seed)
    data, task = training_inputs(split, "tuning", settings.metric, features_root, raw_root)
    default_model = make_model(model, plan.fixed)
    check_task(default_model, data, task, f"the validation part of {split_key}")
    budget = plan.budget(settings)
    inputs = inputs_read(default_model, data, tuple(plan.space))
    study_name = f"{split_key}/{label}#{study_fingerprint(plan, settings, split.card, inputs)}"
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    opened = open_storage(storage, heartbeat_interval, grace_period)
    try:
        study = optuna.create_study(storage=opened, study_name=study_name, direction="maximize",
                                    load_if_exists=True, sampler=TrialSeededTPE(settings.seed, settings.startup_trials))
        objective = _Objective(plan, settings, budget, data, task)
        run_trials(study, objective, budget, f"tune {label} on {split_key}", progress, poll_seconds,
                   grace_period)
        return _summarise(study, plan, settings, budget, split_key, public_url(storage), label)
    finally:
        close_storage(opened, storage)


def _summarise(study: optuna.Study, plan: SearchPlan, settings: TuningSettings, budget: int, split_key: str,
               storage: str | None, label: str) -> TuningResult:
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    used = spent_trials(trials)[:budget]  # a study resumed with a smaller budget uses its first trials only
    completed = [t for t in used if t.state == TrialState.COMPLETE]
    if not completed:
        first = used[0].user_attrs.get("error", "no message") if used else "no trial ran"
        raise RecAuditError(f"all {len(used)} tuning trial(s) of {label} on {split_key} failed (first: {first}); "
                            "fix the model's params.yaml entry")
    best = max(completed, key=lambda t: (t.value, -trial_slot(t)))
    params = {**plan.fixed, **best.params}
    best_epoch = best.user_attrs.get("best_epoch")
    names = get_model_class(plan.model).parameter_names()
    params.update(best.user_attrs.get("frozen") or {})
    if best_epoch is not None and "epochs" in names:
        params["epochs"] = max(1, int(best_epoch))
        if "patience" in names:
            params["patience"] = None
    used_numbers = {t.number for t in used}
    return TuningResult(
        model=label, split=split_key, params=plain(make_model(plan.model, params).get_params()),
        validation_metric=settings.metric, best_value=float(best.value), best_trial=trial_slot(best),
        best_epoch=best_epoch, trials_run=len(used), trials_budget=budget, budget=settings.budget,
        trials_interrupted=sum(trial_outcome(t) == INTERRUPTED for t in trials),
        study_name=study.study_name, storage=storage, seed=settings.seed,
        seconds=round(sum(float(t.user_attrs.get("seconds", 0.0)) for t in used), 3),
        startup_trials=settings.startup_trials,
        searched=sorted(plan.space), fixed=plain(plan.fixed), trials=trials_table(trials, used_numbers))


