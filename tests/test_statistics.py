"""Paired tests, effect sizes, Holm, bootstrap intervals, the reference comparison and seed
aggregation: against scipy, hand-computed values, naive formulas and simulated populations
whose answer is known."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import protocols.bootstrap as bootstrap_module
from common.errors import RecAuditError
from protocols.bootstrap import bca_levels, bootstrap_columns_ci, bootstrap_difference_ci, bootstrap_mean_ci
from protocols.statistics import (COMPARISON_COLUMNS, aggregate_seeds, apply_holm, cohens_dz, compare_to_reference,
                                  holm, mean_per_user_over_seeds, paired_t_test, paired_test, paired_values,
                                  rank_biserial, sign_test, wilcoxon_test)


def frame(users, values, metric="ndcg@10"):
    return pd.DataFrame({"user": np.asarray(users, dtype=np.int64), metric: np.asarray(values, dtype=np.float64)})


# ---------------------------------------------------------------- pairing users

def test_paired_values_joins_on_user_whatever_the_row_order():
    a = frame([3, 1, 2], [0.3, 0.1, 0.2])
    b = frame([1, 2, 3], [1.0, 2.0, 3.0])
    paired = paired_values(a, b, "ndcg@10")
    assert paired.users.tolist() == [1, 2, 3]
    assert paired.a.tolist() == [0.1, 0.2, 0.3]
    assert paired.b.tolist() == [1.0, 2.0, 3.0]
    assert (paired.n_unmatched, paired.n_undefined) == (0, 0)


def test_paired_values_refuses_different_users_beyond_the_tolerance():
    a = frame(range(100), np.zeros(100))
    b = frame(range(1, 101), np.zeros(100))  # users 0 and 100 appear once: 2 of 101
    with pytest.raises(RecAuditError, match=r"cover different users \(2 of 101.*same split"):
        paired_values(a, b, "ndcg@10", names=("ease", "pop"))
    paired = paired_values(a, b, "ndcg@10", tolerance=0.02)
    assert len(paired.users) == 99 and paired.n_unmatched == 2


def test_paired_values_drops_users_undefined_on_either_side():
    a = frame([0, 1, 2, 3], [0.5, np.nan, 0.2, 0.1])
    b = frame([0, 1, 2, 3], [0.4, 0.3, np.nan, 0.0])
    paired = paired_values(a, b, "ndcg@10")
    assert paired.users.tolist() == [0, 3] and paired.n_undefined == 2


@pytest.mark.parametrize("bad, message", [
    (pd.DataFrame({"ndcg@10": [0.1]}), "need a 'user' column"),
    (frame([0], [0.1], metric="recall@20"), r"no metric 'ndcg@10' \(available: recall@20\)"),
    (frame([0, 0], [0.1, 0.2]), "some user twice"),
])
def test_paired_values_refuses_malformed_frames(bad, message):
    with pytest.raises(RecAuditError, match=message):
        paired_values(bad, frame([0], [0.1]), "ndcg@10")


# ---------------------------------------------------------------- the tests equal scipy

@pytest.fixture
def recsys_like_pairs():
    """Zero-inflated, tied per-user values (users both models miss), as real metrics are."""
    rng = np.random.default_rng(7)
    n = 300
    hit = rng.random(n) < 0.5
    a = np.where(hit, np.round(rng.beta(2, 5, n), 2), 0.0)
    b = np.where(hit, np.round(rng.beta(2, 4, n), 2), 0.0)
    return a, b


def test_wrappers_equal_direct_scipy_calls(recsys_like_pairs):
    a, b = recsys_like_pairs
    assert wilcoxon_test(a, b).p_value == stats.wilcoxon(a, b).pvalue
    assert wilcoxon_test(a, b).statistic == stats.wilcoxon(a, b).statistic
    assert paired_t_test(a, b).p_value == stats.ttest_rel(a, b).pvalue
    assert paired_t_test(a, b).statistic == stats.ttest_rel(a, b).statistic
    wins, losses = int(np.sum(a > b)), int(np.sum(a < b))
    assert sign_test(a, b).p_value == stats.binomtest(wins, wins + losses, 0.5).pvalue
    assert paired_test(a, b, "sign") == sign_test(a, b)


def test_small_sample_wilcoxon_is_exact_like_scipys():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=12), rng.normal(size=12)
    assert wilcoxon_test(a, b).p_value == pytest.approx(stats.wilcoxon(a, b, method="exact").pvalue, rel=1e-12)
    a, b = np.array([3, 1, 2, 2, 0, 4, 1, 5, 2, 3.0]), np.array([1, 1, 0, 3, 0, 1, 2, 2, 0, 1.0])  # ties, zeros
    expected = stats.wilcoxon(a, b)  # scipy's exhaustive permutation test here
    assert wilcoxon_test(a, b).p_value == pytest.approx(expected.pvalue, rel=1e-12)
    assert wilcoxon_test(a, b).statistic == expected.statistic


def test_sign_test_null_probability_is_one_half():
    # 60 wins, 40 losses, 25 ties (dropped). Exact two-sided p = 2 P(X >= 60), X ~ Bin(100, 1/2).
    a = np.r_[np.ones(60), np.zeros(40), np.full(25, 0.5)]
    b = np.r_[np.zeros(60), np.ones(40), np.full(25, 0.5)]
    expected = 2 * Fraction(sum(math.comb(100, k) for k in range(60, 101)), 2 ** 100)
    result = sign_test(a, b)
    assert result.p_value == pytest.approx(float(expected), rel=1e-12)
    assert round(result.p_value, 4) == 0.0569
    assert (result.wins, result.losses, result.ties, result.statistic) == (60, 40, 25, 60.0)
    assert result.effect_size == pytest.approx(0.2)


def test_unknown_test_lists_the_known_ones():
    with pytest.raises(RecAuditError, match="unknown test 'anova'; known tests: sign, ttest, wilcoxon"):
        paired_test([1.0], [0.0], "anova")


# ---------------------------------------------------------------- effect sizes by hand

def test_rank_biserial_golden_values():
    # d = 1, -2, 3, 4, 0: zero dropped, ranks 1..4, R+ = 1 + 3 + 4 = 8, R- = 2 -> (8 - 2) / 10
    assert rank_biserial([1, -2, 3, 4, 0], [0, 0, 0, 0, 0]) == pytest.approx(0.6)
    # d = 1, -1, 2: average ranks 1.5, 1.5, 3 -> R+ = 4.5, R- = 1.5 -> 3 / 6
    assert rank_biserial([1, -1, 2], [0, 0, 0]) == pytest.approx(0.5)
    assert wilcoxon_test([1, -2, 3, 4, 0], [0] * 5).effect_size == pytest.approx(0.6)


def naive_rank_biserial(d):
    """4 T+ / (n (n + 1)) - 1 with average ranks counted pair by pair."""
    d = [x for x in d if x != 0]
    n = len(d)
    t_plus = 0.0
    for x in d:
        if x > 0:
            smaller = sum(abs(y) < abs(x) for y in d)
            equal = sum(abs(y) == abs(x) for y in d)
            t_plus += 1 + smaller + (equal - 1) / 2
    return 4 * t_plus / (n * (n + 1)) - 1


def test_rank_biserial_agrees_with_a_naive_formula():
    rng = np.random.default_rng(11)
    a, b = rng.integers(0, 6, 80) / 5, rng.integers(0, 6, 80) / 5  # many ties and zeros
    assert rank_biserial(a, b) == pytest.approx(naive_rank_biserial(list(a - b)))


def test_cohens_dz_golden_value_and_its_relation_to_t():
    a, b = np.array([1.0, 2, 3, 4, 5]), np.zeros(5)
    dz = 3 / math.sqrt(2.5)  # mean 3, sample variance 10 / 4
    assert cohens_dz(a, b) == pytest.approx(dz)
    result = paired_t_test(a, b)
    assert result.effect_size == pytest.approx(dz)
    assert result.statistic == pytest.approx(dz * math.sqrt(5))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), min_size=1, max_size=40))
def test_effect_sizes_are_antisymmetric_and_bounded(pairs):
    a = np.array([p[0] for p in pairs], dtype=float)
    b = np.array([p[1] for p in pairs], dtype=float)
    r = rank_biserial(a, b)
    if np.any(a != b):
        assert -1 <= r <= 1 and rank_biserial(b, a) == pytest.approx(-r)
    else:
        assert math.isnan(r)
    for test in ("wilcoxon", "ttest", "sign"):
        forward, backward = paired_test(a, b, test), paired_test(b, a, test)
        assert (forward.wins, forward.losses) == (backward.losses, backward.wins)
        if not math.isnan(forward.p_value):
            assert 0 <= forward.p_value <= 1
            assert forward.p_value == pytest.approx(backward.p_value)


# ---------------------------------------------------------------- degenerate inputs

@pytest.mark.parametrize("test", ["wilcoxon", "ttest", "sign"])
def test_all_differences_zero_means_no_difference(test):
    result = paired_test([0.2, 0.0, 0.5], [0.2, 0.0, 0.5], test)
    assert (result.statistic, result.p_value, result.effect_size, result.ties) == (0.0, 1.0, 0.0, 3)


@pytest.mark.parametrize("test", ["wilcoxon", "ttest", "sign"])
def test_no_pairs_give_nan_not_an_exception(test):
    result = paired_test([np.nan, 0.1], [0.3, np.nan], test)  # both pairs undefined
    assert result.n_pairs == 0 and math.isnan(result.p_value) and math.isnan(result.effect_size)


def test_single_user_and_constant_shift():
    assert wilcoxon_test([0.5], [0.1]).p_value == 1.0  # scipy's exact answer for one pair
    assert sign_test([0.5], [0.1]).p_value == 1.0
    single = paired_t_test([0.5], [0.1])
    assert math.isnan(single.p_value) and math.isnan(single.effect_size)
    shifted = paired_t_test([0.5, 0.6, 0.7], [0.4, 0.5, 0.6])
    assert shifted.p_value == 0.0 and shifted.effect_size == math.inf


def test_nan_pairs_are_dropped_before_testing():
    a, b = np.array([0.5, np.nan, 0.3, 0.9, 0.1]), np.array([0.1, 0.2, np.nan, 0.2, 0.4])
    keep = [0, 3, 4]
    for test in ("wilcoxon", "ttest", "sign"):
        assert paired_test(a, b, test) == paired_test(a[keep], b[keep], test)


# ---------------------------------------------------------------- simulated populations

def null_p_values(test, n_repetitions=200, n_users=100, seed=2024):
    """Exchangeable models: per-user difficulty plus independent noise of one law."""
    rng = np.random.default_rng(seed)
    p = np.empty(n_repetitions)
    for i in range(n_repetitions):
        difficulty = rng.beta(1, 4, n_users)
        p[i] = paired_test(difficulty + rng.normal(0, 0.05, n_users), difficulty + rng.normal(0, 0.05, n_users),
                           test).p_value
    return p


@pytest.mark.parametrize("test", ["wilcoxon", "ttest"])
def test_p_values_are_uniform_under_the_null(test):
    p = null_p_values(test)
    low, high = stats.binom.interval(0.999, len(p), 0.05)
    assert low <= np.sum(p <= 0.05) <= high
    assert stats.kstest(p, "uniform").pvalue > 0.01


def test_sign_test_is_valid_under_the_null():
    # Discrete p-values are not uniform, but rejections may not exceed the nominal rate.
    p = null_p_values("sign")
    assert np.sum(p <= 0.05) <= stats.binom.interval(0.999, len(p), 0.05)[1]


def test_wilcoxon_is_valid_on_tied_zero_inflated_metrics():
    rng = np.random.default_rng(5)
    rejections = 0
    for _ in range(200):
        chance = rng.beta(1, 3, 150)  # a user's hit probability, shared by both models
        rejections += wilcoxon_test((rng.random(150) < chance) * 1.0, (rng.random(150) < chance) * 1.0).p_value <= 0.05
    low, high = stats.binom.interval(0.999, 200, 0.05)
    assert low <= rejections <= high


@pytest.mark.parametrize("test", ["wilcoxon", "ttest", "sign"])
def test_a_clear_shift_is_detected(test):
    rng = np.random.default_rng(99)
    detected = 0
    for _ in range(50):
        difficulty = rng.beta(1, 4, 400)
        b = difficulty + rng.normal(0, 0.05, 400)
        a = difficulty + 0.02 + rng.normal(0, 0.05, 400)  # shift 0.02 / sd(d) 0.07: d_z ~ 0.28
        result = paired_test(a, b, test)
        detected += result.p_value <= 0.05 and result.effect_size > 0
    assert detected >= 48


# ---------------------------------------------------------------- Holm

def test_holm_hand_computed_case():
    # sorted 0.005 (x4 = 0.02), 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04 -> 0.06)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]).tolist() == [1.0, 1.0]
    assert holm([]).tolist() == []


def test_holm_leaves_nan_out_of_the_family():
    adjusted = holm([0.01, np.nan, 0.02])
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.02)


def naive_holm_rejections(p, alpha):
    """Holm's step-down procedure as stated in the paper."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    rejected = set()
    for step, i in enumerate(order):
        if p[i] > alpha / (len(p) - step):
            break
        rejected.add(i)
    return rejected


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=12))
def test_holm_adjusted_p_values_reproduce_the_step_down_procedure(p):
    adjusted = holm(p)
    assert np.all(adjusted >= np.array(p)) and np.all(adjusted <= 1)
    order = np.argsort(p, kind="stable")
    assert np.all(np.diff(adjusted[order]) >= 0)
    for alpha in (0.001, 0.01, 0.05, 0.1, 0.5):
        assert {i for i in range(len(p)) if adjusted[i] <= alpha} == naive_holm_rejections(p, alpha)


