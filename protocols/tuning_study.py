"""Optuna plumbing of :mod:`protocols.tuning`: the per-trial seeded sampler, the storage, the
budget bookkeeping of shared studies and the trial loop.

Each trial's fate is the user attribute ``outcome``: ``ok``, ``error`` (the model raised a
RecAuditError) -- these two are *spent* and count against the budget --, or
``surplus`` (claimed after the budget was filled by other workers; never counted). A failed
trial without an outcome was killed or crashed (``interrupted``) and is not counted either.

Claims: the storage numbers trials atomically, so trial ``n`` runs only when fewer than
``budget`` trials numbered below ``n`` are spent or running; every worker loops until
``budget`` trials are spent, waiting while the other workers' running trials would fill it.
A dead worker's running trial is failed by the heartbeat rule (no heartbeat for
``grace_period`` s) or, if it died before its first heartbeat, by the orphan rule of
:func:`fail_stale_trials`.
"""
from __future__ import annotations

import contextlib
import datetime
import functools
import json
import logging
import sqlite3
import time
import warnings
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState
from tqdm import tqdm

from common.errors import RecAuditError

logger = logging.getLogger("protocols.tuning")

# Each trial's fate, stored as the user attribute OUTCOME_ATTR (absent: killed or crashed).
OK, ERROR, SURPLUS, RUNNING, INTERRUPTED = "ok", "error", "surplus", "running", "interrupted"
SPENT = frozenset({OK, ERROR})
OUTCOME_ATTR = "outcome"


# ----- sampling -------------------------------------------------------------------------------
class TrialSeededTPE(optuna.samplers.BaseSampler):
    """TPE whose random numbers for trial ``n`` come from ``(seed, n)`` alone.

    One seeded TPESampler per process would make two workers draw the same startup trials
    and a resumed study differ from an uninterrupted one; seeding per trial number avoids both.
    """

    def __init__(self, seed: int, n_startup_trials: int):
        self.seed, self.n_startup_trials = int(seed), int(n_startup_trials)
        self._samplers: dict[int, optuna.samplers.TPESampler] = {}

    def _sampler(self, trial: FrozenTrial) -> optuna.samplers.TPESampler:
        sampler = self._samplers.get(trial.number)
        if sampler is None:
            trial_seed = int(np.random.SeedSequence([self.seed, trial.number]).generate_state(1)[0])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                sampler = optuna.samplers.TPESampler(seed=trial_seed, n_startup_trials=self.n_startup_trials,
                                                     constant_liar=True)
            self._samplers[trial.number] = sampler
        return sampler

    def infer_relative_search_space(self, study, trial):
        return self._sampler(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self._sampler(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._sampler(trial).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study, trial) -> None:
        self._sampler(trial).before_trial(study, trial)

    def after_trial(self, study, trial, state, values) -> None:
        self._sampler(trial).after_trial(study, trial, state, values)
        self._samplers.pop(trial.number, None)

    def reseed_rng(self) -> None:  # the seeds are fixed by design
        pass


# ----- storage --------------------------------------------------------------------------------
def public_url(url: str | None) -> str | None:
    """The storage URL without its password, fit to be written into result files."""
    if url is None:
        return None
    import sqlalchemy

    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return url


def open_storage(url: str | None, heartbeat_interval: int = 10, grace_period: int = 30):
    """An Optuna storage: in memory for ``None``, else an RDB storage with heartbeats."""
    if url is None:
        return optuna.storages.InMemoryStorage()
    import sqlalchemy

    engine_kwargs = {}
    path = sqlite_path(url)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs = {"creator": functools.partial(_sqlite_connection, path)}
    for attempt in range(5):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs,
                                                  heartbeat_interval=heartbeat_interval, grace_period=grace_period)
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.IntegrityError):
            if attempt == 4:  # workers starting together race to create the tables: the loser retries
                raise
            time.sleep(0.2 * (attempt + 1))
        except (sqlalchemy.exc.ArgumentError, ImportError) as error:
            raise RecAuditError(f"cannot open tuning storage {public_url(url)!r} ({type(error).__name__}: "
                                f"{str(error).splitlines()[0]}); give an SQLAlchemy URL such as "
                                "sqlite:///tuned/study.db or postgresql://user@host/db") from None


