"""Weak-generalisation protocols: every user may appear in train, validation and test.

Rounding rule, shared by every fraction below: a count is ``floor(fraction * n + 1/2)``
(half up), so with ``test_fraction=0.2`` a user with 3 or 4 interactions gives 1 to test and a
user with 2 gives none. Validation is always carved *the same way from what is left* after
test was taken (``validation_fraction`` of the remainder, not of the whole).
"""
from __future__ import annotations

import numpy as np

from datasets.canonical import PreparedData
from common.errors import RecAuditError
from protocols.splitting.base import (
    FRACTION_FROM_ZERO, OPEN_FRACTION, Outcome, boolean, integer_at_least, interactions_of,
    latest_first_rank_within_user, one_of, optional_integer_at_least, random_rank_within_user, require_timestamps,
    round_half_up, split_protocol)
from protocols.splitting.negatives import free_item_counts, positive_keys, sample_negatives


@split_protocol("holdout", test_fraction=OPEN_FRACTION, validation_fraction=FRACTION_FROM_ZERO,
                min_user_interactions=integer_at_least(1))
def holdout(data: PreparedData, rng: np.random.Generator, *, test_fraction=0.2, validation_fraction=0.1,
            min_user_interactions=2) -> Outcome:
    """Random per-user holdout.

    A user with ``n_u >= min_user_interactions`` interactions gives
    ``t_u = min(round(test_fraction * n_u), n_u - 1)`` random items to test and then
    ``v_u = min(round(validation_fraction * (n_u - t_u)), n_u - t_u - 1)`` of the rest to
    validation; the caps keep at least one training interaction per user. Users below
    ``min_user_interactions`` stay in train only and are never evaluated.
    """
    frame = interactions_of(data, "holdout")
    users = frame["user"].to_numpy(np.int64)
    n_u = np.bincount(users, minlength=data.n_users)
    held = n_u >= min_user_interactions
    n_test = np.where(held, np.minimum(round_half_up(test_fraction * n_u), n_u - 1), 0)
    rest = n_u - n_test
    n_validation = np.where(held, np.minimum(round_half_up(validation_fraction * rest), rest - 1), 0)
    if n_test.sum() == 0:
        raise RecAuditError(f"holdout: no user of {data.name!r} gets a test interaction with "
                            f"test_fraction={test_fraction} and min_user_interactions={min_user_interactions}; "
                            "raise test_fraction")
    rank = random_rank_within_user(users, rng)
    test = rank < n_test[users]
    validation = ~test & (rank < (n_test + n_validation)[users])
    short = int(((n_u > 0) & ~held).sum())
    unrounded = int((held & (n_test == 0)).sum())
    return Outcome(
        parts={"train": frame[~test & ~validation], "validation": frame[validation], "test": frame[test]},
        excluded={
            "users_below_min_interactions": {"count": short, "reason": (
                f"fewer than min_user_interactions={min_user_interactions} interactions: train only, never evaluated")},
            "users_without_test_after_rounding": {"count": unrounded, "reason": (
                "round(test_fraction * n_u) is 0: train only, never evaluated")},
        },
        rules={"rounding": "count = floor(fraction * n + 1/2), capped to keep one training interaction per user",
               "validation": "validation_fraction of each user's interactions left after test"},
    )


@split_protocol("interaction-holdout", test_fraction=OPEN_FRACTION, validation_fraction=FRACTION_FROM_ZERO)
def interaction_holdout(data: PreparedData, rng: np.random.Generator, *, test_fraction=0.2,
                        validation_fraction=0.1) -> Outcome:
    """Each interaction on its own: test with probability ``test_fraction``, else validation
    with probability ``validation_fraction``, else train.

    The TOIS study's regeneration of NeuRec's FilmTrust split (``Conferences/IJCAI/
    NeuRec_our_interface/FilmTrust``: ``split_train_validation_percentage_random_holdout`` at 0.8,
    then at 0.9 on what stayed in train) is ``test_fraction=0.2, validation_fraction=0.1``. Part
    sizes are binomial, not rounded per user: a user may end with no training interaction (still
    evaluated, from an empty history) or no test one (never evaluated), and an item may appear
    only in test; the card counts both.
    """
    frame = interactions_of(data, "interaction-holdout")
    draws = rng.random(len(frame))
    test = draws < test_fraction
    validation = ~test & (rng.random(len(frame)) < validation_fraction)
    train = ~test & ~validation
    if not test.any() or not train.any():
        raise RecAuditError(f"interaction-holdout: {len(frame)} interactions of {data.name!r} give an empty "
                            f"{'test' if not test.any() else 'train'} part at test_fraction={test_fraction}; "
                            "change test_fraction")
    users = frame["user"].to_numpy(np.int64)
    train_users = np.bincount(users[train], minlength=data.n_users) > 0
    test_users = np.unique(users[test])
    return Outcome(
        parts={"train": frame[train], "validation": frame[validation], "test": frame[test]},
        excluded={"test_users_without_training_interactions": {
            "count": int((~train_users[test_users]).sum()),
            "reason": "every interaction drawn to validation or test: evaluated from an empty training history"}},
        rules={"assignment": f"each interaction independently: test with probability {test_fraction}, "
                             f"else validation with probability {validation_fraction}, else train"},
    )


