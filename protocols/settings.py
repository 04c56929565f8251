"""The settings schema of ``params.yaml``, checked once before any command does any work.

:func:`protocols.params.load_params` calls :func:`check_settings` on every file it reads, so
every command (``python -m protocols ...``, ``python -m reports ...``, every DVC stage) refuses
a file that does not hold together before it reads a split or fits a model. Refused, each with
one line naming the file, the key path and the fix (unknown names list the valid ones):

- an unknown top-level section (``evalution:``) or an unknown key inside a closed section:
  ``tuning``, ``tuning.budgets.NAME``, ``evaluation``, ``reports``, ``audit``, the entries of
  ``suites:``/``suite:``, ``paper_suites:`` and ``features:``, the options of ``datasets:``;
- a value of the wrong type: integers, numbers, booleans, strings, lists and mappings are not
  interchangeable (``"no"`` is not a boolean, ``1.0`` not an integer, ``true`` not a number);
- an empty list where one is needed: ``evaluation.cutoffs``, ``evaluation.metrics``,
  ``reports.metrics``, a suite's ``splits`` and ``models``;
- an unknown metric anywhere: ``tuning.metric`` (a validation metric, ``ndcg@10``),
  ``evaluation.metrics`` (names, ``ndcg``), ``reports.metrics`` (labels, ``ndcg@10``, ``auc``),
  and a report column that the evaluation does not compute (its metric or its cutoff missing);
- a suite naming a split that is not a key of ``splits:`` (a paper suite: of its own
  ``splits``) or a model that is neither a ``models:`` label nor a registered model; an
  unknown tuning budget, or ``budget`` and ``trials`` together;
- a ``tuning.storage`` that is not an SQLAlchemy URL, or one that holds a password;
- an unknown dataset, feature extractor, split protocol or registered model (``model:`` of a
  ``models:`` entry, or a label without ``model:`` that is no registered model).

Left to their own checks: the constructor keywords of a ``models:`` entry (the model class
checks them against its defaults, :func:`protocols.registry.check_param_types`) and the
protocol parameters of a ``splits:`` entry (the protocol registry checks them when the split
is computed, :func:`protocols.splitting.base.check_params`).

A suite's ``tuning``/``evaluation``/``reports`` keys override the top-level sections (see
:mod:`protocols.params`); every suite (the selected one, each of ``suites:`` and each paper
suite) is checked with its overrides applied, so switching suites cannot uncover an error.

:func:`check_settings` returns a frozen :class:`Settings`: the selected suite's effective
settings, typed. Callers may keep reading the dict that ``load_params`` returns.
"""
from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from common.errors import RecAuditError, unknown_name_error
from protocols.params import SUITE_SECTIONS  # tuning, evaluation, reports

TOP_LEVEL = ("seed", "datasets", "features", "splits", "models", "suites", "suite", "paper_suites", "tuning",
             "evaluation", "reports", "audit")
SUITE_KEYS = ("splits", "models", *SUITE_SECTIONS)
PAPER_SUITE_KEYS = ("datasets", "splits", "models", "suite")
TUNING_KEYS = ("metric", "budget", "budgets", "trials", "startup_trials", "storage")
BUDGET_KEYS = ("trials", "startup_trials")
EVALUATION_KEYS = ("seeds", "cutoffs", "metrics", "batch_size")
REPORTS_KEYS = ("metrics", "alpha", "n_resamples")
AUDIT_KEYS = ("tolerance",)
FEATURE_KEYS = ("dataset", "extractor")


# ----- the typed result ---------------------------------------------------------------------------
@dataclass(frozen=True)
class SuiteSection:
    splits: tuple[str, ...]
    models: tuple[str, ...]


@dataclass(frozen=True)
class TuningSection:
    """``tuning`` as written (None: unset, the tuner's default applies)."""

    metric: str | None
    budget: str | None
    budgets: Mapping[str, Mapping[str, int]]
    trials: int | None
    startup_trials: int | None
    storage: str | None = None  # the Optuna storage URL the studies live in (None: a SQLite file per study)


@dataclass(frozen=True)
class EvaluationSection:
    seeds: int | None
    cutoffs: tuple[int, ...] | None
    metrics: tuple[str, ...] | None
    batch_size: int | None


