"""Conformance checks: does a model keep the contract of ``protocols.contract``?

In the spirit of scikit-learn's ``check_estimator``: each check is a function
``check(model_factory, data) -> None`` that raises ``AssertionError`` with a message naming
the broken rule. ``model_factory()`` returns a fresh, unfitted model; ``data`` is a
:class:`ConformanceData`, a tiny seeded dataset with planted structure and item data: a sparse
content feature set (``tags``), a dense one (``image-features``) and tiny synthetic images,
all carrying the planted groups.

A model may declare ``conformance_params: ClassVar[dict]`` (few epochs, few factors) so the
checks stay fast; :func:`conformance_factory` builds the model from them. Run every check on
one model with :func:`check_model`; ``tests/test_conformance.py`` runs them on every
registered model.
"""
from __future__ import annotations

import copy
import hashlib
import pickle
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from datasets.item_data import ItemImages, TrainingData, ValidationData, make_feature_set
from protocols.contract import (NotFittedError, Recommender, TaskProfile, UnsupportedProtocolError,
                                check_requirements)
from protocols.registry import make_model

ModelFactory = Callable[[], Recommender]

# Scores of the same model on the same input may differ by BLAS blocking (gemm vs gemv)
# when only the batching changes; anything beyond this is a real difference.
BATCH_RTOL = 1e-5
BATCH_ATOL = 1e-6


@dataclass(frozen=True)
class ConformanceData:
    """A tiny dataset: ``train`` (users x items), ``other_train`` (different interactions and
    fewer users, same items), item content, a validation set, and ``heldout_users`` whose
    rows are empty in ``strong_train`` (strong generalisation: history given at query time)."""

    train: sp.csr_matrix
    other_train: sp.csr_matrix
    side: TrainingData  # the item data (feature sets, images, item table), interactions = train
    validation: ValidationData
    strong_train: sp.csr_matrix
    heldout_users: np.ndarray

    def training(self, train: sp.csr_matrix | None = None, validation: ValidationData | None = None) -> TrainingData:
        """``train`` (default: the planted matrix) with every item data of the dataset."""
        interactions = self.train if train is None else train
        return TrainingData(interactions=interactions, validation=validation, item_features=self.side.item_features,
                            images=self.side.images, items=self.side.items)

    @property
    def n_users(self) -> int:
        return self.train.shape[0]

    @property
    def n_items(self) -> int:
        return self.train.shape[1]

    @property
    def users(self) -> np.ndarray:
        return np.arange(self.n_users)


def planted_matrix(n_users: int, n_items: int, n_groups: int, rng: np.random.Generator,
                   inside: float = 0.35, outside: float = 0.03) -> tuple[sp.csr_matrix, np.ndarray]:
    """Users and items in ``n_groups`` blocks; a user takes an item of its own block with
    probability ``inside`` and any other item with probability ``outside``. Every user gets
    at least two interactions. Returns the matrix and the items' groups."""
    user_group = rng.integers(n_groups, size=n_users)
    item_group = np.arange(n_items) % n_groups
    probability = np.where(user_group[:, None] == item_group[None, :], inside, outside)
    dense = rng.random((n_users, n_items)) < probability
    per_group = n_items // n_groups
    first = rng.integers(per_group, size=n_users)
    second = (first + 1 + rng.integers(per_group - 1, size=n_users)) % per_group
    for slot in (first, second):
        dense[np.arange(n_users), user_group + n_groups * slot] = True
    return sp.csr_matrix(dense.astype(np.float32)), item_group


