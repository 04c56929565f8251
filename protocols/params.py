"""Reading ``params.yaml``: the one place where experiment settings live.

A suite (``suite:``, usually an alias of one of ``suites:``) may carry its own ``tuning``,
``evaluation`` and ``reports`` sections: their keys override the top-level sections of the same
name, so a suite that reproduces a paper's protocol (target metric, cutoffs, budget) is one
edit away from the default. :func:`load_params` returns the settings with the active suite's
overrides applied; every command reads them through it. The file is checked first, whole,
against the settings schema (:mod:`protocols.settings`): unknown sections and keys, wrong
types, empty lists, unknown metrics and suites naming unknown splits or models are refused with
one line before any command does any work.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from common.errors import RecAuditError, unknown_name_error

DEFAULT_PARAMS = Path("params.yaml")
SUITE_SECTIONS = ("tuning", "evaluation", "reports")


def load_params(path: Path | str = DEFAULT_PARAMS) -> dict:
    """The settings of the params file at ``path``, checked (:func:`protocols.settings.check_settings`),
    with the active suite's overrides applied."""
    from protocols.settings import check_settings

    params = read_params(path)
    check_settings(params, path)
    return with_suite_overrides(params, path)


def read_params(path: Path | str = DEFAULT_PARAMS) -> dict:
    """The params file at ``path`` as YAML reads it: a mapping, not yet checked."""
    path = Path(path)
    if not path.exists():
        raise RecAuditError(f"no params file at {path}; run from the repository root or pass --params")
    try:
        params = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        first_line = str(error).splitlines()[0]
        raise RecAuditError(f"{path} is not valid YAML ({first_line}); fix the file") from None
    if not isinstance(params, dict):
        raise RecAuditError(f"{path} must hold a mapping at the top level; fix the file")
    return params


def with_suite_overrides(params: dict, where: Path | str = DEFAULT_PARAMS) -> dict:
    """``params`` with the active suite's ``tuning``/``evaluation``/``reports`` keys merged over
    the top-level sections (see the module docstring)."""
    suite = params.get("suite")
    if not isinstance(suite, dict):
        return params
    merged = dict(params)
    for section in SUITE_SECTIONS:
        override = suite.get(section)
        if override is None:
            continue
        if not isinstance(override, dict) or not isinstance(params.get(section) or {}, dict):
            raise RecAuditError(f"{where}: suite.{section} and {section} must be mappings")
        merged[section] = {**(params.get(section) or {}), **override}
    return merged


def split_entry(params: dict, split_key: str) -> dict:
    """The params entry of one split, e.g. ``splits['movielens-100k/holdout']``."""
    splits = params.get("splits") or {}
    if split_key not in splits:
        raise unknown_name_error("split", split_key, splits)
    entry = dict(splits[split_key])
    if "dataset" not in entry or "protocol" not in entry:
        raise RecAuditError(f"params entry splits[{split_key!r}] needs 'dataset' and 'protocol' keys")
    return entry