@dataclass(frozen=True)
class ReportsSection:
    metrics: tuple[str, ...] | None  # lower-case labels
    alpha: float | None
    n_resamples: int | None


@dataclass(frozen=True)
class Settings:
    """The checked settings of one params file, with the selected suite's overrides applied.
    Unset values are None: the command's own default applies."""

    path: str
    seed: int | None
    suite: SuiteSection | None
    tuning: TuningSection
    evaluation: EvaluationSection
    reports: ReportsSection
    audit_tolerance: float | None
    splits: Mapping[str, Mapping[str, Any]]
    models: Mapping[str, Mapping[str, Any]]


# ----- value kinds ----------------------------------------------------------------------------
def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _kind(value) -> str:
    """How YAML read ``value``, for an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


class _Checker:
    """Checks one file; every error names ``where`` (the file) and the key path."""

    def __init__(self, where: Path | str):
        self.where = str(where)

    def error(self, path: str, problem: str, fix: str) -> RecAuditError:
        return RecAuditError(f"{self.where}: {path} {problem}; {fix}")

    def wrong(self, path: str, value, wanted: str, fix: str = "fix the value") -> RecAuditError:
        return self.error(path, f"must be {wanted}, got {value!r} ({_kind(value)})", fix)

    def unknown(self, path: str, kind: str, name, known: Iterable[str], fix: str = "fix the name") -> RecAuditError:
        known = sorted(known)
        guess = difflib.get_close_matches(str(name), known, n=1, cutoff=0.6)
        hint = f" (did you mean {guess[0]!r}?)" if guess else ""
        return RecAuditError(f"{self.where}: {path}: {unknown_name_error(kind, name, known)}{hint}; {fix}")

    # -- shapes
    def mapping(self, path: str, value, what: str, null_ok: bool = True) -> dict:
        if value is None and null_ok:
            return {}
        if not isinstance(value, dict):
            raise self.wrong(path, value, f"a mapping of {what}")
        return value

    def keys(self, path: str, section: dict, known: Iterable[str], kind: str) -> None:
        for key in section:
            if key not in known:
                where = f"{path}.{key}" if path else str(key)
                raise self.unknown(where, kind, key, known, "fix or remove the key")

    def integer(self, path: str, value, low: int) -> int:
        if not is_int(value) or value < low:
            wanted = "a positive integer" if low == 1 else f"an integer >= {low}"
            raise self.wrong(path, value, wanted)
        return value

    def real(self, path: str, value, low: float, high: float, *, low_open: bool, example: float) -> float:
        inside = is_real(value) and (low < value if low_open else low <= value) and value < high
        if not inside:
            interval = f"{'(' if low_open else '['}{low:g}, {high:g})"
            raise self.wrong(path, value, f"a number in {interval}", f"write e.g. {example}")
        return float(value)

    def text(self, path: str, value, what: str = "a name") -> str:
        if not isinstance(value, str) or not value:
            raise self.wrong(path, value, what)
        return value

    def names(self, path: str, value, what: str, example: str) -> list[str]:
        """A non-empty list of distinct non-empty strings."""
        if not isinstance(value, list):
            raise self.wrong(path, value, f"a non-empty list of {what}", f"write e.g. {example}")
        if not value:
            raise self.error(path, f"is an empty list; it needs at least one entry ({what})", f"write e.g. {example}")
        seen = set()
        for i, item in enumerate(value):
            self.text(f"{path}[{i}]", item, f"one of {what} (a string)")
            if item in seen:
                raise self.error(f"{path}[{i}]", f"lists {item!r} twice", "remove the repetition")
            seen.add(item)
        return value


# ----- the registries the file names things from --------------------------------------------------
def _registered_models() -> list[str]:
    from protocols.registry import registered_models

    return list(registered_models())


def _registered_datasets() -> list[str]:
    from datasets.registry import registered_datasets

    return list(registered_datasets())


def _registered_protocols() -> list[str]:
    from protocols.splits import PROTOCOLS  # importing protocols.splits registers every protocol

    return list(PROTOCOLS)


def _registered_extractors() -> list[str]:
    from datasets.extractors import extractor_names

    return extractor_names()


def _default_cutoffs() -> tuple[int, ...]:
    from protocols.runner import DEFAULT_CUTOFFS

    return tuple(DEFAULT_CUTOFFS)


# ----- metric names -------------------------------------------------------------------------------
def parse_report_label(label: str) -> tuple[str, int | None]:
    """``"ndcg@10"`` -> ``("ndcg", 10)``, ``"auc"`` -> ``("auc", None)`` (case-insensitive, as
    the reports read them). A label the evaluation never writes raises ValueError saying why."""
    from protocols.metrics import ALL_METRICS, CUTOFF_FREE_METRICS, metric_label

    name, sep, cutoff = label.strip().lower().partition("@")
    if name not in ALL_METRICS:
        raise ValueError(str(unknown_name_error("metric", name, ALL_METRICS)))
    if name in CUTOFF_FREE_METRICS:
        if sep:
            raise ValueError(f"{name} takes no cutoff")
        return name, None
    if not cutoff.isdigit() or int(cutoff) < 1:
        raise ValueError(f"{name} needs a positive cutoff")
    k = int(cutoff)
    if metric_label(name, k) != label.strip().lower():
        raise ValueError(f"the evaluation writes it as {metric_label(name, k)!r}")
    return name, k


class _Check(_Checker):
    def __init__(self, where: Path | str, params: dict):
        super().__init__(where)
        self.params = params
        self._models: list[str] | None = None

    @property
    def registered_models(self) -> list[str]:
        if self._models is None:
            self._models = _registered_models()
        return self._models

    # -- metrics
    def tuning_metric(self, path: str, value) -> str:
        from protocols.early_stopping import CUTOFF_FREE, TUNABLE_METRICS

        label = self.text(path, value, "a validation metric label such as 'ndcg@10'")
        name, sep, cutoff = label.strip().lower().partition("@")
        if name not in TUNABLE_METRICS:
            raise self.unknown(f"{path} {label!r}", "validation metric", name, TUNABLE_METRICS,
                               "write a label such as 'ndcg@10' or 'auc'")
        if name in CUTOFF_FREE and sep:
            raise self.error(path, f"{label!r}: validation metric {name!r} takes no cutoff", f"write {name!r}")
        if name not in CUTOFF_FREE and (not cutoff.isdigit() or int(cutoff) < 1):
            raise self.error(path, f"{label!r} needs a positive cutoff", f"write e.g. '{name}@10'")
        return label

    def evaluation_metrics(self, path: str, value) -> list[str]:
        from protocols.metrics import ALL_METRICS

        names = self.names(path, value, "metric names", "[ndcg, recall]")
        for i, name in enumerate(names):
            if name not in ALL_METRICS:
                base = name.partition("@")[0]
                if base in ALL_METRICS:
                    raise self.error(f"{path}[{i}]", f"{name!r} is a label, not a metric name",
                                     f"write {base!r} (the cutoffs come from evaluation.cutoffs)")
                raise self.unknown(f"{path}[{i}] {name!r}", "metric", name, ALL_METRICS)
        return names

    def report_metrics(self, path: str, value) -> list[str]:
        from protocols.metrics import ALL_METRICS

        if not isinstance(value, list):
            raise self.wrong(path, value, "a list of labels such as ndcg@10", "write e.g. [ndcg@10, recall@20]")
        labels = self.names(path, value, "metric labels", "[ndcg@10, recall@20]")
        for i, label in enumerate(labels):
            try:
                parse_report_label(label)
            except ValueError as problem:
                name = label.strip().lower().partition("@")[0]
                if name not in ALL_METRICS:
                    raise self.unknown(f"{path}[{i}] {label!r}", "metric", name, ALL_METRICS,
                                       "write a label such as 'ndcg@10' or 'auc'") from None
                canonical = "'auc'" if name == "auc" else f"e.g. '{name}@10'"
                raise self.error(f"{path}[{i}]", f"{label!r} is not a metric label ({problem})",
                                 f"write {canonical}") from None
        return [label.lower() for label in labels]

    # -- closed sections
    def tuning(self, path: str, value) -> dict:
        section = self.mapping(path, value, "tuning settings (metric, budget, budgets)")
        self.keys(path, section, TUNING_KEYS, "tuning key")
        if "metric" in section:
            self.tuning_metric(f"{path}.metric", section["metric"])
        if "budget" in section:
            self.text(f"{path}.budget", section["budget"], "the name of one of tuning.budgets")
        for key in ("trials", "startup_trials"):
            if key in section:
                self.integer(f"{path}.{key}", section[key], 1)
        if section.get("storage") is not None:
            self.storage_url(f"{path}.storage", section["storage"])
        if "budgets" in section:
            budgets = self.mapping(f"{path}.budgets", section["budgets"], "budget name -> {trials, startup_trials}",
                                   null_ok=False)
            for name, entry in budgets.items():
                where = f"{path}.budgets.{name}"
                if not isinstance(entry, dict) or "trials" not in entry:
                    raise self.wrong(where, entry, "a mapping with 'trials' (and optionally 'startup_trials')",
                                     "write e.g. {trials: 5, startup_trials: 2}")
                self.keys(where, entry, BUDGET_KEYS, "budget key")
                for key in BUDGET_KEYS:
                    if key in entry:
                        self.integer(f"{where}.{key}", entry[key], 1)
        return section

    def storage_url(self, path: str, value) -> str:
        """An SQLAlchemy URL without a password: params.yaml is committed and DVC copies the
        ``tuning`` section into dvc.lock."""
        import sqlalchemy

        example = "write e.g. postgresql://recaudit@db-host/recaudit, or null for a SQLite file per study"
        url = self.text(path, value, "an Optuna storage URL")
        try:
            parsed = sqlalchemy.engine.make_url(url)
        except sqlalchemy.exc.ArgumentError:
            raise self.wrong(path, value, "an SQLAlchemy database URL", example) from None
        if parsed.password is not None:
            raise self.error(path, "holds a password, and params.yaml is committed and copied into dvc.lock",
                             "drop it from the URL and give it in ~/.pgpass or PGPASSWORD")
        return url

    def evaluation(self, path: str, value) -> dict:
        section = self.mapping(path, value, "evaluation settings (seeds, cutoffs, metrics, batch_size)")
        self.keys(path, section, EVALUATION_KEYS, "evaluation key")
        if "seeds" in section:
            self.integer(f"{path}.seeds", section["seeds"], 1)
        if "cutoffs" in section:
            cutoffs = section["cutoffs"]
            if not isinstance(cutoffs, list):
                raise self.wrong(f"{path}.cutoffs", cutoffs, "a non-empty list of positive integers",
                                 "write e.g. [10, 20]")
            if not cutoffs:
                raise self.error(f"{path}.cutoffs", "is an empty list; it needs at least one cutoff",
                                 "write e.g. [10, 20]")
            for i, k in enumerate(cutoffs):
                self.integer(f"{path}.cutoffs[{i}]", k, 1)
        if "metrics" in section:
            self.evaluation_metrics(f"{path}.metrics", section["metrics"])
        if section.get("batch_size") is not None:
            batch = section["batch_size"]
            if not is_int(batch) or batch < 1:
                raise self.wrong(f"{path}.batch_size", batch, "a positive integer or null")
        return section

    def reports(self, path: str, value) -> dict:
        section = self.mapping(path, value, "report settings (metrics, alpha, n_resamples)")
        self.keys(path, section, REPORTS_KEYS, "reports key")
        if "metrics" in section:
            self.report_metrics(f"{path}.metrics", section["metrics"])
        if "alpha" in section:
            alpha = section["alpha"]
            if not is_real(alpha) or not 0 < alpha < 1:
                raise self.error(f"{path}.alpha", f"must lie strictly between 0 and 1, got {alpha!r} ({_kind(alpha)})",
                                 "write e.g. 0.05")
        if "n_resamples" in section:
            self.integer(f"{path}.n_resamples", section["n_resamples"], 1)
        return section

    def audit(self, path: str, value) -> None:
        section = self.mapping(path, value, "audit settings (tolerance)")
        self.keys(path, section, AUDIT_KEYS, "audit key")
        if "tolerance" in section:
            self.real(f"{path}.tolerance", section["tolerance"], 0, 1, low_open=False, example=0.05)

    # -- named things
    def datasets(self, path: str, value) -> dict:
        from datasets.registry import K_CORE_MODES, PREPROCESSING_OPTIONS

        section = self.mapping(path, value, "dataset name -> preprocessing options")
        known = None
        for name, options in section.items():
            if known is None:
                known = _registered_datasets()
            if name not in known:
                raise self.unknown(f"{path}.{name}", "dataset", name, known,
                                   "use a name from `python -m datasets list`")
            options = self.mapping(f"{path}.{name}", options, "preprocessing options")
            self.keys(f"{path}.{name}", options, PREPROCESSING_OPTIONS, "preprocessing option")
            for key, option in options.items():
                where = f"{path}.{name}.{key}"
                if key == "rating_threshold":
                    if option is not None and not is_real(option):
                        raise self.wrong(where, option, "a number or null")
                elif key == "deduplicate":
                    if not isinstance(option, bool):
                        raise self.wrong(where, option, "true or false")
                elif key == "k_core":
                    if option not in K_CORE_MODES:
                        raise self.wrong(where, option, " or ".join(map(repr, K_CORE_MODES)))
                else:
                    self.integer(where, option, 0)
        return section

    def features(self, path: str, value) -> None:
        section = self.mapping(path, value, "'<dataset>/<extractor>' -> {dataset, extractor}")
        for key, entry in section.items():
            where = f"{path}.{key}"
            entry = self.mapping(where, entry, "dataset and extractor", null_ok=False)
            self.keys(where, entry, FEATURE_KEYS, "features key")
            for field in FEATURE_KEYS:
                if field not in entry:
                    raise self.error(where, f"needs {field!r}",
                                     "write e.g. {dataset: movielens-100k, extractor: efficientnet-lite0}")
            self.text(f"{where}.dataset", entry["dataset"], "a dataset name")
            extractor = self.text(f"{where}.extractor", entry["extractor"], "an extractor name")
            known = _registered_extractors()
            if extractor not in known:
                raise self.unknown(f"{where}.extractor", "extractor", extractor, known)

    def splits(self, path: str, value) -> dict:
        section = self.mapping(path, value, "split key -> {dataset, protocol, ...}")
        protocols = None
        for key, entry in section.items():
            where = f"{path}.{key}"
            parts = str(key).split("/")
            if not isinstance(key, str) or len(parts) != 2 or not all(parts):
                raise self.error(where, "is not a split key", "name it '<dataset>/<name>', e.g. movielens-100k/holdout")
            entry = self.mapping(where, entry, "dataset, protocol and the protocol's parameters", null_ok=False)
            for field in ("dataset", "protocol"):
                if field not in entry:
                    raise self.error(where, f"needs {field!r}",
                                     "write e.g. {dataset: movielens-100k, protocol: holdout, ...}")
            self.text(f"{where}.dataset", entry["dataset"], "a dataset name")
            protocol = self.text(f"{where}.protocol", entry["protocol"], "a protocol name")
            if protocols is None:
                protocols = _registered_protocols()
            if protocol not in protocols:
                raise self.unknown(f"{where}.protocol", "protocol", protocol, protocols)
            if "seed" in entry:
                self.integer(f"{where}.seed", entry["seed"], 0)
        return section

    def models(self, path: str, value) -> dict:
        section = self.mapping(path, value, "model label -> constructor keywords")
        for label, entry in section.items():
            where = f"{path}.{label}"
            if not isinstance(label, str) or not label:
                raise self.wrong(where, label, "a model label (a string)")
            entry = self.mapping(where, entry, "constructor keywords (and optionally model: NAME)")
            if "model" in entry:
                model = self.text(f"{where}.model", entry["model"], "the name of a registered model")
                if model not in self.registered_models:
                    raise self.unknown(f"{where}.model", "model", model, self.registered_models,
                                       "`python -m protocols models` lists them")
            elif label not in self.registered_models:
                raise self.unknown(where, "model", label, self.registered_models,
                                   "add `model: NAME` to run a registered model under this label, or fix the label")
        return section

    # -- suites
    def suite(self, path: str, value, splits: Mapping, labels: Iterable[str], split_home: str = "splits") -> dict:
        suite = self.mapping(path, value, "splits, models, tuning, evaluation, reports", null_ok=False)
        self.keys(path, suite, SUITE_KEYS, "suite key")
        for field in ("splits", "models"):
            if field not in suite:
                raise self.error(path, f"needs {field!r}", f"list the {field} it runs")
        for i, key in enumerate(self.names(f"{path}.splits", suite["splits"], "split keys",
                                           "[movielens-100k/holdout]")):
            if key not in splits:
                raise self.unknown(f"{path}.splits[{i}]", "split", key, splits,
                                   f"define it under {split_home} or fix the key")
        known_models = set(labels) | set(self.registered_models)
        for i, label in enumerate(self.names(f"{path}.models", suite["models"], "model labels", "[pop, ease]")):
            if label not in known_models:
                raise self.unknown(f"{path}.models[{i}]", "model", label, known_models,
                                   "add it under models: or use a registered model")
        for section in SUITE_SECTIONS:
            getattr(self, section)(f"{path}.{section}", suite.get(section))
        return suite

    def effective(self, path: str, suite: dict | None) -> dict:
        """The tuning/evaluation/reports sections with ``suite``'s overrides applied, checked
        across keys; ``path`` is where the suite sits (``suite`` None: the top level alone)."""
        merged = {}
        origin = {}
        for section in SUITE_SECTIONS:
            top = self.params.get(section) or {}
            override = (suite or {}).get(section) or {}
            merged[section] = {**top, **override}
            origin[section] = {key: (f"{path}.{section}" if key in override else section) for key in merged[section]}
        tuning, evaluation, reports = (merged[s] for s in SUITE_SECTIONS)
        where = origin["tuning"]
        if "budget" in tuning and "trials" in tuning:
            raise self.error(f"{where['budget']}.budget and {where['trials']}.trials", "are both set",
                             "keep one of them (budget names an entry of tuning.budgets)")
        if "budget" in tuning:
            budgets = tuning.get("budgets") or {}
            if tuning["budget"] not in budgets:
                raise self.unknown(f"{where['budget']}.budget", "tuning budget", tuning["budget"], budgets,
                                   "name an entry of tuning.budgets")
        if "metrics" in reports:
            from protocols.metrics import ALL_METRICS

            metrics = evaluation.get("metrics") or list(ALL_METRICS)
            cutoffs = evaluation.get("cutoffs") or list(_default_cutoffs())
            metrics_at = f"{origin['evaluation']['metrics']}.metrics" if "metrics" in evaluation else \
                "evaluation.metrics (unset: every metric)"
            cutoffs_at = f"{origin['evaluation']['cutoffs']}.cutoffs" if "cutoffs" in evaluation else \
                f"evaluation.cutoffs (unset: {list(_default_cutoffs())})"
            for i, label in enumerate(reports["metrics"]):
                name, k = parse_report_label(label)
                at = f"{origin['reports']['metrics']}.metrics[{i}]"
                if name not in metrics:
                    raise self.error(at, f"{label!r} is a column the evaluation never computes: {metrics_at} "
                                     f"has no {name!r}", f"add {name!r} to it or drop the column")
                if k is not None and k not in cutoffs:
                    raise self.error(at, f"{label!r} is a column the evaluation never computes: {cutoffs_at} "
                                     f"has no {k}", f"add {k} to it or use one of {sorted(set(cutoffs))}")
        return merged

    def paper_suite(self, path: str, value, top_models: dict) -> None:
        entry = self.mapping(path, value, "datasets, splits, models and suite", null_ok=False)
        self.keys(path, entry, PAPER_SUITE_KEYS, "paper suite key")
        if "suite" not in entry:
            raise self.error(path, "needs 'suite'", "add `suite: {splits: [...], models: [...]}`")
        datasets = self.datasets(f"{path}.datasets", entry.get("datasets"))
        splits = self.splits(f"{path}.splits", entry.get("splits"))
        for key, split in splits.items():
            if split["dataset"] not in datasets:
                raise self.error(f"{path}.splits.{key}.dataset", f"{split['dataset']!r} is not under {path}.datasets",
                                 "add it there")
        models = self.models(f"{path}.models", entry.get("models"))
        self.suite(f"{path}.suite", entry["suite"], splits, {*models, *top_models}, f"{path}.splits")
        self.effective(f"{path}.suite", entry["suite"])


def check_settings(params: dict, where: Path | str = "params.yaml") -> Settings:
    """Check ``params`` (a params file as YAML read it, before any suite override) against the
    schema (module docstring); the first problem raises a one-line RecAuditError naming
    ``where``, the key path and the fix. Returns the selected suite's effective settings."""
    check = _Check(where, params)
    if not isinstance(params, dict):
        raise RecAuditError(f"{where} must hold a mapping at the top level; fix the file")
    check.keys("", params, TOP_LEVEL, "section")
    if "seed" in params:
        check.integer("seed", params["seed"], 0)
    check.datasets("datasets", params.get("datasets"))
    check.features("features", params.get("features"))
    splits = check.splits("splits", params.get("splits"))
    models = check.models("models", params.get("models"))
    for section in SUITE_SECTIONS:
        getattr(check, section)(section, params.get(section))
    check.audit("audit", params.get("audit"))
    check.effective("", None)

    suites = check.mapping("suites", params.get("suites"), "suite name -> {splits, models, ...}")
    named = {}
    for name, suite in suites.items():
        check.suite(f"suites.{name}", suite, splits, models)
        check.effective(f"suites.{name}", suite)
        named[id(suite)] = f"suites.{name}"
    selected = params.get("suite")
    if "suite" in params:
        if not isinstance(selected, dict):
            raise check.wrong("suite", selected, "a mapping with splits and models",
                              "select a suite with an alias, e.g. `suite: *default`")
        if id(selected) not in named:  # not an alias of a suites: entry (checked above)
            check.suite("suite", selected, splits, models)
            check.effective("suite", selected)
    for name, paper in check.mapping("paper_suites", params.get("paper_suites"), "suite name -> paper suite").items():
        check.paper_suite(f"paper_suites.{name}", paper, models)
    return _typed(where, params, selected if isinstance(selected, dict) else None,
                  check.effective(named.get(id(selected), "suite"), selected))


