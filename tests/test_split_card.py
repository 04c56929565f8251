"""The split card: golden Gini and Kendall tau on a hand-made split, the checks that must fail
loudly, and hashes that match what is written."""
from __future__ import annotations

import hashlib
import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from datasets.canonical import PreparedData
from common.errors import RecAuditError
from datasets.item_data import make_feature_set, write_feature_set
from protocols.split_card import (card_sha256, gini, make_card, part_sha256, side_description, summary_line,
                                  table_sha256)
from protocols.split_data import FEATURES_DIR, PART_FILES, load_split, write_split
from protocols.splits import make_split

META = {"name": "hand", "n_users": 8, "n_items": 5, "n_interactions": 21}


def frame(pairs, timestamps=None) -> pd.DataFrame:
    out = pd.DataFrame(pairs, columns=["user", "item"]).astype("int32")
    if timestamps is not None:
        out["timestamp"] = np.asarray(timestamps, dtype=np.int64)
    return out


def hand_split() -> dict[str, pd.DataFrame]:
    """Train: item 0 by users 0-3, item 1 by 0-2, item 2 by 0-1, item 3 by 0, item 4 by 1 -> counts [4, 3, 2, 1, 1].
    Test (users 4-7): item 0 by 1 user, item 1 by 3, item 2 by 2, item 3 by 4 -> counts [1, 3, 2, 4, 0]."""
    train = [(u, 0) for u in range(4)] + [(u, 1) for u in range(3)] + [(u, 2) for u in range(2)] + [(0, 3), (1, 4)]
    test = [(4, 0)] + [(u, 1) for u in (4, 5, 6)] + [(u, 2) for u in (4, 5)] + [(u, 3) for u in (4, 5, 6, 7)]
    return {"train": frame(train), "validation": frame([(7, 0)]), "test": frame(test)}


def naive_tau_b(x, y) -> float:
    """Kendall's tau-b from its definition: (C - D) / sqrt((pairs - ties_x) (pairs - ties_y))."""
    concordant = discordant = ties_x = ties_y = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
        ties_x += dx == 0
        ties_y += dy == 0
        concordant += dx * dy > 0
        discordant += dx * dy < 0
    pairs = len(x) * (len(x) - 1) // 2
    return (concordant - discordant) / math.sqrt((pairs - ties_x) * (pairs - ties_y))


def test_gini_golden_values():
    # sorted 1, 1, 2, 4: sum (2i - n - 1) x_i = -3 - 1 + 2 + 12 = 10; / (n * sum) = 10 / 32
    assert gini([4, 1, 2, 1]) == pytest.approx(0.3125)
    assert gini([0, 4, 0, 1, 2, 1]) == pytest.approx(0.3125)  # items absent from a part do not count
    assert gini([3, 3, 3]) == pytest.approx(0.0)
    assert gini([5]) == pytest.approx(0.0)
    assert gini([0, 0]) is None
    # mean absolute difference over ordered pairs / (2 * mean), the textbook definition
    x = np.array([7, 1, 1, 3, 9, 2])
    assert gini(x) == pytest.approx(np.abs(x[:, None] - x[None, :]).sum() / (2 * len(x) ** 2 * x.mean()))


def test_card_golden_popularity_figures():
    card = make_card(hand_split(), protocol="holdout", params={"test_fraction": 0.5}, seed=3, dataset_meta=META)
    popularity = card["sanity"]["popularity"]
    # gini of [4, 3, 2, 1, 1]: sorted 1,1,2,3,4 weights -4,-2,0,2,4 -> (-4 - 2 + 0 + 6 + 16) / (5 * 11) = 16 / 55
    assert popularity["gini"]["train"] == pytest.approx(16 / 55, abs=1e-6)
    assert popularity["gini"]["test"] == pytest.approx(10 / 40, abs=1e-6)  # counts 1, 2, 3, 4
    # items in either part: 0..4; tau-b between [4, 3, 2, 1, 1] and [1, 3, 2, 4, 0]
    expected = naive_tau_b([4, 3, 2, 1, 1], [1, 3, 2, 4, 0])
    # by hand: concordant pairs (0,4) (1,2) (1,4) (2,4), discordant (0,1) (0,2) (0,3) (1,3) (2,3),
    # (3,4) tied in train only: (4 - 5) / sqrt((10 - 1) * (10 - 0))
    assert expected == pytest.approx(-1 / math.sqrt(90))
    assert popularity["kendall_tau_train_test"] == pytest.approx(expected, abs=1e-6)


