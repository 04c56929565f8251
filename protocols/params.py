"""Reading ``params.yaml``: the one place where experiment settings live."""
from __future__ import annotations

from pathlib import Path

import yaml

from datasets.errors import RecAuditError, unknown_name_error

DEFAULT_PARAMS = Path("params.yaml")


def load_params(path: Path | str = DEFAULT_PARAMS) -> dict:
    path = Path(path)
    if not path.exists():
        raise RecAuditError(f"no params file at {path}; run from the repository root or pass --params")
    try:
        params = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        first_line = str(error).splitlines()[0]
        raise RecAuditError(f"{path} is not valid YAML ({first_line}); fix the file") from None
    if not isinstance(params, dict):
        raise RecAuditError(f"{path} must hold a mapping at the top level")
    return params


def split_entry(params: dict, split_key: str) -> dict:
    """The params entry of one split, e.g. ``splits['movielens-100k/holdout']``."""
    splits = params.get("splits") or {}
    if split_key not in splits:
        raise unknown_name_error("split", split_key, splits)
    entry = dict(splits[split_key])
    if "dataset" not in entry or "protocol" not in entry:
        raise RecAuditError(f"params entry splits[{split_key!r}] needs 'dataset' and 'protocol' keys")
    return entry
