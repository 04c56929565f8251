"""The claims audit end to end on synthetic claims and result files, plus its rules one by one."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from common.errors import RecAuditError
from protocols.bootstrap import bootstrap_mean_ci
from protocols.results import RECORD_KEYS, write_run
from reports.__main__ import main
from reports.audit import (NO_REPORTED_VALUE, NOT_COMPARABLE, NOT_REPRODUCED, NOT_RUN, REPRODUCED, Availability,
                           AuditSettings, ResultIndex, audit_paper, audit_settings, not_run_reasons,
                           reproduction_verdict)
from reports.claims import Claim, load_claims, load_paper_claims
from reports.statistics import load_statistics
from tests.report_results import write_statistics

N_USERS = 60
SEED = 7
RESAMPLES = 300


# ---------------------------------------------------------------- synthetic results

def per_user_frames() -> dict[str, pd.DataFrame]:
    """Per-user values on two splits. On holdout the neural model beats ease by 0.1 NDCG@10 on
    every user (up to noise) and ties it on recall@20 up to symmetric +-0.01 (Wilcoxon p = 1);
    on leave-one-out itemknn-cosine beats it on every user."""
    rng = np.random.default_rng(3)
    users = np.arange(N_USERS)
    ease_ndcg = rng.uniform(0.25, 0.35, N_USERS)
    ease_recall = rng.uniform(0.2, 0.8, N_USERS)
    symmetric = np.where(users % 2 == 0, 0.01, -0.01)
    frame = lambda ndcg, recall: pd.DataFrame({"user": users, "ndcg@10": ndcg, "recall@20": recall})  # noqa: E731
    return {
        "holdout/multvae": frame(ease_ndcg + 0.1 + rng.uniform(-0.01, 0.01, N_USERS), ease_recall + symmetric),
        "holdout/ease": frame(ease_ndcg, ease_recall),
        "holdout/pop": frame(ease_ndcg / 2, ease_recall / 2),
        "leave-one-out/multvae": frame(ease_ndcg, ease_recall),
        "leave-one-out/itemknn-cosine": frame(ease_ndcg + 0.05 + rng.uniform(0, 0.01, N_USERS), ease_recall),
    }


FAMILIES = {"multvae": "neural", "ease": "baseline", "pop": "baseline", "itemknn-cosine": "baseline"}


def record(split: str, model: str, per_user: pd.DataFrame, seeds=(None,), std=None) -> dict:
    metrics = {label: float(per_user[label].mean()) for label in ("ndcg@10", "recall@20")}
    values = {"dataset": "movielens-100k", "protocol": split, "model": model, "family": FAMILIES[model],
              "params": {}, "seed": seeds[0], "seeds": list(seeds), "sampled": False, "metric_version": "1",
              "metrics": metrics, "metrics_std": std, "tuning": None, "n_users": len(per_user),
              "fit_seconds": 0.1, "eval_seconds": 0.1, "peak_rss_mb": 1.0, "status": "ok"}
    assert set(RECORD_KEYS) <= set(values)
    return values


def write_results(root: Path) -> dict[str, pd.DataFrame]:
    frames = per_user_frames()
    for key, frame in frames.items():
        split, model = key.split("/")
        if model == "multvae":  # stochastic: three seeds summarised, sd over seeds recorded
            entry = record(split, model, frame, seeds=(42, 43, 44), std={"ndcg@10": 0.0123, "recall@20": 0.004})
        else:
            entry = record(split, model, frame)
        write_run(root / "movielens-100k" / split / model, entry, frame)
    return frames


def claim_entry(protocol, model, values, **extra):
    return {"dataset": protocol.split("/")[0], "protocol": protocol, "model": model, "paper_model": model.upper(),
            "values": values, **extra}


def write_claims(folder: Path, frames: dict[str, pd.DataFrame]) -> None:
    ours = float(frames["holdout/multvae"]["ndcg@10"].mean())
    claims = [
        claim_entry("movielens-100k/holdout", "multvae", {"ndcg@10": round(ours * 1.03, 4), "recall@20": 0.95}),
        claim_entry("movielens-100k/holdout", "zz-unregistered", {"ndcg@10": 0.4}),  # a name no model will take
        claim_entry("movielens-100k/temporal", "multvae", {"ndcg@10": 0.4}),
        claim_entry("movielens-100k/leave-one-out", "multvae", {"ndcg@10": 0.6}),
        claim_entry("movielens-100k/strong", "multvae", {"ndcg@10": 0.3}),
        claim_entry("ml-20m/strong", "multvae", {"ndcg@10": 0.4}),
        claim_entry("movielens-100k/holdout", "pop", {"ndcg@10": None}, note="did not finish"),
    ]
    document = {"paper": "Synthetic", "citation": "Nobody. 2024. A synthetic paper.", "notes": ["A protocol note."],
                "defaults": {"where": "Table 1", "provenance": ["paper"]}, "claims": claims}
    folder.mkdir()
    (folder / "synthetic.yaml").write_text(yaml.safe_dump(document, sort_keys=False))


def write_params(path: Path, tolerance=0.05) -> Path:
    params = {"seed": SEED, "splits": {key: {"dataset": "movielens-100k", "protocol": key.split("/")[1]}
                                       for key in ("movielens-100k/holdout", "movielens-100k/leave-one-out",
                                                   "movielens-100k/strong")},
              "reports": {"alpha": 0.05, "n_resamples": RESAMPLES}, "audit": {"tolerance": tolerance}}
    path.write_text(yaml.safe_dump(params))
    return path


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    monkeypatch.delenv("RECAUDIT_MIRROR", raising=False)
    frames = write_results(tmp_path / "results")
    write_claims(tmp_path / "claims", frames)
    write_params(tmp_path / "params.yaml")
    return tmp_path, frames


def run_audit(tmp_path: Path, *extra: str) -> str:
    """``python -m reports statistics`` then ``python -m reports audit``, as dvc.yaml runs them."""
    out = tmp_path / "audit.md"
    statistics = write_statistics(tmp_path / "results", tmp_path / "params.yaml", tmp_path / "statistics.json")
    assert main(["audit", "--results-root", str(tmp_path / "results"), "--claims-dir", str(tmp_path / "claims"),
                 "--params-yaml", str(tmp_path / "params.yaml"), "--statistics", str(statistics), "--out", str(out),
                 *extra]) == 0
    return out.read_text()


def table_rows(text: str) -> list[dict[str, str]]:
    """The claim table of the (single) paper section as dicts keyed by header."""
    section = text.split("## Synthetic", 1)[1]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    return [dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")))) for line in lines[2:]]


# ---------------------------------------------------------------- end to end

def test_audit_end_to_end(workspace):
    tmp_path, frames = workspace
    text = run_audit(tmp_path)
    rows = table_rows(text)
    assert len(rows) == 8  # every claim listed, the unrunnable ones included
    by_claim = {(row["split"], row["model (paper's name)"].split()[0], row["metric"]): row for row in rows}

    reproduced = by_claim[("movielens-100k/holdout", "multvae", "ndcg@10")]
    values = frames["holdout/multvae"]["ndcg@10"].to_numpy()
    interval = bootstrap_mean_ci(values, n_resamples=RESAMPLES, seed=SEED)
    assert reproduced["ours"] == f"{values.mean():.4f} ± 0.0123 [{interval.low:.4f}, {interval.high:.4f}]"
    assert reproduced["reproduction"] == REPRODUCED  # by the 5% rule: 3% lies outside the interval
    assert reproduced["best baseline"].startswith("ease ")  # pop is the weaker baseline
    assert reproduced["progress"] == "progress confirmed"

    off = by_claim[("movielens-100k/holdout", "multvae", "recall@20")]
    assert (off["reported"], off["reproduction"], off["progress"]) == ("0.95", NOT_REPRODUCED, "not confirmed")
    gap = frames["holdout/multvae"]["recall@20"].mean() - 0.95
    assert off["difference"] == f"{gap:+.4f} ({gap / 0.95:+.1%})"

    worse = by_claim[("movielens-100k/leave-one-out", "multvae", "ndcg@10")]
    assert worse["best baseline"].startswith("itemknn-cosine ") and worse["progress"] == "not confirmed"
    assert float(worse["p (Holm)"]) < 1e-6  # significant, but in the baseline's favour

    expected_reasons = {
        ("movielens-100k/holdout", "zz-unregistered"): "model zz-unregistered not registered",
        ("movielens-100k/temporal", "multvae"): "split movielens-100k/temporal not in params.yaml",
        ("movielens-100k/strong", "multvae"): "no result file for split movielens-100k/strong, model multvae",
        ("ml-20m/strong", "multvae"): "dataset ml-20m not in the registry",
    }
    for (split, model), reason in expected_reasons.items():
        row = by_claim[(split, model, "ndcg@10")]
        assert (row["reproduction"], row["notes"], row["ours"]) == (NOT_RUN, reason, "–")

    unreported = by_claim[("movielens-100k/holdout", "pop", "ndcg@10")]
    assert (unreported["reported"], unreported["reproduction"]) == ("–", NO_REPORTED_VALUE)
    assert unreported["notes"] == "did not finish" and unreported["progress"] == "not confirmed"

    summary = next(line for line in text.splitlines() if line.startswith("| Synthetic"))
    # claims, reproduced, not reproduced, not comparable, not run, no reported value, confirmed, not confirmed
    assert [cell.strip() for cell in summary.strip("|").split("|")] == ["Synthetic", "8", "1", "2", "0", "4", "1",
                                                                          "1", "3"]
    assert "A protocol note." in text and "Nobody. 2024." in text


def test_output_is_deterministic_and_names_no_temporary_path(workspace):
    tmp_path, _ = workspace
    first = run_audit(tmp_path)
    assert run_audit(tmp_path) == first
    assert str(tmp_path) not in first


def test_tolerance_comes_from_params(workspace):
    tmp_path, frames = workspace
    write_params(tmp_path / "params.yaml", tolerance=0.0)  # only the interval rule is left
    rows = table_rows(run_audit(tmp_path))
    row = next(r for r in rows if r["split"] == "movielens-100k/holdout" and r["metric"] == "ndcg@10"
               and r["model (paper's name)"].startswith("multvae"))
    # 3% above our mean lies outside the interval of 60 users shifted by 0.1 with little spread
    low, high = (float(x) for x in row["ours"].split("[")[1].rstrip("]").split(", "))
    assert not low <= float(row["reported"]) <= high
    assert row["reproduction"] == NOT_REPRODUCED
    write_params(tmp_path / "params.yaml", tolerance=1.5)
    with pytest.raises(RecAuditError, match=r"audit\.tolerance must be a .*in \[0, 1\)"):
        audit_settings(tmp_path / "params.yaml")


def test_one_paper_only_and_unknown_paper(workspace):
    tmp_path, _ = workspace
    assert "## Synthetic" in run_audit(tmp_path, "synthetic")
    with pytest.raises(RecAuditError, match="unknown paper 'ncf'; known papers: synthetic"):
        run_audit(tmp_path, "ncf")


def test_flagged_claims_are_not_comparable_not_failed_reproductions(workspace):
    """A claim flagged not_comparable (e.g. an evaluation that counted training items as hits)
    shows our result for the record but is never judged "not reproduced", with or without a
    result; its flag's reason leads the notes."""
    tmp_path, frames = workspace
    path = tmp_path / "claims" / "synthetic.yaml"
    document = yaml.safe_load(path.read_text())
    flaw = "flawed protocol: training items counted as hits"
    document["claims"] += [
        claim_entry("movielens-100k/holdout", "multvae", {"ndcg@10": 0.9}, setting="own figures", not_comparable=flaw),
        claim_entry("movielens-100k/strong", "multvae", {"ndcg@10": 0.9}, setting="own figures", not_comparable=flaw),
    ]
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    text = run_audit(tmp_path)
    rows = table_rows(text)
    assert len(rows) == 10
    comparable = next(r for r in rows if r["model (paper's name)"] == "multvae (MULTVAE)" and r["metric"] == "ndcg@10"
                      and r["split"] == "movielens-100k/holdout")
    with_result, without = [r for r in rows if r["model (paper's name)"] == "multvae (MULTVAE; own figures)"]
    assert with_result["reproduction"] == NOT_COMPARABLE  # 0.9 is far above ours: "not reproduced" if unflagged
    assert with_result["ours"] == comparable["ours"] and with_result["difference"].startswith("-")
    assert with_result["notes"] == f"{NOT_COMPARABLE}: {flaw}"
    # the progress check is about our result, not the reported value: the same comparison, one Holm member
    assert (with_result["progress"], with_result["p (Holm)"]) == (comparable["progress"], comparable["p (Holm)"])
    assert (without["reproduction"], without["ours"]) == (NOT_COMPARABLE, "–")
    assert without["notes"] == (f"{NOT_COMPARABLE}: {flaw}; "
                                "no result file for split movielens-100k/strong, model multvae")
    summary = next(line for line in text.splitlines() if line.startswith("| Synthetic"))
    assert [cell.strip() for cell in summary.strip("|").split("|")] == ["Synthetic", "10", "1", "2", "2", "4", "1",
                                                                          "2", "3"]
    assert f'"{NOT_COMPARABLE}" when the claims file flags' in text and "[rerun]:" in text


