"""The claims registry: what each paper reports for its own method and its baselines.

One YAML file per paper in ``reports/claims/`` (the file's stem, e.g. ``ncf``, names the paper
on the command line)::

    paper: NCF                          # display name
    citation: He et al. 2017. ...       # full reference
    notes: [...]                        # optional: protocol remarks shown in the audit
    defaults: {where: ..., provenance: [reprint]}   # optional: keys every claim inherits
    claims:
      - dataset: movielens-1m-ncf       # RecAudit registry name, or the paper's dataset name
        protocol: movielens-1m-ncf/leave-one-out   # "<dataset>/<split>": a params.yaml split key
        model: neumf                    # RecAudit model name (registered or not yet)
        paper_model: NeuMF with pre-training       # the paper's row label
        setting: 32 factors             # optional: what else distinguishes the row
        where: results table            # where the numbers were read
        provenance: [reprint]           # tags of paper-claims.md (paper, reprint, lecture) or rerun
        note: did not finish            # optional; required when a value is null
        not_comparable: ...             # optional: why the value cannot be compared with ours
        values: {hr@10: 0.726, ndcg@10: 0.445}     # metric label -> reported value (or null)

Provenance ``rerun`` marks a number that is not the paper's own but a later study's re-run of
the authors' code under a stated protocol (e.g. the TOIS 2021 re-runs of CDL and CVAE).
``not_comparable`` flags a number computed under a protocol we do not reproduce, e.g. an
evaluation that counted training items as hits: its text says why, and the audit shows the
claim as "not comparable" instead of judging the reproduction. ``note`` carries any other
remark on the row (e.g. that our item content differs from the paper's).

Each entry of ``values`` becomes one :class:`Claim`. Metric labels are RecAudit's
(``protocols.metrics``: ``name@k`` or ``auc``). Every file is validated on load; a
violation raises :class:`~common.errors.RecAuditError` with one line naming the file and
the field.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from common.errors import RecAuditError, unknown_name_error
from protocols.metrics import CUTOFF_FREE_METRICS, PER_USER_METRICS

CLAIMS_DIR = Path(__file__).parent / "claims"
PROVENANCE_TAGS = ("paper", "reprint", "lecture", "rerun")
FILE_KEYS = ("paper", "citation", "notes", "defaults", "claims")
CLAIM_KEYS = ("dataset", "protocol", "model", "paper_model", "setting", "where", "provenance", "note",
              "not_comparable", "values", "label")
REQUIRED_CLAIM_KEYS = ("dataset", "protocol", "model", "paper_model", "where", "provenance", "values")
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]*")
_CUTOFF_METRIC = re.compile(r"([a-z_]+)@([1-9][0-9]*)")


@dataclass(frozen=True)
class Claim:
    """One number a paper reports: ``metric`` of ``model`` on ``protocol`` is ``reported``
    (``None`` when the paper gives none, e.g. a run that did not finish; ``note`` says why).
    ``not_comparable`` is empty, or says why the number cannot be compared with a reproduction
    under ``protocol`` (e.g. the paper's evaluation counted training items as hits)."""

    paper: str  # the claims file's stem
    dataset: str
    protocol: str  # "<dataset>/<split>"
    model: str
    paper_model: str
    setting: str
    metric: str
    reported: float | None
    where: str
    provenance: tuple[str, ...]
    note: str
    not_comparable: str = ""
    # The params.yaml models: label whose results reproduce the claim (a label with the paper's
    # training setup, e.g. neumf-paper); empty: the model's own name.
    label: str = ""

    @property
    def result_label(self) -> str:
        return self.label or self.model

    @property
    def identity(self) -> tuple[str, str, str, str, str]:
        """What tells two claims of one paper apart."""
        return self.dataset, self.protocol, self.paper_model, self.setting, self.metric

    @property
    def tags(self) -> str:
        """Provenance as paper-claims.md writes it: ``[reprint], [lecture]``."""
        return ", ".join(f"[{tag}]" for tag in self.provenance)


@dataclass(frozen=True)
class PaperClaims:
    key: str  # the file's stem
    paper: str
    citation: str
    notes: tuple[str, ...]
    claims: tuple[Claim, ...]


def is_metric_label(label: str) -> bool:
    """``name@k`` for a per-user metric of ``protocols.metrics`` and ``k >= 1``, or ``auc``."""
    if label in CUTOFF_FREE_METRICS:
        return True
    found = _CUTOFF_METRIC.fullmatch(label)
    return bool(found) and found.group(1) in PER_USER_METRICS and found.group(1) not in CUTOFF_FREE_METRICS


def paper_keys(folder: Path | str = CLAIMS_DIR) -> list[str]:
    return sorted(path.stem for path in Path(folder).glob("*.yaml"))


def load_claims(folder: Path | str = CLAIMS_DIR, paper: str | None = None) -> list[PaperClaims]:
    """Every paper's claims in ``folder`` sorted by file name, or only those of ``paper`` (a
    file stem such as ``ncf``; the display name ``NCF`` works too, case-insensitively)."""
    folder = Path(folder)
    keys = paper_keys(folder)
    if not keys:
        raise RecAuditError(f"no claims files (*.yaml) in {folder}; pass --claims-dir pointing at reports/claims")
    if paper is not None:
        wanted = paper.lower()
        chosen = [key for key in keys if key.lower() == wanted]
        if not chosen:
            papers = [load_paper_claims(folder / f"{key}.yaml") for key in keys]
            chosen = [p.key for p in papers if p.paper.lower() == wanted]
            if not chosen:
                raise unknown_name_error("paper", paper, keys)
        keys = chosen
    return [load_paper_claims(folder / f"{key}.yaml") for key in keys]


def load_paper_claims(path: Path | str) -> PaperClaims:
    """Read and validate one claims file."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise RecAuditError(f"cannot read claims file {path} ({error.strerror or error}); check the path") from None
    except yaml.YAMLError as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise RecAuditError(f"{path}: not valid YAML ({first_line}); fix the file") from None
    if not isinstance(document, dict):
        raise _error(path, "(top level)", "must be a mapping with paper, citation and claims")
    _check_keys(path, "(top level)", document, FILE_KEYS, ("paper", "citation", "claims"))
    paper = _text(path, "paper", document["paper"])
    citation = _text(path, "citation", document["citation"])
    notes = document.get("notes") or []
    if not isinstance(notes, list):
        raise _error(path, "notes", "must be a list of strings")
    notes = tuple(_text(path, f"notes[{i}]", note) for i, note in enumerate(notes))
    defaults = document.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise _error(path, "defaults", "must be a mapping of claim keys")
    _check_keys(path, "defaults", defaults, tuple(k for k in CLAIM_KEYS if k != "values"), ())
    entries = document["claims"]
    if not isinstance(entries, list) or not entries:
        raise _error(path, "claims", "must be a non-empty list of claims")
    claims: list[Claim] = []
    seen: dict[tuple, str] = {}
    for index, entry in enumerate(entries):
        field = f"claims[{index}]"
        if not isinstance(entry, dict):
            raise _error(path, field, "must be a mapping")
        for claim in _claims_of_entry(path, field, path.stem, {**defaults, **entry}):
            where = f"{field}.values.{claim.metric}"
            if claim.identity in seen:
                raise _error(path, where, f"repeats {seen[claim.identity]} (same dataset, protocol, paper_model, "
                                          "setting and metric); remove one or tell them apart by setting")
            seen[claim.identity] = where
            claims.append(claim)
    return PaperClaims(path.stem, paper, citation, notes, tuple(claims))


def _claims_of_entry(path: Path, field: str, key: str, entry: dict) -> list[Claim]:
    _check_keys(path, field, entry, CLAIM_KEYS, REQUIRED_CLAIM_KEYS)
    dataset = _name(path, f"{field}.dataset", entry["dataset"])
    model = _name(path, f"{field}.model", entry["model"])
    result_label = _name(path, f"{field}.label", entry["label"]) if "label" in entry else ""
    protocol = _text(path, f"{field}.protocol", entry["protocol"])
    prefix, _, split = protocol.partition("/")
    if prefix != dataset or not NAME_PATTERN.fullmatch(split):
        raise _error(path, f"{field}.protocol", f"must be '{dataset}/<split name>' (a params.yaml split key of "
                                                f"the claim's dataset), got {protocol!r}")
    paper_model = _text(path, f"{field}.paper_model", entry["paper_model"])
    setting = _text(path, f"{field}.setting", entry.get("setting", ""), allow_empty=True)
    where = _text(path, f"{field}.where", entry["where"])
    note = _text(path, f"{field}.note", entry.get("note", ""), allow_empty=True)
    not_comparable = ""
    if "not_comparable" in entry:  # a flag is its reason: present means non-empty
        not_comparable = _text(path, f"{field}.not_comparable", entry["not_comparable"])
    provenance = entry["provenance"]
    if (not isinstance(provenance, list) or not provenance or len(set(map(str, provenance))) < len(provenance)
            or any(tag not in PROVENANCE_TAGS for tag in provenance)):
        raise _error(path, f"{field}.provenance", f"must be a non-empty list of distinct tags from "
                                                  f"{', '.join(PROVENANCE_TAGS)}, got {provenance!r}")
    values = entry["values"]
    if not isinstance(values, dict) or not values:
        raise _error(path, f"{field}.values", "must be a non-empty mapping of metric label to reported value")
    claims = []
    for label, value in values.items():
        value_field = f"{field}.values.{label}"
        if not isinstance(label, str) or not is_metric_label(label):
            raise _error(path, value_field, f"{label!r} is not a RecAudit metric label (name@k with name one of "
                                            f"{', '.join(m for m in PER_USER_METRICS if m != 'auc')}, or auc)")
        claims.append(Claim(key, dataset, protocol, model, paper_model, setting, label,
                            _reported(path, value_field, value, note), where, tuple(provenance), note,
                            not_comparable, result_label))
    return claims


def _reported(path: Path, field: str, value, note: str) -> float | None:
    if value is None:
        if not note:
            raise _error(path, field, "is null but the claim has no note saying why (e.g. note: did not finish)")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _error(path, field, f"must be a number or null, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise _error(path, field, f"must lie in [0, 1] like every ranking metric, got {value!r}")
    return value


def _check_keys(path: Path, field: str, mapping: dict, allowed: tuple[str, ...], required: tuple[str, ...]) -> None:
    unknown = sorted(str(key) for key in mapping if key not in allowed)
    if unknown:
        raise _error(path, field, f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")
    missing = [key for key in required if key not in mapping]
    if missing:
        raise _error(path, field, f"lacks required key(s) {', '.join(missing)}")


def _text(path: Path, field: str, value, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise _error(path, field, f"must be a{'' if allow_empty else ' non-empty'} string, got {value!r}")
    return " ".join(value.split())


def _name(path: Path, field: str, value) -> str:
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        raise _error(path, field, f"must be a lower-case name (letters, digits, '.', '_', '-'), got {value!r}")
    return value


def _error(path: Path, field: str, problem: str) -> RecAuditError:
    return RecAuditError(f"{path}: {field}: {problem}; fix the claims file")
