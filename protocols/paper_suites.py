"""Paper suites whose data is a large download: kept aside in ``params.yaml`` until enabled.

A suite of the pipeline needs its datasets in ``datasets:`` and its splits in ``splits:``, and
the default ``dvc repro`` fetches every dataset listed there, so a suite over data that takes
gigabytes to download (VBPR's Amazon and Tradesy features, DVBPR's ``.npy`` files) cannot sit
in those sections by default. ``paper_suites:`` holds such suites whole::

    paper_suites:
      vbpr-paper:
        datasets: {amazon-women-vbpr: {}, ...}     # added to datasets:
        splits: {amazon-women-vbpr/vbpr-all-items: {...}, ...}   # added to splits:
        models: {...}                              # added to models: (optional)
        suite: {splits: [...], models: [...], tuning: {...}, evaluation: {...}, reports: {...}}

:func:`enable_suite` (``python -m protocols enable-suite NAME``) copies the first three into
their sections, adds the suite under ``suites:`` and selects it with ``suite:``, editing the
file in place with its comments kept. An entry that already exists with other settings is a
conflict and nothing is written.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from common.atomic import atomic_file
from common.errors import RecAuditError, unknown_name_error

SECTIONS = ("datasets", "splits", "models")


def paper_suites(params: dict) -> dict:
    suites = params.get("paper_suites") or {}
    if not isinstance(suites, dict):
        raise RecAuditError("params.yaml: paper_suites must be a mapping of suite name -> suite; fix the file")
    return suites


def check_paper_suite(name: str, suite: dict) -> None:
    """One line for a paper suite that does not hold together: every split and model its
    ``suite`` names is defined (in the suite or, for models, in ``models:``), every split's
    dataset is in the suite's ``datasets``."""
    if not isinstance(suite, dict) or not isinstance(suite.get("suite"), dict):
        raise RecAuditError(f"paper suite {name!r} needs a `suite:` mapping (splits, models, ...); fix params.yaml")
    for section in SECTIONS:
        if not isinstance(suite.get(section) or {}, dict):
            raise RecAuditError(f"paper suite {name!r}: {section} must be a mapping; fix params.yaml")
    datasets = suite.get("datasets") or {}
    splits = suite.get("splits") or {}
    for key in suite["suite"].get("splits") or []:
        if key not in splits:
            raise RecAuditError(f"paper suite {name!r} runs split {key!r} but does not define it under its splits")
        dataset = (splits[key] or {}).get("dataset")
        if dataset not in datasets:
            raise RecAuditError(f"paper suite {name!r}: split {key!r} reads dataset {dataset!r}, which is not "
                                "under the suite's datasets")


def enable_suite(path: Path | str, name: str) -> list[str]:
    """Copy paper suite ``name`` into the pipeline's sections of the params file at ``path`` and
    select it. Returns what was added, one line each.

    The file is edited as text so that everything else stays byte for byte (comments, line
    breaks, anchors): each new entry becomes one line at the end of its section, the suite a
    block under ``suites:`` with an anchor, and the ``suite:`` line its alias. The result is
    parsed back and compared with the intended content before it replaces the file."""
    path = Path(path)
    text = path.read_text()
    params = yaml.safe_load(text) or {}
    suites = paper_suites(params)
    if name not in suites:
        raise unknown_name_error("paper suite", name, sorted(suites))
    suite = suites[name]
    check_paper_suite(name, suite)
    anchor = name.replace("-", "_")
    expected = {section: dict(params.get(section) or {}) for section in (*SECTIONS, "suites")}
    added: list[str] = []
    lines = text.splitlines(keepends=True)
    for section in SECTIONS:
        new_lines = []
        for key, value in (suite.get(section) or {}).items():
            if key in expected[section]:
                if expected[section][key] != value:
                    raise RecAuditError(f"paper suite {name!r}: {section}.{key} already exists with other settings; "
                                        "rename one of them or make them equal, then enable the suite again")
                continue
            expected[section][key] = value
            new_lines.append(f"  {_flow(key)}: {_flow(value or {})}\n")
            added.append(f"{section}: {key}")
        lines = _append_to_section(lines, section, new_lines)
    body = suite["suite"]
    if name in expected["suites"]:
        if expected["suites"][name] != body:
            raise RecAuditError(f"suites.{name} already exists with other settings; remove it or rename the paper suite")
    else:
        block = [f"  {name}: &{anchor}\n"] + [f"    {key}: {_flow(value)}\n" for key, value in body.items()]
        lines = _append_to_section(lines, "suites", block)
        expected["suites"][name] = body
        added.append(f"suites: {name}")
    if not any(line.startswith(f"  {name}: &{anchor}") for line in lines):
        raise RecAuditError(f"suites.{name} exists without the anchor &{anchor}; add it (`{name}: &{anchor}`)")
    selected = [i for i, line in enumerate(lines) if line.startswith("suite:")]
    if len(selected) != 1:
        raise RecAuditError(f"{path} needs exactly one top-level `suite:` line to select the suite; fix the file")
    lines[selected[0]] = f"suite: *{anchor}\n"
    added.append(f"suite: *{anchor}")
    result = "".join(lines)
    reloaded = yaml.safe_load(result)
    if any(reloaded.get(section) != expected[section] for section in expected) or reloaded.get("suite") != body:
        raise RecAuditError(f"enabling {name!r} would not give the intended {path}; edit the file by hand")
    with atomic_file(path, "w") as handle:
        handle.write(result)
    return added


def _flow(value) -> str:
    """One-line YAML (flow style) of a key or value."""
    return yaml.safe_dump(value, default_flow_style=True, width=float("inf"), sort_keys=False).strip() \
        .removesuffix("\n...").strip()


def _append_to_section(lines: list[str], section: str, new_lines: list[str]) -> list[str]:
    """``lines`` with ``new_lines`` after the last entry of the top-level mapping ``section``
    (before the comments and blank lines that lead to the next top-level key)."""
    if not new_lines:
        return lines
    starts = [i for i, line in enumerate(lines) if line.rstrip("\n").rstrip() == f"{section}:"]
    if len(starts) != 1:
        raise RecAuditError(f"params.yaml needs one block `{section}:` at the top level to add entries to; fix the file")
    end = starts[0] + 1
    last_entry = starts[0]
    while end < len(lines):
        line = lines[end]
        if line.strip() and not line.startswith((" ", "#")):
            break  # the next top-level key
        if line.strip() and not line.lstrip().startswith("#"):
            last_entry = end
        end += 1
    return lines[:last_entry + 1] + new_lines + lines[last_entry + 1:]