def make_conformance_data(n_users: int = 60, n_items: int = 40, n_groups: int = 4, n_heldout: int = 8,
                          seed: int = 0) -> ConformanceData:
    rng = np.random.default_rng(seed)
    train, item_group = planted_matrix(n_users, n_items, n_groups, rng)
    other_train, _ = planted_matrix(n_users - 12, n_items, n_groups, rng, inside=0.5, outside=0.05)

    # Content: one feature per group plus sparse noise words, so content models learn something.
    n_words = 30
    group_features = sp.csr_matrix((np.ones(n_items, np.float32), (np.arange(n_items), item_group)),
                                   shape=(n_items, n_groups))
    noise = sp.random(n_items, n_words, density=0.15, random_state=rng, dtype=np.float32)
    noise.data[:] = 1.0
    content = sp.hstack([group_features, noise], format="csr")
    # Dense "image features": the group as a direction plus noise; the last item has no image.
    dense = np.eye(n_groups, 16, dtype=np.float32)[item_group] + 0.1 * rng.standard_normal((n_items, 16)).astype(np.float32)
    present = np.ones(n_items, dtype=bool)
    present[-1] = False
    features = {"tags": make_feature_set("tags", content),
                "image-features@000000000000": make_feature_set("image-features@000000000000", dense, present)}
    items = pd.DataFrame({"item": np.arange(n_items, dtype=np.int32), "original_id": np.arange(n_items).astype(str),
                          "title": [f"item {i}" for i in range(n_items)]})

    # Validation: one held-out item per user, drawn from the items the user has not seen.
    validation_items = _unseen_item_per_user(train, rng)
    truth = sp.csr_matrix((np.ones(n_users, np.float32), (np.arange(n_users), validation_items)),
                          shape=train.shape)
    validation = ValidationData(users=np.arange(n_users), history=train, truth=truth)

    heldout = np.arange(n_users - n_heldout, n_users)
    keep = np.ones(n_users, np.float32)
    keep[heldout] = 0.0
    strong_train = sp.csr_matrix(sp.diags(keep) @ train)
    strong_train.eliminate_zeros()
    images = conformance_images(n_items, n_groups, seed)
    side = TrainingData(interactions=train, item_features=features, images=images, items=items)
    return ConformanceData(train=train, other_train=other_train, side=side,
                           validation=validation, strong_train=strong_train, heldout_users=heldout)


@cache
def conformance_images(n_items: int, n_groups: int, seed: int) -> ItemImages:
    """Tiny 16 x 16 PNG images, one colour per planted group plus noise (the last item has
    none), written once per process to a temporary folder."""
    from PIL import Image

    rng = np.random.default_rng([seed, 7])
    root = Path(tempfile.mkdtemp(prefix="recaudit-conformance-images-"))
    palette = rng.integers(0, 256, size=(n_groups, 3))
    paths, hashes = [], []
    for item in range(n_items):
        if item == n_items - 1:
            paths.append(None)
            hashes.append(None)
            continue
        pixels = np.clip(palette[item % n_groups] + rng.integers(-20, 21, size=(16, 16, 3)), 0, 255).astype(np.uint8)
        name = f"{item}.png"
        Image.fromarray(pixels).save(root / name)
        paths.append(name)
        hashes.append(hashlib.sha256((root / name).read_bytes()).hexdigest())
    return ItemImages(root=root, paths=tuple(paths), sha256=tuple(hashes))


def _unseen_item_per_user(matrix: sp.csr_matrix, rng: np.random.Generator) -> np.ndarray:
    keys = rng.random(matrix.shape) + matrix.toarray()  # seen items sort last
    return np.argmin(keys, axis=1)


def conformance_factory(name: str) -> ModelFactory:
    """A factory of fresh models built from the class's ``conformance_params`` (default: none)."""
    from protocols.registry import get_model_class

    params = dict(getattr(get_model_class(name), "conformance_params", {}) or {})
    return lambda: make_model(name, params)


# ----- the checks ------------------------------------------------------------------------

def _fit(model: Recommender, data: ConformanceData, train: sp.csr_matrix | None = None) -> Recommender:
    return model.fit(data.training(train))


def _score_all(model: Recommender, data: ConformanceData) -> np.ndarray:
    return model.score(data.users, data.train)


def _learned_attributes(model: Recommender) -> list[str]:
    return sorted(a for a in vars(model) if a.endswith("_") and not a.startswith("__"))


def check_construction_and_params(factory: ModelFactory, data: ConformanceData) -> None:
    """Default construction works; get_params round-trips; __init__ learns nothing."""
    model = factory()
    cls = type(model)
    default = cls()
    assert set(default.get_params()) == set(cls.parameter_names()), \
        f"{cls.__name__}.get_params() must return exactly the constructor parameters"
    for instance in (default, model):
        rebuilt = cls(**instance.get_params())
        assert rebuilt.get_params() == instance.get_params(), \
            f"{cls.__name__}(**get_params()) changes parameters: {instance.get_params()} -> {rebuilt.get_params()}"
        learned = _learned_attributes(instance)
        assert not learned, f"{cls.__name__}.__init__ sets learned attributes {learned}; only fit may"
    unknown = sorted(set(cls.search_space) - set(cls.parameter_names()))
    assert not unknown, f"{cls.__name__}.search_space names non-parameters {unknown}"
    assert cls.name, f"{cls.__name__} is not registered (empty name)"


def check_score_before_fit_raises(factory: ModelFactory, data: ConformanceData) -> None:
    model = factory()
    try:
        model.score(data.users[:2], data.train[:2])
    except NotFittedError:
        return
    raise AssertionError(f"{type(model).__name__}.score before fit must raise NotFittedError")


def check_fit_returns_self(factory: ModelFactory, data: ConformanceData) -> None:
    model = factory()
    returned = _fit(model, data)
    assert returned is model, f"{type(model).__name__}.fit must return self, returned {returned!r}"


