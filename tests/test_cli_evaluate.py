"""``python -m protocols evaluate`` end to end on a hand-built split, and ``models``."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from datasets.errors import RecAuditError, run_cli
from protocols import registry
from protocols.__main__ import main
from protocols.cli_evaluate import build_model
from protocols.contract import Recommender
from protocols.split_data import Split, load_split, write_split

# Training + validation (the final fit matrix) of 4 users over 6 items:
#   u0 {0,1}  u1 {0,1,2}  u2 {0,2}  u3 {0,1,3}
# so popularity is item0 4, item1 3, item2 2, item3 1, items 4 and 5 zero.
TRAIN = {0: [0], 1: [0, 1, 2], 2: [0], 3: [0, 1]}
VALIDATION = {0: [1], 2: [2], 3: [3]}
# Ranked by popularity after removing each user's history:
#   u0 -> 2, 3, ...   its test item 3 is at rank 2
#   u1 -> 3, ...      rank 1
#   u2 -> 1, 3, ...   rank 2
#   u3 -> 2, ...      rank 1
TEST = {0: [3], 1: [3], 2: [3], 3: [2]}
POP_NDCG_AT_10 = (1 + 1 + 2 / math.log2(3)) / 4
POP_RECALL_AT_1 = (0 + 1 + 0 + 1) / 4


def frame(rows: dict[int, list[int]]) -> pd.DataFrame:
    pairs = [(u, i) for u, items in rows.items() for i in items]
    return pd.DataFrame(pairs, columns=["user", "item"])


def toy_split(protocol: str = "holdout") -> Split:
    card = {"protocol": protocol, "params": {}, "seed": 0, "n_users": 4, "n_items": 6}
    return Split(train=frame(TRAIN), validation=frame(VALIDATION), test=frame(TEST), card=card)


@pytest.fixture
def workspace(tmp_path):
    write_split(toy_split(), tmp_path / "splits" / "toy" / "holdout")
    params = tmp_path / "params.yaml"
    params.write_text("seed: 42\nmodels:\n  pop: {}\n  random: {}\n"
                      "evaluation:\n  cutoffs: [1, 10]\n  metrics: [ndcg, recall, hr]\n  batch_size: 3\n")
    return tmp_path


def run_evaluate(workspace, *extra: str) -> int:
    argv = ["evaluate", "--params-yaml", str(workspace / "params.yaml"),
            "--splits-root", str(workspace / "splits"), "--results-root", str(workspace / "results"),
            *extra]
    with pytest.raises(SystemExit) as exit_:
        run_cli(main, argv)
    return exit_.value.code


def read_metrics(workspace, model, split="toy/holdout") -> dict:
    return json.loads((workspace / "results" / split / model / "metrics.json").read_text())


def test_pop_on_hand_built_split(workspace, capsys):
    assert run_evaluate(workspace, "--split", "toy/holdout", "--model", "pop") == 0
    record = read_metrics(workspace, "pop")
    expected_keys = {"dataset", "protocol", "model", "family", "params", "seed", "seeds", "sampled",
                     "metric_version", "metrics", "metrics_std", "tuning", "n_users", "fit_seconds",
                     "eval_seconds", "peak_rss_mb", "status"}
    assert expected_keys <= set(record)
    assert (record["dataset"], record["protocol"], record["model"], record["status"]) == \
        ("toy", "holdout", "pop", "ok")
    assert record["seed"] is None and record["sampled"] is False and record["n_users"] == 4
    assert (record["family"], record["seeds"], record["metrics_std"], record["tuning"]) == \
        ("baseline", [None], None, None)
    assert record["metrics"]["ndcg@10"] == pytest.approx(POP_NDCG_AT_10, abs=1e-12)
    assert record["metrics"]["recall@1"] == pytest.approx(POP_RECALL_AT_1, abs=1e-12)
    assert record["metrics"]["hr@10"] == 1.0
    per_user = pd.read_parquet(workspace / "results" / "toy" / "holdout" / "pop" / "per_user.parquet")
    assert sorted(per_user["user"]) == [0, 1, 2, 3]
    assert per_user["ndcg@10"].mean() == pytest.approx(POP_NDCG_AT_10)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "pop on toy/holdout: ndcg@10 = 0.8155" in out


def test_random_takes_the_seed_and_is_reproducible(workspace):
    assert run_evaluate(workspace, "--dataset", "toy", "--protocol", "holdout", "--model", "random") == 0
    first = read_metrics(workspace, "random")
    assert first["seed"] == 42 and first["params"] == {"seed": 42}
    assert run_evaluate(workspace, "--split", "toy/holdout", "--model", "random") == 0
    assert read_metrics(workspace, "random")["metrics"] == first["metrics"]
    assert run_evaluate(workspace, "--split", "toy/holdout", "--model", "random", "--seed", "7") == 0
    assert read_metrics(workspace, "random")["seed"] == 7


class NeedsUserEmbeddings(Recommender):
    folds_in_users = False

    def __init__(self):
        pass

    def _fit(self, train, validation, side):
        self.counts_ = np.asarray(train.sum(axis=0)).ravel()

    def _score(self, users, history):
        return np.tile(self.counts_, (len(users), 1))


@pytest.fixture
def embedding_model(monkeypatch):
    name = "test-needs-user-embeddings"
    registry.registered_models()  # load the packages first, so the patch is undone cleanly
    monkeypatch.setattr(NeedsUserEmbeddings, "name", name)
    monkeypatch.setitem(registry._MODELS, name, NeedsUserEmbeddings)
    return name


def test_unsupported_protocol_writes_a_result_and_exits_0(workspace, embedding_model, capsys):
    write_split(toy_split("strong"), workspace / "splits" / "toy" / "strong")
    assert run_evaluate(workspace, "--split", "toy/strong", "--model", embedding_model) == 0
    record = read_metrics(workspace, embedding_model, "toy/strong")
    assert record["status"] == "unsupported" and record["reason"] == "needs user embeddings"
    assert record["metrics"] == {} and embedding_model in record["detail"]
    per_user = pd.read_parquet(workspace / "results" / "toy" / "strong" / embedding_model / "per_user.parquet")
    assert len(per_user) == 0
    assert "unsupported (needs user embeddings)" in capsys.readouterr().out


def test_unseen_test_user_under_weak_protocol_is_unsupported(workspace, embedding_model):
    split = toy_split()
    split.test = pd.concat([split.test, pd.DataFrame({"user": [4], "item": [5]})], ignore_index=True)
    split.card = dict(split.card, n_users=5)
    write_split(split, workspace / "splits" / "toy" / "unseen")
    assert run_evaluate(workspace, "--split", "toy/unseen", "--model", embedding_model) == 0
    assert read_metrics(workspace, embedding_model, "toy/unseen")["status"] == "unsupported"


@pytest.mark.parametrize("extra, fragment", [
    (["--split", "toy/holdout", "--model", "popular"], "unknown model 'popular'; known models: "),
    (["--split", "toy/leave-one-out", "--model", "pop"], "built splits: toy/holdout"),
    (["--split", "toy", "--model", "pop"], "must look like DATASET/NAME"),
    (["--dataset", "toy", "--model", "pop"], "--dataset needs --protocol"),
])
def test_bad_input_is_a_one_line_error(workspace, capsys, extra, fragment):
    assert run_evaluate(workspace, *extra) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1 and fragment in error
    if "unknown model" in fragment:
        assert "pop" in error and "random" in error
    assert not (workspace / "results").exists()


def test_wrong_parameter_name_is_a_one_line_error(workspace, capsys):
    (workspace / "params.yaml").write_text("models:\n  random: {seeds: 3}\n")
    assert run_evaluate(workspace, "--split", "toy/holdout", "--model", "random") == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "no parameter(s) 'seeds'" in error and "seed" in error


def test_seed_precedence(tmp_path):
    settings = {"seed": 42, "models": {"random": {"seed": 3}, "pop": {}}}
    assert build_model("random", settings, None, None).seed == 3
    assert build_model("random", settings, None, 9).seed == 9
    assert build_model("random", {"seed": 42}, None, None).seed == 42
    params_file = tmp_path / "tuned.json"
    params_file.write_text('{"seed": 5}')
    assert build_model("random", settings, params_file, None).seed == 5
    assert build_model("pop", settings, None, 9).get_params() == {}
    params_file.write_text("[1, 2]")
    with pytest.raises(RecAuditError, match="must hold a mapping"):
        build_model("random", settings, params_file, None)


def test_side_information_travels_with_the_split_folder(tmp_path):
    content = sp.csr_matrix(np.eye(6, 3, dtype=np.float32))
    split = toy_split()
    split.item_content = content
    split.item_images = pd.DataFrame({"item": [2, 4], "image_path": ["img/2.jpg", None]})
    write_split(split, tmp_path / "toy")
    side = load_split(tmp_path / "toy").side_information()
    assert (side.item_content != content).nnz == 0
    assert side.item_images == [None, None, "img/2.jpg", None, None, None]
    write_split(toy_split(), tmp_path / "plain")
    assert load_split(tmp_path / "plain").side_information() is None


def test_models_command_lists_every_model_with_its_space(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split("|")[1].strip() == "model"
    for name, cls in registry.registered_models().items():
        row = next(line for line in lines if line.split("|")[1].strip() == name)
        assert cls.family in row
        for parameter, dimension in cls.search_space.items():
            assert f"{parameter}: {dimension}" in row