@split_protocol("leave-one-out", order=one_of("random", "latest"), negatives=integer_at_least(0),
                cold_test_max_train=optional_integer_at_least(0), ties=one_of("higher-item", "lower-item"),
                validation_order=one_of("same", "random"), shared_negatives=boolean())
def leave_one_out(data: PreparedData, rng: np.random.Generator, *, order="random", negatives=99,
                  cold_test_max_train=None, ties="higher-item", validation_order="same",
                  shared_negatives=False) -> Outcome:
    """One test and one validation interaction per user, plus fixed sampled negatives.

    ``order='latest'`` holds out each user's latest interaction for test and the next latest
    for validation (equal timestamps: the higher item id counts as later); ``'random'`` picks
    both at random. A user is held out only with at least 3 interactions (one each for test,
    validation and train) and at least ``negatives`` items never touched anywhere in the
    dataset; other users stay in train only. Each held-out user gets ``negatives`` test
    negatives and, independently drawn, ``negatives`` validation negatives, uniformly without
    replacement from the items the user never touched (``negatives=0``: full ranking).

    ``cold_test_max_train=N`` keeps only the test interactions whose item has at most N
    training interactions (VBPR's "cold start" view, N = 5); the others leave the split
    altogether, so train and validation are exactly those of the same split without it.

    The TOIS study's regeneration of DMF's split (``Conferences/IJCAI/DMF_our_interface``,
    ``split_data_on_timestamp`` then ``split_train_validation_leave_one_out_user_wise``) is
    ``order='latest', ties='lower-item', validation_order='random', negatives=99,
    shared_negatives=True``:

    - ``ties``: which of a user's interactions with the latest timestamp counts as the latest.
      ``'higher-item'``: the higher item id; ``'lower-item'``: the lower one (the study's
      ``np.argmax`` over a row of the CSR matrix, whose columns are in item-id order).
    - ``validation_order='random'``: validation is a uniformly random one of the user's
      interactions left after test, whatever ``order`` is (the study puts its temporal
      validation item back and draws one at random); ``'same'`` follows ``order``.
    - ``shared_negatives=True``: validation ranks against the test negatives (the study passes
      the same ``URM_test_negative`` to its validation and test evaluators); false draws them
      independently.
    """
    if order == "latest":
        require_timestamps(data, "leave-one-out", "order='latest' needs them; use order='random'")
    if ties != "higher-item" and order != "latest":
        raise RecAuditError(f"leave-one-out: ties={ties!r} only applies to order='latest'; remove it or set "
                            "order: latest")
    frame = interactions_of(data, "leave-one-out")
    users = frame["user"].to_numpy(np.int64)
    n_u = np.bincount(users, minlength=data.n_users)
    keys = positive_keys([frame], data.n_items)
    free = free_item_counts(np.arange(data.n_users), keys, data.n_items)
    held = (n_u >= 3) & (free >= negatives)
    if not held.any():
        raise RecAuditError(f"leave-one-out: no user of {data.name!r} has 3 interactions and {negatives} "
                            "never-touched items; lower negatives")
    rank = (latest_first_rank_within_user(frame, higher_item_later=ties == "higher-item") if order == "latest"
            else random_rank_within_user(users, rng))
    test = held[users] & (rank == 0)
    if validation_order == "random":
        rest = np.flatnonzero(~test)
        rest_rank = np.full(len(frame), -1, dtype=np.int64)
        rest_rank[rest] = random_rank_within_user(users[rest], rng)
        validation = held[users] & (rest_rank == 0)
    else:
        validation = held[users] & (rank == 1)
    held_users = np.flatnonzero(held)
    validation_negatives = sample_negatives(held_users, negatives, keys, data.n_items, rng)
    test_negatives = (validation_negatives if shared_negatives
                      else sample_negatives(held_users, negatives, keys, data.n_items, rng))
    train = ~test & ~validation
    kept_test = test
    warm_tests = 0
    if cold_test_max_train is not None:
        train_count = np.bincount(frame["item"].to_numpy(np.int64)[train], minlength=data.n_items)
        kept_test = test & (train_count[frame["item"].to_numpy(np.int64)] <= cold_test_max_train)
        warm_tests = int((test & ~kept_test).sum())
    cold_rule = {} if cold_test_max_train is None else {"cold_test": (
        f"test keeps only items with at most {cold_test_max_train} training interactions; "
        f"{warm_tests} other test interactions left the split")}
    return Outcome(
        parts={"train": frame[train], "validation": frame[validation], "test": frame[kept_test],
               "validation_negatives": validation_negatives, "test_negatives": test_negatives},
        excluded={
            **({} if cold_test_max_train is None else {"test_items_above_cold_threshold": {
                "count": warm_tests, "reason": f"test item has more than {cold_test_max_train} training "
                                               "interactions: dropped (the cold-start view)"}}),
            "users_below_3_interactions": {"count": int(((n_u > 0) & (n_u < 3)).sum()), "reason": (
                "fewer than 3 interactions: train only, never evaluated")},
            "users_without_enough_negatives": {"count": int(((n_u >= 3) & (free < negatives)).sum()), "reason": (
                f"fewer than negatives={negatives} never-touched items: train only, never evaluated")},
        },
        rules={"order": (f"latest timestamp first; equal timestamps: the {ties.split('-')[0]} item id counts as later" if order == "latest"
                         else "uniformly random per user"),
               "validation": ("a uniformly random one of the user's interactions left after test"
                              if validation_order == "random" else "the next one in the same order as test"),
               "negatives": "uniform without replacement from items the user never touched in the dataset, "
                            + ("one set per user, ranked against by validation and test alike" if shared_negatives
                               else "drawn separately for validation and test"), **cold_rule},
    )