def _typed(where, params: dict, suite: dict | None, merged: dict) -> Settings:
    tuning, evaluation, reports = (merged[s] for s in SUITE_SECTIONS)
    budgets = MappingProxyType({name: MappingProxyType(dict(entry))
                                for name, entry in (tuning.get("budgets") or {}).items()})
    cutoffs = evaluation.get("cutoffs")
    metrics = evaluation.get("metrics")
    report_metrics = reports.get("metrics")
    alpha = reports.get("alpha")
    tolerance = (params.get("audit") or {}).get("tolerance")
    return Settings(
        path=str(where),
        seed=params.get("seed"),
        suite=None if suite is None else SuiteSection(tuple(suite["splits"]), tuple(suite["models"])),
        tuning=TuningSection(metric=tuning.get("metric"), budget=tuning.get("budget"), budgets=budgets,
                             trials=tuning.get("trials"), startup_trials=tuning.get("startup_trials"),
                             storage=tuning.get("storage")),
        evaluation=EvaluationSection(seeds=evaluation.get("seeds"),
                                     cutoffs=None if cutoffs is None else tuple(sorted(set(cutoffs))),
                                     metrics=None if metrics is None else tuple(metrics),
                                     batch_size=evaluation.get("batch_size")),
        reports=ReportsSection(metrics=None if report_metrics is None else tuple(m.lower() for m in report_metrics),
                               alpha=None if alpha is None else float(alpha), n_resamples=reports.get("n_resamples")),
        audit_tolerance=None if tolerance is None else float(tolerance),
        splits=MappingProxyType({key: MappingProxyType(dict(entry))
                                 for key, entry in (params.get("splits") or {}).items()}),
        models=MappingProxyType({label: MappingProxyType(dict(entry or {}))
                                 for label, entry in (params.get("models") or {}).items()}),
    )


def load_settings(path: Path | str = "params.yaml") -> Settings:
    """The typed, checked settings of the params file at ``path``."""
    from protocols.params import read_params

    return check_settings(read_params(path), path)


__all__ = ["Settings", "SuiteSection", "TuningSection", "EvaluationSection", "ReportsSection", "check_settings",
           "load_settings", "parse_report_label", "is_int", "is_real"]