def test_card_counts_and_unseen_items():
    parts = hand_split()
    parts["test"] = pd.concat([parts["test"], frame([(6, 4), (7, 4)])])
    parts["validation"] = frame([(7, 0), (5, 4)])
    card = make_card(parts, protocol="holdout", params={}, seed=0, dataset_meta=META)
    assert card["parts"]["test"] == {"rows": 12, "users": 4, "items": 5, "sha256": part_sha256(parts["test"])}
    assert card["parts"]["train"]["users"] == 4 and card["parts"]["train"]["items"] == 5
    sanity = card["sanity"]
    assert sanity["duplicate_pairs_across_parts"] == 0
    assert sanity["test_users_not_in_train"] == 4
    parts["train"] = parts["train"][parts["train"]["item"] != 4]
    sanity = make_card(parts, protocol="holdout", params={}, seed=0, dataset_meta=META)["sanity"]
    assert sanity["test_interactions_item_not_in_train"] == 2
    assert sanity["validation_interactions_item_not_in_train"] == 1
    assert sanity["test_interactions_item_not_in_train_or_validation"] == 0  # item 4 is in validation


def test_pairs_in_two_parts_fail_loudly():
    parts = hand_split()
    parts["validation"] = frame([(0, 0), (7, 0)])  # (0, 0) is also in train
    with pytest.raises(RecAuditError, match=r"pairs occur in more than one part \(train/validation: 1\)"):
        make_card(parts, protocol="holdout", params={}, seed=0, dataset_meta=META)


def test_temporal_order_is_checked():
    parts = {"train": frame([(0, 0), (1, 1)], [5, 9]), "validation": frame([(0, 1)], [7]),
             "test": frame([(1, 0)], [8])}
    card = make_card(parts, protocol="holdout", params={}, seed=0, dataset_meta=META)
    assert card["sanity"]["timestamps"] == {"max_train": 9, "min_validation": 7, "train_after_first_validation": 1,
                                            "min_test": 8, "train_after_first_test": 1, "validation_after_first_test": 0}
    with pytest.raises(RecAuditError, match="out of time order"):
        make_card(parts, protocol="temporal", params={}, seed=0, dataset_meta=META)


def test_negatives_that_are_positives_fail_for_sampled_protocols_only():
    parts = hand_split()
    parts["test_negatives"] = frame([(4, 4), (4, 0), (5, 0), (5, 0)])  # (4, 0) is a positive; (5, 0) repeats
    positives = pd.concat([parts["train"], parts["validation"], parts["test"]])
    with pytest.raises(RecAuditError, match="sampled test_negatives are not distinct never-touched items"):
        make_card(parts, protocol="leave-one-out", params={}, seed=0, dataset_meta=META, positives=positives)
    card = make_card(parts, protocol="given", params={}, seed=0, dataset_meta=META, positives=positives)
    assert card["sanity"]["negatives"]["test_negatives"] == {
        "users": 2, "min_per_user": 2, "max_per_user": 2, "repeats_within_user": 1, "that_are_positives": 1}


def test_part_hash_is_sha256_of_the_canonical_bytes():
    part = frame([(0, 2), (1, 3)])
    manual = hashlib.sha256()
    manual.update(b"user:<i4:2\n" + np.array([0, 1], "<i4").tobytes())
    manual.update(b"item:<i4:2\n" + np.array([2, 3], "<i4").tobytes())
    assert part_sha256(part) == manual.hexdigest()