def _sqlite_connection(path: str) -> sqlite3.Connection:
    """A connection to the study file in WAL mode: readers and the writer of several workers do
    not block each other, and with synchronous=NORMAL a commit appends to the log instead of
    waiting for the disk (a power cut may lose the last trials, never the study's consistency).
    WAL needs a local disk: workers on several machines share a server database instead."""
    connection = sqlite3.connect(path, timeout=60, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection


def close_storage(storage, url: str | None) -> None:
    """Close the storage's connections and fold an SQLite file's write-ahead log back into it,
    so that the ``.db`` file alone holds the whole study (DVC caches that file only)."""
    if not isinstance(storage, optuna.storages.RDBStorage):
        return
    storage.remove_session()
    storage.engine.dispose()
    path = sqlite_path(url)
    if path is not None:
        with contextlib.closing(sqlite3.connect(path, timeout=60)) as connection:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def sqlite_path(url: str | None) -> str | None:
    if url is None or not url.startswith("sqlite:///") or url == "sqlite:///:memory:":
        return None
    return url.removeprefix("sqlite:///")


# ----- trials -------------------------------------------------------------------------------
def trial_outcome(trial: FrozenTrial) -> str:
    if trial.state == TrialState.COMPLETE:
        return OK
    if trial.state in (TrialState.RUNNING, TrialState.WAITING):
        return RUNNING
    outcome = trial.user_attrs.get(OUTCOME_ATTR)
    return outcome if outcome in (ERROR, SURPLUS) else INTERRUPTED


def spent_trials(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    return sorted((t for t in trials if trial_outcome(t) in SPENT), key=lambda t: t.number)


def fail_stale_trials(study: optuna.Study, orphaned_after: float) -> None:
    """Fail the running trials of dead workers: those whose heartbeat stopped (Optuna), and
    those that never started their objective ``orphaned_after`` seconds after being created (a
    worker killed before its first heartbeat, which Optuna would leave running forever). The
    objective's first acts are to record a heartbeat (:func:`beat_now`), then its ``worker``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    now = datetime.datetime.now()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if "worker" not in trial.user_attrs and trial.datetime_start is not None \
                and (now - trial.datetime_start).total_seconds() > orphaned_after:
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError, ValueError, RuntimeError):
                study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)


def beat_now(trial: optuna.Trial) -> None:
    """Record the trial's first heartbeat before anything else, so that a trial marked with its
    ``worker`` always has one (Optuna's heartbeat thread may not have written it yet; a worker
    killed in between would leave a trial that never turns stale). Optuna has no public call
    for this; without one the orphan rule of :func:`fail_stale_trials` still applies."""
    storage, trial_id = getattr(trial.study, "_storage", None), getattr(trial, "_trial_id", None)
    if trial_id is not None and getattr(storage, "get_heartbeat_interval", lambda: None)() is not None:
        storage.record_heartbeat(trial_id)


class SpentFailure(Exception):
    """A trial that failed for a reason of its parameters: it counts against the budget."""


class SurplusTrial(Exception):
    """A trial claimed after the budget was filled by other workers."""


# ----- the loop -------------------------------------------------------------------------------
def run_trials(study: optuna.Study, objective, budget: int, label: str, progress: bool,
               poll_seconds: float, grace_period: float) -> None:
    """Run trials of ``objective`` (a ``protocols.tuning`` objective) until ``budget`` are spent."""
    bar = tqdm(total=budget, desc=label, unit="trial", disable=not progress, leave=False)
    waiting_logged = False
    try:
        while True:
            fail_stale_trials(study, orphaned_after=2 * grace_period)
            trials = study.get_trials(deepcopy=False)
            spent = spent_trials(trials)
            running = sum(trial_outcome(t) == RUNNING for t in trials)
            bar.n = min(len(spent), budget)
            bar.refresh()
            if len(spent) >= budget:
                return
            if len(spent) + running >= budget:
                if not waiting_logged:
                    logger.info("%s: waiting for %d trial(s) running in other workers", label, running)
                    waiting_logged = True
                time.sleep(poll_seconds)
                continue
            study.optimize(objective, n_trials=1, catch=(SpentFailure, SurplusTrial), gc_after_trial=False)
            _log_trial(study, objective.last_number, len(spent) + 1, budget, label, objective.settings.metric, bar)
    finally:
        bar.close()


def _log_trial(study: optuna.Study, number: int | None, position: int, budget: int, label: str, metric: str,
               bar) -> None:
    trials = study.get_trials(deepcopy=False)
    trial = next((t for t in trials if t.number == number), None)
    if trial is None or trial_outcome(trial) == SURPLUS:
        return
    best = max((t.value for t in spent_trials(trials) if t.state == TrialState.COMPLETE), default=None)
    shown = f"{metric} = {trial.value:.5f}" if trial.state == TrialState.COMPLETE else \
        f"{trial_outcome(trial)} ({trial.user_attrs.get('error', 'no message')})"
    logger.info("%s: trial %d (%d of %d) %s in %.1f s with %s; best %s", label, trial.number, position, budget,
                shown, trial.user_attrs.get("seconds", float("nan")), json.dumps(plain(trial.params), sort_keys=True),
                "none" if best is None else f"{best:.5f}")
    if best is not None:
        bar.set_postfix({"best": f"{best:.4f}"}, refresh=False)


def trials_table(trials: list[FrozenTrial], used: set[int]) -> pd.DataFrame:
    """One row per trial in the study: number, params (JSON), value, state, seconds, ..."""
    rows = [{"number": t.number, "params": json.dumps(plain(t.params), sort_keys=True),
             "value": t.value if t.state == TrialState.COMPLETE else None, "state": trial_outcome(t),
             "seconds": t.user_attrs.get("seconds"), "best_epoch": t.user_attrs.get("best_epoch"),
             "used": t.number in used, "error": t.user_attrs.get("error")} for t in trials]
    columns = ["number", "params", "value", "state", "seconds", "best_epoch", "used", "error"]
    table = pd.DataFrame(rows, columns=columns)
    table["best_epoch"] = table["best_epoch"].astype("Int64")  # stays an integer column beside missing ones
    return table


def plain(value):
    """``value`` with numpy scalars and tuples turned into plain Python, for YAML and JSON."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value
