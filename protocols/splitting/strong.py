"""Strong generalisation: held-out users, as in Mult-VAE (Liang et al., "Variational
Autoencoders for Collaborative Filtering", WWW 2018, section 4.2).

``heldout_users`` validation users and as many test users are drawn at random, disjoint,
among the users with at least 2 interactions; every other user's interactions are
``train``. Following Mult-VAE, the held-out users' interactions with items that never occur
in ``train`` are dropped (a model cannot score an item it has never seen); the card counts
the dropped items and interactions. Each held-out user's remaining ``m_u`` interactions are
then cut at random: ``clip(round(input_fraction * m_u), 1, m_u - 1)`` go to the fold-in input
(``validation_input`` / ``test_input``) and the rest is ranked (``validation`` / ``test``).
A held-out user left with a single interaction keeps it as input and has nothing to rank;
one left with none disappears. (Mult-VAE ranks ``floor(0.2 * m_u)`` items and only for users
with ``m_u >= 5``; half-up rounding of the input share differs from that by at most one item.)
"""
from __future__ import annotations

import numbers

import numpy as np

from datasets.canonical import PreparedData
from common.errors import RecAuditError
from protocols.splitting.base import (
    OPEN_FRACTION, Outcome, Rule, interactions_of, random_rank_within_user, round_half_up, split_protocol)

HELDOUT_USERS = Rule(
    "an integer >= 1 (users per held-out group) or a number in (0, 0.5) (a share of the users "
    "with at least 2 interactions)",
    lambda v: not isinstance(v, bool) and (
        (isinstance(v, numbers.Integral) and v >= 1) or (isinstance(v, float) and 0 < v < 0.5)))


@split_protocol("strong", heldout_users=HELDOUT_USERS, input_fraction=OPEN_FRACTION)
def strong(data: PreparedData, rng: np.random.Generator, *, heldout_users=0.1, input_fraction=0.8) -> Outcome:
    frame = interactions_of(data, "strong")
    users = frame["user"].to_numpy(np.int64)
    items = frame["item"].to_numpy(np.int64)
    eligible = np.flatnonzero(np.bincount(users, minlength=data.n_users) >= 2)
    per_group = int(heldout_users) if isinstance(heldout_users, numbers.Integral) else int(
        round_half_up(heldout_users * len(eligible)))
    if per_group < 1 or 2 * per_group >= len(eligible):
        raise RecAuditError(f"strong: heldout_users={heldout_users} asks for {per_group} validation and "
                            f"{per_group} test users but {data.name!r} has {len(eligible)} users with 2+ "
                            "interactions (some must stay in train); lower heldout_users")
    chosen = rng.choice(eligible, size=2 * per_group, replace=False)
    group = np.zeros(data.n_users, dtype=np.int8)  # 0 train, 1 validation, 2 test
    group[chosen[:per_group]] = 1
    group[chosen[per_group:]] = 2
    row_group = group[users]
    in_train = row_group == 0
    seen_in_train = np.bincount(items[in_train], minlength=data.n_items) > 0
    dropped = ~in_train & ~seen_in_train[items]
    kept = np.flatnonzero(~in_train & ~dropped)
    kept_users = users[kept]
    remaining = np.bincount(kept_users, minlength=data.n_users)
    n_input = np.clip(round_half_up(input_fraction * remaining), 1, np.maximum(remaining - 1, 1))
    is_input = random_rank_within_user(kept_users, rng) < n_input[kept_users]
    role = np.full(len(frame), -1, dtype=np.int8)
    role[in_train] = 0
    role[kept] = np.where(is_input, 1, 2) + 2 * (row_group[kept] == 2)  # 1/2 validation input/ranked, 3/4 test
    heldout = group > 0
    return Outcome(
        parts={"train": frame[role == 0], "validation_input": frame[role == 1], "validation": frame[role == 2],
               "test_input": frame[role == 3], "test": frame[role == 4]},
        excluded={
            "heldout_items_unseen_in_train": {"count": int(np.count_nonzero(np.bincount(items[dropped]))), "reason": (
                "items that occur only in held-out users' interactions: dropped from the held-out parts (Mult-VAE)")},
            "heldout_interactions_dropped": {"count": int(dropped.sum()), "reason": (
                "interactions of held-out users with items unseen in train (Mult-VAE)")},
            "heldout_users_without_ranked_items": {"count": int((heldout & (remaining == 1)).sum()), "reason": (
                "one interaction left after the drop: kept as fold-in input, nothing to rank")},
            "heldout_users_vanished": {"count": int((heldout & (remaining == 0)).sum()), "reason": (
                "every interaction was with an item unseen in train")},
        },
        rules={"heldout": f"{per_group} validation and {per_group} test users drawn without replacement among "
                          "users with at least 2 interactions",
               "input": "fold-in input = clip(floor(input_fraction * m + 1/2), 1, m - 1) random interactions of "
                        "the m kept ones; the rest is ranked"},
    )