def test_apply_holm_decides_by_the_test_effect_direction():
    table = pd.DataFrame({"p_value": [0.001, 0.001, 0.02, np.nan], "effect_size": [0.3, -0.2, 0.5, np.nan]})
    result = apply_holm(table, alpha=0.05)
    assert result["p_holm"].tolist()[:3] == pytest.approx([0.003, 0.003, 0.02])
    assert result["verdict"].tolist() == ["better", "worse", "better", "not different"]
    assert apply_holm(table, alpha=0.01)["verdict"].tolist() == ["better", "worse", "not different", "not different"]


# ---------------------------------------------------------------- bootstrap

def test_bootstrap_is_seeded_and_close_to_scipy():
    rng = np.random.default_rng(4)
    values = np.where(rng.random(200) < 0.4, rng.beta(2, 5, 200), 0.0)
    ours = bootstrap_mean_ci(values, n_resamples=20000, seed=1)
    assert ours == bootstrap_mean_ci(values, n_resamples=20000, seed=1)
    assert ours != bootstrap_mean_ci(values, n_resamples=20000, seed=2)
    assert ours.estimate == values.mean() and ours.n == 200
    for method, scipy_method in (("bca", "BCa"), ("percentile", "percentile")):
        ours = bootstrap_mean_ci(values, n_resamples=20000, seed=1, method=method)
        theirs = stats.bootstrap((values,), np.mean, n_resamples=20000, method=scipy_method,
                                 rng=np.random.default_rng(0)).confidence_interval
        width = theirs.high - theirs.low
        assert abs(ours.low - theirs.low) < 0.03 * width and abs(ours.high - theirs.high) < 0.03 * width


