"""Who really wins: paired tests over users, Holm's correction, and the comparison table the
leaderboard prints against its reference model.

Two models evaluated on the same split are paired by user (:func:`paired_values`). Differences
are ``d = a - b`` throughout, so a positive effect size means ``a`` scores higher. All tests
are two-sided; pairs with a NaN on either side (a metric undefined for that user) are left out.

- **Wilcoxon signed-rank** (``scipy.stats.wilcoxon``, ``zero_method="wilcox"``, no continuity
  correction, ``method="auto"``: exact for at most 50 pairs without ties or zeros, else the
  normal approximation with the tie-corrected variance; up to 13 pairs the exact p-value by
  enumerating sign flips, vectorised here). Zero differences are dropped
  (Wilcoxon 1945) rather than ranked and then dropped (Pratt 1959): users on whom both models
  score the same, mostly users both miss entirely (metric 0), say nothing about which model
  is better; dropping them conditions on the informative users exactly as the sign test does,
  and keeps the effect size the textbook one. Effect size: matched-pairs rank-biserial
  correlation (Kerby 2014, Comprehensive Psychology 3:11.IT.3.1)
  ``r = (R+ - R-) / (R+ + R-)``, where ``R+`` / ``R-`` sum the average ranks of ``|d|`` over the
  non-zero differences with ``d > 0`` / ``d < 0``; ``r`` lies in [-1, 1].
- **Paired t-test** (``scipy.stats.ttest_rel``). Effect size Cohen's ``d_z = mean(d) / sd(d)``
  with ``ddof=1`` (Cohen 1988; Lakens 2013, Front. Psychol. 4:863); ``t = d_z * sqrt(n)``.
- **Sign test**: wins ``W = #(a > b)``, losses ``L = #(a < b)``, ties dropped; exact two-sided
  binomial test of ``W`` successes in ``W + L`` trials with null probability 0.5
  (``scipy.stats.binomtest``). Effect size: ``(W - L) / (W + L)``.

Degenerate inputs give these results, never exceptions: no pairs -> statistic, p-value and
effect NaN; every difference zero -> statistic 0, p-value 1, effect 0 (the models agree on
every user); t-test with one non-zero pair -> p-value and ``d_z`` NaN (no variance estimate);
t-test with a constant non-zero difference -> ``t`` and ``d_z`` infinite, p-value 0. A NaN
p-value never rejects and is left out of Holm's family.

Multiple comparisons: Holm (1979, Scand. J. Statist. 6:65) step-down adjustment over one
family of comparisons, which controls the family-wise error rate without independence. The
family is the caller's to declare: :func:`compare_to_reference` adjusts over the rows it
computes, :func:`apply_holm` over the rows it is given. The reports declare one family per
split and metric (every model of the split against its best baseline on that metric) and
compute it once, in ``python -m reports statistics`` (``reports.statistics``).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from common.errors import RecAuditError, unknown_name_error
from protocols.bootstrap import DEFAULT_RESAMPLES, bootstrap_columns_ci, check_bootstrap_settings
from protocols.repeated_seeds import aggregate_seeds, mean_per_user_over_seeds  # noqa: F401  (public API)

TESTS = ("wilcoxon", "ttest", "sign")
EFFECT_SIZES = {"wilcoxon": "rank_biserial_r", "ttest": "cohens_dz", "sign": "net_win_fraction"}
VERDICTS = ("better", "worse", "not different")
ZERO_METHOD = "wilcox"
EXACT_SIGN_FLIPS_UP_TO = 13  # pairs; scipy's own cut-off for an exact permutation p-value
COMPARISON_COLUMNS = (
    "metric", "model", "reference", "n_users", "mean", "ci_low", "ci_high",
    "reference_mean", "reference_ci_low", "reference_ci_high",
    "mean_difference", "difference_ci_low", "difference_ci_high",
    "test", "statistic", "p_value", "p_holm", "effect_size", "effect_size_name",
    "wins", "losses", "ties", "verdict",
)


@dataclass(frozen=True)
class PairedValues:
    """Per-user values of two models on their shared users (sorted), NaN pairs left out."""

    users: np.ndarray
    a: np.ndarray
    b: np.ndarray
    n_unmatched: int  # users present in only one of the two results
    n_undefined: int  # shared users left out because the metric is NaN on either side


@dataclass(frozen=True)
class PairedTest:
    test: str
    statistic: float
    p_value: float
    effect_size: float
    effect_size_name: str
    n_pairs: int  # defined pairs, ties included
    wins: int  # users with a > b
    losses: int  # users with a < b
    ties: int  # users with a == b


def paired_values(per_user_a: pd.DataFrame, per_user_b: pd.DataFrame, metric: str, *,
                  tolerance: float = 0.0, names: tuple[str, str] = ("a", "b")) -> PairedValues:
    """Join two ``per_user.parquet`` frames on ``user`` for one metric column.

    ``tolerance`` is the largest fraction of the union of users that may appear in only one
    frame. It defaults to 0: two results of one split cover the same test users, so any
    difference means one of them is stale or from another split.
    """
    if not 0.0 <= tolerance < 1.0:
        raise RecAuditError(f"tolerance must be a fraction in [0, 1), got {tolerance}; use 0 for identical users")
    users_a, values_a = _user_column(per_user_a, metric, names[0])
    users_b, values_b = _user_column(per_user_b, metric, names[1])
    shared, index_a, index_b = np.intersect1d(users_a, users_b, assume_unique=True, return_indices=True)
    union = len(users_a) + len(users_b) - len(shared)
    unmatched = union - len(shared)
    if unmatched > tolerance * union:
        raise RecAuditError(
            f"per-user results of {names[0]} and {names[1]} cover different users ({unmatched} of {union} users "
            f"appear in only one; tolerance {tolerance:.2%}); evaluate both on the same split")
    a, b = values_a[index_a], values_b[index_b]
    defined = ~(np.isnan(a) | np.isnan(b))
    return PairedValues(shared[defined], a[defined], b[defined], int(unmatched), int((~defined).sum()))


def _user_column(frame: pd.DataFrame, metric: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(frame, pd.DataFrame) or "user" not in frame.columns:
        raise RecAuditError(f"per-user results of {name} need a 'user' column; rerun `python -m protocols evaluate`")
    if metric not in frame.columns:
        available = ", ".join(sorted(str(c) for c in frame.columns if c != "user")) or "none"
        raise RecAuditError(f"per-user results of {name} have no metric {metric!r} (available: {available}); "
                            "pick one of those or re-evaluate with it")
    users = frame["user"].to_numpy()
    if len(np.unique(users)) != len(users):
        raise RecAuditError(f"per-user results of {name} list some user twice; rerun `python -m protocols evaluate`")
    return users, frame[metric].to_numpy(dtype=np.float64, na_value=np.nan)


def _defined_pairs(a, b) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"paired values need two 1-D arrays of one length, got shapes {a.shape} and {b.shape}")
    defined = ~(np.isnan(a) | np.isnan(b))
    return a[defined], b[defined]


def _result(test: str, statistic, p_value, effect, d: np.ndarray) -> PairedTest:
    return PairedTest(test, float(statistic), float(p_value), float(effect), EFFECT_SIZES[test], int(len(d)),
                      int(np.count_nonzero(d > 0)), int(np.count_nonzero(d < 0)), int(np.count_nonzero(d == 0)))


def _degenerate(test: str, d: np.ndarray) -> PairedTest | None:
    """The documented result when there is nothing (or no difference) to test, else None."""
    if len(d) == 0:
        return _result(test, np.nan, np.nan, np.nan, d)
    if not np.any(d):
        return _result(test, 0.0, 1.0, 0.0, d)
    return None


def rank_biserial(a, b) -> float:
    """Matched-pairs rank-biserial correlation of ``a - b`` (zeros dropped; NaN if none left)."""
    a, b = _defined_pairs(a, b)
    d = a - b
    d = d[d != 0]
    if len(d) == 0:
        return float("nan")
    ranks = stats.rankdata(np.abs(d))
    positive = ranks[d > 0].sum()
    negative = ranks[d < 0].sum()
    return float((positive - negative) / (positive + negative))


def cohens_dz(a, b) -> float:
    """``mean(a - b) / sd(a - b)`` with ``ddof=1``; NaN below two pairs, +-inf (0 if the
    mean is 0) when every difference is equal."""
    a, b = _defined_pairs(a, b)
    d = a - b
    if len(d) < 2:
        return float("nan")
    mean, spread = d.mean(), d.std(ddof=1)
    if spread == 0:
        return 0.0 if mean == 0 else float(np.copysign(np.inf, mean))
    return float(mean / spread)


def wilcoxon_test(a, b) -> PairedTest:
    a, b = _defined_pairs(a, b)
    d = a - b
    degenerate = _degenerate("wilcoxon", d)
    if degenerate is not None:
        return degenerate
    if len(d) <= EXACT_SIGN_FLIPS_UP_TO:
        statistic, p_value = _wilcoxon_by_sign_flips(d)
    else:
        result = stats.wilcoxon(d, zero_method=ZERO_METHOD, correction=False, alternative="two-sided",
                                method="auto")
        statistic, p_value = result.statistic, result.pvalue
    return _result("wilcoxon", statistic, p_value, rank_biserial(a, b), d)


def _wilcoxon_by_sign_flips(d: np.ndarray) -> tuple[float, float]:
    """Exact two-sided Wilcoxon p-value by enumerating all ``2^k`` sign patterns of the ``k``
    non-zero differences: ``p = min(1, 2 min(P(T+ <= t+), P(T+ >= t+)))``. This is the
    p-value ``scipy.stats.wilcoxon(method="auto")`` computes for ties or zeros with at most
    13 pairs (and its exact distribution without them), but scipy's generic permutation
    test takes about a second at 13 pairs."""
    nonzero = d[d != 0]
    ranks = stats.rankdata(np.abs(nonzero))
    observed = ranks[nonzero > 0].sum()
    flips = (np.arange(2 ** len(nonzero))[:, None] >> np.arange(len(nonzero))) & 1
    null = flips @ ranks
    slack = 100 * np.finfo(np.float64).eps * observed  # ranks are halves: only guards rounding
    p_value = 2 * min(np.mean(null <= observed + slack), np.mean(null >= observed - slack))
    return float(min(observed, ranks.sum() - observed)), float(min(p_value, 1.0))


def paired_t_test(a, b) -> PairedTest:
    a, b = _defined_pairs(a, b)
    d = a - b
    degenerate = _degenerate("ttest", d)
    if degenerate is not None:
        return degenerate
    if len(d) < 2:
        return _result("ttest", np.nan, np.nan, np.nan, d)
    effect = cohens_dz(a, b)
    if np.isinf(effect):  # a constant shift: scipy would divide by a zero variance
        return _result("ttest", effect, 0.0, effect, d)
    result = stats.ttest_rel(a, b, alternative="two-sided")
    return _result("ttest", result.statistic, result.pvalue, effect, d)


def sign_test(a, b) -> PairedTest:
    a, b = _defined_pairs(a, b)
    d = a - b
    degenerate = _degenerate("sign", d)
    if degenerate is not None:
        return degenerate
    wins, losses = int(np.count_nonzero(d > 0)), int(np.count_nonzero(d < 0))
    result = stats.binomtest(wins, wins + losses, p=0.5, alternative="two-sided")
    return _result("sign", wins, result.pvalue, (wins - losses) / (wins + losses), d)


_TEST_FUNCTIONS = {"wilcoxon": wilcoxon_test, "ttest": paired_t_test, "sign": sign_test}


def paired_test(a, b, test: str = "wilcoxon") -> PairedTest:
    """Run one of :data:`TESTS` on paired per-user values ``a`` and ``b``."""
    if test not in _TEST_FUNCTIONS:
        raise unknown_name_error("test", test, TESTS)
    return _TEST_FUNCTIONS[test](a, b)


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values: with the ``m`` defined p-values sorted ascending,
    ``p~_(i) = min(1, max_{j <= i} (m - j + 1) p_(j))``; monotone in ``p``, capped at 1.
    NaN p-values (tests that could not be run) stay NaN and do not count in ``m``."""
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"expected a 1-D array of p-values, got shape {p.shape}")
    defined = ~np.isnan(p)
    if np.any((p[defined] < 0) | (p[defined] > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    family = p[defined]
    order = np.argsort(family, kind="stable")
    m = len(family)
    stepped = np.minimum(np.maximum.accumulate((m - np.arange(m)) * family[order]), 1.0)
    adjusted_family = np.empty(m)
    adjusted_family[order] = stepped
    adjusted = np.full(p.shape, np.nan)
    adjusted[defined] = adjusted_family
    return adjusted


def verdicts(p_adjusted, effect_sizes, alpha: float = 0.05) -> list[str]:
    """"better" / "worse" when the adjusted p-value is at most ``alpha``, by the sign of the
    test's own effect size (what the test measured, which for Wilcoxon can differ from the
    sign of the mean difference); otherwise "not different"."""
    p = np.asarray(p_adjusted, dtype=np.float64)
    effect = np.asarray(effect_sizes, dtype=np.float64)
    rejected = p <= alpha  # NaN compares false: never rejected
    return np.where(rejected & (effect > 0), "better",
                    np.where(rejected & (effect < 0), "worse", "not different")).tolist()


def apply_holm(table: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Recompute ``p_holm`` and ``verdict`` over every row of a comparison table, e.g. the
    concatenation of several :func:`compare_to_reference` results that form one family."""
    _check_alpha(alpha)
    table = table.copy()
    table["p_holm"] = holm(table["p_value"].to_numpy(dtype=np.float64))
    table["verdict"] = verdicts(table["p_holm"], table["effect_size"], alpha)
    return table


def _check_alpha(alpha: float) -> None:
    if not 0.0 < float(alpha) < 1.0:
        raise RecAuditError(f"alpha must lie strictly between 0 and 1, got {alpha}; use e.g. 0.05")


def compare_to_reference(per_user_by_model: Mapping[str, pd.DataFrame], reference: str,
                         metric: str | Sequence[str], *, alpha: float = 0.05, test: str = "wilcoxon",
                         seed: int = 0, n_resamples: int = DEFAULT_RESAMPLES, confidence: float = 0.95,
                         ci_method: str = "bca", tolerance: float = 0.0) -> pd.DataFrame:
    """Compare every other model with ``reference`` on one split: one row per (metric, model).

    ``per_user_by_model`` maps model names to their ``per_user.parquet`` frames (runs with
    status "ok" only; average stochastic models' seeds first with
    :func:`mean_per_user_over_seeds`). Each model's users must match the reference's within
    ``tolerance`` (:func:`paired_values`); all models are then compared on the users they all
    share. Differences are ``model - reference``. Confidence intervals (mean of the model, of
    the reference, of the paired difference) come from one bootstrap whose resamples are
    shared by every column; the p-values of all rows are Holm-adjusted as one family (the
    reports pass one metric: one family per split and metric; several metrics make the family
    all of them). Rows are ordered by metric as given, then model name. Columns:
    :data:`COMPARISON_COLUMNS`.
    """
    metrics = [metric] if isinstance(metric, str) else list(metric)
    if not metrics:
        raise RecAuditError("compare_to_reference needs at least one metric label, e.g. ndcg@10")
    if reference not in per_user_by_model:
        raise unknown_name_error("model", reference, per_user_by_model)
    if test not in TESTS:
        raise unknown_name_error("test", test, TESTS)
    _check_alpha(alpha)
    check_bootstrap_settings(confidence, n_resamples, ci_method)
    models = sorted(name for name in per_user_by_model if name != reference)
    aligned = _align_on_shared_users(per_user_by_model, reference, models, metrics, tolerance)

    columns = []  # per metric: reference, then (model, model - reference) per model
    for label in metrics:
        reference_values = aligned[reference][label]
        columns.append(reference_values)
        for model in models:
            columns += [aligned[model][label], aligned[model][label] - reference_values]
    n_users = len(aligned[reference][metrics[0]])
    matrix = np.column_stack(columns) if n_users else np.empty((0, len(columns)))
    intervals = iter(bootstrap_columns_ci(matrix, confidence=confidence, n_resamples=n_resamples,
                                          seed=seed, method=ci_method))
    rows = []
    for label in metrics:
        reference_ci = next(intervals)
        for model in models:
            model_ci, difference_ci = next(intervals), next(intervals)
            result = paired_test(aligned[model][label], aligned[reference][label], test)
            rows.append({
                "metric": label, "model": model, "reference": reference, "n_users": result.n_pairs,
                "mean": model_ci.estimate, "ci_low": model_ci.low, "ci_high": model_ci.high,
                "reference_mean": reference_ci.estimate, "reference_ci_low": reference_ci.low,
                "reference_ci_high": reference_ci.high, "mean_difference": difference_ci.estimate,
                "difference_ci_low": difference_ci.low, "difference_ci_high": difference_ci.high,
                "test": test, "statistic": result.statistic, "p_value": result.p_value, "p_holm": np.nan,
                "effect_size": result.effect_size, "effect_size_name": result.effect_size_name,
                "wins": result.wins, "losses": result.losses, "ties": result.ties, "verdict": "",
            })
    table = pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))
    return apply_holm(table, alpha)


def _align_on_shared_users(per_user_by_model: Mapping[str, pd.DataFrame], reference: str, models: list[str],
                           metrics: list[str], tolerance: float) -> dict[str, dict[str, np.ndarray]]:
    """``{model: {metric: values}}`` on the users every model shares (NaN kept)."""
    for model in models:  # refuses a model whose users differ from the reference's
        paired_values(per_user_by_model[model], per_user_by_model[reference], metrics[0],
                      tolerance=tolerance, names=(model, reference))
    names = [reference, *models]
    users = {name: _user_column(per_user_by_model[name], metrics[0], name)[0] for name in names}
    shared = users[reference]
    for name in models:
        shared = np.intersect1d(shared, users[name], assume_unique=True)
    aligned = {}
    for name in names:
        frame = per_user_by_model[name]
        _, positions, _ = np.intersect1d(users[name], shared, assume_unique=True, return_indices=True)
        aligned[name] = {label: _user_column(frame, label, name)[1][positions] for label in metrics}
    return aligned
