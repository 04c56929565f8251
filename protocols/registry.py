"""The model registry: ``@register("name")`` on a Recommender subclass makes it a model.

Every module in ``baselines/`` and ``neural/`` is imported on first lookup, so adding a
model is one new file there (plus a params entry to put it in the suite).
"""
from __future__ import annotations

import importlib
import pkgutil

from common.errors import RecAuditError, unknown_name_error
from protocols.contract import Recommender

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
