"""Exported tables: LaTeX (golden snippet: booktabs rules, group midrule, bold best, marks,
escaping), CSV (columns and values against an independent bootstrap), Markdown with bold,
and the ``tables`` command's files."""
from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd
import pytest

from common.errors import run_cli
from protocols.bootstrap import bootstrap_mean_ci
from reports.__main__ import main
from reports.export import csv_table, latex_escape, latex_table, markdown_table
from reports.statistics import entries_by_split, read_statistics
from reports.tables import BOLD_LEGEND, split_section, split_table
from tests.report_results import BASE, SEED, STEP, write_model, write_params, write_statistics, write_unsupported

METRICS = ["ndcg@10", "coverage@10"]
MF_TUNING = {"trials_run": 17, "trials_budget": 20, "budget": "default", "validation_metric": "ndcg@10",
             "best_value": 0.25}


@pytest.fixture
def split(tmp_path):
    """pop (reference, mean 0.2833), item_knn (half of pop for every user: significantly
    worse; best coverage), mf_50% (pop + 0.05..0.07: significantly better), ncf&co (refused)."""
    root = tmp_path / "results"
    write_model(root, "holdout", "pop", BASE, 0.01)
    write_model(root, "holdout", "item_knn", BASE / 2, 0.5)
    write_model(root, "holdout", "mf_50%", BASE + STEP, 0.2, family="neural", seed=1, seeds=[1, 2, 3],
                metrics_std={"ndcg@10": 0.0123, "coverage@10": 0.01}, tuning=MF_TUNING)
    write_unsupported(root, "holdout", "ncf&co", "model 'ncf' cannot score held-out users (needs user_embeddings)")
    params = write_params(tmp_path / "params.yaml")
    entries, statistics = read_statistics(write_statistics(root, params), root)
    entries = entries_by_split(entries)[("ml", "holdout")]
    return root, params, split_table("ml", "holdout", entries, statistics), statistics, entries


GOLDEN_LATEX_BODY = r"""\begin{tabular}{lrrrrrr}
\toprule
Model & ndcg@10 & coverage@10 & Trials & Seeds & Fit s & Eval s \\
\midrule
\multicolumn{7}{l}{\textit{baseline}} \\
pop (ref) & 0.2833 & 0.0100 & 0 (defaults) & - & 1.25 & 0.04 \\
item\_knn & 0.1417$^{\blacktriangledown}$ & \textbf{0.5000} & 0 (defaults) & - & 1.25 & 0.04 \\
\midrule
\multicolumn{7}{l}{\textit{neural}} \\
mf\_50\% & \textbf{0.3433} $\pm$ 0.0123$^{\blacktriangle}$ & 0.2000 $\pm$ 0.0100 & 17/20 & 3 & 1.25 & 0.04 \\
ncf\&co & \multicolumn{2}{l}{n/a (needs user\_embeddings)} & 0 (defaults) &  &  &  \\
\bottomrule
\end{tabular}
"""


def test_latex_matches_golden_snippet(split):
    _, _, table, statistics, _ = split
    text = latex_table(table, statistics)
    assert text.endswith(GOLDEN_LATEX_BODY)
    comments = text[:-len(GOLDEN_LATEX_BODY)].splitlines()
    assert comments and all(line.startswith("% ") for line in comments)
    assert r"\usepackage{booktabs}" in comments[1] and "ndcg@10: 2 comparisons" in text


def test_latex_escape_handles_every_special_character():
    assert latex_escape(r"a_b%c&d$e#f{g}h~i^j\k") == \
        r"a\_b\%c\&d\$e\#f\{g\}h\textasciitilde{}i\textasciicircum{}j\textbackslash{}k"
    assert latex_escape("itemknn-cosine") == "itemknn-cosine"


