"""Ranking tasks built from a split, and the batched evaluator that scores them.

Tasks (:func:`tuning_data`, :func:`final_data`) follow ``protocols/split_data.py``: every
matrix is users x items (the split's id space), binary (1.0 per interaction, repeats
collapsed), CSR with sorted indices. A task has one row per evaluated user: users with at
least one held-out item, in increasing id order.

======================  ======================  ==========================  ======================
protocol / stage        fit matrix              history (= exclude)         truth
======================  ======================  ==========================  ======================
weak, tuning            train                   train                       validation
weak, final             train + validation      train + validation          test
strong, tuning          train                   validation_input            validation
strong, final           train + validation_     test_input                  test
                        input + validation
======================  ======================  ==========================  ======================

Sampled tasks (the stage's negatives part is non-empty) also hold ``candidates``: one row per
user, that user's truth items (increasing id) followed by their fixed negatives (stored
order), padded with ``PAD_ITEM`` (-1) to the longest row; a negative that is also a truth
item of the user, or repeats an earlier negative, is kept once. With one held-out item per user (leave-one-out)
this is exactly NCF's protocol: the item ranked among its 99 or 100 negatives.

Evaluation rules:

- Items in ``exclude`` are never ranked and never relevant: a truth item that is also
  excluded is removed from the truth; users left with no truth are dropped (counted in
  ``n_dropped_users``). Sampled tasks rank only the candidates (minus padding and excluded).
- Ranked lists are ordered by score, ties broken by the lower item id (in sampled tasks too,
  so that a constant-scoring model gets no credit for the truth being listed first).
- Full ranking works in batches of users whose dense float32 scores hold at most
  ``DEFAULT_MAX_BATCH_ENTRIES`` entries (``batch_size`` overrides it, in users). Each batch
  is ranked in row blocks of ``RANK_BLOCK_ENTRIES``: the top k by a partition, then a sort
  of those k only. Peak memory is one batch of scores (plus what the model needs to make
  them), about 20 bytes per entry of one block, and the per-user results; no users x items
  array is ever built beyond one batch.
- Scores must not be NaN (:class:`NonFiniteScoresError`); +-inf are valid scores.
- Sampled results carry ``sampled=True`` and the same labels as full ranking: whoever shows
  a sampled number must say so (they are not comparable with full-ranking numbers).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp
from tqdm import tqdm

from common.errors import RecAuditError
from protocols import metrics as M
from datasets.item_data import DEFAULT_STOP_METRIC, ValidationData
from protocols.split_data import Split

DEFAULT_MAX_BATCH_ENTRIES = 2**25
RANK_BLOCK_ENTRIES = 2**20  # ranking temporaries of ~8 MB: cache-friendly, reused by malloc
PAD_ITEM = -1


class NonFiniteScoresError(RecAuditError):
    """A model returned NaN scores (typically a diverged neural model)."""


@dataclass(frozen=True)
class RankingTask:
    """Rows aligned with ``users``: what a model is asked and what it is judged against."""

    users: np.ndarray
    history: sp.csr_matrix
    truth: sp.csr_matrix
    exclude: sp.csr_matrix
    candidates: np.ndarray | None = None

    @property
    def sampled(self) -> bool:
        return self.candidates is not None

    @property
    def n_items(self) -> int:
        return int(self.truth.shape[1])

    def validation_data(self, metric: str = DEFAULT_STOP_METRIC) -> ValidationData:
        """The task as early-stopping data for ``Recommender.fit``, stopping on ``metric``."""
        exclude = None if self.exclude is self.history else self.exclude
        return ValidationData(users=self.users, history=self.history, truth=self.truth,
                              candidates=self.candidates, metric=metric, exclude=exclude)


# ----- tasks from a split -----------------------------------------------------------------
def interaction_matrix(frames: list[pd.DataFrame], n_users: int, n_items: int) -> sp.csr_matrix:
    """Binary float32 CSR of the union of ``frames`` (columns ``user``, ``item``)."""
    users = np.concatenate([f["user"].to_numpy(dtype=np.int64) for f in frames])
    items = np.concatenate([f["item"].to_numpy(dtype=np.int64) for f in frames])
    if len(users) and (users.min() < 0 or users.max() >= n_users or items.min() < 0 or items.max() >= n_items):
        raise RecAuditError(f"split holds user or item ids outside the card's {n_users} users x {n_items} "
                            "items; rebuild the split with `python -m protocols split`")
    return _binary(sp.csr_matrix((np.ones(len(users), np.float32), (users, items)), shape=(n_users, n_items)))


def tuning_data(split: Split) -> tuple[sp.csr_matrix, RankingTask]:
    """(matrix to fit on while tuning, validation task); reads no test part."""
    shape = (split.n_users, split.n_items)
    train = interaction_matrix(fit_parts(split, "tuning"), *shape)
    history = interaction_matrix([split.validation_input], *shape) if split.is_strong else train
    truth = interaction_matrix([split.validation], *shape)
    negatives = _stage_negatives(split, "validation_negatives")
    task = _ranking_task(history, truth, negatives)
    if split.validation_in_train:  # validation items are training items: nothing is excluded
        task = RankingTask(users=task.users, history=task.history, truth=task.truth,
                           exclude=sp.csr_matrix(task.history.shape, dtype=np.float32), candidates=task.candidates)
    return train, task


def final_data(split: Split) -> tuple[sp.csr_matrix, RankingTask]:
    """(matrix to refit on for the final run, test task)."""
    shape = (split.n_users, split.n_items)
    truth = interaction_matrix([split.test], *shape)
    negatives = _stage_negatives(split, "test_negatives")
    refit = interaction_matrix(fit_parts(split, "final"), *shape)
    if split.is_strong:
        history = interaction_matrix([split.test_input], *shape)
        return refit, _ranking_task(history, truth, negatives)
    return refit, _ranking_task(refit, truth, negatives)


def fit_parts(split: Split, stage: str) -> list[pd.DataFrame]:
    """The split's parts a model is fitted on: train while tuning; for the final run, train and
    validation (and, under strong generalisation, the validation users' input too)."""
    if stage == "tuning":
        return [split.train]
    if split.is_strong:
        return [split.train, split.validation_input, split.validation]
    return [split.train, split.validation]


def interaction_times(frames: list[pd.DataFrame], n_users: int, n_items: int) -> sp.csr_matrix | None:
    """Users x items CSR (float64) of the latest ``timestamp`` of each pair in ``frames``, or
    None when a frame has no timestamps. A pair's value is 0 only if its time is 0."""
    if not frames or any("timestamp" not in frame.columns for frame in frames):
        return None
    users = np.concatenate([f["user"].to_numpy(dtype=np.int64) for f in frames])
    items = np.concatenate([f["item"].to_numpy(dtype=np.int64) for f in frames])
    times = np.concatenate([f["timestamp"].to_numpy(dtype=np.float64) for f in frames])
    order = np.lexsort((times, items, users))  # the latest time of a pair comes last
    users, items, times = users[order], items[order], times[order]
    last = np.r_[(users[1:] != users[:-1]) | (items[1:] != items[:-1]), True] if len(users) else np.zeros(0, bool)
    matrix = sp.csr_matrix((times[last], (users[last], items[last])), shape=(n_users, n_items))
    matrix.sort_indices()
    return matrix


def _stage_negatives(split: Split, part: str) -> pd.DataFrame | None:
    negatives = getattr(split, part)
    if len(negatives):
        return negatives
    if split.is_sampled:
        raise RecAuditError(f"split (protocol {split.protocol!r}) is sampled but its {part} part is empty; "
                            "rebuild the split with `python -m protocols split`")
    return None


def _ranking_task(history: sp.csr_matrix, truth: sp.csr_matrix, negatives: pd.DataFrame | None) -> RankingTask:
    users = np.flatnonzero(np.diff(truth.indptr))
    history, truth = history[users], truth[users]
    candidates = None if negatives is None else _candidate_matrix(users, truth, negatives)
    return RankingTask(users=users, history=history, truth=truth, exclude=history, candidates=candidates)


def _candidate_matrix(users: np.ndarray, truth: sp.csr_matrix, negatives: pd.DataFrame) -> np.ndarray:
    """One row per task user: truth items, then the user's negatives, padded with PAD_ITEM."""
    n_rows, n_items = truth.shape
    truth_rows = np.repeat(np.arange(n_rows), np.diff(truth.indptr))
    negative_users = negatives["user"].to_numpy(dtype=np.int64)
    negative_items = negatives["item"].to_numpy(dtype=np.int64)
    negative_rows = np.minimum(np.searchsorted(users, negative_users), max(n_rows - 1, 0))
    keep = (users[negative_rows] == negative_users) if n_rows else np.zeros(len(negative_users), bool)
    negative_keys = negative_rows * n_items + negative_items
    keep &= ~M.is_member(negative_keys, M.row_keys(truth, n_items))
    first_occurrence = np.zeros(len(keep), dtype=bool)
    first_occurrence[np.unique(np.where(keep, negative_keys, -1), return_index=True)[1]] = True
    keep &= first_occurrence  # a repeated negative is kept once
    rows = np.concatenate([truth_rows, negative_rows[keep]])
    items = np.concatenate([truth.indices.astype(np.int64), negative_items[keep]])
    order = np.argsort(rows, kind="stable")  # truth entries come first within a row
    rows, items = rows[order], items[order]
    counts = np.bincount(rows, minlength=n_rows)
    columns = np.arange(len(rows)) - (np.cumsum(counts) - counts)[rows]
    candidates = np.full((n_rows, int(counts.max(initial=0))), PAD_ITEM, dtype=np.int64)
    candidates[rows, columns] = items
    return candidates


def _binary(matrix) -> sp.csr_matrix:
    matrix = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    matrix.data[:] = 1.0
    matrix.sort_indices()
    return matrix


# ----- evaluation ---------------------------------------------------------------------------
@dataclass
class EvaluationResult:
    """Per-user metrics (column ``user`` + one column per label) and their means (``summary``,
    with the list metrics). ``sampled`` results must be labelled as such wherever shown."""

    per_user: pd.DataFrame
    summary: dict[str, float]
    sampled: bool
    metric_version: str
    n_users: int
    metric_versions: dict[str, str] = field(default_factory=dict)
    n_dropped_users: int = 0

    def to_dict(self) -> dict:
        """JSON-ready record of the result (without the per-user table)."""
        return {"summary": dict(self.summary), "sampled": self.sampled, "metric_version": self.metric_version,
                "metric_versions": dict(self.metric_versions), "n_users": self.n_users,
                "n_dropped_users": self.n_dropped_users}


ScoreBatch = Callable[[np.ndarray, sp.csr_matrix, np.ndarray | None], np.ndarray]


def evaluate(model, task: RankingTask, cutoffs: list[int], metrics: list[str] | None = None,
             batch_size: int | None = None, item_popularity: np.ndarray | None = None,
             progress: bool = False) -> EvaluationResult:
    """Evaluate a fitted ``Recommender`` on ``task`` (``score``, or ``score_candidates`` if sampled)."""
    def score_batch(users, history, candidates):
        if candidates is None:
            return model.score(users, history)
        return model.score_candidates(users, history, candidates)

    return _evaluate(score_batch, task, cutoffs, metrics, batch_size, item_popularity, progress)


def evaluate_scores(scores_fn: Callable[[np.ndarray, sp.csr_matrix], np.ndarray], task: RankingTask,
                    cutoffs: list[int], metrics: list[str] | None = None, batch_size: int | None = None,
                    item_popularity: np.ndarray | None = None, progress: bool = False) -> EvaluationResult:
    """As :func:`evaluate`, with ``scores_fn(users, history)`` giving dense users x items scores
    (gathered at the candidates for sampled tasks)."""
    def score_batch(users, history, candidates):
        scores = scores_fn(users, history)
        return scores if candidates is None else np.take_along_axis(np.asarray(scores), candidates, axis=1)

    return _evaluate(score_batch, task, cutoffs, metrics, batch_size, item_popularity, progress)


def _evaluate(score_batch: ScoreBatch, task: RankingTask, cutoffs, metrics, batch_size,
              item_popularity, progress) -> EvaluationResult:
    names = M.check_metric_names(metrics)
    cutoffs = M.check_cutoffs(cutoffs)
    n_items = task.n_items
    if item_popularity is None:
        if metrics is not None and "popularity" in names:
            raise ValueError("metric 'popularity' needs item_popularity (training popularity per item)")
        names = [name for name in names if name != "popularity"]
    else:
        item_popularity = np.asarray(item_popularity, dtype=np.float64)
        if item_popularity.shape != (n_items,):
            raise ValueError(f"item_popularity must have shape ({n_items},), got {item_popularity.shape}")
    task, n_dropped = _effective_task(task)
    if len(task.users) == 0:
        raise RecAuditError("no user has a held-out item left to rank (all truth empty or excluded); "
                            "check the split")
    width = task.candidates.shape[1] if task.sampled else n_items
    if batch_size is None:
        batch_size = max(1, DEFAULT_MAX_BATCH_ENTRIES // max(width, 1))
    elif batch_size < 1:
        raise RecAuditError(f"batch_size must be a positive number of users, got {batch_size}")

    accumulator = _Accumulator(names, cutoffs, n_items, item_popularity)
    starts = range(0, len(task.users), batch_size)
    for start in tqdm(starts, desc="evaluate", unit="batch", disable=not progress):
        rows = slice(start, start + batch_size)
        accumulator.add(*_rank_batch(score_batch, task, rows, max(cutoffs), "auc" in names))
    per_user, summary = accumulator.results()
    per_user.insert(0, "user", task.users.astype(np.int64))
    return EvaluationResult(per_user=per_user, summary=summary, sampled=task.sampled,
                            metric_version=M.METRIC_VERSION,
                            metric_versions={name: M.METRIC_VERSIONS[name] for name in names},
                            n_users=len(task.users), n_dropped_users=n_dropped)


def _effective_task(task: RankingTask) -> tuple[RankingTask, int]:
    """Binary matrices, truth minus excluded items, users without truth dropped."""
    n = len(task.users)
    for name in ("history", "truth", "exclude"):
        if getattr(task, name).shape != (n, task.n_items):
            raise ValueError(f"task.{name} has shape {getattr(task, name).shape}, expected {(n, task.n_items)}")
    if task.sampled and (task.candidates.ndim != 2 or task.candidates.shape[0] != n):
        raise ValueError(f"task.candidates must have one row per user, got shape {task.candidates.shape}")
    truth, exclude = _binary(task.truth), _binary(task.exclude)
    truth = _binary(truth - truth.multiply(exclude))
    keep = np.flatnonzero(np.diff(truth.indptr))
    candidates = None if task.candidates is None else np.asarray(task.candidates, dtype=np.int64)[keep]
    kept = RankingTask(users=np.asarray(task.users)[keep], history=sp.csr_matrix(task.history)[keep],
                       truth=truth[keep], exclude=exclude[keep], candidates=candidates)
    return kept, n - len(keep)


def _rank_batch(score_batch: ScoreBatch, task: RankingTask, rows: slice, max_k: int, with_auc: bool):
    """Score one batch of users, then rank it in row blocks of at most ``RANK_BLOCK_ENTRIES``
    entries, so that the ranking's temporaries stay small and cache-resident."""
    users, history = task.users[rows], task.history[rows]
    if task.sampled:
        candidates = task.candidates[rows]
        item_ids = np.where(candidates < 0, candidates[:, :1], candidates)
        scores = _checked_scores(score_batch(users, history, item_ids), item_ids.shape)
    else:
        item_ids = None
        scores = _checked_scores(score_batch(users, history, None), (len(users), task.n_items))
    n_rows, first = len(users), rows.start
    step = min(n_rows, max(1, RANK_BLOCK_ENTRIES // max(scores.shape[1], 1)))
    blocks = []
    for i in range(0, n_rows, step):
        block = slice(first + i, first + min(i + step, n_rows))
        blocks.append(_rank_block(scores[i:i + step], None if item_ids is None else candidates[i:i + step],
                                  task.truth[block], task.exclude[block], max_k, with_auc))
    return tuple(None if parts[0] is None else np.concatenate(parts) for parts in zip(*blocks))


def _rank_block(scores: np.ndarray, candidates: np.ndarray | None, truth: sp.csr_matrix,
                exclude: sp.csr_matrix, max_k: int, with_auc: bool):
    """Top-``max_k`` item ids (-1 where the list is shorter), hits, relevant counts and, if
    asked, the AUC of a block of users."""
    n_rows, n_items = truth.shape
    truth_keys = M.row_keys(truth, n_items)
    if candidates is not None:
        padding = candidates < 0
        item_ids = np.where(padding, candidates[:, :1], candidates)
        keys = np.arange(n_rows, dtype=np.int64)[:, None] * n_items + item_ids
        excluded = padding | M.is_member(keys, M.row_keys(exclude, n_items))
        is_truth = M.is_member(keys, truth_keys) & ~excluded
        if not np.array_equal(is_truth.sum(axis=1), np.diff(truth.indptr)):
            raise ValueError("sampled task: some truth items are missing from (or repeated in) their candidates")
        excluded_positions, relevant_positions = np.flatnonzero(excluded), np.flatnonzero(is_truth)
        n_excluded = excluded.sum(axis=1)
    else:
        item_ids = None
        excluded_positions, relevant_positions = M.row_keys(exclude, n_items), truth_keys
        n_excluded = np.diff(exclude.indptr)
    order = M.order_keys(scores)
    order.ravel()[excluded_positions] = M.EXCLUDED
    width = order.shape[1]
    top, real = M.top_items(order, item_ids, min(max_k, width))
    row_base = np.arange(n_rows, dtype=np.int64)[:, None] * n_items
    hits = M.is_member(row_base + top, truth_keys) & real
    missing = max_k - top.shape[1]
    if missing > 0:  # fewer candidates than the largest cutoff: the rest of the list is empty
        hits = np.pad(hits, ((0, 0), (0, missing)))
        real = np.pad(real, ((0, 0), (0, missing)))
        top = np.pad(top, ((0, 0), (0, missing)))
    top = np.where(real, top, -1)
    n_relevant = np.diff(truth.indptr)
    auc = None
    if with_auc:
        rank_sums = M.relevant_rank_sums(order, relevant_positions, n_excluded)
        auc = M.auc(rank_sums, n_relevant, width - n_excluded)
    return top, hits, n_relevant, auc


def _checked_scores(scores, shape) -> np.ndarray:
    scores = np.ascontiguousarray(scores, dtype=np.float32)
    if scores.shape != tuple(shape):
        raise ValueError(f"scores have shape {scores.shape}, expected {tuple(shape)}")
    nan_rows = np.isnan(scores).any(axis=1)
    if nan_rows.any():
        raise NonFiniteScoresError(f"the model returned NaN scores for {int(nan_rows.sum())} users "
                                   "(diverged?); lower the learning rate or fix the model")
    return scores


class _Accumulator:
    """Collects per-user metrics batch by batch and the exposure counts of the list metrics."""

    def __init__(self, names: list[str], cutoffs: list[int], n_items: int, item_popularity):
        self.names, self.cutoffs, self.item_popularity = names, cutoffs, item_popularity
        self.columns: dict[str, list[np.ndarray]] = {}
        self.exposure = {k: np.zeros(n_items, dtype=np.int64) for k in cutoffs}
        self.list_popularity: dict[int, list[np.ndarray]] = {k: [] for k in cutoffs}

    def add(self, top: np.ndarray, hits: np.ndarray, n_relevant: np.ndarray, auc: np.ndarray | None) -> None:
        values = M.per_user_metrics(hits, n_relevant, self.names, self.cutoffs)
        if auc is not None:
            values["auc"] = auc
        for label, column in values.items():
            self.columns.setdefault(label, []).append(column)
        real = top >= 0
        for k in self.cutoffs:
            listed = top[:, :k][real[:, :k]]
            self.exposure[k] += np.bincount(listed, minlength=len(self.exposure[k]))
            if self.item_popularity is not None:
                popularity = np.where(real[:, :k], self.item_popularity[np.maximum(top[:, :k], 0)], 0.0)
                self.list_popularity[k].append(M.popularity(popularity.sum(axis=1), real[:, :k].sum(axis=1)))

    def results(self) -> tuple[pd.DataFrame, dict[str, float]]:
        labels = [M.metric_label(name, k) for name in self.names if name in M.PER_USER_METRICS
                  for k in ([None] if name in M.CUTOFF_FREE_METRICS else self.cutoffs)]
        per_user = pd.DataFrame({label: np.concatenate(self.columns[label]).astype(np.float64)
                                 for label in labels})
        summary = {label: _mean(per_user[label].to_numpy()) for label in labels}
        for name in self.names:
            for k in self.cutoffs:
                if name == "coverage":
                    summary[f"coverage@{k}"] = M.coverage(self.exposure[k])
                elif name == "gini":
                    summary[f"gini@{k}"] = M.gini(self.exposure[k])
                elif name == "popularity":
                    summary[f"popularity@{k}"] = _mean(np.concatenate(self.list_popularity[k]))
        return per_user, summary


def _mean(values: np.ndarray) -> float:
    """Mean over users, leaving out NaN (AUC of a user without non-relevant candidates)."""
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if len(defined) else float("nan")