def test_bca_levels_match_a_naive_jackknife():
    rng = np.random.default_rng(8)
    values = rng.exponential(size=30)
    means = rng.choice(values, size=(500, 30)).mean(axis=1)
    jackknife = np.array([np.delete(values, i).mean() for i in range(30)])
    centre = jackknife.mean()
    acceleration = np.sum((centre - jackknife) ** 3) / (6 * np.sum((centre - jackknife) ** 2) ** 1.5)
    bias = stats.norm.ppf(np.mean(means < values.mean()) + 0.5 * np.mean(means == values.mean()))
    z = stats.norm.ppf([0.025, 0.975])
    expected = stats.norm.cdf(bias + (bias + z) / (1 - acceleration * (bias + z)))
    assert bca_levels(values, values.mean(), means, np.array([0.025, 0.975])) == pytest.approx(expected)


@pytest.mark.parametrize("method", ["bca", "percentile"])
def test_bootstrap_intervals_cover_the_true_mean_at_about_the_nominal_rate(method):
    rng = np.random.default_rng(12)
    true_mean = 0.4 * 2 / 7  # hit with probability 0.4, then Beta(2, 5)
    covered = covered_difference = 0
    repetitions = 300
    for repetition in range(repetitions):
        a = np.where(rng.random(80) < 0.4, rng.beta(2, 5, 80), 0.0)
        b = a + rng.normal(0.01, 0.05, 80)  # true mean difference 0.01
        interval = bootstrap_mean_ci(a, n_resamples=1000, seed=repetition, method=method)
        covered += interval.low <= true_mean <= interval.high
        difference = bootstrap_difference_ci(b, a, n_resamples=1000, seed=repetition, method=method)
        covered_difference += difference.low <= 0.01 <= difference.high
    low, high = stats.binom.interval(0.999, repetitions, 0.95)
    assert low <= covered <= high
    assert low <= covered_difference <= high


