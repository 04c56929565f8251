"""Issue 16, tuning across machines: workers share one Optuna study through a real PostgreSQL server.

Each test runs the real ``python -m protocols tune`` (itemknn-cosine on the 40-user synthetic
split of ``tests/test_tuning_resume.py``) as two concurrent worker processes, each in its own
workspace (as two machines, or two ``dvc queue`` workers, would be), on one study in a fresh
database of the server at ``RECAUDIT_TEST_POSTGRES_URL``. One worker is pointed at the database
with ``--storage``, the other with params.yaml's ``tuning.storage`` (which is not part of the
study's fingerprint, so both find the same study). The workers are started together (each
waits at a gate after its imports) and every trial's fit sleeps 0.3 s, so both take part.

What is checked, after both workers exit 0:

- the storage holds exactly ``budget`` counted trials, in slots 0 .. budget - 1, each slot
  once: none lost, none run twice; every other trial is a ``surplus`` claim (lost to a race,
  never fitted), none is interrupted; both workers ran counted trials;
- both workers wrote the same tuned file, and the same counted rows in their trials tables;
- the result equals a single worker's on a fresh study (the plain command, default SQLite
  file) wherever the design guarantees it. A slot's sampler is seeded from (seed, slot) and
  sees only the trials of lower slots, so a *random* (startup) slot draws the same parameters
  whatever the other workers did; a TPE slot drawn while a lower slot was still running sees a
  different history (running trials are TPE's constant lies), so several workers' TPE slots do
  not reproduce one worker's (``protocols/tuning_study.py``). Hence: with every slot random
  (``startup_trials`` = budget), the (slot, params, value) of every counted trial, the best
  value, the winning slot and the tuned parameters equal the single worker's -- the tuned file
  differs only in ``storage`` and ``seconds``; with TPE slots (3 random of 8), the 3 random
  slots equal the single worker's, and the rest are only counted once each.

Without ``RECAUDIT_TEST_POSTGRES_URL`` (a developer machine) the PostgreSQL tests are skipped;
under ``CI=true`` they fail instead (``.ci/run`` starts a server and sets the variable). The
``tuning.storage`` setting itself is tested without a server, on SQLite.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml

from protocols.tuning_study import public_url
from test_tuning_resume import MODEL, REPO, SPLIT, TABLE_COLUMNS, outputs, write_workspace

URL_ENV, CI_ENV = "RECAUDIT_TEST_POSTGRES_URL", "CI"
GATE_ENV, SLEEP_ENV = "RECAUDIT_TEST_GATE", "RECAUDIT_TEST_TRIAL_SECONDS"
TRIALS, SEED, TRIAL_SECONDS = 8, 42, 0.3
# The worker: a slow fit and the start gate, then exactly what `python -m protocols` runs.
CHILD = (f"import runpy, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
         "import test_tuning_postgres as hooks; hooks.slow_fit_after_gate(); "
         "runpy.run_module('protocols', run_name='__main__', alter_sys=True)")
RUN_KEYS = ("seconds", "storage")  # what a tuned file may differ in between storages


# ----- in the worker processes ------------------------------------------------------------------
def slow_fit_after_gate() -> None:
    """Make every fit of MODEL sleep ``$RECAUDIT_TEST_TRIAL_SECONDS``, then (imports done) say
    ready in ``$RECAUDIT_TEST_GATE`` and wait there until the test opens it."""
    import protocols.cli_tune  # noqa: F401  (the command's imports, before the gate)
    from protocols import registry

    cls = registry.get_model_class(MODEL)
    real_fit, seconds = cls.fit, float(os.environ[SLEEP_ENV])

    def fit(self, data):
        time.sleep(seconds)
        return real_fit(self, data)

    cls.fit = fit
    gate = Path(os.environ[GATE_ENV])
    (gate / f"ready-{os.getpid()}").touch()
    deadline = time.monotonic() + 120
    while not (gate / "open").exists():
        if time.monotonic() > deadline:
            sys.exit("the test never opened the start gate")
        time.sleep(0.01)


# ----- the server -------------------------------------------------------------------------------
def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes")


@pytest.fixture(scope="module")
def server_url() -> str:
    """The server's URL; skipped without one, except under CI=true, where that is a failure."""
    url = os.environ.get(URL_ENV)
    if not url:
        if _truthy(os.environ.get(CI_ENV)):
            pytest.fail(f"CI=true but {URL_ENV} is unset: .ci/run must install and start PostgreSQL "
                        "and export the server's URL; the PostgreSQL tests cannot be skipped in CI")
        pytest.skip(f"{URL_ENV} is unset: no PostgreSQL server to share a study through (.ci/run starts "
                    f"one; or set {URL_ENV}=postgresql://user@localhost:5432/db, a user allowed to create databases)")
    import sqlalchemy

    try:
        sqlalchemy.engine.make_url(url).get_dialect().import_dbapi()
    except ImportError as error:
        pytest.fail(f"{URL_ENV} is set but its database driver is not installed ({error}): "
                    "pip install -e '.[postgres]'")
    return url


