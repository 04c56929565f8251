"""The leaderboard: built only from result files, deterministic, golden Markdown."""
from __future__ import annotations

import pandas as pd
import pytest

from datasets.errors import run_cli
from protocols.results import read_results, result_dir, short_reason, write_result
from reports.__main__ import main

GOLDEN_HOLDOUT = """\
## ml / holdout

10 test users, metric version 1.

| model   |                     ndcg@10 |   recall@20 |   fit s |   eval s |
|---------|-----------------------------|-------------|---------|----------|
| pop     |                      0.2500 |      0.5000 |    1.25 |     0.04 |
| random  |                      0.0100 |      0.0200 |    0.00 |     0.05 |
| mf      | n/a (needs user embeddings) |         n/a |         |          |
"""

GOLDEN_SAMPLED = """\
## ml / loo (sampled)

10 test users, metric version 1.

| model   |   ndcg@10 |   recall@20 |   fit s |   eval s |
|---------|-----------|-------------|---------|----------|
| pop     |    0.4000 |           - |    1.25 |     0.04 |
"""


def write_record(root, dataset, protocol, model, metrics, **overrides):
    record = dict(dataset=dataset, protocol=protocol, model=model, params={}, seed=None, sampled=False,
                  metric_version="1", metrics=metrics, n_users=10, fit_seconds=1.25, eval_seconds=0.04,
                  peak_rss_mb=100.0, status="ok")
    record.update(overrides)
    write_result(result_dir(root, dataset, protocol, model), record, pd.DataFrame({"user": [0]}))


@pytest.fixture
def results(tmp_path):
    root = tmp_path / "results"
    # Written in an order different from the table's, to show the sorting.
    write_record(root, "ml", "loo", "pop", {"ndcg@10": 0.4, "recall@20": float("nan")}, sampled=True)
    write_record(root, "ml", "holdout", "random", {"ndcg@10": 0.01, "recall@20": 0.02},
                 fit_seconds=0.001, eval_seconds=0.05)
    write_record(root, "ml", "holdout", "mf", {}, status="unsupported",
                 reason=short_reason("model 'mf' cannot score held-out users (needs user embeddings); use holdout"),
                 metric_version=None, n_users=0, fit_seconds=None, eval_seconds=None)
    write_record(root, "ml", "holdout", "pop", {"ndcg@10": 0.25, "recall@20": 0.5})
    params = tmp_path / "params.yaml"
    params.write_text("reports:\n  metrics: [NDCG@10, recall@20]\n")
    return root, params


def build(root, params, out):
    with pytest.raises(SystemExit) as exit_:
        run_cli(main, ["build", "--results-root", str(root), "--out", str(out), "--params-yaml", str(params)])
    assert exit_.value.code == 0
    return out.read_text()


def test_leaderboard_matches_golden_tables(results, tmp_path):
    root, params = results
    text = build(root, params, tmp_path / "board.md")
    assert text.startswith("# RecAudit leaderboard\n\nBuilt by `python -m reports build` from 4 result files")
    assert GOLDEN_HOLDOUT in text
    assert GOLDEN_SAMPLED in text
    assert text.index("## ml / holdout") < text.index("## ml / loo")


def test_leaderboard_is_deterministic_and_names_its_inputs(results, tmp_path):
    root, params = results
    first = build(root, params, tmp_path / "a.md")
    assert build(root, params, tmp_path / "b.md") == first
    write_record(root, "ml", "loo", "pop", {"ndcg@10": 0.41}, sampled=True)
    changed = build(root, params, tmp_path / "c.md")
    assert changed.splitlines()[2] != first.splitlines()[2]  # the inputs digest line


def test_malformed_result_file_is_a_one_line_error(results, tmp_path, capsys):
    root, params = results
    (root / "ml" / "holdout" / "pop" / "metrics.json").write_text('{"dataset": "ml"}')
    with pytest.raises(SystemExit) as exit_:
        run_cli(main, ["build", "--results-root", str(root), "--out", str(tmp_path / "x.md"),
                       "--params-yaml", str(params)])
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("error: result file") and error.count("\n") == 1
    assert not (tmp_path / "x.md").exists()


def test_nan_metric_is_stored_as_null(results):
    root, _ = results
    records = {(r["protocol"], r["model"]): r for r in read_results(root)}
    assert records[("loo", "pop")]["metrics"]["recall@20"] is None


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
