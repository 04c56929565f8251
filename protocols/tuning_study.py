"""Optuna plumbing of :mod:`protocols.tuning`: the slot-seeded sampler, the storage, the
budget bookkeeping of shared studies and the trial loop.

Each trial's fate is the user attribute ``outcome``: ``ok``, ``error`` (the model raised a
RecAuditError) -- these two are *spent* and count against the budget --, or
``surplus`` (claimed after the budget was filled by other workers; never counted). A failed
trial without an outcome was killed or crashed (``interrupted``) and is not counted either.

Claims: the storage numbers trials atomically, so trial ``n`` runs only when fewer than
``budget`` trials numbered below ``n`` are spent or running; every worker loops until
``budget`` trials are spent, waiting while the other workers' running trials would fill it.
Slots (:class:`TrialSeededTPE`) decide what a trial draws, not whether it counts. A dead
worker's running trial is failed at once when its process was on this machine, else by the
heartbeat rule (no heartbeat for ``grace_period`` s) or, if it died before recording itself,
by the orphan rule of :func:`fail_stale_trials`; its slot is then retried.
"""
from __future__ import annotations

import contextlib
import datetime
import functools
import itertools
import json
import logging
import os
import socket
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
# User attributes set when a trial is created: its worker (host:pid), the worker's pid namespace,
# its slot and the interrupted trial it retries.
WORKER_ATTR, PID_NAMESPACE_ATTR, SLOT_ATTR, RETRY_ATTR = "worker", "pid_namespace", "slot", "retry_of"
CLAIM_ROUNDS = 20


