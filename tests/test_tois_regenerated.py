"""The splits the TOIS study regenerated from the papers' rating files (DMF's Amazon Digital
Music, NeuRec's FilmTrust): each rule against a naive reading of the study's code, on random
small data and on the real files."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.errors import RecAuditError
from datasets.parsers import PARSERS
from datasets.prepare import build_prepared
from datasets.registry import get_dataset
from mirror_raw import link_raw
from protocols.params import load_params
from protocols.splits import make_split
from test_splits import make_data, random_data

PROPERTY = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DMF_RULE = {"order": "latest", "ties": "lower-item", "validation_order": "random", "negatives": 99,
            "shared_negatives": True}


def pairs(frame: pd.DataFrame) -> set[tuple[int, int]]:
    return set(zip(frame["user"].tolist(), frame["item"].tolist()))


def study_dmf_test_items(frame: pd.DataFrame) -> dict[int, int]:
    """``split_data_on_timestamp`` read naively: per user with 3 or more items, the items in
    increasing id order (a CSR row) and ``np.argmax`` of their timestamps (first maximum)."""
    chosen = {}
    for user, rows in frame.groupby("user"):
        if len(rows) < 3:
            continue
        rows = rows.sort_values("item")
        chosen[user] = int(rows["item"].to_numpy()[int(np.argmax(rows["timestamp"].to_numpy()))])
    return chosen


# ----- DMF: leave-one-out with the study's options ----------------------------------------
@PROPERTY
@given(seed=st.integers(0, 2**31 - 1), data_seed=st.integers(0, 10**6), ts_range=st.sampled_from([1, 3, 10**6]))
def test_dmf_rule_matches_the_studys_code(seed, data_seed, ts_range):
    data = random_data(data_seed, 12, 30, 0.4, ts_range=ts_range)
    rule = dict(DMF_RULE, negatives=3)
    try:
        split = make_split(data, "leave-one-out", seed, rule)
    except RecAuditError as error:
        assert "no user" in str(error)
        return
    expected_test = study_dmf_test_items(data.interactions)
    assert dict(zip(split.test["user"], split.test["item"])) == expected_test
    validation = dict(zip(split.validation["user"], split.validation["item"]))
    assert set(validation) == set(expected_test)
    everything = pairs(data.interactions)
    for user, item in validation.items():  # one of the user's items, never the test one
        assert (user, item) in everything and item != expected_test[user]
    assert pairs(split.train) == everything - pairs(split.test) - pairs(split.validation)
    assert split.test_negatives.equals(split.validation_negatives)
    assert not pairs(split.test_negatives) & everything
    assert split.test_negatives.groupby("user").size().eq(3).all()


def test_dmf_ties_by_hand():
    # user 0: items 3, 5, 7 at days 10, 20, 20: the study's argmax takes item 5, the default item 7
    frame = pd.DataFrame({"user": [0, 0, 0], "item": [3, 5, 7], "timestamp": [10, 20, 20]})
    data = make_data(frame, 1, 8)
    lower = make_split(data, "leave-one-out", 0, {"order": "latest", "ties": "lower-item", "negatives": 0})
    higher = make_split(data, "leave-one-out", 0, {"order": "latest", "negatives": 0})
    assert lower.test["item"].tolist() == [5] and lower.validation["item"].tolist() == [7]
    assert higher.test["item"].tolist() == [7] and higher.validation["item"].tolist() == [5]
    assert "the lower item id counts as later" in lower.card["rules"]["order"]


def test_dmf_validation_is_uniform_over_the_remaining_items():
    # 1 test item (the latest) and 4 others: over 2,000 seeds each other item is validation ~1/4 of the time
    frame = pd.DataFrame({"user": [0] * 5, "item": [0, 1, 2, 3, 4], "timestamp": [1, 2, 3, 4, 5]})
    data = make_data(frame, 1, 5)
    picks = [make_split(data, "leave-one-out", seed, {"order": "latest", "validation_order": "random",
                                                      "negatives": 0}).validation["item"].item()
             for seed in range(2000)]
    counts = np.bincount(picks, minlength=5)
    assert counts[4] == 0  # the test item
    assert np.all(np.abs(counts[:4] - 500) < 4 * np.sqrt(2000 * 0.25 * 0.75))


def test_dmf_options_refuse_what_they_cannot_mean():
    data = random_data(1, 10, 20, 0.5)
    with pytest.raises(RecAuditError, match="ties='lower-item' only applies to order='latest'"):
        make_split(data, "leave-one-out", 0, {"order": "random", "ties": "lower-item", "negatives": 3})
    with pytest.raises(RecAuditError, match="shared_negatives=1 is invalid; it must be true or false"):
        make_split(data, "leave-one-out", 0, {"negatives": 3, "shared_negatives": 1})
    with pytest.raises(RecAuditError, match="validation_order='latest' is invalid; it must be one of 'same', 'random'"):
        make_split(data, "leave-one-out", 0, {"negatives": 3, "validation_order": "latest"})


# ----- NeuRec: interaction-holdout --------------------------------------------------------
@PROPERTY
@given(seed=st.integers(0, 2**31 - 1), data_seed=st.integers(0, 10**6))
def test_interaction_holdout_partitions_and_repeats(seed, data_seed):
    data = random_data(data_seed, 15, 25, 0.5)
    split = make_split(data, "interaction-holdout", seed, {"test_fraction": 0.3, "validation_fraction": 0.2})
    parts = [pairs(split.train), pairs(split.validation), pairs(split.test)]
    assert set().union(*parts) == pairs(data.interactions)
    assert sum(len(p) for p in parts) == len(data.interactions)
    again = make_split(data, "interaction-holdout", seed, {"test_fraction": 0.3, "validation_fraction": 0.2})
    assert pairs(again.test) == parts[2] and pairs(again.validation) == parts[1]
    no_train = set(split.test["user"]) - set(split.train["user"])
    assert split.card["excluded"]["test_users_without_training_interactions"]["count"] == len(no_train)


def test_interaction_holdout_draws_each_interaction_on_its_own():
    """Part sizes follow the study's two Bernoulli draws (0.2 to test, then 0.1 of the rest to
    validation), not a per-user rounding: across 40 seeds on 2,000 interactions, the mean
    shares are within 4 standard errors of 0.2 and 0.08, and one user's share varies."""
    data = random_data(3, 40, 100, 0.5)
    n = len(data.interactions)
    shares = []
    for seed in range(40):
        split = make_split(data, "interaction-holdout", seed, {"test_fraction": 0.2, "validation_fraction": 0.1})
        shares.append((len(split.test) / n, len(split.validation) / n, (split.test["user"] == 0).sum()))
    test_share, validation_share, user0 = np.array(shares).T
    assert abs(test_share.mean() - 0.2) < 4 * np.sqrt(0.2 * 0.8 / (n * 40))
    assert abs(validation_share.mean() - 0.08) < 4 * np.sqrt(0.08 * 0.92 / (n * 40))
    assert len(set(user0)) > 3