def test_bootstrap_degenerate_inputs():
    single = bootstrap_mean_ci([0.3])
    assert single.estimate == 0.3 and math.isnan(single.low) and math.isnan(single.high)
    constant = bootstrap_mean_ci([0.25] * 10)
    assert (constant.low, constant.high) == (0.25, 0.25)
    empty = bootstrap_mean_ci([np.nan, np.nan])
    assert empty.n == 0 and math.isnan(empty.estimate) and math.isnan(empty.low)
    with_nan = bootstrap_mean_ci([0.1, np.nan, 0.5, 0.2], seed=3)
    assert with_nan == bootstrap_mean_ci([0.1, 0.5, 0.2], seed=3)
    assert bootstrap_difference_ci([0.2, np.nan, 0.6], [0.1, 0.3, 0.1], seed=3) == \
        bootstrap_mean_ci([0.1, 0.5], seed=3)


def test_bootstrap_columns_share_resamples_and_skip_nan_cell_by_cell():
    rng = np.random.default_rng(6)
    a = rng.random(50)
    b = a.copy()
    b[[3, 9]] = np.nan
    first, second = bootstrap_columns_ci(np.column_stack([a, a]), seed=5)
    assert first == second  # one column twice: same resamples, same interval
    with_gap = bootstrap_columns_ci(np.column_stack([a, b]), seed=5)[1]
    assert with_gap.n == 48 and with_gap.estimate == pytest.approx(np.nanmean(b))
    assert with_gap.low < with_gap.estimate < with_gap.high


