"""``python -m protocols evaluate`` end to end on a hand-built split, and ``models``."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from common.errors import RecAuditError, run_cli
from protocols import registry
from protocols.__main__ import main
from datasets.item_data import make_feature_set
from protocols.contract import Recommender
from protocols.registry import make_model
from protocols.runner import model_entry, model_params, training_inputs
from protocols.split_card import side_description
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


def build_model(label: str, settings: dict, params_file, seed):
    """What ``evaluate`` builds for ``--model label`` (params.yaml ``settings``, ``--params``, ``--seed``)."""
    entry = model_entry(settings, label)
    params, _ = model_params(entry, settings, params_file, seed)
    return make_model(entry.model, params)


def run_evaluate(workspace, *extra: str) -> int:
    # Item data only from the workspace (never the repository's data/features or data/raw); a
    # later --features-root in ``extra`` wins.
    argv = ["evaluate", "--params-yaml", str(workspace / "params.yaml"),
            "--splits-root", str(workspace / "splits"), "--results-root", str(workspace / "results"),
            "--features-root", str(workspace / "features"), "--raw-root", str(workspace / "raw"), *extra]
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
                     "eval_seconds", "peak_rss_mb", "status", "model_class"}
    assert expected_keys <= set(record)
    assert (record["dataset"], record["protocol"], record["model"], record["model_class"], record["status"]) == \
        ("toy", "holdout", "pop", "pop", "ok")
    assert "features" not in record  # only content models record the feature set they read
    assert record["threads"] == 1  # RECAUDIT_THREADS unset in the test environment
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

    def _fit(self, data):
        self.counts_ = np.asarray(data.interactions.sum(axis=0)).ravel()

    def _score(self, users, history):
        return np.tile(self.counts_, (len(users), 1))


@pytest.fixture
def embedding_model(monkeypatch):
    name = "test-needs-user-embeddings"
    registry.registered_models()  # load the packages first, so the patch is undone cleanly
    monkeypatch.setattr(NeedsUserEmbeddings, "name", name)
    monkeypatch.setitem(registry._MODELS, name, NeedsUserEmbeddings)
    return name


def strong_toy_split() -> Split:
    """Strong generalisation: users 0-3 train, user 4 is a validation user, user 5 a test user
    known only through its fold-in history (no training row, so no embedding)."""
    card = {"protocol": "strong", "params": {}, "seed": 0, "n_users": 6, "n_items": 6}
    return Split(train=frame(TRAIN), validation=frame({4: [1]}), test=frame({5: [2]}),
                 validation_input=frame({4: [0]}), test_input=frame({5: [0, 1]}), card=card)


def test_unsupported_protocol_writes_a_result_and_exits_0(workspace, embedding_model, capsys):
    write_split(strong_toy_split(), workspace / "splits" / "toy" / "strong")
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


def test_model_entry_resolves_labels_with_a_model_and_fixed_keywords():
    settings = {"models": {"pop": {}, "knn-small": {"model": "itemknn", "topk": 5, "shrink": 0.0},
                           "random": {"seed": 3}}}
    entry = model_entry(settings, "knn-small")
    assert (entry.label, entry.model, entry.fixed) == ("knn-small", "itemknn", {"topk": 5, "shrink": 0.0})
    assert model_entry(settings, "random") == type(entry)("random", "random", {"seed": 3})
    assert model_entry(settings, "pop").fixed == {}
    # A registered model that params.yaml does not list runs with its defaults.
    assert model_entry(settings, "ease") == type(entry)("ease", "ease", {})
    assert make_model(entry.model, entry.fixed).get_params()["topk"] == 5
    assert settings["models"]["knn-small"]["model"] == "itemknn"  # the entry is not consumed


@pytest.mark.parametrize("models, label, fragment", [
    ({"pop": {}}, "popular", "unknown model 'popular'; known models: "),
    ({"mine": {"model": "no-such-model", "topk": 5}}, "mine", "unknown model 'no-such-model'; known models: "),
    ({"mine": {"model": 3}}, "mine", "must name a registered model"),
    ({"mine": [1, 2]}, "mine", "must be a mapping"),
])
def test_model_entry_refuses_unknown_models_in_one_line(models, label, fragment):
    with pytest.raises(RecAuditError) as error:
        model_entry({"models": models}, label)
    message = str(error.value)
    assert fragment in message and "\n" not in message


def test_a_label_runs_its_registered_model_under_its_own_name(workspace):
    (workspace / "params.yaml").write_text("seed: 42\nmodels:\n  popular-items: {model: pop}\n"
                                           "  knn-small: {model: itemknn, topk: 2}\n"
                                           "evaluation:\n  cutoffs: [10]\n  metrics: [ndcg]\n")
    assert run_evaluate(workspace, "--split", "toy/holdout", "--model", "popular-items") == 0
    record = read_metrics(workspace, "popular-items")
    assert (record["model"], record["model_class"], record["status"]) == ("popular-items", "pop", "ok")
    assert record["metrics"]["ndcg@10"] == pytest.approx(POP_NDCG_AT_10, abs=1e-12)
    assert run_evaluate(workspace, "--split", "toy/holdout", "--model", "knn-small") == 0
    record = read_metrics(workspace, "knn-small")
    assert (record["model"], record["model_class"], record["params"]["topk"]) == ("knn-small", "itemknn", 2)
    assert not (workspace / "results" / "toy" / "holdout" / "pop").exists()


def test_side_information_travels_with_the_split_folder(tmp_path):
    tags = make_feature_set("tags", sp.csr_matrix(np.eye(6, 3, dtype=np.float32)))
    images = pd.DataFrame({"item": [2, 4], "image_path": ["img/2.jpg", None], "sha256": ["ab" * 32, None]})
    split = toy_split()
    split.item_features = {"tags": tags}
    split.item_images = images
    split.card = dict(split.card, side=side_description(None, images, split.item_features))
    write_split(split, tmp_path / "toy")
    loaded = load_split(tmp_path / "toy")
    assert set(loaded.item_features) == {"tags"} and loaded.item_features["tags"].sha256 == tags.sha256
    assert (loaded.item_features["tags"].csr() != tags.csr()).nnz == 0
    data, _ = training_inputs(loaded, "final", "ndcg@10", features_root=None, raw_root=tmp_path / "raw")
    assert data.features("tags").sha256 == tags.sha256
    assert data.images.paths == (None, None, "img/2.jpg", None, None, None)
    assert data.images.root == tmp_path / "raw" / ""  # the dataset's raw folder (no dataset in this card)
    write_split(toy_split(), tmp_path / "plain")
    plain, _ = training_inputs(load_split(tmp_path / "plain"), "final", "ndcg@10", features_root=None,
                               raw_root=tmp_path / "raw")
    assert plain.item_features == {} and plain.images is None


def test_content_models_record_the_feature_set_they_read(workspace):
    """A split carrying ``tags``, plus an extracted set under --features-root; labels choose the set."""
    from datasets.item_data import write_feature_set

    tags = make_feature_set("tags", sp.csr_matrix(np.eye(6, 3, dtype=np.float32)))
    split = toy_split()
    split.item_features = {"tags": tags}
    split.card = dict(split.card, dataset="toy", side=side_description(None, None, split.item_features))
    write_split(split, workspace / "splits" / "toy" / "holdout")
    poster = make_feature_set("posters@0123456789ab", np.arange(18, dtype=np.float32).reshape(6, 3) + 1)
    write_feature_set(poster, workspace / "features" / "toy" / "posters")
    (workspace / "params.yaml").write_text("seed: 42\nmodels:\n  cbf-posters: {model: itemknn-cbf, features: posters}\n"
                                           "  cbf-genres: {model: itemknn-cbf, features: genres}\n"
                                           "evaluation:\n  cutoffs: [10]\n  metrics: [ndcg]\n")
    extra = ("--features-root", str(workspace / "features"))
    assert run_evaluate(workspace, "--split", "toy/holdout", "--model", "itemknn-cbf", *extra) == 0
    record = read_metrics(workspace, "itemknn-cbf")
    assert (record["status"], record["model_class"], record["features"]) == ("ok", "itemknn-cbf", "tags")
    assert run_evaluate(workspace, "--split", "toy/holdout", "--model", "cbf-posters", *extra) == 0
    record = read_metrics(workspace, "cbf-posters")
    assert (record["status"], record["model_class"], record["features"]) == ("ok", "itemknn-cbf", poster.key)
    assert record["params"]["features"] == "posters"
    assert run_evaluate(workspace, "--split", "toy/holdout", "--model", "cbf-genres", *extra) == 0
    record = read_metrics(workspace, "cbf-genres")
    assert (record["status"], record["reason"]) == ("unsupported", "needs item features genres")
    assert "available feature sets: posters, tags" in record["detail"]


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
