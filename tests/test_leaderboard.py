"""The leaderboard: built only from result folders, deterministic, golden Markdown with
bootstrap intervals, significance marks against the best baseline, grouping and budgets."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from common.errors import run_cli
from protocols.bootstrap import DEFAULT_RESAMPLES, bootstrap_mean_ci
from protocols.results import read_results, result_dir, short_reason, write_result, write_run
from reports.__main__ import main
from tests.report_results import write_statistics

N_USERS = 30
USERS = np.arange(N_USERS)
POP = (USERS % 7) / 10  # the best baseline's per-user ndcg@10: the reference
BETTER = POP + 0.05 + (USERS % 3) / 100  # higher for every user: significantly better
SEED = 42


def ci(values) -> str:
    """The interval the table must show: the documented bootstrap, called on its own (the one
    default number of resamples, protocols.bootstrap.DEFAULT_RESAMPLES: params set none)."""
    found = bootstrap_mean_ci(values, seed=SEED, n_resamples=DEFAULT_RESAMPLES)
    return f"[{found.low:.4f}, {found.high:.4f}]"


def record(dataset, protocol, model, metrics, **overrides) -> dict:
    base = dict(dataset=dataset, protocol=protocol, model=model, family="baseline", params={}, seed=None,
                seeds=[None], sampled=False, metric_version="1", metrics=metrics, metrics_std=None, tuning=None,
                n_users=N_USERS, fit_seconds=1.25, eval_seconds=0.04, peak_rss_mb=100.0, status="ok")
    base.update(overrides)
    return base


def write_model(root, protocol, model, ndcg, coverage, **overrides) -> None:
    """A result whose record mean is the mean of its per-user values, as evaluate writes it."""
    per_user = pd.DataFrame({"user": USERS, "ndcg@10": ndcg})
    metrics = {"ndcg@10": float(np.mean(ndcg)), "coverage@10": coverage}
    write_run(result_dir(root, "ml", protocol, model), record("ml", protocol, model, metrics, **overrides), per_user)


@pytest.fixture
def results(tmp_path):
    root = tmp_path / "results"
    # Written in an order different from the table's, to show the sorting and grouping.
    write_model(root, "holdout", "vae", POP.copy(), 0.3, family="neural")  # identical to the reference
    write_model(root, "holdout", "random", np.zeros(N_USERS), 0.9, params={"seed": 7}, seeds=[7], seed=7,
                fit_seconds=0.001, eval_seconds=0.05)
    write_model(root, "holdout", "mf", BETTER, 0.2, family="neural", seed=1, seeds=[1, 2, 3],
                params={"seed": 1, "factors": 64, "lr": 0.00125, "loss": "bpr"},
                metrics_std={"ndcg@10": 0.0123, "coverage@10": 0.01},
                tuning={"trials_run": 17, "trials_budget": 20, "budget": "fixed", "validation_metric": "ndcg@10",
                        "best_value": 0.25})
    write_run(result_dir(root, "ml", "holdout", "ncf"),
              record("ml", "holdout", "ncf", {}, family="neural", status="unsupported", metric_version=None,
                     reason=short_reason("model 'ncf' cannot score held-out users (needs user embeddings); use x"),
                     n_users=0, fit_seconds=None, eval_seconds=None, seeds=[]),
              pd.DataFrame({"user": pd.Series([], dtype="int64")}))
    write_model(root, "holdout", "pop", POP, 0.01, tuning={"trials_run": 0, "trials_budget": 0, "budget": "fixed",
                                                          "validation_metric": "ndcg@10", "best_value": None})
    write_model(root, "loo", "pop", POP, float("nan"), sampled=True)
    params = tmp_path / "params.yaml"
    params.write_text(f"seed: {SEED}\nreports:\n  metrics: [NDCG@10, coverage@10]\n")
    return root, params


def golden_holdout() -> str:
    # pop 0.2833 = mean of (i % 7) / 10 over i < 30: (4 * 2.1 + 0.1 + 0.2) / 30;
    # mf 0.3433 = 0.2833 + 0.05 + (10 * 0.01 + 10 * 0.02) / 30
    return f"""\
## ml / holdout

30 test users, metric version 1.

| family   | model     |                            ndcg@10 |     coverage@10 |       trials |   seeds |   fit s |   eval s |
|----------|-----------|------------------------------------|-----------------|--------------|---------|---------|----------|
| baseline | pop (ref) |            0.2833 {ci(POP)} |          0.0100 |          0/0 |       - |    1.25 |     0.04 |
| baseline | random    |          0.0000 [0.0000, 0.0000] ▼ |          0.9000 | 0 (defaults) |       1 |    0.00 |     0.05 |
| neural   | mf        | 0.3433 ± 0.0123 {ci(BETTER)} ▲ | 0.2000 ± 0.0100 |        17/20 |       3 |    1.25 |     0.04 |
| neural   | vae       |            0.2833 {ci(POP)} |          0.3000 | 0 (defaults) |       - |    1.25 |     0.04 |
| neural   | ncf       |        n/a (needs user embeddings) |             n/a | 0 (defaults) |         |         |          |
"""


GOLDEN_HOLDOUT_HYPERPARAMETERS = """\
### Hyperparameters: ml / holdout