def test_bootstrap_chunks_bound_memory_without_changing_the_answer_much(monkeypatch):
    values = np.random.default_rng(2).random(1000)
    whole = bootstrap_mean_ci(values, n_resamples=4000, seed=1)
    monkeypatch.setattr(bootstrap_module, "CHUNK_ELEMENTS", 3000)  # 3 resamples per chunk
    chunked = bootstrap_mean_ci(values, n_resamples=4000, seed=1)
    assert chunked == bootstrap_mean_ci(values, n_resamples=4000, seed=1)
    assert chunked.low == pytest.approx(whole.low, abs=2e-3) and chunked.high == pytest.approx(whole.high, abs=2e-3)


@pytest.mark.parametrize("kwargs, message", [
    ({"method": "studentized"}, "unknown bootstrap method 'studentized'; known bootstrap methods: bca, percentile"),
    ({"confidence": 95}, "confidence must lie strictly between 0 and 1"),
    ({"n_resamples": 0}, "n_resamples must be a positive integer"),
])
def test_bootstrap_refuses_bad_settings(kwargs, message):
    with pytest.raises(RecAuditError, match=message):
        bootstrap_mean_ci([0.1, 0.2], **kwargs)


# ---------------------------------------------------------------- comparison table

@pytest.fixture
def population():
    """reference; one model clearly better, one clearly worse, one that ties it."""
    rng = np.random.default_rng(21)
    n = 500
    users = rng.permutation(n)
    difficulty = rng.beta(1, 4, n)

    def model(shift):
        values = np.clip(difficulty + shift + rng.normal(0, 0.05, n), 0, 1)
        recall = np.clip(difficulty + rng.normal(0, 0.05, n), 0, 1)
        order = rng.permutation(n)  # every file lists its users in its own order
        return pd.DataFrame({"user": users[order], "ndcg@10": values[order], "recall@20": recall[order]})

    reference = model(0.0)
    # Mirrored noise: +e on one half of the users, -e on the other, so every test sees
    # exactly balanced differences (p = 1) on non-degenerate data.
    noise = np.repeat(rng.uniform(0.001, 0.01, n // 2), 2) * np.tile([1, -1], n // 2)
    same = reference.assign(**{"ndcg@10": reference["ndcg@10"] + noise})
    return {"ease": reference, "better": model(0.05), "worse": model(-0.05), "same": same}


def test_compare_to_reference_finds_the_known_answer(population):
    table = compare_to_reference(population, "ease", "ndcg@10", seed=1, n_resamples=500)
    assert list(table.columns) == list(COMPARISON_COLUMNS)
    assert table["model"].tolist() == ["better", "same", "worse"]
    assert table["verdict"].tolist() == ["better", "not different", "worse"]
    assert table.loc[1, "p_value"] > 0.99 and abs(table.loc[1, "effect_size"]) < 0.01  # up to rounding of x + e - x
    assert table["p_holm"].tolist() == pytest.approx(holm(table["p_value"]).tolist())
    assert (table["n_users"] == 500).all() and (table["reference"] == "ease").all()
    assert table["mean_difference"].to_numpy() == pytest.approx((table["mean"] - table["reference_mean"]).to_numpy())
    for row in table.itertuples():
        assert row.ci_low < row.mean < row.ci_high
        assert row.difference_ci_low < row.mean_difference < row.difference_ci_high
    paired = paired_values(population["better"], population["ease"], "ndcg@10")
    assert table.loc[0, "p_value"] == wilcoxon_test(paired.a, paired.b).p_value
    assert table.loc[0, "mean"] == paired.a.mean()


def test_compare_to_reference_is_deterministic_and_holm_spans_every_metric(population):
    table = compare_to_reference(population, "ease", ["ndcg@10", "recall@20"], test="ttest", seed=3, n_resamples=300)
    pd.testing.assert_frame_equal(table, compare_to_reference(population, "ease", ["ndcg@10", "recall@20"],
                                                              test="ttest", seed=3, n_resamples=300))
    assert len(table) == 6 and table["metric"].tolist() == ["ndcg@10"] * 3 + ["recall@20"] * 3
    assert table["p_holm"].tolist() == pytest.approx(holm(table["p_value"]).tolist())
    assert (table["effect_size_name"] == "cohens_dz").all()
    assert table["verdict"].tolist()[3:] == ["not different"] * 3  # recall@20 is the same law for all


def test_compare_to_reference_refuses_bad_input(population):
    with pytest.raises(RecAuditError, match="unknown model 'pop'; known models: better, ease, same, worse"):
        compare_to_reference(population, "pop", "ndcg@10")
    stale = dict(population, stale=population["ease"].iloc[:400])
    with pytest.raises(RecAuditError, match="per-user results of stale and ease cover different users"):
        compare_to_reference(stale, "ease", "ndcg@10")
    with pytest.raises(RecAuditError, match="alpha must lie strictly between 0 and 1"):
        compare_to_reference(population, "ease", "ndcg@10", alpha=5)


def test_compare_to_reference_with_the_reference_alone():
    table = compare_to_reference({"ease": frame([0, 1], [0.1, 0.2])}, "ease", "ndcg@10")
    assert table.empty and list(table.columns) == list(COMPARISON_COLUMNS)


# ---------------------------------------------------------------- seeds

def record(seed, ndcg, model="bprmf", **overrides):
    base = {"dataset": "ml-1m", "protocol": "leave-one-out", "model": model, "params": {"factors": 8, "seed": seed},
            "seed": seed, "status": "ok", "metrics": {"ndcg@10": ndcg, "hr@10": 0.5}, "n_users": 10,
            "metric_version": "1"}
    return {**base, **overrides}


def test_aggregate_seeds_golden_values():
    summary = aggregate_seeds([record(3, 0.30), record(1, 0.20), record(2, 0.40)])
    assert summary["seeds"] == [1, 2, 3] and summary["n"] == 3 and summary["model"] == "bprmf"
    assert summary["mean"]["ndcg@10"] == pytest.approx(0.30)
    assert summary["std"]["ndcg@10"] == pytest.approx(0.10)  # sqrt((0.01 + 0 + 0.01) / 2)
    assert summary["std"]["hr@10"] == 0.0
    single = aggregate_seeds([record(1, 0.2)])
    assert single["mean"]["ndcg@10"] == 0.2 and math.isnan(single["std"]["ndcg@10"])
    undefined = aggregate_seeds([record(1, None), record(2, 0.3)])
    assert math.isnan(undefined["mean"]["ndcg@10"]) and undefined["mean"]["hr@10"] == 0.5


@pytest.mark.parametrize("records, message", [
    ([record(1, 0.2), record(2, 0.3, model="ncf")], "different models"),
    ([record(1, 0.2), record(1, 0.3)], "seeds must be distinct integers"),
    ([record(1, 0.2), record(2, 0.3, params={"factors": 16, "seed": 2})], "differ in params"),
    ([record(1, 0.2), record(2, 0.3, status="unsupported")], "status is not 'ok'"),
    ([], "at least one result record"),
])
def test_aggregate_seeds_refuses_records_that_do_not_belong_together(records, message):
    with pytest.raises(RecAuditError, match=message):
        aggregate_seeds(records)


def test_mean_per_user_over_seeds_aligns_users():
    first = pd.DataFrame({"user": [2, 0, 1], "ndcg@10": [0.2, 0.0, 0.1], "hr@10": [1.0, 0.0, 1.0]})
    second = pd.DataFrame({"user": [0, 1, 2], "hr@10": [1.0, 0.0, 1.0], "ndcg@10": [0.4, np.nan, 0.6]})
    mean = mean_per_user_over_seeds([first, second])
    assert mean["user"].tolist() == [0, 1, 2]
    assert mean["ndcg@10"].tolist()[0::2] == pytest.approx([0.2, 0.4]) and math.isnan(mean["ndcg@10"][1])
    assert mean["hr@10"].tolist() == [0.5, 0.5, 1.0]
    with pytest.raises(RecAuditError, match="covers other users than frame 0"):
        mean_per_user_over_seeds([first, second.iloc[:2]])