@pytest.fixture
def database(server_url) -> str:
    """A fresh database on the server for one test (the study name is fixed by the study's
    fingerprint), dropped afterwards; its URL."""
    import sqlalchemy

    name = f"recaudit_test_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield sqlalchemy.engine.make_url(server_url).set(database=name).render_as_string(hide_password=False)
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


# ----- workspaces and runs ----------------------------------------------------------------------
def workspace_with(folder: Path, startup_trials: int, storage: str | None = None) -> Path:
    """The synthetic split and a params.yaml of TRIALS trials, ``startup_trials`` of them random."""
    write_workspace(folder)
    tuning = {"metric": "ndcg@10", "trials": TRIALS, "startup_trials": startup_trials}
    if storage is not None:
        tuning["storage"] = storage
    (folder / "params.yaml").write_text(yaml.safe_dump({"seed": SEED, "models": {MODEL: {}}, "tuning": tuning}))
    return folder


def tune_argv(storage: str | None = None) -> list[str]:
    return ["tune", "--split", SPLIT, "--model", MODEL, *(["--storage", storage] if storage else [])]


def environment(**extra: str) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", **extra,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


def single_worker(folder: Path, startup_trials: int) -> tuple[dict, pd.DataFrame]:
    """The plain command, one worker, on a fresh study in the default SQLite file."""
    workspace = workspace_with(folder, startup_trials)
    run = subprocess.run([sys.executable, "-m", "protocols", *tune_argv()], cwd=workspace, env=environment(),
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    record, table = outputs(workspace)
    assert table["used"].all() and list(table["slot"]) == list(range(TRIALS)) and table["params"].nunique() == TRIALS
    return record, table


def two_workers(tmp_path: Path, url: str, startup_trials: int) -> tuple[list[Path], list[int]]:
    """Two workers on one study in ``url``, started together; their workspaces and pids."""
    gate = tmp_path / "gate"
    gate.mkdir()
    workspaces = [workspace_with(tmp_path / "worker-a", startup_trials),  # --storage
                  workspace_with(tmp_path / "worker-b", startup_trials, storage=url)]  # tuning.storage
    env = environment(**{GATE_ENV: str(gate), SLEEP_ENV: str(TRIAL_SECONDS)})
    workers = [subprocess.Popen([sys.executable, "-c", CHILD, *argv], cwd=workspace, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
               for workspace, argv in zip(workspaces, (tune_argv(url), tune_argv()))]
    try:
        deadline = time.monotonic() + 120
        while len(list(gate.glob("ready-*"))) < len(workers):
            assert time.monotonic() < deadline and all(w.poll() is None for w in workers), \
                [w.communicate() for w in workers if w.poll() is not None]
            time.sleep(0.02)
        (gate / "open").touch()
        ran = [w.communicate(timeout=300) for w in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    for worker, (_, stderr) in zip(workers, ran):
        assert worker.returncode == 0, stderr[-3000:]
    return workspaces, [w.pid for w in workers]


def assert_one_study(url: str, records: list[dict], pids: list[int]) -> list[optuna.trial.FrozenTrial]:
    """The storage holds TRIALS counted trials, one per slot, run by both workers; the others
    are surplus claims. Returns the counted trials by slot."""
    from protocols.tuning_study import SPENT, SURPLUS, WORKER_ATTR, trial_outcome, trial_slot

    assert records[0] == records[1]  # both workers wrote the same result
    assert optuna.study.get_all_study_names(url) == [records[0]["study_name"]]
    trials = optuna.load_study(study_name=records[0]["study_name"], storage=url).get_trials(deepcopy=False)
    counted = sorted((t for t in trials if trial_outcome(t) in SPENT), key=trial_slot)
    assert [trial_slot(t) for t in counted] == list(range(TRIALS))  # every slot once: none lost, none twice
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in counted)
    assert {trial_outcome(t) for t in trials if t not in counted} <= {SURPLUS}  # never fitted, never counted
    ran_by = {int(t.user_attrs[WORKER_ATTR].rpartition(":")[2]) for t in counted}
    assert ran_by == set(pids), f"trials ran by {ran_by}, workers {pids}"  # both took part
    assert records[0]["trials_run"] == TRIALS and records[0]["trials_interrupted"] == 0
    return counted


def counted_rows(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["used"]].sort_values("slot").reset_index(drop=True)[TABLE_COLUMNS]


def without(record: dict, keys=RUN_KEYS) -> dict:
    return {key: value for key, value in record.items() if key not in keys}


@pytest.fixture(scope="module")
def random_reference(tmp_path_factory) -> tuple[dict, pd.DataFrame]:
    """One worker, every slot random."""
    return single_worker(tmp_path_factory.mktemp("single-random"), startup_trials=TRIALS)


# ----- the tests ----------------------------------------------------------------------------------
def test_two_workers_on_postgres_split_the_trials_and_end_as_one_worker(tmp_path, database, random_reference):
    """Every slot random: the shared study is the single worker's, trial for trial."""
    workspaces, pids = two_workers(tmp_path, database, startup_trials=TRIALS)
    (record_a, table_a), (record_b, table_b) = (outputs(w) for w in workspaces)
    assert_one_study(database, [record_a, record_b], pids)
    pd.testing.assert_frame_equal(counted_rows(table_a), counted_rows(table_b))
    reference_record, reference_table = random_reference
    pd.testing.assert_frame_equal(counted_rows(table_a), counted_rows(reference_table), check_dtype=False)
    assert without(record_a) == without(reference_record)  # best value, winning slot, params, study name
    assert record_a["storage"] == public_url(database) and reference_record["storage"].startswith("sqlite:///")
    assert (workspaces[0] / "tuned" / SPLIT / f"{MODEL}.db").stat().st_size == 0  # left empty for DVC


def test_two_workers_on_postgres_share_a_tpe_study(tmp_path, database, random_reference):
    """3 random slots, then TPE: the random slots are the single worker's; each slot counted once."""
    workspaces, pids = two_workers(tmp_path, database, startup_trials=3)
    (record_a, table_a), (record_b, table_b) = (outputs(w) for w in workspaces)
    counted = assert_one_study(database, [record_a, record_b], pids)
    pd.testing.assert_frame_equal(counted_rows(table_a), counted_rows(table_b))
    # A random slot's parameters depend on (seed, slot) alone, not on startup_trials.
    _, reference_table = random_reference
    pd.testing.assert_frame_equal(counted_rows(table_a)[:3], counted_rows(reference_table)[:3], check_dtype=False)
    assert record_a["best_value"] == max(t.value for t in counted)


# ----- the setting, without a server ---------------------------------------------------------------
def test_tuning_storage_in_params_yaml_is_where_the_study_lives(tmp_path, monkeypatch):
    """``tuning.storage`` points the command (hence every tune stage) at another storage; the
    default file is still left, empty, because the tune stage declares it; the study and the
    result are those of the default storage."""
    shared = tmp_path / "shared" / "studies.db"
    url = f"sqlite:///{shared}"
    workspace = workspace_with(tmp_path / "workspace", startup_trials=3, storage=url)
    run = subprocess.run([sys.executable, "-m", "protocols", *tune_argv()], cwd=workspace, env=environment(),
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    record, table = outputs(workspace)
    assert record["storage"] == url and record["trials_run"] == TRIALS
    assert optuna.study.get_all_study_names(url) == [record["study_name"]]
    assert (workspace / "tuned" / SPLIT / f"{MODEL}.db").stat().st_size == 0
    # the same study name as without the setting: where a study lives is not in its fingerprint
    from protocols.__main__ import main

    plain = workspace_with(tmp_path / "plain", startup_trials=3)
    monkeypatch.chdir(plain)
    assert main(tune_argv()) == 0
    assert yaml.safe_load((plain / "tuned" / SPLIT / f"{MODEL}.yaml").read_text())["study_name"] == \
        record["study_name"]


@pytest.mark.parametrize("storage, message", [
    ("postgresql://recaudit:secret@db/recaudit", "tuning.storage holds a password"),
    ("no url", "tuning.storage must be an SQLAlchemy database URL"),
    (3, "tuning.storage must be an Optuna storage URL"),
])
def test_a_bad_tuning_storage_is_refused_before_any_work(tmp_path, storage, message):
    from common.errors import RecAuditError
    from protocols.settings import load_settings

    workspace = workspace_with(tmp_path, startup_trials=3, storage=storage)
    with pytest.raises(RecAuditError, match=message):
        load_settings(workspace / "params.yaml")


def test_a_worker_that_loses_the_race_to_create_the_tables_retries(monkeypatch, tmp_path):
    """PostgreSQL reports the lost race as DuplicateTable, a ProgrammingError (seen in CI with two
    workers starting together); other ProgrammingErrors are not retried."""
    import optuna
    import sqlalchemy

    from protocols import tuning_study

    calls = {"n": 0}
    real = optuna.storages.RDBStorage

    class Flaky(real):
        def __init__(self, url, **kwargs):
            calls["n"] += 1
            if calls["n"] == 1:
                raise sqlalchemy.exc.ProgrammingError("CREATE TABLE studies", {},
                                                      Exception('relation "studies" already exists'))
            super().__init__(url, **kwargs)

    monkeypatch.setattr(optuna.storages, "RDBStorage", Flaky)
    monkeypatch.setattr(tuning_study.time, "sleep", lambda seconds: None)
    storage = tuning_study.open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    assert calls["n"] == 2
    tuning_study.close_storage(storage, f"sqlite:///{tmp_path / 'study.db'}")

    class Broken(real):
        def __init__(self, url, **kwargs):
            raise sqlalchemy.exc.ProgrammingError("SELECT", {}, Exception("permission denied for table studies"))

    monkeypatch.setattr(optuna.storages, "RDBStorage", Broken)
    with pytest.raises(sqlalchemy.exc.ProgrammingError):
        tuning_study.open_storage(f"sqlite:///{tmp_path / 'other.db'}")
