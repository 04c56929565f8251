"""``python -m protocols evaluate`` with tuned files and repeated seeds, on the hand-built split
of ``test_cli_evaluate``: every aggregate checked against values worked out by hand."""
from __future__ import annotations

import json
import math
import statistics

import numpy as np
import pandas as pd
import pytest
import yaml

from protocols import registry
from protocols.contract import Recommender
from protocols.results import find_result_files, read_per_user, seed_result_files
from tests.test_cli_evaluate import read_metrics, run_evaluate, workspace  # noqa: F401  (fixture)

LOG2_3 = math.log2(3)


class CyclicOrder(Recommender):
    """Ranks items ``s, s+1, ... (mod n_items)`` for seed ``s``, the same for every user.

    On the hand-built split (histories u0 {0,1}, u1 {0,1,2}, u2 {0,2}, u3 {0,1,3}; test items
    u0 3, u1 3, u2 3, u3 2), the test item's rank after removing the history is
    seed 42 (starts at 0): u0 2, u1 1, u2 2, u3 1;  seed 43 (starts at 1): the same;
    seed 44 (starts at 2): u0 2, u1 1, u2 1, u3 1.
    """

    family = "neural"

    def __init__(self, seed: int = 0):
        self.seed = seed

    def _fit(self, data):
        self.start_ = self.seed % self.n_items_

    def _score(self, users, history):
        order = (np.arange(self.n_items_) - self.start_) % self.n_items_
        return np.tile(-order.astype(np.float32), (len(users), 1))


RECALL_AT_1 = {42: 0.5, 43: 0.5, 44: 0.75}
NDCG_AT_10 = {42: (2 + 2 / LOG2_3) / 4, 43: (2 + 2 / LOG2_3) / 4, 44: (3 + 1 / LOG2_3) / 4}
PER_USER_NDCG_AT_10 = {0: 1 / LOG2_3, 1: 1.0, 2: (2 / LOG2_3 + 1) / 3, 3: 1.0}


@pytest.fixture
def cyclic_model(monkeypatch):
    name = "test-cyclic-order"
    registry.registered_models()  # load the packages first, so the patch is undone cleanly
    monkeypatch.setattr(CyclicOrder, "name", name)
    monkeypatch.setitem(registry._MODELS, name, CyclicOrder)
    return name


def set_seeds(workspace, n_seeds) -> None:
    params = workspace / "params.yaml"
    settings = yaml.safe_load(params.read_text())
    settings["evaluation"]["seeds"] = n_seeds
    params.write_text(yaml.safe_dump(settings))


def test_stochastic_model_runs_once_per_seed_and_is_averaged(workspace, cyclic_model, capsys):
    set_seeds(workspace, 3)
    assert run_evaluate(workspace, "--split", "toy/holdout", "--model", cyclic_model) == 0
    folder = workspace / "results" / "toy" / "holdout" / cyclic_model
    seed_files = seed_result_files(folder)
    assert [path.parent.name for path in seed_files] == ["42", "43", "44"]
    for path in seed_files:
        seed = int(path.parent.name)
        record = json.loads(path.read_text())
        assert (record["seed"], record["seeds"], record["params"]) == (seed, [seed], {"seed": seed})
        assert record["metrics"]["recall@1"] == pytest.approx(RECALL_AT_1[seed], abs=1e-12)
        assert record["metrics"]["ndcg@10"] == pytest.approx(NDCG_AT_10[seed], abs=1e-12)
        assert record["metrics_std"] is None and record["family"] == "neural"
        assert read_per_user(path.parent)["ndcg@10"].mean() == pytest.approx(NDCG_AT_10[seed])

    record = read_metrics(workspace, cyclic_model)
    assert (record["seed"], record["seeds"], record["params"]) == (42, [42, 43, 44], {"seed": 42})
    assert record["family"] == "neural" and record["tuning"] is None and record["status"] == "ok"
    # by hand: recall@1 mean 7/12, deviations -1/12, -1/12, 2/12 -> sd sqrt(6/144 / 2) = sqrt(3)/12
    assert record["metrics"]["recall@1"] == pytest.approx(7 / 12, abs=1e-12)
    assert record["metrics_std"]["recall@1"] == pytest.approx(math.sqrt(3) / 12, abs=1e-12)
    assert record["metrics"]["ndcg@10"] == pytest.approx(statistics.mean(NDCG_AT_10.values()), abs=1e-12)
    assert record["metrics_std"]["ndcg@10"] == pytest.approx(statistics.stdev(NDCG_AT_10.values()), abs=1e-12)
    assert record["n_users"] == 4 and record["metric_version"] == "1"
    per_user = read_per_user(folder)
    assert per_user["user"].tolist() == [0, 1, 2, 3]
    assert per_user["ndcg@10"].tolist() == pytest.approx([PER_USER_NDCG_AT_10[u] for u in range(4)], abs=1e-12)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 4
    assert out[-1].startswith(f"{cyclic_model} on toy/holdout: ndcg@10 = 0.8462 (mean of 3 seeds, sd 0.0533)")
    # the leaderboard's view: one result, not four
    assert find_result_files(workspace / "results") == [folder / "metrics.json"]


