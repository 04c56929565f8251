"""Bootstrap confidence intervals for means of per-user metrics (and of paired differences).

The user is the unit of resampling: users are the independent draws of a test population,
a user's several metric values are not. Every column given to :func:`bootstrap_columns_ci`
is resampled with the *same* users in each resample, so the interval of a paired mean
difference keeps the pairing, and one call serves a whole leaderboard table.

Two interval methods (Efron & Tibshirani 1993, *An Introduction to the Bootstrap*, ch. 13-14):

- ``"percentile"``: the ``(1 - c)/2`` and ``(1 + c)/2`` quantiles of the ``B`` bootstrap means.
- ``"bca"`` (default), bias-corrected and accelerated (Efron 1987, JASA 82:171): with
  ``z0 = Phi^-1((#{m*_b < m} + #{m*_b = m}/2) / B)`` and the jackknife acceleration, which for
  a mean has the closed form ``a = sum((x_i - m)^3) / (6 * (sum((x_i - m)^2))^(3/2))``, the
  limits are the bootstrap quantiles at ``Phi(z0 + (z0 + z) / (1 - a (z0 + z)))`` for
  ``z = Phi^-1((1 -+ c)/2)``. Per-user ranking metrics are zero-inflated and right-skewed;
  BCa corrects the percentile interval's bias and skewness (second-order accurate), and with
  thousands of users the two methods agree closely.

Undefined values (NaN, e.g. the AUC of a user without non-relevant candidates) are left out
column by column, as the evaluator's means leave them out: a resample's mean of a column is
the mean over the resampled users whose value is defined (a ratio estimator).

Degenerate inputs: fewer than two defined values give a NaN interval (a bootstrap cannot
estimate variability from one user); identical values give the zero-width interval at that
value. Resampling is drawn in chunks of at most ``CHUNK_ELEMENTS`` user indices, so memory
stays bounded; the chunk size depends only on the number of users, so the same inputs and
seed give the same numbers.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, ndtri

from common.errors import RecAuditError, unknown_name_error

BOOTSTRAP_METHODS = ("bca", "percentile")
# 2000 resamples: the Monte-Carlo spread (sd over seeds) of a 95% BCa limit was 3-4% of the
# interval's half-width on 6040 zero-inflated users, at well under a second per table. The one
# default of the project: the reports' ``reports.n_resamples`` falls back to it.
DEFAULT_RESAMPLES = 2000
CHUNK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class ConfidenceInterval:
    """A mean over ``n`` defined values and its bootstrap interval at level ``confidence``."""

    estimate: float
    low: float
    high: float
    n: int
    confidence: float
    method: str


def bootstrap_mean_ci(values, *, confidence: float = 0.95, n_resamples: int = DEFAULT_RESAMPLES,
                      seed: int = 0, method: str = "bca") -> ConfidenceInterval:
    """Interval for the mean of one per-user metric; NaN values are dropped first."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"expected one value per user (1-D), got shape {values.shape}")
    values = values[~np.isnan(values)]  # so the result equals that of the defined values alone
    return bootstrap_columns_ci(values[:, None], confidence=confidence, n_resamples=n_resamples,
                                seed=seed, method=method)[0]