# ----- sampling -------------------------------------------------------------------------------
class TrialSeededTPE(optuna.samplers.BaseSampler):
    """TPE whose trial in slot ``s`` is a function of ``(seed, s)`` and the trials of slots below ``s``.

    A trial's *slot* is its place in the budget: the lowest slot not held by a spent or running
    trial (:func:`claim_slot`), recorded as the user attribute ``slot`` when Optuna creates the
    trial (:meth:`before_trial`). Each trial gets a fresh TPESampler seeded from ``(seed, slot)``
    that sees only the trials of lower slots, so a study run by one worker draws the same
    trials whether it ran at once or was killed and resumed any number of times: the slot of an
    interrupted trial is free again, and the next trial takes it with the same seed and the same
    history. Its parameters are also copied from the interrupted trial (after drawing, so that
    the random stream is the one an uninterrupted run consumes), which makes the retry explicit
    and records it as ``retry_of``. Several workers draw distinct trials (distinct slots, and
    running trials are TPE's constant lies) but not a reproducible sequence.
    """

    def __init__(self, seed: int, n_startup_trials: int):
        self.seed, self.n_startup_trials = int(seed), int(n_startup_trials)
        self._plans: dict[int, _SlotPlan] = {}

    def before_trial(self, study, trial) -> None:
        self._plans[trial.number] = plan = _claim(study, trial, self.seed, self.n_startup_trials)
        plan.sampler.before_trial(plan.history(study), trial)

    def _plan(self, study, trial: FrozenTrial) -> _SlotPlan:
        plan = self._plans.get(trial.number)
        if plan is None:  # a trial this sampler did not see created: claim it now
            self.before_trial(study, trial)
            plan = self._plans[trial.number]
        return plan

    def infer_relative_search_space(self, study, trial):
        plan = self._plan(study, trial)
        return plan.sampler.infer_relative_search_space(plan.history(study), trial)

    def sample_relative(self, study, trial, search_space):
        plan = self._plan(study, trial)
        return plan.sampler.sample_relative(plan.history(study), trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        plan = self._plan(study, trial)
        value = plan.sampler.sample_independent(plan.history(study), trial, param_name, param_distribution)
        if param_name in plan.retry_params and plan.retry_distributions.get(param_name) == param_distribution:
            return plan.retry_params[param_name]
        return value

    def after_trial(self, study, trial, state, values) -> None:
        plan = self._plans.pop(trial.number, None)
        if plan is not None:
            plan.sampler.after_trial(plan.history(study), trial, state, values)

    def reseed_rng(self) -> None:  # the seeds are fixed by design
        pass


class _SlotPlan:
    """One trial's slot, its seeded sampler and the parameters of the interrupted trial it retries."""

    def __init__(self, slot: int, sampler: optuna.samplers.TPESampler, retried: FrozenTrial | None):
        self.slot, self.sampler = slot, sampler
        self.retry_params = dict(retried.params) if retried is not None else {}
        self.retry_distributions = dict(retried.distributions) if retried is not None else {}

    def history(self, study) -> _History:
        return _History(study, self.slot)


class _History:
    """``study`` as the sampler of slot ``slot`` sees it: only the trials of lower slots."""

    def __init__(self, study, slot: int):
        self._study, self._slot = study, slot

    def __getattr__(self, name):
        return getattr(self._study, name)

    def _keep(self, trials: list[FrozenTrial]) -> list[FrozenTrial]:
        return [t for t in trials if (slot := trial_slot(t)) is not None and slot < self._slot]

    def _get_trials(self, deepcopy: bool = True, states=None, use_cache: bool = False) -> list[FrozenTrial]:
        return self._keep(self._study._get_trials(deepcopy=deepcopy, states=states, use_cache=use_cache))

    def get_trials(self, deepcopy: bool = True, states=None) -> list[FrozenTrial]:
        return self._keep(self._study.get_trials(deepcopy=deepcopy, states=states))

    @property
    def trials(self) -> list[FrozenTrial]:
        return self.get_trials()


def _claim(study, trial: FrozenTrial, seed: int, n_startup_trials: int) -> _SlotPlan:
    """Own the trial Optuna has just created: a heartbeat, then the ``worker`` (the orphan rule of
    :func:`fail_stale_trials` relies on this order), then its slot and the trial it retries."""
    storage, trial_id = study._storage, trial._trial_id
    if getattr(storage, "get_heartbeat_interval", lambda: None)() is not None:
        storage.record_heartbeat(trial_id)
    storage.set_trial_user_attr(trial_id, PID_NAMESPACE_ATTR, _pid_namespace())
    storage.set_trial_user_attr(trial_id, WORKER_ATTR, worker_id())
    for _ in range(CLAIM_ROUNDS):
        trials = study.get_trials(deepcopy=False)
        slot = claim_slot(trials, trial.number)
        storage.set_trial_user_attr(trial_id, SLOT_ATTR, slot)
        # Two workers that read the study at the same moment can pick one slot: the one whose
        # trial was created later sees the other's and picks again.
        if not any(t.number < trial.number and trial_outcome(t) in SPENT | {RUNNING} and trial_slot(t) == slot
                   for t in study.get_trials(deepcopy=False)):
            break
    retried = max((t for t in trials if trial_outcome(t) == INTERRUPTED and t.user_attrs.get(SLOT_ATTR) == slot
                   and t.params), key=lambda t: t.number, default=None)
    if retried is not None:
        storage.set_trial_user_attr(trial_id, RETRY_ATTR, retried.number)
    trial_seed = int(np.random.SeedSequence([seed, slot]).generate_state(1)[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=trial_seed, n_startup_trials=n_startup_trials, constant_liar=True)
    return _SlotPlan(slot, sampler, retried)


def claim_slot(trials: list[FrozenTrial], number: int) -> int:
    """The lowest slot that no other spent or running trial holds, once the running trials
    created before trial ``number`` that hold none yet (being claimed by other workers) have
    taken theirs: two workers claiming at once take two slots."""
    held = {trial_slot(t) for t in trials if t.number != number and trial_outcome(t) in SPENT | {RUNNING}}
    held.discard(None)
    for t in sorted(trials, key=lambda t: t.number):
        if t.number < number and trial_outcome(t) == RUNNING and trial_slot(t) is None:
            held.add(_lowest_free(held))
    return _lowest_free(held)


def _lowest_free(held: set[int]) -> int:
    return next(slot for slot in itertools.count() if slot not in held)


def trial_slot(trial: FrozenTrial) -> int | None:
    """The trial's slot; a spent trial of a study begun before slots were recorded holds its number."""
    slot = trial.user_attrs.get(SLOT_ATTR)
    if slot is not None:
        return int(slot)
    return trial.number if trial_outcome(trial) in SPENT else None


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_namespace() -> str | None:
    """This process's pid namespace (Linux), so that containers sharing a host name never judge
    each other's pids."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _dead_here(trial: FrozenTrial) -> bool:
    """Whether the trial's worker (``host:pid``) was a process of this machine and pid namespace
    that no longer runs. A pid equal to ours is a dead process's too: this is asked between our
    own trials."""
    host, _, pid = str(trial.user_attrs.get(WORKER_ATTR)).rpartition(":")
    if os.name != "posix" or host != socket.gethostname() or not pid.isdigit() \
            or trial.user_attrs.get(PID_NAMESPACE_ATTR) != _pid_namespace():
        return False  # (on Windows os.kill(pid, 0) would send Ctrl-C)
    if int(pid) == os.getpid():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive under another user, or not ours to ask
        return False
    return False


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
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as error:
            # Workers starting together race to create the tables (SQLite: locked or integrity;
            # PostgreSQL: DuplicateTable, a ProgrammingError): the loser retries.
            racing = not isinstance(error, sqlalchemy.exc.ProgrammingError) or "already exists" in str(error)
            if attempt == 4 or not racing:
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
    """The trials that count against the budget, by slot (the order of an uninterrupted run)."""
    return sorted((t for t in trials if trial_outcome(t) in SPENT), key=lambda t: (trial_slot(t), t.number))


def fail_stale_trials(study: optuna.Study, orphaned_after: float) -> None:
    """Fail the running trials of dead workers: those of a process of this machine that is gone
    (at once: a study resumed after ``kill -9`` retries the trial's slot before anything else),
    those whose heartbeat stopped (Optuna; workers on other machines), and those that never
    got an owner ``orphaned_after`` seconds after being created (a worker killed between Optuna
    creating the trial and the sampler's :meth:`TrialSeededTPE.before_trial`, which records a
    heartbeat, then the ``worker``: Optuna would leave that trial running forever)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    now = datetime.datetime.now()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get(WORKER_ATTR)
        orphaned = worker is None and trial.datetime_start is not None \
            and (now - trial.datetime_start).total_seconds() > orphaned_after
        if orphaned or (worker is not None and _dead_here(trial)):
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError, ValueError, RuntimeError):
                study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)


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
            if any(trial_outcome(t) == RUNNING and WORKER_ATTR not in t.user_attrs for t in trials):
                # A trial being claimed, or left unowned by a killed worker (failed after
                # 2 x grace_period): its slot is unknown until then, so no slot is claimed now.
                time.sleep(min(poll_seconds, 0.2))
                continue
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
    retry = trial.user_attrs.get(RETRY_ATTR)
    retried = "" if retry is None else f", retrying interrupted trial {retry}"
    logger.info("%s: trial %d (%d of %d, slot %s%s) %s in %.1f s with %s; best %s", label, trial.number, position,
                budget, trial_slot(trial), retried, shown, trial.user_attrs.get("seconds", float("nan")),
                json.dumps(plain(trial.params), sort_keys=True), "none" if best is None else f"{best:.5f}")
    if best is not None:
        bar.set_postfix({"best": f"{best:.4f}"}, refresh=False)


def trials_table(trials: list[FrozenTrial], used: set[int]) -> pd.DataFrame:
    """One row per trial in the study, in the order they were created: number, params (JSON),
    value, state, seconds, best_epoch, used, error, slot (see :class:`TrialSeededTPE`; an
    interrupted trial and the trial that retried it share one)."""
    rows = [{"number": t.number, "params": json.dumps(plain(t.params), sort_keys=True),
             "value": t.value if t.state == TrialState.COMPLETE else None, "state": trial_outcome(t),
             "seconds": t.user_attrs.get("seconds"), "best_epoch": t.user_attrs.get("best_epoch"),
             "used": t.number in used, "error": t.user_attrs.get("error"), "slot": trial_slot(t)} for t in trials]
    columns = ["number", "params", "value", "state", "seconds", "best_epoch", "used", "error", "slot"]
    table = pd.DataFrame(rows, columns=columns)
    for column in ("best_epoch", "slot"):  # stay integer columns beside missing values
        table[column] = table[column].astype("Int64")
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
