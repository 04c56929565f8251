"""What every split protocol shares: the registry, parameter checking and group-wise ranks.

A protocol is written as ``compute(data, rng, **params) -> Outcome`` and registered with
:func:`split_protocol`, which turns it into the public ``(data, seed, **params) -> Split``:
it checks the parameter names and ranges against the declared :class:`Rule` objects (one
line naming the protocol, the parameter and what is allowed), makes the only random
generator from the seed, sorts and normalises the parts and attaches the split card.

Randomness inside a user group comes from one seeded permutation followed by a stable sort
by user (:func:`random_rank_within_user`), so no protocol loops over users in Python.
"""
from __future__ import annotations

import functools
import inspect
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from datasets.canonical import PreparedData, normalise_interactions
from common.errors import RecAuditError
from protocols.split_card import make_card, side_description
from protocols.split_data import PART_FILES, Split, empty_part
from protocols.splitting.keys import pair_keys, sorted_unique

PROTOCOLS: dict[str, Callable[..., Split]] = {}
REQUIRED = inspect.Parameter.empty

# Half-up rounding of x = fraction * count; the guard absorbs binary error so that
# 0.7 * 5 (stored as 3.4999999999999996) still rounds to 4, as the decimal 3.5 would.
_ROUNDING_GUARD = 1e-9


@dataclass(frozen=True)
class Rule:
    """The values one protocol parameter accepts, and how to say so in an error."""

    description: str
    accepts: Callable[[object], bool]


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)


def _is_integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


OPEN_FRACTION = Rule("a number in (0, 1)", lambda v: _is_real(v) and 0 < v < 1)
FRACTION_FROM_ZERO = Rule("a number in [0, 1)", lambda v: _is_real(v) and 0 <= v < 1)


def integer_at_least(minimum: int) -> Rule:
    return Rule(f"an integer >= {minimum}", lambda v: _is_integer(v) and v >= minimum)


def optional_integer_at_least(minimum: int) -> Rule:
    return Rule(f"null or an integer >= {minimum}", lambda v: v is None or (_is_integer(v) and v >= minimum))


def one_of(*choices: str) -> Rule:
    return Rule("one of " + ", ".join(repr(c) for c in choices), lambda v: v in choices)


def boolean() -> Rule:
    return Rule("true or false", lambda v: isinstance(v, (bool, np.bool_)))


def any_name() -> Rule:
    return Rule("a name", lambda v: isinstance(v, str) and v != "")


@dataclass
class Outcome:
    """What a protocol computes: its parts, plus what it left out and the rules it applied.

    ``excluded`` maps a short key to ``{"count": int, "reason": str}``; ``rules`` maps a
    key to one sentence. Both go into the card verbatim.
    """

    parts: dict[str, pd.DataFrame]
    excluded: dict[str, dict] = field(default_factory=dict)
    rules: dict[str, str] = field(default_factory=dict)
    positives: pd.DataFrame | None = None  # every known positive, when not data.interactions


def split_protocol(name: str, **rules: Rule):
    """Register ``compute(data, rng, *, param=default, ...)`` as the protocol ``name``."""

    def decorate(compute: Callable[..., Outcome]) -> Callable[..., Split]:
        signature = inspect.signature(compute)
        declared = list(signature.parameters.values())[2:]
        defaults = {p.name: p.default for p in declared}
        if set(defaults) != set(rules):
            raise TypeError(f"protocol {name!r}: rules {sorted(rules)} do not match parameters {sorted(defaults)}")

        @functools.wraps(compute)
        def protocol(data: PreparedData, seed: int, **params) -> Split:
            resolved = check_params(name, defaults, rules, params)
            if not _is_integer(seed) or seed < 0:
                raise RecAuditError(f"{name}: seed must be an integer >= 0, got {seed!r}; set 'seed' in params.yaml")
            outcome = compute(data, np.random.default_rng(int(seed)), **resolved)
            return finish_split(name, data, resolved, int(seed), outcome)

        seed_parameter = inspect.Parameter("seed", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation="int")
        first = list(signature.parameters.values())[0]
        protocol.__signature__ = signature.replace(parameters=[first, seed_parameter, *declared],
                                                   return_annotation="Split")
        protocol.protocol_name = name
        protocol.rules = dict(rules)
        protocol.defaults = dict(defaults)
        PROTOCOLS[name] = protocol
        return protocol

    return decorate


def check_params(name: str, defaults: dict, rules: dict[str, Rule], params: dict) -> dict:
    valid = ", ".join(defaults)
    for key in params:
        if key not in defaults:
            raise RecAuditError(f"{name}: unknown parameter {key!r}; valid parameters: {valid}")
    resolved = {**defaults, **params}
    for key, value in resolved.items():
        if value is REQUIRED:
            raise RecAuditError(f"{name}: parameter {key!r} is required ({rules[key].description}); "
                                f"valid parameters: {valid}")
        if not rules[key].accepts(value):
            raise RecAuditError(f"{name}: parameter {key}={value!r} is invalid; it must be {rules[key].description}")
    return resolved


