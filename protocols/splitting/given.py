"""The split published by a paper's authors, used as it is.

``test`` (and ``negatives``, when the authors published them) are exactly the authors' files.
Validation is carved from the authors' training part only, so it can never overlap test:

- Per-user carve (the normal rule): each user with ``n_u >= 2`` training interactions moves
  ``min(round(validation_fraction * n_u), n_u - 1)`` random ones to validation (half-up
  rounding); at least one stays in train.
- Thin rule, used only when the per-user carve yields no validation interaction at all (every
  user has too few training interactions, e.g. CiteULike-a P=1 with exactly one each): a random
  ``round(validation_fraction * U)`` of the ``U`` users with training interactions move their
  *whole* training part to validation. While tuning, those users have no history (their
  validation items are ranked from an empty history, which only popularity-, content- or
  embedding-based scores can use); the final run refits on train + validation, so test is
  ranked with exactly the authors' training data as history. Borrowing test items instead
  would either leak test into tuning or change the authors' test, so it is not done.

``validation_rule`` names how validation is carved (recorded in the card's params):

- ``per-user`` (default): the per-user carve above, with the thin rule as fallback;
- ``in-train``: the TOIS study's rule for CiteULike P = 1 (Ferrari Dacrema et al., TOIS 2021,
  appendix F): a random ``round(validation_fraction * N)`` of the N training interactions are
  the validation part *and stay in train* (otherwise those users would have no training item);
  validation then ranks without excluding seen items, and the final model is fitted on train
  alone (train + validation is train). The card records ``validation_in_train`` and the
  disjointness check skips that one pair of parts.

For P = 10 the TOIS rule is the per-user carve with ``validation_fraction: 0.2``.

Sampled given splits (authors' ``negatives``) get validation negatives drawn by us: as many per
validation user as the authors' most common count per test user, uniformly without
replacement from items the user never touched (dataset interactions and both authors' parts).
Validation users with too few such items return their validation items to train.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from datasets.canonical import PreparedData, normalise_interactions
from common.errors import RecAuditError
from protocols.splitting.base import (
    FRACTION_FROM_ZERO, REQUIRED, Outcome, any_name, one_of, random_rank_within_user, round_half_up, split_protocol)
from protocols.splitting.negatives import free_item_counts, positive_keys, sample_negatives


@split_protocol("given", given=any_name(), validation_fraction=FRACTION_FROM_ZERO,
                validation_rule=one_of("per-user", "in-train"))
def given_split(data: PreparedData, rng: np.random.Generator, *, given=REQUIRED, validation_fraction=0.1,
                validation_rule="per-user") -> Outcome:
    authors = _authors_parts(data, given)
    train, test = authors["train"], authors["test"]
    if validation_rule == "in-train":
        return _validation_in_train(data, train, test, validation_fraction, rng, authors)
    users = train["user"].to_numpy(np.int64)
    n_u = np.bincount(users, minlength=data.n_users)
    n_validation = np.where(n_u >= 2, np.minimum(round_half_up(validation_fraction * n_u), n_u - 1), 0)
    validation = random_rank_within_user(users, rng) < n_validation[users]
    rule = ("per-user carve: min(floor(validation_fraction * n_u + 1/2), n_u - 1) random training "
            "interactions of each user with n_u >= 2")
    if validation_fraction > 0 and not validation.any():
        with_train = np.flatnonzero(n_u > 0)
        n_moved = max(1, int(round_half_up(validation_fraction * len(with_train))))
        moved = np.zeros(data.n_users, dtype=bool)
        moved[rng.choice(with_train, size=min(n_moved, len(with_train)), replace=False)] = True
        validation = moved[users]
        rule = (f"thin split (no user has enough training interactions to carve): {int(moved.sum())} random users "
                "moved their whole training part to validation; they have no training interaction while tuning, "
                "and the final run refits on train + validation")

    parts = {"test": test}
    excluded = {}
    known = pd.concat([data.interactions[["user", "item"]], train[["user", "item"]], test[["user", "item"]]])
    if "negatives" in authors:
        parts["test_negatives"] = authors["negatives"]
        per_user = authors["negatives"].groupby("user").size()
        k = int(per_user.mode().min()) if len(per_user) else 0
        keys = positive_keys([known], data.n_items)
        validation_users = np.flatnonzero(np.bincount(users[validation], minlength=data.n_users))
        enough = free_item_counts(validation_users, keys, data.n_items) >= k
        too_few = validation_users[~enough]
        validation &= ~np.isin(users, too_few)
        parts["validation_negatives"] = sample_negatives(validation_users[enough], k, keys, data.n_items, rng)
        excluded["validation_users_without_enough_negatives"] = {"count": int(len(too_few)), "reason": (
            f"fewer than {k} never-touched items: their validation items stay in train")}
    parts["train"] = train[~validation]
    parts["validation"] = train[validation]
    return Outcome(parts=parts, excluded=excluded, rules={"validation": rule, "test": "the authors' test, unchanged"},
                   positives=known)


def _validation_in_train(data, train, test, fraction, rng, authors) -> Outcome:
    if "negatives" in authors:
        raise RecAuditError("given: validation_rule 'in-train' is for full-ranking splits; this split has "
                            "sampled negatives, use validation_rule 'per-user'")
    n_validation = int(round_half_up(fraction * len(train)))
    if n_validation == 0:
        raise RecAuditError(f"given: validation_fraction={fraction} of {len(train)} training interactions rounds to "
                            "none; raise validation_fraction")
    chosen = np.zeros(len(train), dtype=bool)
    chosen[rng.choice(len(train), size=n_validation, replace=False)] = True
    rule = (f"in-train (TOIS, CiteULike P=1): a random {n_validation} of the {len(train)} training interactions are "
            "validation and stay in train; validation ranks without excluding seen items; the final model is "
            "fitted on train alone")
    known = pd.concat([data.interactions[["user", "item"]], train[["user", "item"]], test[["user", "item"]]])
    return Outcome(parts={"train": train, "validation": train[chosen], "test": test},
                   rules={"validation": rule, "test": "the authors' test, unchanged"}, positives=known)


def _authors_parts(data: PreparedData, name: str) -> dict[str, pd.DataFrame]:
    if not data.given:
        raise RecAuditError(f"given: dataset {data.name!r} has no published split; use another protocol")
    if name not in data.given:
        raise RecAuditError(f"given: unknown given split {name!r} of {data.name!r}; "
                            f"known given splits: {', '.join(sorted(data.given))}")
    parts = data.given[name]
    missing = {"train", "test"} - set(parts)
    if missing:
        raise RecAuditError(f"given: split {name!r} of {data.name!r} lacks {sorted(missing)}; prepare the dataset again")
    parts = {part: normalise_interactions(frame) for part, frame in parts.items()}
    for part in ("train", "test"):
        if len(parts[part]) == 0:
            raise RecAuditError(f"given: the {part} part of split {name!r} of {data.name!r} is empty; "
                                "prepare the dataset again")
    for part, frame in parts.items():
        for column, limit in (("user", data.n_users), ("item", data.n_items)):
            values = frame[column].to_numpy()
            if len(values) and (values.min() < 0 or values.max() >= limit):
                raise RecAuditError(f"given: {part} of split {name!r} of {data.name!r} has {column} ids outside "
                                    f"0..{limit - 1}; prepare the dataset again")
    return parts