@split_protocol("temporal", test_fraction=OPEN_FRACTION, validation_fraction=FRACTION_FROM_ZERO)
def temporal(data: PreparedData, rng: np.random.Generator, *, test_fraction=0.2, validation_fraction=0.1) -> Outcome:
    """One global cut time for every user.

    The test cut is the timestamp of the ``round(test_fraction * N)``-th latest interaction;
    every interaction at or after it is test (ties at the cut go to the later part, so test
    may be slightly larger than the fraction). The validation cut is found the same way among
    the interactions before the test cut. No training interaction is later than any validation
    or test interaction. Deterministic: the seed is recorded but changes nothing. Users and
    items that first appear after a cut are kept (the card counts them).
    """
    require_timestamps(data, "temporal", "use holdout or leave-one-out order='random'")
    frame = interactions_of(data, "temporal")
    timestamps = frame["timestamp"].to_numpy(np.int64)
    test = timestamps >= _cut_time(timestamps, test_fraction, "test_fraction", data.name)
    earlier = np.flatnonzero(~test)
    if len(earlier) == 0:
        raise RecAuditError(f"temporal: every interaction of {data.name!r} shares the latest timestamp; "
                            "use holdout")
    validation = np.zeros(len(frame), dtype=bool)
    if validation_fraction > 0:
        validation[earlier] = timestamps[earlier] >= _cut_time(timestamps[earlier], validation_fraction,
                                                                 "validation_fraction", data.name)
    train = ~test & ~validation
    if not train.any():
        raise RecAuditError(f"temporal: the validation cut of {data.name!r} leaves no training interaction "
                            "(too many equal timestamps); lower validation_fraction")
    return Outcome(
        parts={"train": frame[train], "validation": frame[validation], "test": frame[test]},
        rules={"cut": "global cut times; interactions with a timestamp equal to a cut go to the later part",
               "rounding": "the cut is the timestamp of the floor(fraction * n + 1/2)-th latest interaction"},
    )