def test_cvae_paper_curves_are_not_comparable_and_the_tois_rerun_awaits_results(tmp_path):
    """The real CDL/CVAE claims against an empty results folder: the TOIS re-run rows are "not
    run" only for want of a result (dataset, model and split all known), the CVAE paper's own
    curves are "not comparable"."""
    from datasets.registry import registered_datasets
    from protocols.params import load_params
    from protocols.registry import registered_models

    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    available = Availability(frozenset(registered_datasets()), frozenset(registered_models()),
                             frozenset(params["splits"]))
    for key, n_flagged in (("cdl", 0), ("cvae", 24)):
        (paper,) = load_claims(paper=key)
        audits = audit_paper(paper, ResultIndex(tmp_path), available, AuditSettings())
        assert len(audits) == 24 + n_flagged
        for audit in audits:
            assert audit.reason == f"no result file for split {audit.claim.protocol}, model {key}"
            assert audit.verdict == (NOT_COMPARABLE if audit.claim.not_comparable else NOT_RUN)
        assert sum(a.verdict == NOT_COMPARABLE for a in audits) == n_flagged


# ---------------------------------------------------------------- the rules one by one

@pytest.mark.parametrize("reported, mean, low, high, tolerance, verdict", [
    (0.400, 0.380, math.nan, math.nan, 0.05, REPRODUCED),  # exactly 5% below
    (0.400, 0.420, math.nan, math.nan, 0.05, REPRODUCED),  # exactly 5% above
    (0.400, 0.379, math.nan, math.nan, 0.05, NOT_REPRODUCED),
    (0.400, 0.450, math.nan, math.nan, 0.05, NOT_REPRODUCED),  # better than claimed is not a reproduction either
    (0.400, 0.300, 0.250, 0.410, 0.05, REPRODUCED),  # 25% off, but inside our wide interval
    (0.400, 0.300, 0.250, 0.390, 0.05, NOT_REPRODUCED),
    (0.400, 0.399, math.nan, math.nan, 0.0, NOT_REPRODUCED),
    (None, 0.3, 0.2, 0.4, 0.05, NO_REPORTED_VALUE),
])
def test_reproduction_verdict(reported, mean, low, high, tolerance, verdict):
    assert reproduction_verdict(reported, mean, low, high, tolerance) == verdict


