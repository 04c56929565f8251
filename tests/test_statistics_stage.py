"""One statistics stage: ``python -m reports statistics`` computes every interval, test, Holm
family and verdict once into ``reports/statistics.json``; the leaderboard, tables, verdicts,
plots, page and audit only render it, so they agree on every mark.

The synthetic results are built so that the former reports disagreed: on ``temporal``, slight
(exact Wilcoxon p 0.0473) was ▲ in the leaderboard (Holm over its table: pop's tiny p-value
first, slight's left as it is) but "not different" in the verdicts (Holm over the whole verdict
table, where it came third of four and doubled)."""
from __future__ import annotations

import ast
import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import protocols.bootstrap
import protocols.statistics
import reports.statistics
from common.errors import RecAuditError, run_cli
from protocols.results import result_dir, write_run
from reports.__main__ import main
from reports.statistics import load_statistics
from tests.report_results import (BASE, N_USERS, REFERENCE, SEED, STEP, USERS, record, slightly_better,
                                  write_unsupported)
from tests.site_results import PageReader

ROOT = Path(__file__).resolve().parents[1]
METRICS = ["ndcg@10", "recall@20", "coverage@10"]
MARKS = {"better": "▲", "worse": "▼"}
VERDICT_WORDS = {"better": "significantly better", "worse": "significantly worse", "not different": "not different"}


def write(root: Path, split: str, model: str, ndcg: np.ndarray, recall: np.ndarray, family: str = "baseline") -> None:
    per_user = pd.DataFrame({"user": USERS, "ndcg@10": ndcg, "recall@20": recall})
    metrics = {"ndcg@10": float(np.mean(ndcg)), "recall@20": float(np.mean(recall)), "coverage@10": 0.1}
    write_run(result_dir(root, "ml", split, model), record("ml", split, model, metrics, family=family), per_user)


