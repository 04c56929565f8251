"""``python -m protocols tune``: values against a naive NDCG, seeded search, resume, shared studies,
frozen epochs, test-data isolation and one-line errors, on hand-built splits and toy models."""
from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import signal
import sqlite3
import time

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml

from common.errors import RecAuditError, run_cli
from protocols import registry
from protocols.__main__ import main
from protocols.cli_tune import load_tuned, trials_path, write_tuned
from protocols.contract import Recommender
from protocols.early_stopping import EarlyStopping
from protocols.space import Categorical, Integer, Real
from protocols.split_data import PART_FILES, TEST_PARTS, TUNING_PARTS, Split, write_split
from protocols.tuning import TuningSettings, search_plan, study_fingerprint, tune, tuning_settings

N_USERS, N_ITEMS = 8, 10
TRAIN = {u: [(u + 9) % N_ITEMS, (u + 8) % N_ITEMS] for u in range(N_USERS)}
VALIDATION = {u: [(u + 3) % N_ITEMS] + ([(u + 6) % N_ITEMS] if u == 0 else []) for u in range(N_USERS)}
TEST = {u: [(u + 4) % N_ITEMS] for u in range(N_USERS)}
NEGATIVES = {u: [(u + 5) % N_ITEMS, (u + 1) % N_ITEMS, (u + 7) % N_ITEMS] for u in range(N_USERS)}
SHIFT, TWO_CHOICES, EPOCHS, HELD_OUT = ("test-tuning-shift", "test-tuning-two-choices", "test-tuning-epochs",
                                        "test-tuning-no-fold-in")


# ----- toy models with a known validation value ---------------------------------------------
class ShiftToy(Recommender):
    """score(u, i) = -temperature * ((i - u - shift) mod n_items): user u's list starts at item
    u + shift; ``temperature`` does not change the ranking. Shift 3 puts every truth first."""

    name = SHIFT
    search_space = {"shift": Integer(0, N_ITEMS - 1), "temperature": Real(0.1, 10.0, log=True)}
    fits = 0
    stop_metrics: list = []  # the metric of the validation data each fit received
    extra_sleep = 0.0  # set in a worker process only, to be killed mid-trial

    def __init__(self, shift: int = 0, temperature: float = 1.0, fail_above: int | None = None,
                 sleep_seconds: float = 0.0, seed: int = 0):
        self.shift, self.temperature, self.fail_above = shift, temperature, fail_above
        self.sleep_seconds, self.seed = sleep_seconds, seed

    def _fit(self, data):
        validation = data.validation
        type(self).fits += 1
        type(self).stop_metrics.append(None if validation is None else validation.metric)
        assert validation is not None and validation.truth.shape == (len(validation.users), N_ITEMS)
        if self.fail_above is not None and self.shift > self.fail_above:
            raise RecAuditError(f"shift {self.shift} diverged")
        time.sleep(self.sleep_seconds + self.extra_sleep)

    def _score(self, users, history):
        items = np.arange(self.n_items_)
        distance = (items[None, :] - users[:, None] - self.shift) % self.n_items_
        return (-self.temperature * distance).astype(np.float32)


class TwoChoiceToy(ShiftToy):
    name = TWO_CHOICES
    search_space = {"shift": Categorical((1, 3))}


class EpochToy(ShiftToy):
    """Iterative: after epoch e the shift is 3 - offset - |e - peak|: epoch ``peak`` is best, offset 0 wins."""

    name = EPOCHS
    search_space = {"offset": Categorical((0, 1))}
    temperature = 1.0

    def __init__(self, epochs: int = 10, validate_every: int = 1, patience: int | None = 2, peak: int = 4,
                 offset: int = 0):
        self.epochs, self.validate_every, self.patience, self.peak, self.offset = \
            epochs, validate_every, patience, peak, offset

    def _fit(self, data):
        stopper = EarlyStopping(data.validation, validate_every=self.validate_every, patience=self.patience)
        epoch = 0
        for epoch in range(1, self.epochs + 1):
            self.shift = 3 - self.offset - abs(epoch - self.peak)
            if stopper.after_epoch(epoch, self, snapshot=lambda: self.shift, last=epoch == self.epochs):
                break
        if stopper.best_snapshot is not None:
            self.shift = stopper.best_snapshot
        self.best_epoch_, self.epochs_run_ = stopper.best_epoch_or(epoch), epoch


