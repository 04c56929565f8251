"""The TOIS CiteULike P = 1 rule of the `given` protocol: validation drawn from train, kept in train,
ranked without excluding seen items; the final fit is train alone."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from datasets.canonical import PreparedData
from common.errors import RecAuditError
from protocols.evaluation import final_data, tuning_data
from protocols.splits import make_split


def _prepared(n_users: int = 40, n_items: int = 30) -> PreparedData:
    rng = np.random.default_rng(5)
    train_items = rng.integers(0, n_items, n_users)  # P = 1: one training item per user
    test_items = (train_items + 1 + rng.integers(0, n_items - 1, n_users)) % n_items
    users = np.arange(n_users)
    train = pd.DataFrame({"user": users, "item": train_items})
    test = pd.DataFrame({"user": users, "item": test_items})
    return PreparedData(name="toy-p1", interactions=pd.concat([train, test], ignore_index=True), n_users=n_users,
                        n_items=n_items, users=pd.DataFrame({"user": users}),
                        items=pd.DataFrame({"item": np.arange(n_items)}),
                        given={"p1": {"train": train, "test": test}})


def test_in_train_validation_is_a_random_share_of_train_that_stays_there():
    split = make_split(_prepared(), "given", 3, {"given": "p1", "validation_fraction": 0.2,
                                                 "validation_rule": "in-train"})
    assert len(split.train) == 40 and len(split.validation) == 8  # round(0.2 * 40)
    train_pairs = set(zip(split.train["user"], split.train["item"]))
    assert set(zip(split.validation["user"], split.validation["item"])) <= train_pairs
    assert split.card["validation_in_train"] and split.validation_in_train
    assert split.card["sanity"]["duplicate_pairs_across_parts"] == 0  # the allowed pair is not counted
    again = make_split(_prepared(), "given", 3, {"given": "p1", "validation_fraction": 0.2,
                                                 "validation_rule": "in-train"})
    pd.testing.assert_frame_equal(split.validation, again.validation)


def test_in_train_validation_excludes_nothing_and_the_final_fit_is_train_alone():
    split = make_split(_prepared(), "given", 3, {"given": "p1", "validation_fraction": 0.2,
                                                 "validation_rule": "in-train"})
    fit, task = tuning_data(split)
    assert task.exclude.nnz == 0 and len(task.users) == 8  # the held-out items are training items
    assert (task.truth.multiply(task.history)).nnz == 8  # each validation item sits in its user's history
    assert task.validation_data().exclude is not None and task.validation_data().exclude.nnz == 0
    refit, test_task = final_data(split)
    assert (refit != fit).nnz == 0  # train + validation is train
    assert test_task.exclude.nnz == refit.nnz  # the test ranking excludes the training items as usual


def test_the_per_user_rule_keeps_validation_out_of_train():
    data = _prepared()
    data.given["p1"]["train"] = pd.concat([data.given["p1"]["train"],
                                           data.given["p1"]["train"].assign(item=lambda f: (f["item"] + 3) % 30)])
    data.interactions = pd.concat([data.interactions, data.given["p1"]["train"]]).drop_duplicates()
    split = make_split(data, "given", 3, {"given": "p1", "validation_fraction": 0.5})
    train_pairs = set(zip(split.train["user"], split.train["item"]))
    assert not set(zip(split.validation["user"], split.validation["item"])) & train_pairs
    assert not split.validation_in_train


def test_an_unknown_rule_is_a_one_line_error():
    with pytest.raises(RecAuditError, match="validation_rule='elsewhere' is invalid; it must be one of"):
        make_split(_prepared(), "given", 3, {"given": "p1", "validation_rule": "elsewhere"})