def finish_split(name: str, data: PreparedData, params: dict, seed: int, outcome: Outcome) -> Split:
    no_rows = outcome.parts["train"].iloc[:0]  # an unused interaction part keeps rating/timestamp columns
    parts = {part: canonical_part(outcome.parts.get(part, None if part.endswith("negatives") else no_rows),
                                  negatives=part.endswith("negatives"))
             for part in PART_FILES}
    dataset_meta = {"name": data.name, "n_users": data.n_users, "n_items": data.n_items,
                    "n_interactions": int(len(data.interactions))}
    positives = data.interactions if outcome.positives is None else outcome.positives
    features = dict(getattr(data, "item_features", None) or {})
    items = data.items if data.items is not None and len(data.items.columns) > 1 else None
    side = side_description(items, data.item_images, features)
    content_note = (data.meta.get("notes") or {}).get("item_content_note")
    if content_note:
        side["content_note"] = content_note
    card = make_card(parts, protocol=name, params=params, seed=seed, dataset_meta=dataset_meta,
                     excluded=outcome.excluded, rules=outcome.rules, positives=positives, side=side)
    return Split(**parts, card=card, item_features=features, item_images=data.item_images, items=items)


def canonical_part(frame: pd.DataFrame | None, negatives: bool = False) -> pd.DataFrame:
    """Normalised columns and dtypes, rows sorted by (user, item): the form that is hashed and written."""
    if frame is None:
        return empty_part()
    frame = normalise_interactions(frame[["user", "item"]] if negatives else frame)
    keys = (frame["user"].to_numpy(np.int64) << 32) | frame["item"].to_numpy(np.int64)
    if (keys[1:] >= keys[:-1]).all():  # already ordered, as prepared data usually is
        return frame
    return frame.take(np.argsort(keys, kind="stable")).reset_index(drop=True)


# ----- shared computations ---------------------------------------------------------------
def round_half_up(values) -> np.ndarray:
    """floor(x + 1/2) element-wise, as int64 (0.5 -> 1, 1.5 -> 2, 2.5 -> 3)."""
    return np.floor(np.asarray(values, dtype=np.float64) + 0.5 + _ROUNDING_GUARD).astype(np.int64)


def interactions_of(data: PreparedData, protocol: str) -> pd.DataFrame:
    """The dataset's interactions, refusing repeated (user, item) pairs: a split must never put
    the same pair on both sides, and the prepare step is where repeats are merged."""
    frame = data.interactions
    keys = pair_keys(frame, data.n_items)
    distinct = len(sorted_unique(keys))
    if distinct < len(keys):
        repeats = len(keys) - distinct
        raise RecAuditError(f"{protocol}: dataset {data.name!r} has {repeats} repeated (user, item) pairs; "
                            "merge them when preparing the dataset (one row per pair)")
    if len(frame) == 0:
        raise RecAuditError(f"{protocol}: dataset {data.name!r} has no interactions; prepare it again")
    return frame


def ranks_in_order(groups: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Position of each row within its group when rows are visited in ``order``.

    ``order`` must visit each group's rows contiguously (e.g. a stable sort by group).
    """
    ranks = np.empty(len(groups), dtype=np.int64)
    if len(groups) == 0:
        return ranks
    visited = groups[order]
    starts = np.flatnonzero(np.r_[True, visited[1:] != visited[:-1]])
    lengths = np.diff(np.r_[starts, len(visited)])
    ranks[order] = np.arange(len(visited)) - np.repeat(starts, lengths)
    return ranks


def random_rank_within_user(users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random order of each user's rows: rank 0..n_u-1 per row."""
    shuffled = rng.permutation(len(users))
    order = shuffled[np.argsort(users[shuffled], kind="stable")]
    return ranks_in_order(users, order)


def latest_first_rank_within_user(frame: pd.DataFrame, higher_item_later: bool = True) -> np.ndarray:
    """Rank 0 is each user's latest interaction; equal timestamps are broken by item id (the
    higher id counting as later, or the lower one), so the order does not depend on the seed or
    the row order."""
    users = frame["user"].to_numpy(np.int64)
    items = frame["item"].to_numpy(np.int64)
    order = np.lexsort((-items if higher_item_later else items, -frame["timestamp"].to_numpy(np.int64), users))
    return ranks_in_order(users, order)


def require_timestamps(data: PreparedData, protocol: str, hint: str) -> None:
    if "timestamp" not in data.interactions.columns:
        raise RecAuditError(f"{protocol}: dataset {data.name!r} has no timestamps; {hint}")
