"""Early stopping for iterative models: validate every few epochs, keep the best epoch.

An iterative model (iALS, the neural models) trains for at most ``epochs`` epochs. Given the
:class:`~datasets.item_data.ValidationData` of its ``fit`` data, :class:`EarlyStopping`
ranks the validation users with the shared evaluator (:func:`protocols.evaluation.evaluate`,
so early stopping, tuning and the leaderboard compute one and the same metric: the
validation data's ``metric``, which the runner sets to ``tuning.metric``) after every
``validate_every``-th epoch and after the last one. It keeps a snapshot of the model at the
best value so far and asks the model to stop once ``patience`` validations in a row have not
improved on the best. A value improves when ``value > best + min_delta``; NaN never improves.
``patience=None`` trains every epoch but still hands back the best snapshot.
With ``rate_steps`` > 0, running out of patience first lowers the learning rate (``rate_step``
counts up, the patience counter restarts) and stops only once ``rate_steps`` lower rates are
spent: CuratorNet's list of decaying rates, one early-stopping rule.

The model records the epoch it kept as ``best_epoch_``. The tuner freezes ``epochs =
best_epoch_`` (and ``patience = None``) in the tuned parameters, so the final refit on train
+ validation, which has no validation data left to stop on, trains exactly that many epochs:
the number of epochs is a hyperparameter chosen on validation like any other (the practice of
Ferrari Dacrema et al., TOIS 2021, for their iterative baselines).

Use inside a model's ``_fit``::

    stopper = EarlyStopping(data.validation, validate_every=self.validate_every, patience=self.patience)
    for epoch in range(1, self.epochs + 1):
        self._one_epoch()
        if stopper.after_epoch(epoch, self, snapshot=self._copy_state, last=epoch == self.epochs):
            break
    if stopper.best_snapshot is not None:
        self._restore_state(stopper.best_snapshot)
    self.best_epoch_ = stopper.best_epoch_or(epoch)

``snapshot`` is called only when the value improves, so copying the learned state is cheap
in total. Without validation data (``validation=None``) nothing is evaluated and the model
keeps its last epoch.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from common.errors import RecAuditError, unknown_name_error
from datasets.item_data import DEFAULT_STOP_METRIC, ValidationData

DEFAULT_METRIC = DEFAULT_STOP_METRIC
# Accuracy metrics only: each is a per-user mean where higher is better. The list metrics
# (coverage, gini, popularity) describe a recommender but are no objective to maximise.
TUNABLE_METRICS = ("precision", "recall", "recall_mv", "ndcg", "ndcg_tois", "hr", "mrr", "map", "auc")
CUTOFF_FREE = frozenset({"auc"})


def parse_metric(label: str) -> tuple[str, int | None]:
    """``"ndcg@10"`` -> ``("ndcg", 10)``; ``"auc"`` -> ``("auc", None)``. Bad labels raise
    a one-line RecAuditError naming the accepted forms."""
    if not isinstance(label, str) or not label:
        raise RecAuditError(f"validation metric must be a label such as 'ndcg@10', got {label!r}")
    name, _, cutoff = label.strip().lower().partition("@")
    if name not in TUNABLE_METRICS:
        raise unknown_name_error("validation metric", name, TUNABLE_METRICS)
    if name in CUTOFF_FREE:
        if cutoff:
            raise RecAuditError(f"validation metric {name!r} takes no cutoff; write {name!r}, not {label!r}")
        return name, None
    if not cutoff.isdigit() or int(cutoff) < 1:
        raise RecAuditError(f"validation metric {label!r} needs a positive cutoff, e.g. '{name}@10'")
    return name, int(cutoff)


def metric_label(name: str, k: int | None) -> str:
    return name if k is None else f"{name}@{k}"


def ranking_task(validation: ValidationData):
    """The evaluator's task for ``validation``: history items are excluded from the ranking."""
    from protocols.evaluation import RankingTask

    exclude = validation.history if validation.exclude is None else validation.exclude
    return RankingTask(users=validation.users, history=validation.history, truth=validation.truth,
                       exclude=exclude, candidates=validation.candidates)


def validation_value(model, validation, metric: str = DEFAULT_METRIC) -> float:
    """Mean of ``metric`` over the validation users of a fitted ``model``.

    ``validation`` is a :class:`ValidationData` or an evaluator ``RankingTask``."""
    from protocols.evaluation import evaluate

    name, k = parse_metric(metric)
    task = ranking_task(validation) if isinstance(validation, ValidationData) else validation
    result = evaluate(model, task, cutoffs=[k or 1], metrics=[name])
    return float(result.summary[metric_label(name, k)])