def test_written_split_hashes_match_its_card(tmp_path):
    rng = np.random.default_rng(0)
    users, items = np.nonzero(rng.random((30, 40)) < 0.3)
    data = PreparedData("toy", pd.DataFrame({"user": users, "item": items, "rating": np.ones(len(users)),
                                             "timestamp": rng.integers(0, 100, len(users))}),
                        30, 40, pd.DataFrame({"user": range(30)}), pd.DataFrame({"item": range(40)}))
    split = make_split(data, "leave-one-out", 0, {"negatives": 5})
    write_split(split, tmp_path / "split")
    loaded = load_split(tmp_path / "split")
    card = json.loads((tmp_path / "split" / "card.json").read_text())
    # the written card is the computed one plus its own hash (protocols.split_card.card_sha256)
    assert card == {**split.card, "card_sha256": card_sha256(split.card)}
    assert card["n_users"] == 30 and card["n_items"] == 40
    for part in PART_FILES:
        assert part_sha256(getattr(loaded, part)) == card["parts"][part]["sha256"], part
    line = summary_line(card, "toy/loo")
    assert line.startswith("toy/loo: leave-one-out seed 0: train ") and "test_negatives 150" in line


# ----- the side section: item data carried by the split, by hash ---------------------------------
def side_data(content_seed: int = 0) -> PreparedData:
    rng = np.random.default_rng(0)
    users, items = np.nonzero(rng.random((30, 12)) < 0.4)
    content = (np.random.default_rng(content_seed).random((12, 5)) < 0.4).astype(np.float32)
    images = pd.DataFrame({"item": [4, 1], "image_path": ["img/4.jpg", "img/1.jpg"], "sha256": ["d" * 64, "c" * 64]})
    return PreparedData("toy", pd.DataFrame({"user": users, "item": items}), 30, 12, pd.DataFrame({"user": range(30)}),
                        pd.DataFrame({"item": range(12), "title": [f"t{i}" for i in range(12)]}),
                        item_features={"tags": make_feature_set("tags", sp.csr_matrix(content))}, item_images=images)


def test_a_card_without_item_data_has_an_empty_side_section():
    card = make_card(hand_split(), protocol="holdout", params={}, seed=0, dataset_meta=META)
    assert card["side"] == {"items_sha256": None, "images": None, "feature_sets": {}}


def test_the_side_section_hashes_the_item_table_the_images_and_each_feature_set():
    data = side_data()
    split = make_split(data, "holdout", 0, {"test_fraction": 0.2})
    side = split.card["side"]
    assert side["feature_sets"] == {"tags": data.item_features["tags"].sha256}
    assert side["items_sha256"] == table_sha256(data.items)
    # the manifest: item<TAB>path<TAB>sha256 per item with an image, in item order
    manual = hashlib.sha256(f"1\timg/1.jpg\t{'c' * 64}\n4\timg/4.jpg\t{'d' * 64}\n".encode()).hexdigest()
    assert side["images"] == {"manifest_sha256": manual, "items_with_image": 2}
    assert side == side_description(data.items, data.item_images, data.item_features)
    other = make_split(side_data(content_seed=1), "holdout", 0, {"test_fraction": 0.2})
    assert other.card["parts"] == split.card["parts"] and other.card["side"]["feature_sets"] != side["feature_sets"]


def test_a_carried_feature_set_is_checked_against_the_card(tmp_path):
    split = make_split(side_data(), "holdout", 0, {"test_fraction": 0.2})
    write_split(split, tmp_path / "split")
    loaded = load_split(tmp_path / "split")
    assert loaded.item_features["tags"].sha256 == split.card["side"]["feature_sets"]["tags"]
    assert list(loaded.items.columns) == ["item", "title"] and loaded.item_images is not None
    # a feature set rewritten in place (consistent with its own meta.json) no longer matches the card
    other = side_data(content_seed=1).item_features["tags"]
    write_feature_set(other, tmp_path / "split" / FEATURES_DIR / "tags")
    with pytest.raises(RecAuditError, match="feature set tags of the split .* does not match the split card"):
        load_split(tmp_path / "split")
