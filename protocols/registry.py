"""The model registry: ``@register("name")`` on a Recommender subclass makes it a model.

Every module in ``baselines/`` and ``neural/`` is imported on first lookup, so adding a
model is one new file there (plus a params entry to put it in the suite).
"""
from __future__ import annotations

import importlib
import inspect
import math
import numbers
import pkgutil

import numpy as np

from common.errors import RecAuditError, unknown_name_error
from protocols.contract import Recommender
from protocols.space import Categorical, Integer, Real

MODEL_PACKAGES = ("baselines", "neural")
_MODELS: dict[str, type[Recommender]] = {}
_loaded = False


def register(name: str):
    """Class decorator registering a model under ``name``; duplicate names are refused."""

    def decorate(cls: type[Recommender]) -> type[Recommender]:
        if not (isinstance(cls, type) and issubclass(cls, Recommender)):
            raise TypeError(f"@register({name!r}) needs a Recommender subclass, got {cls!r}")
        existing = _MODELS.get(name)
        if existing is not None and existing.__qualname__ != cls.__qualname__:
            raise ValueError(f"model name {name!r} is already registered by {existing.__module__}.{existing.__qualname__}")
        cls.name = name
        _MODELS[name] = cls
        return cls

    return decorate


def load_model_packages() -> None:
    global _loaded
    if _loaded:
        return
    for package_name in MODEL_PACKAGES:
        package = importlib.import_module(package_name)
        for module in pkgutil.iter_modules(package.__path__):
            if not module.name.startswith("_"):
                importlib.import_module(f"{package_name}.{module.name}")
    _loaded = True


def registered_models() -> dict[str, type[Recommender]]:
    load_model_packages()
    return dict(sorted(_MODELS.items()))


def get_model_class(name: str) -> type[Recommender]:
    models = registered_models()
    if name not in models:
        raise unknown_name_error("model", name, models)
    return models[name]


def make_model(name: str, params: dict | None = None) -> Recommender:
    """Build a registered model from a params entry (exactly its constructor keywords)."""
    cls = get_model_class(name)
    params = dict(params or {})
    known = set(cls.parameter_names())
    wrong = sorted(set(params) - known)
    if wrong:
        raise RecAuditError(f"model {name!r} has no parameter(s) {', '.join(map(repr, wrong))}; "
                            f"its parameters are: {', '.join(sorted(known)) or 'none'}")
    return cls(**params)


# The kinds of value a constructor keyword takes, as its default or search space declares it.
BOOLEAN, NUMBER, TEXT = "true or false (a YAML boolean, unquoted)", "a number", "a string"


def parameter_kind(cls: type[Recommender], name: str) -> str | None:
    """:data:`BOOLEAN`, :data:`NUMBER` or :data:`TEXT` when the default (else the search space)
    of keyword ``name`` says so; None when nothing does (a default of None, lists, ...)."""
    default = inspect.signature(cls.__init__).parameters[name].default
    if isinstance(default, (bool, np.bool_)):
        return BOOLEAN
    if isinstance(default, numbers.Real):
        return NUMBER
    if isinstance(default, str):
        return TEXT
    dimension = cls.search_space.get(name)
    if isinstance(dimension, (Integer, Real)):
        return NUMBER
    if isinstance(dimension, Categorical) and dimension.choices:
        kinds = {BOOLEAN if isinstance(c, (bool, np.bool_)) else NUMBER if isinstance(c, numbers.Real)
                 else TEXT if isinstance(c, str) else None for c in dimension.choices}
        return kinds.pop() if len(kinds) == 1 else None
    return None


def check_param_types(name: str, params: dict, where: str) -> None:
    """Refuse (one line naming ``where``, the keyword and the kind it takes) a keyword whose value
    is not of the kind its default or search space declares: ``normalize: "no"`` for a boolean,
    ``topk: "50"`` or ``shrink: true`` for a number, ``similarity: 3`` for a string. None passes
    (models use it for "not set"); a ``seed`` must be a non-negative integer."""
    cls = get_model_class(name)
    known = set(cls.parameter_names())
    for key, value in params.items():
        if key not in known or value is None:
            continue
        if key == "seed" and (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0):
            raise RecAuditError(f"{where}: seed={value!r} must be a non-negative integer; fix the seed")
        kind = parameter_kind(cls, key)
        is_bool = isinstance(value, (bool, np.bool_))
        fits = {BOOLEAN: is_bool,
                NUMBER: not is_bool and isinstance(value, numbers.Real) and math.isfinite(value),
                TEXT: isinstance(value, str), None: True}[kind]
        if not fits:
            raise RecAuditError(f"{where}: {key}={value!r} is not {kind}, which model {name!r} takes for {key}; "
                                "fix the value")