def test_fewer_seeds_on_a_rerun_leave_no_stale_seed(workspace, cyclic_model):
    set_seeds(workspace, 3)
    assert run_evaluate(workspace, "--split", "toy/holdout", "--model", cyclic_model) == 0
    set_seeds(workspace, 1)
    assert run_evaluate(workspace, "--split", "toy/holdout", "--model", cyclic_model, "--seed", "44") == 0
    folder = workspace / "results" / "toy" / "holdout" / cyclic_model
    assert [path.parent.name for path in seed_result_files(folder)] == ["44"]
    record = read_metrics(workspace, cyclic_model)
    assert record["seeds"] == [44] and record["metrics_std"] is None
    assert record["metrics"]["recall@1"] == pytest.approx(0.75, abs=1e-12)
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_deterministic_model_runs_once_whatever_the_seeds(workspace):
    set_seeds(workspace, 3)
    assert run_evaluate(workspace, "--split", "toy/holdout", "--model", "pop") == 0
    record = read_metrics(workspace, "pop")
    assert (record["seeds"], record["seed"], record["metrics_std"]) == ([None], None, None)
    assert (record["family"], record["tuning"]) == ("baseline", None)
    folder = workspace / "results" / "toy" / "holdout" / "pop"
    assert (folder / "seeds").is_dir() and not any((folder / "seeds").iterdir())


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "3"])
def test_bad_seed_count_is_a_one_line_error(workspace, capsys, value):
    set_seeds(workspace, value)
    assert run_evaluate(workspace, "--split", "toy/holdout", "--model", "pop") == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "evaluation.seeds must be a positive integer" in error


def tuned_file(workspace, model_name, model_params, **overrides):
    model, params = model_name, model_params
    record = {"model": model, "split": "toy/holdout", "status": "ok", "params": params,
              "validation_metric": "ndcg@10", "best_value": 0.61, "trials_run": 17, "trials_budget": 20,
              "budget": "fixed", "study_name": f"toy/holdout/{model}", "storage": "sqlite:///x.db",
              "seed": 42, "seconds": 3.5}
    record.update(overrides)
    path = workspace / "tuned" / f"{model_name}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(record, sort_keys=False))
    return path


def test_tuned_file_gives_params_and_tuning_record(workspace, cyclic_model):
    path = tuned_file(workspace, cyclic_model, {"seed": 44})
    assert run_evaluate(workspace, "--split", "toy/holdout", "--model", cyclic_model, "--params", str(path)) == 0
    record = read_metrics(workspace, cyclic_model)
    assert record["params"] == {"seed": 44} and record["seeds"] == [44]
    assert record["metrics"]["recall@1"] == pytest.approx(0.75, abs=1e-12)
    assert record["tuning"] == {"status": "ok", "trials_run": 17, "trials_budget": 20, "budget": "fixed",
                                "validation_metric": "ndcg@10", "best_value": 0.61}


def test_tuned_file_of_a_deterministic_model_ignores_the_study_seed(workspace):
    path = tuned_file(workspace, "pop", {}, trials_run=0, trials_budget=0, best_value=None)
    assert run_evaluate(workspace, "--split", "toy/holdout", "--model", "pop", "--params", str(path)) == 0
    record = read_metrics(workspace, "pop")
    assert record["params"] == {} and record["tuning"]["trials_run"] == 0 and record["tuning"]["best_value"] is None


def test_tuned_file_without_seed_in_params_uses_the_study_seed(workspace, cyclic_model):
    path = tuned_file(workspace, cyclic_model, {}, seed=43)
    assert run_evaluate(workspace, "--split", "toy/holdout", "--model", cyclic_model, "--params", str(path)) == 0
    assert read_metrics(workspace, cyclic_model)["seeds"] == [43]


def test_plain_params_file_records_no_tuning(workspace):
    path = workspace / "plain.yaml"
    path.write_text("seed: 5\n")
    assert run_evaluate(workspace, "--split", "toy/holdout", "--model", "random", "--params", str(path)) == 0
    record = read_metrics(workspace, "random")
    assert record["params"] == {"seed": 5} and record["tuning"] is None


@pytest.mark.parametrize("overrides, fragment", [
    ({"model": "random"}, "holds tuned parameters of model 'random', not 'pop'"),
    ({"params": [1, 2]}, "'params' must be a mapping"),
    ({"trials_run": -1}, "trials_run must be a non-negative integer"),
])
def test_wrong_tuned_file_is_a_one_line_error(workspace, capsys, overrides, fragment):
    path = tuned_file(workspace, "pop", {}, **overrides)
    assert run_evaluate(workspace, "--split", "toy/holdout", "--model", "pop", "--params", str(path)) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and fragment in error
    assert not (workspace / "results").exists()


def test_unsupported_stochastic_model_writes_one_refusal(workspace, cyclic_model, monkeypatch):
    monkeypatch.setattr(CyclicOrder, "folds_in_users", False)
    from protocols.split_data import write_split
    from tests.test_cli_evaluate import strong_toy_split
    write_split(strong_toy_split(), workspace / "splits" / "toy" / "strong")
    set_seeds(workspace, 3)
    assert run_evaluate(workspace, "--split", "toy/strong", "--model", cyclic_model) == 0
    record = read_metrics(workspace, cyclic_model, "toy/strong")
    assert record["status"] == "unsupported" and record["seeds"] == [] and record["family"] == "neural"
    folder = workspace / "results" / "toy" / "strong" / cyclic_model
    assert seed_result_files(folder) == [] and len(pd.read_parquet(folder / "per_user.parquet")) == 0