def make_claim(dataset="movielens-1m-ncf", protocol="movielens-1m-ncf/leave-one-out", model="neumf",
               metric="hr@10") -> Claim:
    return Claim("x", dataset, protocol, model, "NeuMF", "", metric, 0.7, "Table", ("reprint",), "")


AVAILABLE = Availability(frozenset({"movielens-1m-ncf", "movielens-1m", "tradesy-vbpr", "ugallery-curatornet"}),
                         frozenset({"neumf", "ease", "vbpr"}), frozenset({"movielens-1m/holdout"}),
                         {"movielens-1m-ncf": ("ml-1m.train.rating",), "movielens-1m": ("ratings.dat", "a", "b")},
                         downloads={"movielens-1m-ncf": "? from https://example.org/ncf",
                                    "movielens-1m": "5.9 MB from https://example.org/ml-1m.zip",
                                    "tradesy-vbpr": ">= 5.5 GB from http://example.org/tradesy.json.gz"},
                         private={"ugallery-curatornet": "UGallery is private"},
                         paper_suite_of={"tradesy-vbpr/vbpr-all-items": "vbpr-paper"})


@pytest.mark.parametrize("claim, result, reasons", [
    (make_claim(), None, ["data not downloaded: movielens-1m-ncf/ml-1m.train.rating missing from the mirror; "
                          "download ? from https://example.org/ncf",
                          "split movielens-1m-ncf/leave-one-out not in params.yaml"]),
    (make_claim("movielens-1m", "movielens-1m/holdout", "bpr"), None,
     ["model bpr not registered", "data not downloaded: movielens-1m/ratings.dat (and 2 more files) missing from "
                                  "the mirror; download 5.9 MB from https://example.org/ml-1m.zip"]),
    (make_claim("tradesy-vbpr", "tradesy-vbpr/vbpr-all-items", "vbpr"), None,
     ["data not downloaded: tradesy-vbpr, >= 5.5 GB from http://example.org/tradesy.json.gz",
      "split tradesy-vbpr/vbpr-all-items is in the paper suite vbpr-paper: "
      "`python -m protocols enable-suite vbpr-paper` then `dvc repro`"]),
    (make_claim("ugallery-curatornet", "ugallery-curatornet/last-basket", "vbpr"), None,
     ["dataset ugallery-curatornet is private (UGallery is private)"]),
    (make_claim("ml-20m", "ml-20m/strong", "sansa"), None,
     ["dataset ml-20m not in the registry", "model sansa not registered"]),
    (make_claim(), {"status": "unsupported", "reason": "needs user embeddings"},
     ["neumf refused split movielens-1m-ncf/leave-one-out (needs user embeddings)"]),
    (make_claim(), {"status": "ok", "metrics": {"hr@10": None}},
     ["metric hr@10 not in the result of neumf on movielens-1m-ncf/leave-one-out"]),
    (make_claim(dataset="ml-20m", protocol="ml-20m/strong", model="sansa"), {"status": "ok", "metrics": {"hr@10": 0.5}},
     []),  # a result file is the evidence, whatever the registries say
])
def test_not_run_reasons(claim, result, reasons):
    assert not_run_reasons(claim, AVAILABLE, result) == reasons