def test_csv_has_one_row_per_model_with_means_intervals_and_marks(split):
    _, _, table, _, _ = split
    frame = pd.read_csv(io.StringIO(csv_table(table, METRICS)), keep_default_na=False)
    assert list(frame.columns) == [
        "dataset", "split", "family", "model", "status", "reason", "is_reference",
        "ndcg@10", "ndcg@10_sd", "ndcg@10_ci_low", "ndcg@10_ci_high", "ndcg@10_marker",
        "coverage@10", "coverage@10_sd", "coverage@10_ci_low", "coverage@10_ci_high", "coverage@10_marker",
        "trials_run", "trials_budget", "n_seeds", "fit_seconds", "eval_seconds"]
    assert list(frame["model"]) == ["pop", "item_knn", "mf_50%", "ncf&co"]
    rows = frame.set_index("model")
    for model, values in (("pop", BASE), ("item_knn", BASE / 2), ("mf_50%", BASE + STEP)):
        interval = bootstrap_mean_ci(values, seed=SEED, n_resamples=200)
        assert float(rows.loc[model, "ndcg@10"]) == pytest.approx(np.mean(values), abs=1e-12)
        assert float(rows.loc[model, "ndcg@10_ci_low"]) == pytest.approx(interval.low, abs=1e-12)
        assert float(rows.loc[model, "ndcg@10_ci_high"]) == pytest.approx(interval.high, abs=1e-12)
    assert list(rows["ndcg@10_marker"]) == ["", "worse", "better", ""]
    assert list(rows["is_reference"]) == [True, False, False, False]
    assert rows.loc["mf_50%", "ndcg@10_sd"] == "0.0123" and rows.loc["pop", "ndcg@10_sd"] == ""
    assert rows.loc["pop", "coverage@10_ci_low"] == ""  # a list metric has no interval
    assert rows.loc["ncf&co", "status"] == "unsupported" and rows.loc["ncf&co", "reason"] == "needs user_embeddings"
    assert rows.loc["ncf&co", "ndcg@10"] == ""
    assert rows.loc["mf_50%", ["trials_run", "trials_budget", "n_seeds"]].tolist() == [17, 20, 3]
    assert rows.loc["pop", "n_seeds"] == 1 and float(rows.loc["pop", "fit_seconds"]) == 1.25


def test_markdown_export_is_the_leaderboard_section_with_bold_best(split):
    _, _, table, statistics, entries = split
    text = markdown_table(table, statistics)
    assert " **0.3433** ± 0.0123 [0." in text and " **0.5000** |" in text
    assert text.count("**") == 4  # two bold cells: nothing else
    plain = "\n".join(split_section("ml", "holdout", entries, statistics)).rstrip("\n") + "\n"
    without_bold = text.replace("**", "").replace(BOLD_LEGEND + "\n", "")
    def cells(markdown: str) -> list[str]:  # the padding and rule lengths differ with the bold markers
        return re.sub(r"-{3,}", "---", markdown).split()

    assert cells(without_bold) == cells(plain)


def test_tables_command_writes_three_files_per_split_and_drops_stale_ones(split, tmp_path):
    root, params, _, _, _ = split
    write_model(root, "loo", "pop", BASE, 0.01)
    statistics = write_statistics(root, params)
    out = tmp_path / "tables"
    out.mkdir()
    (out / "old__split.csv").write_text("stale")
    arguments = ["tables", "--results-root", str(root), "--out-dir", str(out), "--statistics", str(statistics)]
    with pytest.raises(SystemExit) as exit_:
        run_cli(main, arguments)
    assert exit_.value.code == 0
    names = sorted(path.name for path in out.iterdir())
    assert names == [f"ml__{split}.{suffix}" for split in ("holdout", "loo") for suffix in ("csv", "md", "tex")]
    first = {name: (out / name).read_bytes() for name in names}
    with pytest.raises(SystemExit):
        run_cli(main, arguments)
    assert {name: (out / name).read_bytes() for name in names} == first
    single_family = first["ml__loo.tex"].decode()
    assert single_family.count(r"\toprule") == 1 and single_family.count(r"\midrule") == 1  # no group rule
    assert first["ml__holdout.tex"].decode().count(r"\midrule") == 2
