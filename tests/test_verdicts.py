"""The verdict table: neural methods against the best baseline of each split, rendered from the
statistics file (Wilcoxon, Holm within each split's metric column, the leaderboard's family), and
the explicit rows for splits without a test."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from common.errors import run_cli
from reports.__main__ import main
from tests.report_results import (BASE, REFERENCE, STEP, slightly_better, write_model, write_params, write_statistics,
                                  write_unsupported)


@pytest.fixture
def results(tmp_path):
    """holdout: ease (best baseline) and pop; neural up (better for every user), down (worse
    for every user), same (identical to ease) and ncf (refused). temporal: ease, pop and slight
    (p 0.0473: significant in its split's family, where pop's tiny p-value comes first; it was
    not under the former Holm over the whole verdict table). loo: baselines only."""
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
    statistics = write_statistics(root, params, out.with_suffix(".statistics.json"))
    with pytest.raises(SystemExit) as exit_:
        run_cli(main, ["verdicts", "--results-root", str(root), "--statistics", str(statistics), "--out", str(out)])
    assert exit_.value.code == 0
    return out.read_text(), pd.read_csv(out.with_suffix(".csv"), keep_default_na=False)


def test_verdicts_with_holm_within_each_split_column(results, tmp_path):
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

    # p-values from scipy on the very differences tested, then Holm by hand within each split's
    # family: every model of the split (pop, a baseline, included) against ease
    def p_of(model_values) -> float:
        return stats.wilcoxon(model_values - REFERENCE).pvalue

    families = {"holdout": {"up": p_of(REFERENCE + STEP), "down": p_of(REFERENCE - STEP), "same": 1.0,
                            "pop": p_of(BASE)},
                "temporal": {"slight": p_of(slightly_better()), "pop": p_of(BASE)}}
    assert families["temporal"]["slight"] == pytest.approx(0.04726, abs=1e-5)
    for split, p in families.items():
        ordered = sorted(p, key=p.get)
        running, adjusted = 0.0, {}
        for position, model in enumerate(ordered):  # p~(i) = min(1, max_{j <= i} (m - j + 1) p(j))
            running = max(running, (len(ordered) - position) * p[model])
            adjusted[model] = min(running, 1.0)
        for model in p:
            if model == "pop":
                continue  # a baseline: in the family, not in the verdict table
            assert float(rows.loc[(split, model), "p_value"]) == pytest.approx(p[model], rel=1e-9)
            assert float(rows.loc[(split, model), "p_holm"]) == pytest.approx(adjusted[model], rel=1e-9)
    # slight comes second of two in its split: Holm leaves 0.0473, significant; the holdout
    # comparisons are another family and do not enlarge its correction
    assert float(rows.loc[("temporal", "slight"), "p_holm"]) == pytest.approx(0.04726, abs=1e-5)
    assert rows.loc[("temporal", "slight"), "verdict"] == "significantly better"
    assert rows.loc[("holdout", "ncf"), "p_holm"] == ""  # untested rows are not in the family

    up = rows.loc[("holdout", "up")]
    assert float(up["mean"]) == pytest.approx(np.mean(REFERENCE + STEP), abs=1e-12)
    assert float(up["reference_mean"]) == pytest.approx(np.mean(REFERENCE), abs=1e-12)
    assert float(up["mean_difference"]) == pytest.approx(0.06, abs=1e-12)
    assert float(up["difference_ci_low"]) <= 0.06 <= float(up["difference_ci_high"])
    assert 0.05 <= float(up["difference_ci_low"]) and float(up["difference_ci_high"]) <= 0.07


def test_another_splits_comparisons_do_not_change_a_verdict(results, tmp_path):
    """Without holdout's neural methods the temporal row is the same: its family is its split's
    ndcg@10 column, whatever else the table holds."""
    root, params = results
    _, before = run_verdicts(root, params, tmp_path / "before.md")
    for model in ("up", "down", "same"):
        for path in sorted((root / "ml" / "holdout" / model).rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        (root / "ml" / "holdout" / model).rmdir()
    _, after = run_verdicts(root, params, tmp_path / "verdicts.md")
    slight = after.set_index("model").loc["slight"]
    assert slight["verdict"] == "significantly better"
    assert slight["p_holm"] == before.set_index("model").loc["slight", "p_holm"]


def test_markdown_names_the_family_and_counts_the_verdicts(results, tmp_path):
    root, params = results
    text, _ = run_verdicts(root, params, tmp_path / "verdicts.md")
    assert "Holm correction within each split's ndcg@10 column (one family per split and metric" in text
    assert "Of 4 comparisons: 2 significantly better, 1 not different, 1 significantly worse." in text
    rows = {tuple(cell.strip() for cell in line.split("|")[2:4]): [cell.strip() for cell in line.split("|")[1:-1]]
            for line in text.splitlines() if line.startswith("| ml ")}
    up = rows[("holdout", "up")]
    assert up[3:6] == ["ease", "0.4433", "0.3833"] and up[-1] == "significantly better"
    assert up[6].startswith("+0.0600 [+0.05") and up[7].endswith("e-06")
    assert rows[("holdout", "ncf")][-1] == "not run (needs user embeddings)"
    assert rows[("loo", "-")][-1] == "no neural method evaluated"
    assert rows[("temporal", "slight")][-2:] == ["0.0473", "significantly better"]
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