def check_fit_accepts_validation(factory: ModelFactory, data: ConformanceData) -> None:
    """fit with validation data (early stopping) still gives valid scores."""
    model = factory().fit(data.training(validation=data.validation))
    _assert_valid_scores(model, _score_all(model, data), (data.n_users, data.n_items))


def check_score_shape_dtype_finite(factory: ModelFactory, data: ConformanceData) -> None:
    model = _fit(factory(), data)
    _assert_valid_scores(model, _score_all(model, data), (data.n_users, data.n_items))


def _assert_valid_scores(model: Recommender, scores: np.ndarray, shape: tuple[int, int]) -> None:
    name = type(model).__name__
    assert isinstance(scores, np.ndarray), f"{name}.score must return a numpy array, got {type(scores)}"
    assert scores.shape == shape, f"{name}.score returned shape {scores.shape}, expected {shape}"
    assert scores.dtype == np.float32, f"{name}.score returned dtype {scores.dtype}, expected float32"
    assert np.isfinite(scores).all(), f"{name}.score returned {int((~np.isfinite(scores)).sum())} non-finite values"


def check_score_candidates_matches_score(factory: ModelFactory, data: ConformanceData) -> None:
    model = _fit(factory(), data)
    rng = np.random.default_rng(1)
    candidates = np.argsort(rng.random((data.n_users, data.n_items)), axis=1)[:, :7]
    gathered = np.take_along_axis(_score_all(model, data), candidates, axis=1)
    direct = model.score_candidates(data.users, data.train, candidates)
    assert direct.dtype == np.float32, f"score_candidates returned dtype {direct.dtype}, expected float32"
    np.testing.assert_allclose(direct, gathered, rtol=BATCH_RTOL, atol=BATCH_ATOL,
                               err_msg="score_candidates must equal gathering the same items from score")


def check_batch_invariance(factory: ModelFactory, data: ConformanceData) -> None:
    """Scoring users together, one by one, or in another order gives the same rows."""
    model = _fit(factory(), data)
    together = _score_all(model, data)
    one_by_one = np.vstack([model.score(data.users[u:u + 1], data.train[u:u + 1]) for u in data.users])
    np.testing.assert_allclose(one_by_one, together, rtol=BATCH_RTOL, atol=BATCH_ATOL,
                               err_msg="scoring a batch must equal scoring its users one by one")
    order = np.random.default_rng(2).permutation(data.n_users)
    shuffled = model.score(data.users[order], data.train[order])
    np.testing.assert_allclose(shuffled, together[order], rtol=BATCH_RTOL, atol=BATCH_ATOL,
                               err_msg="scores must not depend on the order of users in a batch")


def check_same_seed_same_scores(factory: ModelFactory, data: ConformanceData) -> None:
    """Two fresh instances with the same parameters (seed included) give identical scores."""
    first = _score_all(_fit(factory(), data), data)
    second = _score_all(_fit(factory(), data), data)
    np.testing.assert_array_equal(first, second, err_msg="same parameters and seed must give identical scores "
                                  "(draw randomness only from generators made from `seed` in fit)")


def check_refit_leaks_no_state(factory: ModelFactory, data: ConformanceData) -> None:
    """fit(A); fit(B); fit(A) scores like a fresh fit(A): a second fit replaces the first."""
    fresh = _score_all(_fit(factory(), data), data)
    model = _fit(factory(), data)
    _fit(model, data, data.other_train)
    _fit(model, data)
    np.testing.assert_allclose(_score_all(model, data), fresh, rtol=BATCH_RTOL, atol=BATCH_ATOL,
                               err_msg="refitting must forget earlier fits (state leaked between fits)")


def check_heldout_users(factory: ModelFactory, data: ConformanceData) -> None:
    """Users without training rows (strong generalisation) are folded in or clearly refused."""
    model = factory()
    name = type(model).__name__
    training = data.training(data.strong_train)
    model.fit(training)
    users, history = data.heldout_users, data.train[data.heldout_users]
    profile = TaskProfile.of(training, users, "the held-out users")
    if not model.requirements().user_embeddings:
        check_requirements(model, profile)
        _assert_valid_scores(model, model.score(users, history), (len(users), data.n_items))
        return
    for attempt, action in (("check_requirements", lambda: check_requirements(model, profile)),
                            ("score of held-out users", lambda: model.score(users, history))):
        try:
            action()
        except UnsupportedProtocolError as error:
            message = str(error)
            assert message and "\n" not in message, f"{name}: {attempt} must refuse with a one-line message"
            assert model.name in message, f"{name}: the refusal of {attempt} must name the model: {message!r}"
            continue
        raise AssertionError(f"{name} declares it needs user embeddings, so {attempt} must raise "
                             "UnsupportedProtocolError")