class HeldOutToy(ShiftToy):
    name = HELD_OUT
    folds_in_users = False


@pytest.fixture(autouse=True)
def toys(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # tune's default item data roots (data/features, data/raw) are the test's own
    registry.registered_models()  # load the packages first, so the patch is undone cleanly
    for cls in (ShiftToy, TwoChoiceToy, EpochToy, HeldOutToy):
        monkeypatch.setitem(registry._MODELS, cls.name, cls)
    monkeypatch.setattr(ShiftToy, "fits", 0)
    monkeypatch.setattr(ShiftToy, "stop_metrics", [])


def naive_ndcg(shift: int, sampled: bool = False, k: int = 10) -> float:
    """Per user: rank the candidates (all items, or truth + negatives) minus the training items
    by cyclic distance from u + shift; NDCG@k = DCG / IDCG averaged over users."""
    total = 0.0
    for u, truth in VALIDATION.items():
        pool = set(truth) | set(NEGATIVES[u]) if sampled else set(range(N_ITEMS))
        ranked = sorted(pool - set(TRAIN[u]), key=lambda i: (i - u - shift) % N_ITEMS)[:k]
        dcg = sum(1 / math.log2(r + 2) for r, item in enumerate(ranked) if item in truth)
        total += dcg / sum(1 / math.log2(r + 2) for r in range(min(k, len(truth))))
    return total / len(VALIDATION)


def frame(rows: dict[int, list[int]]) -> pd.DataFrame:
    return pd.DataFrame([(u, i) for u, items in rows.items() for i in items], columns=["user", "item"])


def write_toy_split(folder, sampled: bool = False, protocol: str = "holdout"):
    card = {"protocol": protocol, "params": {}, "seed": 0, "n_users": N_USERS, "n_items": N_ITEMS}
    negatives = frame(NEGATIVES) if sampled else frame({})
    split = Split(train=frame(TRAIN), validation=frame(VALIDATION), test=frame(TEST),
                  validation_negatives=negatives, test_negatives=negatives, card=card)
    write_split(split, folder)
    return folder


@pytest.fixture
def split_dir(tmp_path):
    return write_toy_split(tmp_path / "splits" / "toy" / "holdout")


def settings(trials: int = 6, seed: int = 42, **kw) -> TuningSettings:
    return TuningSettings(trials=trials, seed=seed, startup_trials=kw.pop("startup_trials", 3), **kw)


def shifts(result) -> list[int]:
    return [eval_params(p)["shift"] for p in result.trials["params"]]


def eval_params(text: str) -> dict:
    return yaml.safe_load(text)  # JSON is YAML


# ----- values, best trial, budget -------------------------------------------------------------
@pytest.mark.parametrize("sampled", [False, True])
def test_empty_search_space_runs_one_trial_worth_the_naive_value(tmp_path, sampled):
    folder = write_toy_split(tmp_path / "toy" / "split", sampled=sampled)
    result = tune(SHIFT, folder, settings(trials=5), fixed={"shift": 2, "temperature": 1.0})
    assert (result.trials_run, result.trials_budget, ShiftToy.fits) == (1, 1, 1)
    assert result.best_value == pytest.approx(naive_ndcg(2, sampled), abs=1e-12)
    assert naive_ndcg(2, sampled) < 1.0


def test_each_trial_is_worth_its_naive_value_and_the_best_is_their_max(split_dir):
    result = tune(SHIFT, split_dir, settings(trials=8))
    table = result.trials
    assert list(table["number"]) == list(range(8)) and set(table["state"]) == {"ok"} and table["used"].all()
    expected = [naive_ndcg(s) for s in shifts(result)]
    assert list(table["value"]) == pytest.approx(expected, abs=1e-12)
    best = int(np.argmax(expected))  # argmax takes the first of tied maxima, as the tuner does
    assert (result.best_trial, result.best_value) == (best, pytest.approx(max(expected)))
    assert result.params == {**eval_params(table["params"][best]), "fail_above": None, "sleep_seconds": 0.0,
                             "seed": 42}
    assert result.split == "toy/holdout" and result.validation_metric == "ndcg@10" and result.trials_run == 8


def test_a_two_choice_search_finds_the_known_optimum(split_dir):
    result = tune(TWO_CHOICES, split_dir, settings(trials=6, startup_trials=2))
    assert set(shifts(result)) == {1, 3}
    assert result.params["shift"] == 3 and result.best_value == pytest.approx(naive_ndcg(3), abs=1e-12)
    assert naive_ndcg(3) > naive_ndcg(1)


def test_other_validation_metric_is_maximised(split_dir):
    result = tune(TWO_CHOICES, split_dir, settings(trials=4, startup_trials=4, metric="hr@1"))
    # hr@1: shift 3 puts the truth first for everyone; shift 1 for no one
    assert sorted(set(zip(shifts(result), result.trials["value"]))) == [(1, 0.0), (3, 1.0)]
    assert result.validation_metric == "hr@1"
    assert ShiftToy.stop_metrics == ["hr@1"] * 4  # the validation data handed to fit carries the tuning metric


def test_iterative_models_stop_on_the_tuning_metric(split_dir):
    """EarlyStopping takes the metric of the validation data, i.e. tuning.metric. EpochToy's
    shift climbs 0, 1, 2, 3 over epochs 1-4: ndcg@10 improves every epoch up to 4, while hr@1
    stays 0 until the truth is first (shift 3), so with patience 1 an hr@1 run stops at epoch 2
    and keeps epoch 1."""
    fixed = {"epochs": 10, "peak": 4, "patience": 1, "offset": 0}
    on_ndcg = tune(EPOCHS, split_dir, settings(trials=1, startup_trials=1), fixed=fixed)
    on_hr = tune(EPOCHS, split_dir, settings(trials=1, startup_trials=1, metric="hr@1"), fixed=fixed)
    assert (on_ndcg.best_epoch, on_ndcg.params["epochs"]) == (4, 4)
    assert (on_hr.best_epoch, on_hr.params["epochs"], on_hr.best_value) == (1, 1, 0.0)


def test_same_seed_same_trials_other_seed_other_trials(split_dir):
    first = tune(SHIFT, split_dir, settings(trials=6, seed=5))
    again = tune(SHIFT, split_dir, settings(trials=6, seed=5))
    other = tune(SHIFT, split_dir, settings(trials=6, seed=6))
    assert list(first.trials["params"]) == list(again.trials["params"])
    assert list(first.trials["params"]) != list(other.trials["params"])
    assert first.params == again.params


def test_failing_trials_are_spent_and_recorded(split_dir):
    result = tune(SHIFT, split_dir, settings(trials=8), fixed={"fail_above": 4})
    table = result.trials
    failed = table[table["state"] == "error"]
    assert len(table) == 8 and result.trials_run == 8 and len(failed) > 0
    assert all(eval_params(p)["shift"] > 4 for p in failed["params"]) and failed["value"].isna().all()
    assert failed["error"].str.contains("diverged").all()


def test_every_trial_failing_is_a_one_line_error(split_dir):
    with pytest.raises(RecAuditError) as caught:
        tune(SHIFT, split_dir, settings(trials=3), fixed={"fail_above": -1})
    assert "all 3 tuning trial(s)" in str(caught.value) and "diverged" in str(caught.value)
    assert "\n" not in str(caught.value)


# ----- early stopping: the winning trial's best epoch is frozen ---------------------------------
def test_best_epoch_of_the_winning_trial_is_frozen(split_dir):
    from protocols.evaluation import tuning_data
    from protocols.split_data import load_split

    result = tune(EPOCHS, split_dir, settings(trials=4, startup_trials=4), fixed={"epochs": 10, "peak": 4})
    assert result.params["offset"] == 0 and result.best_value == pytest.approx(naive_ndcg(3), abs=1e-12)
    assert (result.best_epoch, result.params["epochs"], result.params["patience"]) == (4, 4, None)
    assert set(result.trials["best_epoch"]) == {4}
    # the refit without validation data runs exactly the frozen epochs and lands on the best state
    train, _ = tuning_data(load_split(split_dir, parts=TUNING_PARTS))
    refit = registry.make_model(EPOCHS, result.params).fit(train)
    assert (refit.epochs_run_, refit.shift) == (4, 3)


# ----- persistence ------------------------------------------------------------------------------
def test_a_rerun_with_a_larger_budget_runs_only_the_remainder(split_dir, tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    first = tune(SHIFT, split_dir, settings(trials=3), storage=storage)
    assert (first.trials_run, ShiftToy.fits) == (3, 3)
    resumed = tune(SHIFT, split_dir, settings(trials=5), storage=storage)
    assert (resumed.trials_run, ShiftToy.fits) == (5, 5)  # two more fits, not five
    assert list(resumed.trials["number"]) == [0, 1, 2, 3, 4] and resumed.study_name == first.study_name
    uninterrupted = tune(SHIFT, split_dir, settings(trials=5), storage=f"sqlite:///{tmp_path / 'other.db'}")
    assert list(resumed.trials["params"]) == list(uninterrupted.trials["params"])
    smaller = tune(SHIFT, split_dir, settings(trials=3), storage=storage)
    assert ShiftToy.fits == 10 and smaller.trials_run == 3 and list(smaller.trials["used"]) == [True] * 3 + [False] * 2
    assert smaller.best_value == first.best_value


def test_a_changed_setting_starts_a_fresh_study(split_dir, tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    one = tune(SHIFT, split_dir, settings(trials=2), storage=storage)
    two = tune(SHIFT, split_dir, settings(trials=2), storage=storage, fixed={"temperature": 2.0})
    assert one.study_name != two.study_name and ShiftToy.fits == 4
    assert two.study_name.startswith("toy/holdout/test-tuning-shift#")


def test_a_label_names_the_study_and_the_result(split_dir):
    result = tune(SHIFT, split_dir, settings(trials=2), label="my-shift")
    assert result.model == "my-shift" and result.study_name.startswith("toy/holdout/my-shift#")
    assert result.record()["model"] == "my-shift" and result.params["seed"] == 42


def test_the_study_name_changes_with_the_item_data_the_model_reads():
    plan = search_plan(SHIFT, {"temperature": 1.0}, 42)
    card = {"protocol": "holdout"}
    base = study_fingerprint(plan, settings(), card)
    assert study_fingerprint(plan, settings(), card, {}) == base
    tags = study_fingerprint(plan, settings(), card, {"tags": "a" * 64})
    assert tags != base and study_fingerprint(plan, settings(), card, {"tags": "b" * 64}) != tags


def _worker(split_dir, storage, out, trials, sleep):
    ShiftToy.extra_sleep = sleep
    result = tune(SHIFT, split_dir, settings(trials=trials), fixed={"sleep_seconds": 0.1}, storage=storage,
                  heartbeat_interval=1, grace_period=1, poll_seconds=0.1)
    write_tuned(result, out)


def test_two_workers_share_one_study(split_dir, tmp_path):
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_worker, args=(split_dir, storage, tmp_path / f"{name}.yaml", 8, 0.0))
               for name in ("a", "b")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [worker.exitcode for worker in workers] == [0, 0]
    a, b = (load_tuned(tmp_path / f"{name}.yaml") for name in ("a", "b"))
    assert a == b and a["trials_run"] == 8
    study = optuna.load_study(study_name=a["study_name"], storage=storage)
    done = [t for t in study.get_trials() if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 8 and sorted(t.number for t in done) == list(range(8))
    assert len({t.user_attrs["worker"] for t in done}) == 2  # both took part
    assert len({(t.params["shift"], t.params["temperature"]) for t in done}) == 8  # no trial drawn twice


def running_trials(path) -> int:
    """Trials of an Optuna SQLite file whose objective is running, read without Optuna (which
    would race the worker to create the tables)."""
    query = ("SELECT count(*) FROM trials JOIN trial_user_attributes USING (trial_id) "
             "WHERE state = 'RUNNING' AND key = 'worker'")
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=1)) as connection:
            return connection.execute(query).fetchone()[0]
    except sqlite3.Error:
        return 0


def test_a_killed_workers_trial_is_redone(split_dir, tmp_path):
    storage = f"sqlite:///{tmp_path / 'killed.db'}"
    context = multiprocessing.get_context("fork")
    doomed = context.Process(target=_worker, args=(split_dir, storage, tmp_path / "doomed.yaml", 3, 60.0))
    doomed.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not running_trials(tmp_path / "killed.db"):
        time.sleep(0.1)
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.join()
    result = tune(SHIFT, split_dir, settings(trials=3), fixed={"sleep_seconds": 0.1}, storage=storage,
                  heartbeat_interval=1, grace_period=1, poll_seconds=0.1)
    table = result.trials
    assert result.trials_run == 3 and list(table["state"]).count("interrupted") == 1
    assert not table.loc[table["state"] == "interrupted", "used"].any()


def test_a_trial_orphaned_before_its_first_heartbeat_is_failed(split_dir, tmp_path):
    storage = f"sqlite:///{tmp_path / 'orphan.db'}"
    first = tune(SHIFT, split_dir, settings(trials=1), storage=storage)
    study = optuna.load_study(study_name=first.study_name, storage=storage)
    study.ask()  # a running trial that never beats, as left by a worker killed right after asking
    result = tune(SHIFT, split_dir, settings(trials=2), storage=storage, heartbeat_interval=1, grace_period=1,
                  poll_seconds=0.1)
    assert list(result.trials["state"]) == ["ok", "interrupted", "ok"] and result.trials_run == 2


# ----- the command ------------------------------------------------------------------------------
PARAMS_YAML = """seed: 42
models:
  test-tuning-shift: {temperature: 1.0}
tuning:
  metric: ndcg@10
  budget: quick
  budgets:
    quick: {trials: 4, startup_trials: 2}
    paper: {trials: 50, startup_trials: 16}
"""


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    write_toy_split(tmp_path / "data" / "splits" / "toy" / "holdout", sampled=True)
    (tmp_path / "params.yaml").write_text(PARAMS_YAML)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_tune(*argv: str) -> int:
    with pytest.raises(SystemExit) as exit_:
        run_cli(main, ["tune", *argv])
    return exit_.value.code


def test_command_writes_the_frozen_params_and_the_trial_table(workspace, capsys):
    assert run_tune("--dataset", "toy", "--protocol", "holdout", "--model", SHIFT) == 0
    out = workspace / "tuned" / "toy" / "holdout" / f"{SHIFT}.yaml"
    record = yaml.safe_load(out.read_text())
    assert {"model", "split", "params", "validation_metric", "best_value", "trials_run", "trials_budget", "budget",
            "study_name", "storage", "seed", "seconds"} <= set(record)
    assert (record["model"], record["split"], record["status"], record["budget"]) == (SHIFT, "toy/holdout", "ok",
                                                                                        "quick")
    assert (record["trials_run"], record["trials_budget"], record["seed"]) == (4, 4, 42)
    assert not {"timeout_per_trial", "trials_time_capped"} & set(record)  # no wall-clock budget any more
    assert record["params"]["temperature"] == 1.0 and record["searched"] == ["shift"]
    assert record["fixed"] == {"temperature": 1.0, "seed": 42}
    assert record["storage"] == f"sqlite:///tuned/toy/holdout/{SHIFT}.db" and (out.parent / f"{SHIFT}.db").exists()
    table = pd.read_csv(trials_path(out))
    assert list(table.columns[:5]) == ["number", "params", "value", "state", "seconds"] and len(table) == 4
    assert record["best_value"] == pytest.approx(table["value"].max())
    assert record["best_value"] == pytest.approx(naive_ndcg(record["params"]["shift"], sampled=True))
    assert "best validation ndcg@10" in capsys.readouterr().out
    assert load_tuned(out, model=SHIFT, split="toy/holdout")["params"] == record["params"]


def test_command_tunes_a_label_of_params_yaml_under_its_own_name(workspace):
    params = yaml.safe_load(PARAMS_YAML)
    params["models"]["warm-shift"] = {"model": SHIFT, "temperature": 2.0}
    (workspace / "params.yaml").write_text(yaml.safe_dump(params))
    assert run_tune("--split", "toy/holdout", "--model", "warm-shift", "--trials", "2") == 0
    out = workspace / "tuned" / "toy" / "holdout" / "warm-shift.yaml"
    record = load_tuned(out, model="warm-shift", split="toy/holdout")
    assert record["fixed"] == {"temperature": 2.0, "seed": 42} and record["params"]["temperature"] == 2.0
    assert record["study_name"].startswith("toy/holdout/warm-shift#") and (out.parent / "warm-shift.db").exists()
    assert not (workspace / "tuned" / "toy" / "holdout" / f"{SHIFT}.yaml").exists()


def test_command_logs_one_line_per_trial(workspace, capsys):
    assert run_tune("--split", "toy/holdout", "--model", SHIFT, "--trials", "3") == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if ": trial " in line]
    assert len(lines) == 3 and all("ndcg@10 = " in line for line in lines)