@dataclass
class EarlyStopping:
    """Validation bookkeeping of one ``fit`` (see the module docstring).

    After training: ``best_epoch`` and ``best_value`` (None before the first validation),
    ``best_snapshot`` (what ``snapshot`` returned at the best epoch), ``history`` (one
    ``{"epoch", metric}`` record per validation) and ``stopped_early``.
    """

    validation: ValidationData | None
    validate_every: int = 1
    patience: int | None = None
    metric: str | None = None  # None: the validation data's own metric
    min_delta: float = 0.0
    rate_steps: int = 0
    best_epoch: int | None = field(default=None, init=False)
    best_value: float | None = field(default=None, init=False)
    best_snapshot: Any = field(default=None, init=False)
    history: list[dict] = field(default_factory=list, init=False)
    stopped_early: bool = field(default=False, init=False)
    rate_step: int = field(default=0, init=False)
    _bad_validations: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.validate_every, bool) or not isinstance(self.validate_every, int) \
                or self.validate_every < 1:
            raise RecAuditError(f"validate_every={self.validate_every!r} is invalid; use an integer >= 1")
        if self.patience is not None and (isinstance(self.patience, bool) or not isinstance(self.patience, int)
                                          or self.patience < 1):
            raise RecAuditError(f"patience={self.patience!r} is invalid; use None (no early stop) or an "
                                "integer >= 1")
        if isinstance(self.rate_steps, bool) or not isinstance(self.rate_steps, int) or self.rate_steps < 0:
            raise RecAuditError(f"rate_steps={self.rate_steps!r} is invalid; use an integer >= 0")
        if not (isinstance(self.min_delta, int | float) and self.min_delta >= 0):
            raise RecAuditError(f"min_delta={self.min_delta!r} is invalid; use a number >= 0")
        if self.metric is None:
            self.metric = self.validation.metric if self.validation is not None else DEFAULT_METRIC
        parse_metric(self.metric)

    @property
    def enabled(self) -> bool:
        return self.validation is not None

    def due(self, epoch: int, last: bool = False) -> bool:
        """Whether ``epoch`` (counted from 1) is validated."""
        return self.enabled and (last or epoch % self.validate_every == 0)

    def after_epoch(self, epoch: int, model, snapshot: Callable[[], Any] | None = None,
                    last: bool = False) -> bool:
        """Validate ``model`` if ``epoch`` is due; return True when training should stop."""
        if not self.due(epoch, last):
            return False
        value = validation_value(model, self.validation, self.metric)
        return self.record(epoch, value, snapshot)

    def record(self, epoch: int, value: float, snapshot: Callable[[], Any] | None = None) -> bool:
        """Book a validation ``value`` measured after ``epoch``; return True to stop."""
        self.history.append({"epoch": int(epoch), self.metric: float(value)})
        improved = not math.isnan(value) and (self.best_value is None or value > self.best_value + self.min_delta)
        if improved:
            self.best_epoch, self.best_value, self._bad_validations = int(epoch), float(value), 0
            self.best_snapshot = snapshot() if snapshot is not None else None
            return False
        self._bad_validations += 1
        if self.patience is not None and self._bad_validations >= self.patience:
            if self.rate_step < self.rate_steps:
                self.rate_step += 1
                self._bad_validations = 0
            else:
                self.stopped_early = True
        return self.stopped_early

    def state(self) -> dict:
        """Plain bookkeeping (best snapshot included) for a checkpoint; see :meth:`load_state`."""
        return {"best_epoch": self.best_epoch, "best_value": self.best_value, "best_snapshot": self.best_snapshot,
                "history": list(self.history), "stopped_early": self.stopped_early,
                "bad_validations": self._bad_validations, "rate_step": self.rate_step}

    def load_state(self, state: dict) -> None:
        self.best_epoch, self.best_value = state["best_epoch"], state["best_value"]
        self.best_snapshot, self.history = state["best_snapshot"], list(state["history"])
        self.stopped_early, self._bad_validations = state["stopped_early"], state["bad_validations"]
        self.rate_step = int(state.get("rate_step", 0))

    def best_epoch_or(self, epochs_run: int) -> int:
        """The epoch to report as ``best_epoch_``: the best validated one, else the last run."""
        return self.best_epoch if self.best_epoch is not None else int(epochs_run)
