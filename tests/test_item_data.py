"""Item data as a first-class input: feature sets, their hashes, and how splits and studies see them."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from datasets.canonical import PreparedData
from common.errors import RecAuditError
from datasets.item_data import (TrainingData, feature_set_sha256, make_feature_set, read_feature_set,
                                write_feature_set)
from protocols.split_data import load_split, write_split
from protocols.splits import make_split
from protocols.tuning import TuningSettings, search_plan, study_fingerprint


def test_feature_set_round_trip_dense_and_sparse(tmp_path):
    rng = np.random.default_rng(0)
    dense = make_feature_set("posters@abcdef012345", rng.random((6, 4)), present=[1, 1, 0, 1, 1, 1])
    sparse = make_feature_set("tags", sp.random(6, 9, density=0.3, random_state=1, dtype=np.float32))
    for features in (dense, sparse):
        back = read_feature_set(write_feature_set(features, tmp_path / features.name))
        assert back.key == features.key and back.sha256 == features.sha256
        np.testing.assert_array_equal(back.dense(), features.dense())
        np.testing.assert_array_equal(back.present, features.present)
    # An absent item's row is zeroed, whatever the values said.
    assert not dense.dense()[2].any() and dense.name == "posters" and dense.coverage == pytest.approx(5 / 6)
    # Without a mask, an item is present when its row has content.
    assert list(make_feature_set("g", np.array([[0, 1], [0, 0]])).present) == [True, False]


def test_the_hash_changes_with_values_and_mask_and_tampering_is_refused(tmp_path):
    values = np.arange(12, dtype=np.float32).reshape(4, 3)
    present = np.ones(4, bool)
    base = feature_set_sha256(values, present)
    changed = values.copy()
    changed[1, 2] += 1e-3
    assert feature_set_sha256(changed, present) != base
    assert feature_set_sha256(values, np.array([1, 1, 1, 0], bool)) != base
    assert feature_set_sha256(sp.csr_matrix(values), present) != base  # dense and sparse forms are told apart
    folder = write_feature_set(make_feature_set("x", values, present), tmp_path / "x")
    np.save(folder / "values.npy", changed)
    with pytest.raises(RecAuditError, match="does not match its meta.json"):
        read_feature_set(folder)


def test_bad_keys_and_non_finite_values_are_refused():
    for key in ("", "a/b", "a b", "a@", "a@b@c"):
        with pytest.raises(RecAuditError, match="invalid feature set key"):
            make_feature_set(key, np.zeros((2, 2)))
    with pytest.raises(RecAuditError, match="non-finite"):
        make_feature_set("x", np.array([[np.nan, 1.0]]))


def test_training_data_resolves_a_set_by_name_or_key():
    tags = make_feature_set("tags", sp.eye(3, format="csr"))
    posters = make_feature_set("efficientnet-lite0@0123456789ab", np.eye(3))
    data = TrainingData(sp.csr_matrix((2, 3)), item_features={tags.key: tags, posters.key: posters})
    assert data.features("efficientnet-lite0") is posters and data.features(posters.key) is posters
    assert data.feature_names() == ["efficientnet-lite0", "tags"]
    with pytest.raises(RecAuditError, match="no item feature set 'genres'.*available: efficientnet"):
        data.features("genres")


def _prepared(content: np.ndarray) -> PreparedData:
    rng = np.random.default_rng(3)
    pairs = {(u, i) for u, i in zip(rng.integers(0, 30, 400), rng.integers(0, 12, 400))}
    users, items = map(np.array, zip(*sorted(pairs)))
    data = PreparedData(name="toy", interactions=pd.DataFrame({"user": users, "item": items}),
                        n_users=30, n_items=12, users=pd.DataFrame({"user": np.arange(30)}),
                        items=pd.DataFrame({"item": np.arange(12), "original_id": np.arange(12).astype(str),
                                            "title": [f"t{i}" for i in range(12)]}))
    data.item_features = {"genres": make_feature_set("genres", sp.csr_matrix(content))}
    return data


def test_two_splits_differing_only_in_item_content_get_different_cards_and_studies(tmp_path):
    content = (np.arange(12 * 5).reshape(12, 5) % 3 == 0).astype(np.float32)
    other = content.copy()
    other[4] = 1 - other[4]
    first = make_split(_prepared(content), "holdout", 7)
    second = make_split(_prepared(other), "holdout", 7)
    for part in ("train", "validation", "test"):
        pd.testing.assert_frame_equal(getattr(first, part), getattr(second, part))
    assert first.card["parts"] == second.card["parts"]
    assert first.card["side"]["feature_sets"]["genres"] != second.card["side"]["feature_sets"]["genres"]
    assert first.card != second.card
    settings = TuningSettings(trials=2, startup_trials=1, seed=7)
    plan = search_plan("itemknn-cbf", {}, 7)
    assert study_fingerprint(plan, settings, first.card) != study_fingerprint(plan, settings, second.card)
    # The split carries the content and reloads it, checked against the card.
    write_split(first, tmp_path / "split")
    loaded = load_split(tmp_path / "split")
    assert loaded.item_features["genres"].sha256 == first.item_features["genres"].sha256
    assert "tmp" not in json.dumps(loaded.card)  # no machine path in the card


def test_a_split_whose_carried_features_disagree_with_its_card_is_refused(tmp_path):
    content = np.eye(12, 4, dtype=np.float32)
    split = make_split(_prepared(content), "holdout", 1)
    write_split(split, tmp_path / "split")
    card = json.loads((tmp_path / "split" / "card.json").read_text())
    card["side"]["feature_sets"]["genres"] = "0" * 64
    (tmp_path / "split" / "card.json").write_text(json.dumps(card))
    with pytest.raises(RecAuditError, match="does not match the split card"):
        load_split(tmp_path / "split")