def bootstrap_difference_ci(a, b, *, confidence: float = 0.95, n_resamples: int = DEFAULT_RESAMPLES,
                            seed: int = 0, method: str = "bca") -> ConfidenceInterval:
    """Interval for the paired mean difference ``mean(a - b)``: users (pairs) are resampled
    together; pairs with a NaN on either side are dropped first."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"paired values need two 1-D arrays of one length, got shapes {a.shape} and {b.shape}")
    return bootstrap_mean_ci(a - b, confidence=confidence, n_resamples=n_resamples, seed=seed, method=method)


def bootstrap_columns_ci(matrix, *, confidence: float = 0.95, n_resamples: int = DEFAULT_RESAMPLES,
                         seed: int = 0, method: str = "bca") -> list[ConfidenceInterval]:
    """One interval per column of a ``(n_users, n_columns)`` matrix, all columns resampled
    with the same users (common random numbers). NaN cells are left out column by column."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"expected a (users x columns) matrix, got shape {matrix.shape}")
    check_bootstrap_settings(confidence, n_resamples, method)
    defined = ~np.isnan(matrix)
    filled = np.where(defined, matrix, 0.0)
    means = _resampled_means(filled, defined.astype(np.float64), n_resamples, np.random.default_rng(seed))
    alpha = 1.0 - confidence
    intervals = []
    for column in range(matrix.shape[1]):
        values = matrix[defined[:, column], column]
        # the 1-D mean, bit for bit the evaluator's mean in metrics.json
        estimate = float(values.mean()) if len(values) else float("nan")
        low, high = _interval(values, estimate, means[:, column], alpha, method)
        intervals.append(ConfidenceInterval(estimate, low, high, int(len(values)), float(confidence), method))
    return intervals


def check_bootstrap_settings(confidence: float, n_resamples: int, method: str) -> None:
    if method not in BOOTSTRAP_METHODS:
        raise unknown_name_error("bootstrap method", method, BOOTSTRAP_METHODS)
    if not 0.0 < float(confidence) < 1.0:
        raise RecAuditError(f"confidence must lie strictly between 0 and 1, got {confidence}; use e.g. 0.95")
    if isinstance(n_resamples, bool) or int(n_resamples) != n_resamples or n_resamples < 1:
        raise RecAuditError(f"n_resamples must be a positive integer, got {n_resamples!r}; use e.g. "
                            f"{DEFAULT_RESAMPLES}")


def _resampled_means(filled: np.ndarray, defined: np.ndarray, n_resamples: int,
                     rng: np.random.Generator) -> np.ndarray:
    """``(n_resamples, n_columns)`` bootstrap means. Each resample is turned into per-user
    counts, so every column's resampled sum is one row of ``counts @ filled``."""
    n_users, n_columns = filled.shape
    means = np.full((n_resamples, n_columns), np.nan)
    if n_users == 0:
        return means
    rows = max(1, CHUNK_ELEMENTS // n_users)
    index_dtype = np.int32 if rows * n_users < np.iinfo(np.int32).max else np.int64
    for start in range(0, n_resamples, rows):
        size = min(rows, n_resamples - start)
        drawn = rng.integers(0, n_users, size=(size, n_users), dtype=index_dtype)
        drawn += (np.arange(size, dtype=index_dtype) * n_users)[:, None]
        counts = np.bincount(drawn.ravel(), minlength=size * n_users).reshape(size, n_users).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            means[start:start + size] = (counts @ filled) / (counts @ defined)
    return means


def _interval(values: np.ndarray, estimate: float, means: np.ndarray, alpha: float,
              method: str) -> tuple[float, float]:
    if len(values) < 2:
        return float("nan"), float("nan")
    if np.all(values == values[0]):
        return float(values[0]), float(values[0])
    means = means[~np.isnan(means)]  # a resample that drew only undefined users has no mean
    levels = np.array([alpha / 2, 1 - alpha / 2])
    if method == "bca":
        levels = bca_levels(values, estimate, means, levels)
    low, high = np.quantile(means, levels)
    return float(low), float(high)


def bca_levels(values: np.ndarray, estimate: float, means: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """The BCa-adjusted quantile levels for the mean (formulas in the module docstring)."""
    proportion_below = (np.count_nonzero(means < estimate) + np.count_nonzero(means <= estimate)) / (2 * len(means))
    # Kept off 0 and 1, where z0 would be infinite and the levels undefined (a rounding edge case).
    half_step = 0.5 / len(means)
    bias = ndtri(np.clip(proportion_below, half_step, 1 - half_step))
    deviations = values - values.mean()
    acceleration = np.sum(deviations ** 3) / (6.0 * np.sum(deviations ** 2) ** 1.5)
    z = ndtri(levels)
    return ndtr(bias + (bias + z) / (1 - acceleration * (bias + z)))