| model   | trials       | best validation   | seeds   | hyperparameters                  |
|---------|--------------|-------------------|---------|----------------------------------|
| pop     | 0/0          | -                 | -       | -                                |
| random  | 0 (defaults) | -                 | 7       | -                                |
| mf      | 17/20        | ndcg@10 = 0.2500  | 1..3    | factors=64, loss=bpr, lr=0.00125 |
| vae     | 0 (defaults) | -                 | -       | -                                |
| ncf     | 0 (defaults) | -                 | -       | -                                |
"""


def build(root, params, out):
    """``python -m reports statistics`` then ``python -m reports build``, as dvc.yaml runs them."""
    statistics = write_statistics(root, params, out.with_suffix(".statistics.json"))
    with pytest.raises(SystemExit) as exit_:
        run_cli(main, ["build", "--results-root", str(root), "--statistics", str(statistics), "--out", str(out)])
    assert exit_.value.code == 0
    return out.read_text()


def test_leaderboard_matches_golden_tables(results, tmp_path):
    root, params = results
    text = build(root, params, tmp_path / "board.md")
    assert text.startswith("# RecAudit leaderboard\n\nBuilt by `python -m reports build` from 6 result files")
    assert golden_holdout() in text
    assert GOLDEN_HOLDOUT_HYPERPARAMETERS in text
    assert text.index("## ml / holdout") < text.index("## ml / loo (sampled)")
    legend = text[text.index("| neural   | ncf"):text.index("### Hyperparameters: ml / holdout")]
    assert "paired Wilcoxon signed-rank test" in legend and "Holm correction within each metric column" in legend
    assert "(one family per split and metric: every other model against the reference; ndcg@10: 3 comparisons)" \
        in legend
    assert "alpha 0.05" in legend and f"{DEFAULT_RESAMPLES} resamples, seed 42" in legend
    assert "coverage@10: not tested, being a list metric (plain value, no interval)" in legend


def test_sampled_split_is_labelled_and_a_lone_reference_has_nothing_to_compare(results, tmp_path):
    root, params = results
    text = build(root, params, tmp_path / "board.md")
    section = text[text.index("## ml / loo"):]
    assert section.startswith("## ml / loo (sampled)\n")
    assert f"| baseline | pop (ref) | 0.2833 {ci(POP)} |             - |" in section
    assert "### Hyperparameters: ml / loo (sampled)" in section
    assert "▲" not in section and "▼" not in section
    assert "(ref): the best baseline on ndcg@10 (pop); no other model to compare with it." in section


def test_no_baseline_means_no_marks(tmp_path):
    root = tmp_path / "results"
    write_model(root, "holdout", "mf", BETTER, 0.2, family="neural")
    write_model(root, "holdout", "vae", POP, 0.3, family="neural")
    params = tmp_path / "params.yaml"
    params.write_text("reports:\n  metrics: [ndcg@10]\n")
    text = build(root, params, tmp_path / "board.md")
    assert "No significance marks: no baseline with per-user ndcg@10 values" in text
    assert "(ref)" not in text and "▲" not in text and "▼" not in text
    assert text.index("| neural   | mf") < text.index("| neural   | vae")


def slightly_better() -> np.ndarray:
    """POP plus differences 1..30 (in thousandths) whose 16 smallest are negative: the exact
    two-sided Wilcoxon p-value is 0.0473, significant alone at 0.05 but not after Holm in a
    family where it is the third smallest of four (adjusted 2 x 0.0473). The negative
    differences go to users whose reference value is at least 0.1, so no value is negative."""
    signed = np.arange(1, N_USERS + 1) / 1000
    signed[:16] *= -1
    order = np.argsort(POP == 0, kind="stable")  # users with POP = 0 last: they get positive differences
    values = POP.copy()
    values[order] += signed
    return values


def test_holm_is_applied_within_the_metric_column(results, tmp_path):
    from scipy import stats

    slight = slightly_better()
    assert stats.wilcoxon(slight - POP).pvalue == pytest.approx(0.04726, abs=1e-5)  # independent check
    root, params = results
    write_model(root, "holdout", "slight", slight, 0.5, family="neural")
    text = build(root, params, tmp_path / "board.md")
    row = next(line for line in text.splitlines() if line.startswith("| neural   | slight "))
    assert "(ref)" not in row and "▲" not in row and "▼" not in row
    assert "| baseline | pop (ref) |" in text
    assert "ndcg@10: 4 comparisons" in text
    alone = tmp_path / "alone"
    write_model(alone, "holdout", "pop", POP, 0.01)
    write_model(alone, "holdout", "slight", slight, 0.5, family="neural")
    text = build(alone, params, tmp_path / "alone.md")
    row = next(line for line in text.splitlines() if line.startswith("| neural   | slight "))
    assert row.split("|")[3].strip().endswith("▲")


def test_leaderboard_is_deterministic_and_names_its_inputs(results, tmp_path):
    root, params = results
    first = build(root, params, tmp_path / "a.md")
    assert build(root, params, tmp_path / "b.md") == first
    # the digest covers per-user files: change one user's value only
    changed = POP.copy()
    changed[0] += 0.001
    per_user = pd.DataFrame({"user": USERS, "ndcg@10": changed})
    per_user.to_parquet(result_dir(root, "ml", "loo", "pop") / "per_user.parquet", index=False)
    second = build(root, params, tmp_path / "c.md")
    assert second.splitlines()[2] != first.splitlines()[2]  # the inputs digest line


def test_seed_folders_are_not_results_of_their_own(results, tmp_path):
    root, params = results
    folder = result_dir(root, "ml", "holdout", "mf")
    for seed in (1, 2, 3):
        write_result(folder / "seeds" / str(seed),
                     record("ml", "holdout", "mf", {"ndcg@10": 0.9}, seed=seed, seeds=[seed], family="neural"),
                     pd.DataFrame({"user": USERS, "ndcg@10": np.full(N_USERS, 0.9)}))
    text = build(root, params, tmp_path / "board.md")
    assert "from 6 result files" in text and golden_holdout() in text


def test_malformed_result_file_is_a_one_line_error(results, tmp_path, capsys):
    root, params = results
    (root / "ml" / "holdout" / "pop" / "metrics.json").write_text('{"dataset": "ml"}')
    with pytest.raises(SystemExit) as exit_:
        run_cli(main, ["statistics", "--results-root", str(root), "--out", str(tmp_path / "x.md"),
                       "--params-yaml", str(params)])
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("error: result file") and error.count("\n") == 1
    assert not (tmp_path / "x.md").exists()


def test_missing_per_user_file_is_a_one_line_error(results, tmp_path, capsys):
    root, params = results
    (root / "ml" / "holdout" / "vae" / "per_user.parquet").unlink()
    with pytest.raises(SystemExit) as exit_:
        run_cli(main, ["statistics", "--results-root", str(root), "--out", str(tmp_path / "x.md"),
                       "--params-yaml", str(params)])
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("error: cannot read per-user results") and "vae" in error and error.count("\n") == 1
    assert not (tmp_path / "x.md").exists()


@pytest.mark.parametrize("reports, fragment", [
    ("{alpha: 1.5}", "reports.alpha must lie strictly between 0 and 1"),
    ("{n_resamples: 0}", "n_resamples must be a positive integer"),
    ("{metrics: ndcg@10}", "reports.metrics must be a list"),
])
def test_bad_report_settings_are_one_line_errors(results, tmp_path, capsys, reports, fragment):
    root, params = results
    params.write_text(f"reports: {reports}\n")
    with pytest.raises(SystemExit) as exit_:
        run_cli(main, ["statistics", "--results-root", str(root), "--out", str(tmp_path / "x.md"),
                       "--params-yaml", str(params)])
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and fragment in error


def test_nan_metric_is_stored_as_null(results):
    root, _ = results
    records = {(r["protocol"], r["model"]): r for r in read_results(root)}
    assert records[("loo", "pop")]["metrics"]["coverage@10"] is None


def test_short_reason():
    assert short_reason("model 'x' cannot score 3 users (needs user embeddings); use holdout") == \
        "needs user embeddings"
    assert short_reason("no fold-in; use holdout") == "no fold-in"


def test_incomplete_record_is_not_written(tmp_path):
    with pytest.raises(ValueError, match="lacks keys"):
        write_result(tmp_path / "r", {"dataset": "ml"}, pd.DataFrame({"user": []}))
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def test_empty_results_give_an_empty_board(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("{}\n")
    text = build(tmp_path / "results", params, tmp_path / "board.md")
    assert "from 0 result files" in text and "##" not in text
    assert "sorted by ndcg@10" in text  # the default metrics


def test_a_small_tuning_budget_is_said_plainly_on_the_leaderboard_and_the_page():
    from reports.leaderboard import build_leaderboard
    from reports.site import build_site
    from reports.statistics import statistics_of
    from reports.tables import Entry, budget_note

    def entry(model, family, budget):
        tuning = None if budget is None else {"status": "ok", "trials_run": budget, "trials_budget": budget}
        record = {"dataset": "d", "protocol": "p", "model": model, "family": family, "status": "ok",
                  "metrics": {"ndcg@10": 0.1}, "tuning": tuning, "seeds": [None], "sampled": False}
        return Entry(record, pd.DataFrame({"user": [0, 1], "ndcg@10": [0.1, 0.1]}))

    small = [entry("pop", "baseline", 1), entry("ease", "baseline", 5), entry("mlp", "neural", 5)]
    note = budget_note(small)
    assert note is not None and "5 trials" in note and "50" in note and "tuning.budget: paper" in note
    assert note in build_leaderboard(small, statistics_of(small, ["ndcg@10"]))
    assert "tuned with 5 trials" in build_site(small, statistics_of(small, ["ndcg@10"]))
    assert budget_note([entry("ease", "baseline", 50), entry("pop", "baseline", 1)]) is None
    assert budget_note([entry("ease", "baseline", None)]) is None  # untuned defaults: no tuning budget to judge