def test_tuning_never_opens_a_test_part(workspace, monkeypatch):
    folder = workspace / "data" / "splits" / "toy" / "holdout"
    (folder / PART_FILES["test"]).unlink()
    (folder / PART_FILES["test_input"]).unlink()
    (folder / PART_FILES["test_negatives"]).write_bytes(b"not a parquet file")
    opened = []
    real_read = pd.read_parquet
    monkeypatch.setattr(pd, "read_parquet", lambda path, *a, **k: opened.append(os.path.basename(path))
                        or real_read(path, *a, **k))
    assert run_tune("--split", "toy/holdout", "--model", SHIFT, "--trials", "2") == 0
    assert set(opened) == {PART_FILES[part] for part in TUNING_PARTS}
    assert not set(opened) & {PART_FILES[part] for part in TEST_PARTS}


def write_strong_toy_split(folder):
    """Strong generalisation: users 0-5 train; validation users 6 and 7 have no training row
    and are known only by their fold-in history (``validation_input``)."""
    card = {"protocol": "strong", "params": {}, "seed": 0, "n_users": N_USERS, "n_items": N_ITEMS}
    held_out = (6, 7)
    split = Split(train=frame({u: items for u, items in TRAIN.items() if u not in held_out}),
                  validation=frame({u: VALIDATION[u] for u in held_out}), test=frame({}),
                  validation_input=frame({u: TRAIN[u] for u in held_out}), card=card)
    write_split(split, folder)
    return folder


