"""Issue 15, case 2: a study killed at any point and resumed is the study that was interrupted.

Each test runs the real ``python -m protocols tune`` (itemknn-cosine on a 40-user synthetic
split, milliseconds a trial) in a subprocess that kills itself at a chosen point -- SIGKILL
(``kill -9``) or SIGINT (Ctrl-C) -- then resumes the study with the plain command and compares
the tuned file and the trials table with those of an uninterrupted run of the same seed: the
same trials (parameters, values, states) in the same slots, the same best result.

The kill points are deterministic: ``RECAUDIT_TEST_KILL=<point>:<k>`` makes the child wrap one
function (:func:`install_kill_hook`) and kill itself the k-th time it gets there, so no timing
race decides where the study stopped.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
MODEL, SPLIT = "itemknn-cosine", "toy/holdout"
TRIALS, STARTUP = 8, 3  # slots 0-2 random, 3-7 TPE
KILL_ENV = "RECAUDIT_TEST_KILL"
PARAMS_YAML = f"""seed: 42
models:
  {MODEL}: {{}}
tuning:
  metric: ndcg@10
  trials: {TRIALS}
  startup_trials: {STARTUP}
"""
# The child: the hook, then exactly what `python -m protocols` runs.
CHILD = (f"import os, runpy, sys; sys.path.append({str(Path(__file__).parent)!r}); "
         "import test_tuning_resume as hooks; hooks.install_kill_hook(os.environ['RECAUDIT_TEST_KILL']); "
         "runpy.run_module('protocols', run_name='__main__', alter_sys=True)")
# A tuned file and table compared between runs: what does not depend on the clock or on the
# interruptions themselves.
RUN_KEYS = ("seconds", "trials_interrupted")
TABLE_COLUMNS = ["slot", "params", "value", "state", "best_epoch", "error"]


# ----- the kill points (run in the child process) ------------------------------------------------
def install_kill_hook(spec: str) -> None:
    """Kill this process the ``k``-th time it reaches ``point`` (``spec`` = ``point:k``):

    - ``fit``: inside a trial, as the model starts fitting (SIGKILL);
    - ``sigint``: the same place, with SIGINT (Ctrl-C: Optuna marks the trial failed itself);
    - ``between``: after a trial was stored and logged, before the next one is created;
    - ``before-tell``: the objective returned its value, Optuna has not stored it yet;
    - ``unowned``: Optuna created the trial, before the tuner recorded its owner and slot;
    - ``write``: all trials done, the table written, the tuned YAML staged but not renamed.
    """
    from protocols import cli_tune, registry, tuning, tuning_study

    point, _, k = spec.partition(":")
    count = {"n": 0}

    def reached(sig=signal.SIGKILL) -> None:
        count["n"] += 1
        if count["n"] == int(k or 1):
            os.kill(os.getpid(), sig)
            time.sleep(10)  # SIGINT is raised at the next bytecode; never reached with SIGKILL

    if point == "sigint":
        # A shell's background job inherits SIGINT ignored, and Python then installs no handler:
        # give the child the handler a terminal's Ctrl-C meets.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if point in ("fit", "sigint"):
        cls = registry.get_model_class(MODEL)
        real_fit = cls.fit

        def fit(self, data):
            reached(signal.SIGKILL if point == "fit" else signal.SIGINT)
            return real_fit(self, data)

        cls.fit = fit
    elif point == "between":
        real_log = tuning_study._log_trial

        def log_trial(*args, **kwargs):
            real_log(*args, **kwargs)
            reached()

        tuning_study._log_trial = log_trial
    elif point == "before-tell":
        real_call = tuning._Objective.__call__

        def call(self, trial):
            value = real_call(self, trial)
            reached()
            return value

        tuning._Objective.__call__ = call
    elif point == "unowned":
        sampler = tuning_study.TrialSeededTPE
        real_before = sampler.before_trial

        def before_trial(self, study, trial):
            reached()
            return real_before(self, study, trial)

        sampler.before_trial = before_trial
    elif point == "write":
        import contextlib

        real_atomic = cli_tune.atomic_file

        @contextlib.contextmanager
        def atomic_file(path, *args, **kwargs):
            with real_atomic(path, *args, **kwargs) as handle:
                yield handle
                if str(path).endswith(".yaml"):
                    handle.flush()
                    reached()

        cli_tune.atomic_file = atomic_file
    else:
        raise ValueError(f"unknown kill point {spec!r}")


# ----- workspaces and runs --------------------------------------------------------------------
def write_workspace(folder: Path) -> Path:
    """params.yaml and a 40-user x 30-item holdout split with a popularity skew (so that the
    trials' values differ), all under ``folder``."""
    from protocols.split_data import Split, write_split

    rng = np.random.default_rng(0)
    n_users, n_items = 40, 30
    popularity = np.arange(n_items, 0, -1) / np.arange(n_items, 0, -1).sum()
    parts = {"train": [], "validation": [], "test": []}
    for user in range(n_users):
        items = rng.choice(n_items, size=8, replace=False, p=popularity)
        parts["train"] += [(user, int(i)) for i in items[:6]]
        parts["validation"].append((user, int(items[6])))
        parts["test"].append((user, int(items[7])))
    frames = {name: pd.DataFrame(rows, columns=["user", "item"]) for name, rows in parts.items()}
    empty = pd.DataFrame(columns=["user", "item"], dtype="int64")
    card = {"protocol": "holdout", "params": {}, "seed": 0, "n_users": n_users, "n_items": n_items}
    write_split(Split(**frames, validation_negatives=empty, test_negatives=empty, card=card),
                folder / "data" / "splits" / SPLIT)
    (folder / "params.yaml").write_text(PARAMS_YAML)
    return folder


def tune_cli(workspace: Path, kill: str | None = None) -> subprocess.CompletedProcess:
    """``python -m protocols tune`` in ``workspace``; with ``kill``, the child that kills itself."""
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    command = ["tune", "--split", SPLIT, "--model", MODEL]
    if kill is None:
        argv = [sys.executable, "-m", "protocols", *command]
    else:
        argv, env[KILL_ENV] = [sys.executable, "-c", CHILD, *command], kill
    return subprocess.run(argv, cwd=workspace, env=env, capture_output=True, text=True, timeout=600)


def killed(workspace: Path, kill: str) -> None:
    run = tune_cli(workspace, kill)
    expected = -signal.SIGKILL if not kill.startswith("sigint") else 130  # run_cli: "interrupted", exit 130
    assert run.returncode == expected, f"{kill}: exit {run.returncode}\n{run.stderr[-3000:]}"


def resumed(workspace: Path) -> subprocess.CompletedProcess:
    run = tune_cli(workspace)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def outputs(workspace: Path) -> tuple[dict, pd.DataFrame]:
    out = workspace / "tuned" / SPLIT / f"{MODEL}.yaml"
    return yaml.safe_load(out.read_text()), pd.read_csv(out.with_suffix(".trials.csv"))


def assert_same_study(workspace: Path, reference: tuple[dict, pd.DataFrame], interrupted: int) -> pd.DataFrame:
    """The tuned file and the counted trials equal the uninterrupted run's; the table also holds
    ``interrupted`` trials, not counted, each retried with its parameters in its slot."""
    record, table = outputs(workspace)
    expected_record, expected_table = reference
    assert {k: v for k, v in record.items() if k not in RUN_KEYS} == \
        {k: v for k, v in expected_record.items() if k not in RUN_KEYS}
    assert record["trials_interrupted"] == interrupted
    used = table[table["used"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(used[TABLE_COLUMNS], expected_table[TABLE_COLUMNS], check_dtype=False)
    stopped = table[table["state"] == "interrupted"]
    assert len(stopped) == interrupted and not stopped["used"].any()
    by_slot = used.set_index("slot")["params"]
    for slot, params in zip(stopped["slot"], stopped["params"]):
        if not pd.isna(slot) and params != "{}":
            assert by_slot[int(slot)] == params  # the interrupted trial's parameters, retried
    return table


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[dict, pd.DataFrame]:
    """The uninterrupted study: 8 trials of distinct parameters, no two values all equal."""
    workspace = write_workspace(tmp_path_factory.mktemp("uninterrupted"))
    resumed(workspace)
    record, table = outputs(workspace)
    assert len(table) == TRIALS and table["used"].all() and list(table["slot"]) == list(range(TRIALS))
    assert list(table["number"]) == list(range(TRIALS)) and record["trials_interrupted"] == 0
    assert table["params"].nunique() == TRIALS and table["value"].nunique() > 1
    assert record["best_trial"] == int(table["value"].idxmax())
    return record, table


@pytest.fixture
def workspace(tmp_path) -> Path:
    return write_workspace(tmp_path)


# ----- one interruption -----------------------------------------------------------------------
@pytest.mark.parametrize("kill, interrupted", [
    ("fit:2", 1),  # kill -9 inside a random (startup) trial
    ("fit:5", 1),  # kill -9 inside a TPE trial
    ("sigint:6", 1),  # Ctrl-C inside a TPE trial
    ("before-tell:4", 1),  # the value computed, not yet stored
    ("between:3", 0),  # between two trials
])
def test_a_study_killed_once_resumes_to_the_uninterrupted_result(workspace, reference, kill, interrupted):
    killed(workspace, kill)
    assert not (workspace / "tuned" / SPLIT / f"{MODEL}.yaml").exists()
    run = resumed(workspace)
    # the dead process's trial is failed at once (its pid is gone), not after the 30 s heartbeat
    # grace, which the resumed run would have spent waiting for it
    assert "waiting for" not in run.stderr
    assert_same_study(workspace, reference, interrupted)
    if interrupted:
        assert "retrying interrupted trial" in run.stderr


def test_a_study_killed_while_writing_its_result_writes_the_same_result(workspace, reference):
    killed(workspace, "write")
    out = workspace / "tuned" / SPLIT / f"{MODEL}.yaml"
    assert not out.exists() and out.with_suffix(".trials.csv").exists()
    first_table = out.with_suffix(".trials.csv").read_text()
    run = resumed(workspace)
    assert ": trial " not in run.stderr  # every trial was already spent: none runs again
    assert_same_study(workspace, reference, 0)
    assert out.with_suffix(".trials.csv").read_text() == first_table


def test_a_study_killed_several_times_resumes_to_the_uninterrupted_result(workspace, reference):
    killed(workspace, "fit:2")  # slot 1 interrupted
    killed(workspace, "fit:3")  # this run retries slot 1, runs slot 2 and dies in slot 3 (TPE)
    killed(workspace, "between:2")  # slots 3 and 4, then killed between trials
    killed(workspace, "before-tell:1")  # slot 5's value computed, lost
    resumed(workspace)
    table = assert_same_study(workspace, reference, 3)
    assert sorted(table.loc[table["state"] == "interrupted", "slot"]) == [1, 3, 5]


def test_a_trial_killed_before_it_was_owned_is_failed_and_its_slot_retried(workspace, reference, monkeypatch):
    """Killed between Optuna creating the trial and the tuner recording its owner: nothing tells
    whose trial it is, so the orphan rule fails it after 2 x the heartbeat grace (1 s here; 30 s
    by default); the study still ends as the uninterrupted one."""
    from protocols.cli_tune import default_storage_url, write_tuned
    from protocols.params import load_params
    from protocols.tuning import tune, tuning_settings

    killed(workspace, "unowned:4")
    out = workspace / "tuned" / SPLIT / f"{MODEL}.yaml"
    db = out.with_suffix(".db")
    storage = f"sqlite:///{db}"
    study_name = optuna.study.get_all_study_summaries(storage)[0].study_name
    states = [t.state for t in optuna.load_study(study_name=study_name, storage=storage).trials]
    assert states == [optuna.trial.TrialState.COMPLETE] * 3 + [optuna.trial.TrialState.RUNNING]
    monkeypatch.chdir(workspace)  # the command's relative paths, so that the records compare equal
    relative = out.relative_to(workspace)
    settings = tuning_settings(load_params(Path("params.yaml")))
    result = tune(MODEL, Path("data/splits") / SPLIT, settings, fixed={}, split_key=SPLIT,
                  storage=default_storage_url(relative), label=MODEL, heartbeat_interval=1, grace_period=1,
                  poll_seconds=0.1)
    write_tuned(result, relative)
    table = assert_same_study(workspace, reference, 1)
    assert table.loc[table["state"] == "interrupted", "params"].tolist() == ["{}"]  # it never drew


def test_the_uninterrupted_study_is_the_same_in_a_fresh_folder(tmp_path, reference):
    """The reference itself is reproducible: a second uninterrupted run writes the same result."""
    workspace = write_workspace(tmp_path)
    resumed(workspace)
    assert_same_study(workspace, reference, 0)