def _cut_time(timestamps: np.ndarray, fraction: float, name: str, dataset: str) -> int:
    n_later = int(round_half_up(fraction * len(timestamps)))
    if n_later == 0:
        raise RecAuditError(f"temporal: {name}={fraction} of {len(timestamps)} interactions of {dataset!r} "
                            f"rounds to none; raise {name}")
    return int(np.partition(timestamps, len(timestamps) - n_later)[len(timestamps) - n_later])


@split_protocol("cold-items", test_fraction=OPEN_FRACTION, validation_fraction=FRACTION_FROM_ZERO)
def cold_items(data: PreparedData, rng: np.random.Generator, *, test_fraction=0.2, validation_fraction=0.1) -> Outcome:
    """Items held out entirely (item cold start).

    Among the items with at least one interaction, a random ``round(test_fraction * I)`` are
    test items and a random ``round(validation_fraction * rest)`` of the others are validation
    items; every interaction of a test (validation) item is test (validation), so test items
    never appear in train. Fractions count items, not interactions.
    """
    frame = interactions_of(data, "cold-items")
    items = frame["item"].to_numpy(np.int64)
    active = np.flatnonzero(np.bincount(items, minlength=data.n_items) > 0)
    shuffled = rng.permutation(active)
    n_test = int(round_half_up(test_fraction * len(active)))
    n_validation = int(round_half_up(validation_fraction * (len(active) - n_test)))
    if n_test == 0 or n_test + n_validation >= len(active):
        raise RecAuditError(f"cold-items: {data.name!r} has {len(active)} items with interactions; "
                            f"test_fraction={test_fraction} and validation_fraction={validation_fraction} "
                            "must leave at least one item on each side")
    role = np.zeros(data.n_items, dtype=np.int8)
    role[shuffled[:n_test]] = 2
    role[shuffled[n_test:n_test + n_validation]] = 1
    item_role = role[items]
    return Outcome(
        parts={"train": frame[item_role == 0], "validation": frame[item_role == 1], "test": frame[item_role == 2]},
        rules={"rounding": "item counts = floor(fraction * n_items_with_interactions + 1/2); "
                           "validation items from the items left after test"},
    )



@split_protocol("last-basket")
def last_basket(data: PreparedData, rng: np.random.Generator) -> Outcome:
    """CuratorNet's replay protocol (Messina et al. 2020): a user's *basket* is the items
    consumed at one timestamp; each user's last basket is the test event when it is not the
    user's first (replaying purchases in time order, only that basket has no later purchase in
    training), and, for tuning, the basket before it is the validation event when that one is
    not the first either. Everything else is train; users with a single basket are train only.
    The seed is unused: nothing is random.
    """
    require_timestamps(data, "last-basket", "baskets are items with equal timestamps")
    frame = interactions_of(data, "last-basket")
    users = frame["user"].to_numpy(np.int64)
    times = frame["timestamp"].to_numpy(np.int64)
    order = np.lexsort((-times, users))  # per user, latest first
    sorted_users, sorted_times = users[order], times[order]
    user_start = np.r_[True, sorted_users[1:] != sorted_users[:-1]]
    new_basket = user_start | np.r_[True, sorted_times[1:] != sorted_times[:-1]]
    basket_number = np.cumsum(new_basket) - 1
    first_of_user = np.maximum.accumulate(np.where(user_start, basket_number, 0))
    rank_sorted = basket_number - first_of_user  # 0: the user's latest basket
    rank = np.empty_like(rank_sorted)
    rank[order] = rank_sorted
    n_baskets = np.zeros(data.n_users, dtype=np.int64)
    np.maximum.at(n_baskets, users, rank + 1)
    test = (rank == 0) & (n_baskets[users] >= 2)
    validation = (rank == 1) & (n_baskets[users] >= 3)
    if not test.any():
        raise RecAuditError(f"last-basket: no user of {data.name!r} has two baskets (distinct timestamps); "
                            "use leave-one-out or temporal")
    return Outcome(
        parts={"train": frame[~test & ~validation], "validation": frame[validation], "test": frame[test]},
        excluded={"users_with_one_basket": {"count": int(((n_baskets == 1)).sum()), "reason": (
            "a single basket (one timestamp): train only, never evaluated")}},
        rules={"basket": "the items a user consumed at one timestamp",
               "test": "each user's last basket, when the user has at least 2",
               "validation": "the basket before it, when the user has at least 3"},
    )