def test_unsupported_protocol_is_recorded_not_an_error(workspace, capsys):
    write_strong_toy_split(workspace / "data" / "splits" / "toy" / "strong")
    assert run_tune("--split", "toy/strong", "--model", HELD_OUT) == 0
    record = load_tuned(workspace / "tuned" / "toy" / "strong" / f"{HELD_OUT}.yaml")
    assert record["status"] == "unsupported" and record["trials_run"] == 0 and "user embeddings" in record["reason"]
    assert (workspace / "tuned" / "toy" / "strong" / f"{HELD_OUT}.db").is_file()  # a DVC output of the stage
    assert "unsupported" in capsys.readouterr().out


@pytest.mark.parametrize("argv, params_edit, message", [
    (["--model", "no-such-model"], None, "unknown model 'no-such-model'; known models: "),
    (["--model", SHIFT], ("{temperature: 1.0}", "{nope: 1}"), "sets unknown parameter(s) 'nope'; test-tuning-shift's "
                                                               "parameters are: fail_above, seed"),
    (["--model", SHIFT], ("metric: ndcg@10", "metric: ndgc@10"), "unknown validation metric 'ndgc'"),
    (["--model", SHIFT], ("budget: quick", "budget: huge"), "unknown tuning budget 'huge'; known tuning budgets: "
                                                             "paper, quick"),
    (["--model", SHIFT, "--storage", "nosuchdb://x"], None, "cannot open tuning storage 'nosuchdb://x'"),
    (["--model", SHIFT, "--protocol", "holdout"], None, "not both"),
])
def test_bad_input_is_one_line_and_writes_nothing(workspace, capsys, argv, params_edit, message):
    if params_edit:
        (workspace / "params.yaml").write_text(PARAMS_YAML.replace(*params_edit))
    assert run_tune("--split", "toy/holdout", *argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not (workspace / "tuned").exists()


def test_missing_split_lists_the_built_ones(workspace, capsys):
    assert run_tune("--split", "toy/nosuch", "--model", SHIFT) == 2
    assert "no split toy/nosuch under data/splits; built splits: toy/holdout" in capsys.readouterr().err


# ----- settings and the tuned file --------------------------------------------------------------
def test_tuning_settings_resolve_named_budgets():
    base = yaml.safe_load(PARAMS_YAML)
    assert tuning_settings(base) == TuningSettings(metric="ndcg@10", trials=4, budget="quick", startup_trials=2,
                                                   seed=42)
    base["tuning"]["budget"] = "paper"
    assert (tuning_settings(base).trials, tuning_settings(base).startup_trials) == (50, 16)
    assert (tuning_settings(base, trials=7).trials, tuning_settings(base, trials=7).budget) == (7, "cli")
    plain = tuning_settings({"seed": 1, "tuning": {"trials": 10}})
    assert (plain.trials, plain.budget, plain.startup_trials, plain.metric) == (10, "custom", 3, "ndcg@10")
    assert tuning_settings({}).trials == 20 and tuning_settings({}).startup_trials == 6


@pytest.mark.parametrize("section, message", [
    ({"trials": 5, "budget": "paper", "budgets": {"paper": {"trials": 50}}}, "both budget and trials"),
    ({"trails": 5}, "unknown key(s) trails"),
    ({"trials": 0}, "tuning trials must be an integer >= 1"),
    ({"timeout_per_trial": 30}, "unknown key(s) timeout_per_trial"),  # wall-clock caps were removed
    ({"budget": "paper", "budgets": {"paper": 50}}, "budgets.paper must be a mapping with 'trials'"),
])
def test_bad_tuning_settings(section, message):
    with pytest.raises(RecAuditError) as caught:
        tuning_settings({"tuning": section})
    assert message in str(caught.value)


def test_load_tuned_refuses_other_files(tmp_path):
    plain = tmp_path / "plain.yaml"
    plain.write_text("shift: 3\n")
    with pytest.raises(RecAuditError, match="is not a tuning result"):
        load_tuned(plain)
    tuned = tmp_path / "tuned.yaml"
    tuned.write_text(yaml.safe_dump({"model": "a", "split": "d/p", "status": "ok", "params": {}}))
    with pytest.raises(RecAuditError, match="of model 'a', not 'b'"):
        load_tuned(tuned, model="b")
    with pytest.raises(RecAuditError, match="no tuned parameters at"):
        load_tuned(tmp_path / "missing.yaml")


def test_progress_bar_shows_the_best_value_only_when_asked(split_dir, capsys):
    tune(SHIFT, split_dir, settings(trials=3))
    assert capsys.readouterr().err == ""
    tune(SHIFT, split_dir, settings(trials=3), progress=True)
    err = capsys.readouterr().err
    assert "3/3" in err and "best=" in err


def test_the_study_file_alone_holds_every_trial(split_dir, tmp_path):
    """DVC caches the .db file only: the write-ahead log must be folded back in at the end."""
    tune(SHIFT, split_dir, settings(trials=3), storage=f"sqlite:///{tmp_path / 'study.db'}")
    wal = tmp_path / "study.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0
    alone = tmp_path / "copy" / "study.db"
    alone.parent.mkdir()
    alone.write_bytes((tmp_path / "study.db").read_bytes())
    with contextlib.closing(sqlite3.connect(alone)) as connection:
        assert connection.execute("SELECT count(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0] == 3


class InnerRunToy(EpochToy):
    """Names the length of an inner training run, as NeuMF's pre-training does."""

    name = "test-tuning-inner-run"

    def __init__(self, epochs: int = 10, validate_every: int = 1, patience: int | None = 2, peak: int = 4,
                 offset: int = 0, inner_epochs: int | None = None):
        super().__init__(epochs, validate_every, patience, peak, offset)
        self.inner_epochs = inner_epochs

    @property
    def frozen_params_(self) -> dict:
        return {"inner_epochs": 3 + self.offset}


def test_inner_run_lengths_of_the_winning_trial_are_frozen(split_dir, monkeypatch):
    monkeypatch.setitem(registry._MODELS, InnerRunToy.name, InnerRunToy)
    result = tune(InnerRunToy.name, split_dir, settings(trials=4, startup_trials=4))
    assert result.params["offset"] == 0 and result.params["inner_epochs"] == 3
    assert (result.params["epochs"], result.params["patience"]) == (4, None)


def write_split_with_a_validation_user_unseen_in_training(folder):
    card = {"protocol": "temporal", "params": {}, "seed": 0, "n_users": N_USERS, "n_items": N_ITEMS}
    train = {u: items for u, items in TRAIN.items() if u != 0}
    write_split(Split(train=frame(train), validation=frame(VALIDATION), test=frame(TEST), card=card), folder)
    return folder


SMALL_GMF = {"factors": 2, "epochs": 1, "batch_size": 8, "device": "cpu"}


def test_validation_users_a_model_cannot_score_make_the_study_unsupported_before_any_trial(tmp_path, monkeypatch):
    from neural.ncf import GMF
    from protocols.contract import UnsupportedProtocolError

    split_dir = write_split_with_a_validation_user_unseen_in_training(tmp_path / "splits" / "toy" / "cold")
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    fits = []
    monkeypatch.setattr(GMF, "_fit", lambda self, *args: fits.append(1))
    with pytest.raises(UnsupportedProtocolError, match=r"needs user embeddings") as refusal:
        tune("gmf", split_dir, settings(trials=4), fixed=SMALL_GMF, storage=storage)
    assert "\n" not in str(refusal.value) and "1 users of the validation part of toy/cold" in str(refusal.value)
    assert fits == []  # the declared requirements are checked before any fit
    assert all(study.n_trials == 0 for study in optuna.get_all_study_summaries(storage))  # no trial spent


def test_evaluate_records_a_refusal_found_by_tuning_without_refitting(workspace, capsys, monkeypatch):
    from neural.ncf import GMF
    from reports.leaderboard import read_entries

    write_split_with_a_validation_user_unseen_in_training(workspace / "data" / "splits" / "toy" / "cold")
    params = yaml.safe_load(PARAMS_YAML)
    params["models"]["gmf"] = SMALL_GMF
    (workspace / "params.yaml").write_text(yaml.safe_dump(params))
    assert run_tune("--split", "toy/cold", "--model", "gmf") == 0
    out = workspace / "tuned" / "toy" / "cold" / "gmf.yaml"
    assert yaml.safe_load(out.read_text())["status"] == "unsupported"
    fits = []
    monkeypatch.setattr(GMF, "_fit", lambda self, *args: fits.append(1))
    with pytest.raises(SystemExit) as exit_:
        run_cli(main, ["evaluate", "--split", "toy/cold", "--model", "gmf", "--params", str(out)])
    assert exit_.value.code == 0 and fits == []
    (entry,) = read_entries(workspace / "results")
    assert (entry.record["status"], entry.record["reason"]) == ("unsupported", "needs user embeddings")