# ----- the real files -----------------------------------------------------------------------
def prepared(dataset: str, tmp_path):
    raw = PARSERS[dataset](link_raw(dataset, tmp_path))
    return build_prepared(dataset, raw, dict(get_dataset(dataset).default_preprocessing))


def split_params(key: str) -> dict:
    entry = dict(load_params()["splits"][key])
    entry.pop("dataset")
    return entry


@pytest.mark.slow
def test_real_dmf_split(tmp_path):
    data = prepared("amazon-digital-music-dmf", tmp_path)
    params = split_params("amazon-digital-music-dmf/tois-dmf")
    assert params.pop("protocol") == "leave-one-out" and params == DMF_RULE
    split = make_split(data, "leave-one-out", 42, params)
    assert (len(split.train), len(split.validation), len(split.test), len(split.test_negatives)) == \
        (44_780, 844, 844, 83_556)
    # prepared item ids keep the file's order, so the study's column order is ours
    assert dict(zip(split.test["user"], split.test["item"])) == study_dmf_test_items(data.interactions)
    ties = data.interactions.groupby("user")["timestamp"].transform("max").eq(data.interactions["timestamp"])
    assert ties.groupby(data.interactions["user"]).sum().gt(1).sum() == 173  # users whose latest day holds several


@pytest.mark.slow
def test_real_neurec_split(tmp_path):
    data = prepared("filmtrust-neurec", tmp_path)
    assert len(data.interactions) == 35_494  # 35,497 ratings, 3 repeated pairs merged (the study drops them too)
    params = split_params("filmtrust-neurec/tois-neurec")
    assert params.pop("protocol") == "interaction-holdout"
    split = make_split(data, "interaction-holdout", 42, params)
    assert (len(split.train), len(split.validation), len(split.test)) == (25_593, 2_817, 7_084)
    assert split.card["excluded"]["test_users_without_training_interactions"]["count"] == 29