def test_availability_reads_the_mirror(tmp_path):
    from datasets.registry import get_dataset

    spec = get_dataset("movielens-1m-ncf")
    for file in spec.files:
        if file.name != "ml-1m.train.rating":
            (tmp_path / file.mirror).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / file.mirror).write_text("x")
    available = Availability.current({"splits": {"movielens-100k/holdout": {}}}, ["movielens-1m-ncf", "ml-20m"],
                                     tmp_path)
    assert available.mirror_missing == {"movielens-1m-ncf": ("ml-1m.train.rating",)}
    assert "movielens-1m-ncf" in available.datasets and "neumf" in available.models
    assert available.splits == {"movielens-100k/holdout"}
    assert Availability.current({}, ["movielens-1m-ncf"], None).mirror_missing == {}


def test_progress_comes_from_the_statistics_file_with_its_family(workspace):
    """Two distinct comparisons (holdout ndcg@10 and recall@20) and a duplicate of one: each
    check is the statistics file's comparison, Holm-adjusted within the split's metric column
    (multvae and pop against ease), the family of every report; the paper's claims form no
    family of their own, so a duplicate claim changes nothing."""
    tmp_path, frames = workspace
    statistics = load_statistics(write_statistics(tmp_path / "results", tmp_path / "params.yaml"))
    paper = load_paper_claims(tmp_path / "claims" / "synthetic.yaml")
    holdout = [c for c in paper.claims if c.protocol == "movielens-100k/holdout" and c.model == "multvae"]
    paper = type(paper)(paper.key, paper.paper, paper.citation, paper.notes, tuple(holdout + holdout[:1]))
    everything = Availability(frozenset({"movielens-100k"}), frozenset({"multvae", "ease", "pop"}),
                              frozenset({"movielens-100k/holdout"}))
    audits = audit_paper(paper, ResultIndex(tmp_path / "results"), everything,
                         AuditSettings(0.05, 0.05, RESAMPLES, SEED), statistics)
    adjusted = {}
    for metric in ("ndcg@10", "recall@20"):
        raw = []
        for model in ("multvae", "pop"):
            d = frames[f"holdout/{model}"][metric].to_numpy() - frames["holdout/ease"][metric].to_numpy()
            raw.append(stats.wilcoxon(d, zero_method="wilcox", correction=False, method="auto").pvalue)
        low, high = sorted(raw)
        adjusted[metric] = min(1.0, 2 * low) if raw[0] == low else min(1.0, max(2 * low, high))
        comparison = statistics.split("movielens-100k", "holdout").comparison("multvae", metric)
        assert comparison.p_holm == pytest.approx(adjusted[metric], rel=1e-9)
    checks = [a.progress for a in audits]
    assert [c.baseline for c in checks] == ["ease"] * 3
    assert [c.p_holm for c in checks] == pytest.approx([adjusted["ndcg@10"], adjusted["recall@20"],
                                                        adjusted["ndcg@10"]], rel=1e-9)
    assert [c.verdict for c in checks] == ["progress confirmed", "not confirmed", "progress confirmed"]
    interval = statistics.split("movielens-100k", "holdout").intervals["multvae"]["ndcg@10"]
    assert (audits[0].reproduction.ci_low, audits[0].reproduction.ci_high) == (interval.low, interval.high)