@pytest.fixture
def workspace(tmp_path):
    """holdout: ease (reference), pop; up (better on ndcg, equal on recall), down (worse on both),
    same (ease's values), ncf (refused). temporal: ease, pop, slight. loo: ease alone."""
    root = tmp_path / "results"
    recall = 0.5 + (USERS % 5) / 20
    for split in ("holdout", "temporal", "loo"):
        write(root, split, "ease", REFERENCE, recall)
    for split in ("holdout", "temporal"):
        write(root, split, "pop", BASE, recall / 2)
    write(root, "holdout", "up", REFERENCE + STEP, recall.copy(), family="neural")
    write(root, "holdout", "down", REFERENCE - STEP, recall - 0.1, family="neural")
    write(root, "holdout", "same", REFERENCE.copy(), recall.copy(), family="neural")
    write_unsupported(root, "holdout", "ncf", "model 'ncf' cannot score held-out users (needs user embeddings)")
    write(root, "temporal", "slight", slightly_better(), recall.copy(), family="neural")
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"seed": SEED, "reports": {"metrics": METRICS, "n_resamples": 300}}))
    claims = tmp_path / "claims"
    claims.mkdir()
    document = {"paper": "Synthetic", "citation": "Nobody. 2024.", "defaults": {"where": "T", "provenance": ["paper"]},
                "claims": [{"dataset": "ml", "protocol": f"ml/{split}", "model": model, "paper_model": model,
                            "values": {"ndcg@10": 0.4, "recall@20": 0.6}}
                           for split, model in (("holdout", "up"), ("holdout", "down"), ("holdout", "same"),
                                                ("holdout", "pop"), ("temporal", "slight"))]}
    (claims / "synthetic.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    return tmp_path


def cli(*arguments: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        run_cli(main, list(arguments))
    assert exit_.value.code == 0


def compute(tmp_path: Path, name: str = "statistics.json") -> Path:
    out = tmp_path / name
    cli("statistics", "--results-root", str(tmp_path / "results"), "--out", str(out), "--params-yaml",
        str(tmp_path / "params.yaml"))
    return out


def render_all(tmp_path: Path, statistics: Path) -> Path:
    """Every report from one statistics file, as dvc.yaml's report stages run them."""
    out = tmp_path / "reports"
    common = ["--results-root", str(tmp_path / "results"), "--statistics", str(statistics)]
    cli("build", *common, "--out", str(out / "leaderboard.md"))
    cli("tables", *common, "--out-dir", str(out / "tables"))
    cli("verdicts", *common, "--out", str(out / "verdicts.md"))
    cli("plots", *common, "--splits-root", str(tmp_path / "no-splits"), "--out-dir", str(out / "plots"))
    cli("site", *common, "--plots-dir", str(out / "plots"), "--out", str(out / "site" / "index.html"))
    cli("audit", *common, "--params-yaml", str(tmp_path / "params.yaml"), "--claims-dir", str(tmp_path / "claims"),
        "--out", str(out / "audit.md"))
    return out


# ---------------------------------------------------------------- what each report shows

def expected_marks(statistics) -> dict[tuple[str, str, str], str]:
    """``{(split, model, metric): verdict}`` of every comparison in the statistics file."""
    return {(split, model, metric): comparison.verdict
            for (_, split), found in statistics.splits.items()
            for metric, column in found.comparisons.items() for model, comparison in column.items()}


def cell_mark(cell: str) -> str:
    return next((verdict for verdict, mark in MARKS.items() if mark in cell), "not different")


def leaderboard_marks(text: str) -> dict[tuple[str, str, str], str]:
    marks = {}
    for section in text.split("\n## ")[1:]:
        split = section.split("\n", 1)[0].split(" / ")[1].split(" ")[0]
        for line in (line for line in section.splitlines() if line.startswith(("| baseline ", "| neural "))):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            if len(cells) < 2 + len(METRICS) or cells[2].startswith("n/a"):
                continue
            model = cells[1].replace(" (ref)", "")
            for metric, cell in zip(METRICS, cells[2:]):
                marks[(split, model, metric)] = cell_mark(cell)
    return marks


def table_csv_marks(folder: Path) -> dict[tuple[str, str, str], str]:
    marks = {}
    for path in sorted(folder.glob("*.csv")):
        for row in csv.DictReader(io.StringIO(path.read_text())):
            if row["status"] != "ok":
                continue
            for metric in METRICS:
                marks[(row["split"], row["model"], metric)] = row[f"{metric}_marker"] or "not different"
    return marks


def page_marks(page: str) -> tuple[dict, dict]:
    reader = PageReader(page)
    marks = {}
    for table_id, table in reader.tables.items():
        if not table_id.startswith("table-split-ml-"):
            continue
        split = table_id.removeprefix("table-split-ml-")
        headers = [label for label, _ in table["headers"]]
        for row in table["rows"]:
            cells = [text for text, _ in row["cells"]]
            if cells[3].startswith("n/a"):
                continue
            model = cells[2].replace(" (ref)", "")
            for metric in METRICS:
                marks[(split, model, metric)] = cell_mark(cells[headers.index(metric)])
    verdicts = {(row["cells"][1][0], row["cells"][2][0]): row["cells"][-1][0]
                for row in reader.tables["verdicts-table"]["rows"]}
    return marks, verdicts


def test_every_report_agrees_on_every_mark(workspace):
    statistics = load_statistics(compute(workspace))
    out = render_all(workspace, compute(workspace))
    expected = expected_marks(statistics)
    assert expected[("temporal", "slight", "ndcg@10")] == "better"  # the pair the former reports split on
    assert expected[("holdout", "up", "recall@20")] == "not different"  # one family per split and metric
    assert expected[("holdout", "down", "recall@20")] == "worse"
    # every comparison of the file, and only those, is marked by the same verdict
    untested = {key: "not different" for key in leaderboard_marks((out / "leaderboard.md").read_text())
                if key not in expected}
    assert all(key[2] == "coverage@10" or key[1] == "ease" for key in untested)  # a list metric, the reference
    assert leaderboard_marks((out / "leaderboard.md").read_text()) == expected | untested
    assert table_csv_marks(out / "tables") == expected | untested
    markdown_tables = {}  # the Markdown tables: the leaderboard's sections with bold best values
    for path in sorted((out / "tables").glob("*.md")):
        markdown_tables |= leaderboard_marks("\n" + path.read_text().replace("**", ""))
    assert markdown_tables == expected | untested
    page, page_verdicts = page_marks((out / "site" / "index.html").read_text(encoding="utf-8"))
    assert page == expected | untested

    # the verdicts (Markdown, CSV and the page's table) are the first metric's comparisons of the
    # methods under test
    table = pd.read_csv(out / "verdicts.csv", keep_default_na=False)
    first = {(split, model): VERDICT_WORDS[verdict] for (split, model, metric), verdict in expected.items()
             if metric == METRICS[0] and model not in ("pop",)}
    tested = table[table["p_holm"] != ""]
    assert dict(zip(zip(tested["split"], tested["model"]), tested["verdict"])) == first
    for (split, model), word in first.items():
        comparison = statistics.split("ml", split).comparison(model, METRICS[0])
        row = tested[(tested["split"] == split) & (tested["model"] == model)].iloc[0]
        assert float(row["p_holm"]) == comparison.p_holm and float(row["mean_difference"]) == comparison.mean_difference
    markdown = {tuple(cell.strip() for cell in line.split("|")[2:4]): line.split("|")[-2].strip()
                for line in (out / "verdicts.md").read_text().splitlines() if line.startswith("| ml ")}
    assert {key: word for key, word in markdown.items() if key in first} == first
    assert {key: word for key, word in page_verdicts.items() if key in first} == first
    assert page_verdicts[("holdout", "ncf")] == markdown[("holdout", "ncf")] == "not run (needs user embeddings)"

    # the plots' progress figure data: the same rows, the same significance
    progress = pd.read_csv(out / "plots" / "progress.csv")
    assert {(r.split, r.model): r.verdict for r in progress.itertuples()} == first
    assert all(r.significant == (r.verdict != "not different") for r in progress.itertuples())

    # the audit's progress column: "progress confirmed" exactly where the file says better
    audit = (out / "audit.md").read_text()
    lines = [line for line in audit.split("## Synthetic", 1)[1].splitlines() if line.startswith("| ml/")]
    header = [c.strip() for c in audit.split("## Synthetic", 1)[1].splitlines()
              if c.startswith("| split")][0].strip("|").split("|")
    header = [c.strip() for c in header]
    checked = 0
    for line in lines:
        cells = dict(zip(header, (c.strip() for c in line.strip("|").split("|"))))
        split, model, metric = cells["split"].split("/")[1], cells["model (paper's name)"].split()[0], cells["metric"]
        verdict = expected[(split, model, metric)]
        assert cells["progress"] == ("progress confirmed" if verdict == "better" else "not confirmed"), line
        comparison = statistics.split("ml", split).comparison(model, metric)
        assert cells["p (Holm)"] == f"{comparison.p_holm:.3g}" and cells["best baseline"].startswith("ease ")
        interval = statistics.split("ml", split).intervals[model][metric]
        assert f"[{interval.low:.4f}, {interval.high:.4f}]" in cells["ours"]
        checked += 1
    assert checked == 10


def test_the_renderers_compute_nothing(workspace, monkeypatch):
    """One statistics computation per report build: the stage resamples and tests; rendering all
    reports from its file draws no bootstrap resample and runs no test."""
    calls = {"compute": 0, "resample": 0, "test": 0, "holm": 0}

    def counted(name, function):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(reports.statistics, "compute_statistics",
                        counted("compute", reports.statistics.compute_statistics))
    monkeypatch.setattr(protocols.bootstrap, "_resampled_means",
                        counted("resample", protocols.bootstrap._resampled_means))
    monkeypatch.setattr(protocols.statistics, "paired_test", counted("test", protocols.statistics.paired_test))
    monkeypatch.setattr(protocols.statistics, "holm", counted("holm", protocols.statistics.holm))
    statistics = compute(workspace)
    assert calls["compute"] == 1 and calls["resample"] > 0 and calls["test"] > 0 and calls["holm"] > 0
    calls.update(dict.fromkeys(calls, 0))
    render_all(workspace, statistics)
    assert calls == {"compute": 0, "resample": 0, "test": 0, "holm": 0}


def test_the_file_is_byte_identical_sorted_and_names_its_inputs(workspace):
    first = compute(workspace, "a.json").read_bytes()
    assert compute(workspace, "b.json").read_bytes() == first
    text = first.decode("utf-8")
    document = json.loads(text)
    assert json.dumps(document, sort_keys=True, indent=1, ensure_ascii=False) + "\n" == text  # sorted keys
    assert str(workspace) not in text and "/tmp" not in text  # no absolute path
    assert "NaN" not in text and "Infinity" not in text
    settings = document["settings"]
    assert (settings["seed"], settings["n_resamples"], settings["alpha"]) == (SEED, 300, 0.05)
    assert settings["family"] == "split-metric" and settings["metrics"] == METRICS
    holdout = next(s for s in document["splits"] if s["split"] == "holdout")
    assert holdout["reference"] == "ease" and set(holdout["metrics"]) == {"ndcg@10", "recall@20"}  # no list metric
    assert [c["model"] for c in holdout["metrics"]["ndcg@10"]["comparisons"]] == ["down", "pop", "same", "up"]
    assert "ncf" not in holdout["intervals"]
    # the digest covers every per-user value: one changed user changes it
    changed = pd.read_parquet(result_dir(workspace / "results", "ml", "loo", "ease") / "per_user.parquet")
    changed.loc[0, "ndcg@10"] += 0.001
    changed.to_parquet(result_dir(workspace / "results", "ml", "loo", "ease") / "per_user.parquet", index=False)
    assert json.loads(compute(workspace, "c.json").read_text())["inputs_sha256"] != document["inputs_sha256"]


def test_one_default_number_of_resamples():
    """The bootstrap's default lives in protocols.bootstrap; every report setting defaults to it."""
    from reports.audit import AuditSettings
    from reports.statistics import StatisticsSettings

    assert StatisticsSettings().n_resamples == AuditSettings().n_resamples == protocols.bootstrap.DEFAULT_RESAMPLES
    for path in sorted((ROOT / "reports").glob("*.py")):
        source = path.read_text()
        assert not re.search(r"n_resamples\s*[:=]\s*(int\s*=\s*)?\d", source), path.name
        assert not re.search(r"RESAMPLES\s*=\s*\d", source), path.name


def test_a_stale_or_missing_statistics_file_is_refused(workspace, capsys):
    statistics = compute(workspace)
    (workspace / "results" / "ml" / "loo" / "ease" / "metrics.json").unlink()
    with pytest.raises(SystemExit) as exit_:
        run_cli(main, ["build", "--results-root", str(workspace / "results"), "--statistics", str(statistics),
                       "--out", str(workspace / "board.md")])
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "was computed from other results" in error
    assert "python -m reports statistics" in error and not (workspace / "board.md").exists()
    with pytest.raises(RecAuditError, match="no statistics file at .*python -m reports statistics"):
        load_statistics(workspace / "missing.json")
    (workspace / "bad.json").write_text('{"schema": "recaudit-statistics/1"}')
    with pytest.raises(RecAuditError, match="incomplete or malformed"):
        load_statistics(workspace / "bad.json")


def test_a_pair_with_other_users_is_listed_not_fatal(workspace):
    """A stale result whose users differ from the reference's gets no test and a reason; the
    other comparisons of its family go on."""
    per_user = pd.read_parquet(result_dir(workspace / "results", "ml", "holdout", "up") / "per_user.parquet")
    per_user.iloc[: N_USERS - 5].to_parquet(result_dir(workspace / "results", "ml", "holdout", "up") /
                                            "per_user.parquet", index=False)
    holdout = load_statistics(compute(workspace)).split("ml", "holdout")
    assert holdout.comparison("up", "ndcg@10") is None
    assert holdout.not_compared["ndcg@10"]["up"].startswith("cannot compare with ease: per-user results of up")
    assert holdout.family_size("ndcg@10") == 3


# ---------------------------------------------------------------- the pipeline

REPORT_STAGES = {"report": "reports.leaderboard", "tables": "reports.export", "verdicts": "reports.verdicts",
                 "plots": "reports.plots", "site": "reports.site", "audit": "reports.audit"}


def imported_files(module: str, seen: set[str] | None = None) -> set[str]:
    """The repository's ``reports/`` and ``protocols/`` files ``module`` imports, transitively
    through ``reports/`` (protocols' own imports are the model stages' business)."""
    seen = set() if seen is None else seen
    path = ROOT / (module.replace(".", "/") + ".py")
    relative = path.relative_to(ROOT).as_posix()
    if relative in seen or not path.is_file():
        return seen
    seen.add(relative)
    if not relative.startswith("reports/"):
        return seen
    for node in ast.walk(ast.parse(path.read_text())):
        names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else \
            [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
        for name in names:
            if name.split(".")[0] in ("reports", "protocols"):
                imported_files(name, seen)
    return seen


def test_dvc_yaml_has_one_statistics_stage_that_every_report_reads():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    statistics = stages["statistics"]
    assert statistics["cmd"] == "python -m reports statistics --results-root results --out reports/statistics.json"
    assert statistics["outs"] == ["reports/statistics.json"]
    assert {"seed", "reports", "suite.reports"} <= set(statistics["params"])
    assert "results" in statistics["deps"]
    assert imported_files("reports.statistics") <= set(statistics["deps"])
    assert {"protocols/statistics.py", "protocols/bootstrap.py"} <= set(statistics["deps"])
    for name, module in REPORT_STAGES.items():
        stage = stages[name]
        deps = set(stage["deps"])
        assert "reports/statistics.json" in deps and "--statistics reports/statistics.json" in stage["cmd"], name
        assert {p for p in imported_files(module) if p.startswith("reports/")} <= deps, name
        assert "protocols/statistics.py" not in deps, name  # nothing tested again
        assert "reports/verdicts.md" not in deps, name  # no report parsed back
        assert not {"reports", "suite.reports"} & set(stage.get("params") or []), name  # settings: the file's