def check_pickle_round_trip(factory: ModelFactory, data: ConformanceData) -> None:
    model = _fit(factory(), data)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(_score_all(restored, data), _score_all(model, data),
                                  err_msg="a pickled and restored model must give the same scores")


def check_fit_leaves_params_unchanged(factory: ModelFactory, data: ConformanceData) -> None:
    """fit must not change a constructor parameter (scikit-learn's check_estimators_overwrite_params)."""
    model = factory()
    before = copy.deepcopy(model.get_params())
    _fit(model, data)
    after = model.get_params()
    changed = sorted(key for key in before if repr(before[key]) != repr(after[key]))
    assert not changed, f"{type(model).__name__}.fit changed constructor parameters {changed}; keep learned state " \
                        "in attributes ending with '_'"


def check_score_leaves_history_unchanged(factory: ModelFactory, data: ConformanceData) -> None:
    model = _fit(factory(), data)
    history = data.train[:10].copy()
    snapshot = (history.data.copy(), history.indices.copy(), history.indptr.copy())
    model.score(data.users[:10], history)
    for before, after, part in zip(snapshot, (history.data, history.indices, history.indptr),
                                   ("data", "indices", "indptr")):
        assert np.array_equal(before, after), f"{type(model).__name__}.score modified history.{part}; score " \
                                              "must not write into its input"


def check_works_without_side_data(factory: ModelFactory, data: ConformanceData) -> None:
    """A model that declares no item data runs on a bare interaction matrix."""
    model = factory()
    needs = model.requirements()
    if needs.item_features is not None or needs.item_images:
        return
    try:
        model.fit(data.train)
        scores = _score_all(model, data)
    except Exception as error:
        raise AssertionError(f"{type(model).__name__} declares no item data but fails without it "
                             f"({type(error).__name__}: {error}); declare what it needs in requirements()") from error
    _assert_valid_scores(model, scores, (data.n_users, data.n_items))


def check_refuses_without_requirements(factory: ModelFactory, data: ConformanceData) -> None:
    """A model that declares item data refuses a task without it, cleanly and before fitting."""
    model = factory()
    needs = model.requirements()
    if needs.item_features is None and not needs.item_images:
        return
    name = type(model).__name__
    for what, attempt in (("check_requirements", lambda: check_requirements(model, TaskProfile.of(
            TrainingData(data.train), data.users))), ("fit without item data", lambda: model.fit(data.train))):
        try:
            attempt()
        except UnsupportedProtocolError as error:
            message = str(error)
            assert message and "\n" not in message and "(needs " in message, \
                f"{name}: the refusal of {what} must be one line saying '(needs ...)': {message!r}"
            continue
        raise AssertionError(f"{name} declares {needs}, so {what} must raise UnsupportedProtocolError")


def check_global_random_state_untouched(factory: ModelFactory, data: ConformanceData) -> None:
    """fit and score draw only from generators made from ``seed``: the global NumPy and torch
    generators are neither read nor advanced."""
    import torch

    numpy_before = np.random.get_state()[1].copy()
    torch_before = torch.get_rng_state().clone()
    model = _fit(factory(), data)
    _score_all(model, data)
    assert np.array_equal(np.random.get_state()[1], numpy_before), \
        f"{type(model).__name__} used the global NumPy random state; draw from np.random.default_rng(seed)"
    assert torch.equal(torch.get_rng_state(), torch_before), \
        f"{type(model).__name__} used the global torch random state; draw from a torch.Generator seeded in fit"


CHECKS: dict[str, Callable[[ModelFactory, ConformanceData], None]] = {
    check.__name__.removeprefix("check_"): check
    for check in (
        check_construction_and_params,
        check_score_before_fit_raises,
        check_fit_returns_self,
        check_fit_accepts_validation,
        check_score_shape_dtype_finite,
        check_score_candidates_matches_score,
        check_batch_invariance,
        check_same_seed_same_scores,
        check_refit_leaks_no_state,
        check_heldout_users,
        check_pickle_round_trip,
        check_fit_leaves_params_unchanged,
        check_score_leaves_history_unchanged,
        check_works_without_side_data,
        check_refuses_without_requirements,
        check_global_random_state_untouched,
    )
}


def check_model(name: str, data: ConformanceData | None = None) -> None:
    """Run every check on the registered model ``name``; the first failure raises."""
    data = make_conformance_data() if data is None else data
    factory = conformance_factory(name)
    for check in CHECKS.values():
        check(factory, data)