def test_the_reference_itself_and_metrics_outside_the_reports_get_a_note(workspace):
    """A claim about the split's best baseline has nothing to be compared with; a claim metric
    that is not a report metric has no test in the statistics file, but still its interval."""
    tmp_path, frames = workspace
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["reports"]["metrics"] = ["ndcg@10"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    statistics = load_statistics(write_statistics(tmp_path / "results", tmp_path / "params.yaml"))
    claims = [Claim("x", "movielens-100k", "movielens-100k/holdout", "ease", "EASE", "", "ndcg@10", 0.3, "T",
                    ("paper",), ""),
              Claim("x", "movielens-100k", "movielens-100k/holdout", "multvae", "VAE", "", "recall@20", 0.5, "T",
                    ("paper",), "")]
    paper = load_paper_claims(tmp_path / "claims" / "synthetic.yaml")
    paper = type(paper)(paper.key, paper.paper, paper.citation, paper.notes, tuple(claims))
    everything = Availability(frozenset({"movielens-100k"}), frozenset({"multvae", "ease"}),
                              frozenset({"movielens-100k/holdout"}))
    reference, outside = audit_paper(paper, ResultIndex(tmp_path / "results"), everything,
                                     AuditSettings(0.05, 0.05, RESAMPLES, SEED), statistics)
    assert reference.progress is None and "ease is this split's best baseline" in reference.progress_note
    assert outside.progress is None and "recall@20 is not a report metric" in outside.progress_note
    interval = bootstrap_mean_ci(frames["holdout/multvae"]["recall@20"].to_numpy(), n_resamples=RESAMPLES, seed=SEED)
    assert (outside.reproduction.ci_low, outside.reproduction.ci_high) == (interval.low, interval.high)


def test_stale_baseline_users_become_a_note_not_a_crash(workspace):
    tmp_path, frames = workspace
    stale = frames["holdout/ease"].iloc[:40]
    write_run(tmp_path / "results" / "movielens-100k" / "holdout" / "ease",
              record("holdout", "ease", frames["holdout/ease"]), stale)
    rows = table_rows(run_audit(tmp_path))
    row = next(r for r in rows if r["metric"] == "recall@20")
    assert row["progress"] == "–" and row["notes"].startswith("cannot compare with ease: per-user results of")
    assert row["reproduction"] == NOT_REPRODUCED  # the reproduction itself still stands
