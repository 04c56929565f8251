"""The verdict table: neural methods against the best baseline of each split, Wilcoxon with
Holm over the whole table, and the explicit rows for splits without a test."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from common.errors import run_cli
from reports.__main__ import main
from tests.report_results import BASE, REFERENCE, STEP, slightly_better, write_model, write_params, write_unsupported


@pytest.fixture
def results(tmp_path):
    """holdout: ease (best baseline) and pop; neural up (better for every user), down (worse
    for every user), same (identical to ease) and ncf (refused). temporal: ease and slight
    (p 0.0473: significant alone, not after Holm over the four tests of the table).
    loo: baselines only."""
    root = tmp_path / "results"
    for split in ("holdout", "temporal", "loo"):
        write_model(root, split, "ease", REFERENCE, 0.2)
        write_model(root, split, "pop", BASE, 0.01)
    write_model(root, "holdout", "up", REFERENCE + STEP, family="neural")
    write_model(root, "holdout", "down", REFERENCE - STEP, family="neural")
    write_model(root, "holdout", "same", REFERENCE.copy(), family="neural")
    write_unsupported(root, "holdout", "ncf", "model 'ncf' cannot score held-out users (needs user embeddings)")
    write_model(root, "temporal", "slight", slightly_better(), family="neural")
    return root, write_params(tmp_path / "params.yaml")


def run_verdicts(root, params, out) -> tuple[str, pd.DataFrame]:
    with pytest.raises(SystemExit) as exit_:
        run_cli(main, ["verdicts", "--results-root", str(root), "--out", str(out), "--params-yaml", str(params)])
    assert exit_.value.code == 0
    return out.read_text(), pd.read_csv(out.with_suffix(".csv"), keep_default_na=False)


def test_verdicts_with_holm_over_the_whole_table(results, tmp_path):
    root, params = results
    _, table = run_verdicts(root, params, tmp_path / "verdicts.md")
    rows = table.set_index(["split", "model"])
    assert list(zip(table["split"], table["model"])) == [
        ("holdout", "down"), ("holdout", "ncf"), ("holdout", "same"), ("holdout", "up"), ("loo", ""),
        ("temporal", "slight")]
    assert set(table.loc[table["model"] != "", "reference"]) == {"ease"}
    assert rows.loc[("holdout", "up"), "verdict"] == "significantly better"
    assert rows.loc[("holdout", "down"), "verdict"] == "significantly worse"
    assert rows.loc[("holdout", "same"), "verdict"] == "not different"
    assert rows.loc[("holdout", "ncf"), "verdict"] == "not run"
    assert rows.loc[("holdout", "ncf"), "note"] == "needs user embeddings"
    assert rows.loc[("loo", ""), "verdict"] == "no neural method evaluated"

    # p-values from scipy on the very differences tested, then Holm by hand over the four tested rows
    def p_of(model_values) -> float:
        return stats.wilcoxon(model_values - REFERENCE).pvalue

    p = {("holdout", "up"): p_of(REFERENCE + STEP), ("holdout", "down"): p_of(REFERENCE - STEP),
         ("holdout", "same"): 1.0, ("temporal", "slight"): p_of(slightly_better())}
    assert p[("temporal", "slight")] == pytest.approx(0.04726, abs=1e-5)  # significant on its own
    for key, value in p.items():
        assert float(rows.loc[key, "p_value"]) == pytest.approx(value, rel=1e-9)
    ordered = sorted(p, key=p.get)
    running = 0.0
    for position, key in enumerate(ordered):  # p~(i) = min(1, max_{j <= i} (m - j + 1) p(j))
        running = max(running, (len(ordered) - position) * p[key])
        assert float(rows.loc[key, "p_holm"]) == pytest.approx(min(running, 1.0), rel=1e-9)
    assert ordered[2] == ("temporal", "slight")  # third of four: Holm doubles it, 0.0945 > alpha
    assert rows.loc[("temporal", "slight"), "verdict"] == "not different"
    assert rows.loc[("holdout", "ncf"), "p_holm"] == ""  # untested rows are not in the family

    up = rows.loc[("holdout", "up")]
    assert float(up["mean"]) == pytest.approx(np.mean(REFERENCE + STEP), abs=1e-12)
    assert float(up["reference_mean"]) == pytest.approx(np.mean(REFERENCE), abs=1e-12)
    assert float(up["mean_difference"]) == pytest.approx(0.06, abs=1e-12)
    assert float(up["difference_ci_low"]) <= 0.06 <= float(up["difference_ci_high"])
    assert 0.05 <= float(up["difference_ci_low"]) and float(up["difference_ci_high"]) <= 0.07


def test_slight_win_alone_is_significant(results, tmp_path):
    """The same comparison without the other rows: Holm over a family of one leaves it significant,
    which shows the table above adjusted over all its rows."""
    root, params = results
    for model in ("up", "down", "same"):
        for path in sorted((root / "ml" / "holdout" / model).rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        (root / "ml" / "holdout" / model).rmdir()
    _, table = run_verdicts(root, params, tmp_path / "verdicts.md")
    slight = table.set_index("model").loc["slight"]
    assert slight["verdict"] == "significantly better"


def test_markdown_names_the_family_and_counts_the_verdicts(results, tmp_path):
    root, params = results
    text, _ = run_verdicts(root, params, tmp_path / "verdicts.md")
    assert "Holm correction over all 4 comparisons of this table" in text
    assert "Of 4 comparisons: 1 significantly better, 2 not different, 1 significantly worse." in text
    rows = {tuple(cell.strip() for cell in line.split("|")[2:4]): [cell.strip() for cell in line.split("|")[1:-1]]
            for line in text.splitlines() if line.startswith("| ml ")}
    up = rows[("holdout", "up")]
    assert up[3:6] == ["ease", "0.4433", "0.3833"] and up[-1] == "significantly better"
    assert up[6].startswith("+0.0600 [+0.05") and up[7].endswith("e-06")
    assert rows[("holdout", "ncf")][-1] == "not run (needs user embeddings)"
    assert rows[("loo", "-")][-1] == "no neural method evaluated"
    assert rows[("temporal", "slight")][-2:] == ["0.0945", "not different"]
    again, _ = run_verdicts(root, params, tmp_path / "again.md")
    assert again == text


def test_without_neural_results_every_split_says_so(tmp_path):
    root = tmp_path / "results"
    for split in ("holdout", "loo"):
        write_model(root, split, "ease", REFERENCE, 0.2)
    text, table = run_verdicts(root, write_params(tmp_path / "params.yaml"), tmp_path / "verdicts.md")
    assert list(table["verdict"]) == ["no neural method evaluated"] * 2
    assert list(table["reference"]) == ["ease", "ease"]
    assert "No neural method has been evaluated yet" in text
    assert text.count("| no neural method evaluated |") == 2


def test_neural_without_a_baseline_is_not_tested(tmp_path):
    root = tmp_path / "results"
    write_model(root, "holdout", "up", REFERENCE + STEP, family="neural")
    _, table = run_verdicts(root, write_params(tmp_path / "params.yaml"), tmp_path / "verdicts.md")
    assert list(table["verdict"]) == ["no baseline"] and table.loc[0, "p_holm"] == ""
