"""Every paper suite of ``params.yaml`` end to end on synthetic stand-ins of its datasets.

None of the papers' datasets can be downloaded here. For each suite this test writes a stand-in
of every dataset in the exact upstream format (:func:`datasets.synthetic.write_synthetic_raw`:
a few hundred users, planted structure) into a temporary mirror laid out as the registry's
``mirror`` paths say, enables the suite on a copy of ``params.yaml`` with
``python -m protocols enable-suite``, and runs, in a temporary working folder, the commands the
DVC stages run: ``datasets fetch`` (from the mirror, checksums verified), ``datasets prepare``
(the registry's default preprocessing: the papers'), ``protocols split`` for every split of the
suite, ``protocols tune`` and ``protocols evaluate`` for a few models of the suite on every split,
``reports statistics`` and ``reports audit`` for the suite's paper.

What differs from a real run, and why:

- The registry's checksums are those of the real files (or None where none is published, which
  fetch refuses), so the registry is replaced, for this test only (monkeypatch), by copies of the
  suite's entries whose checksums are the stand-ins' sha256.
- The copied ``params.yaml`` is edited before the suite is enabled: the strong splits of
  multvae-paper and ease-paper hold out ``HELDOUT_USERS`` validation and as many test users
  instead of the papers' 10,000 (ML-20M), 40,000 (Netflix) and 50,000 (MSD), which are more users
  than a stand-in has; tuning runs ``TRIALS`` trials per model, evaluation one seed, the
  bootstrap 200 resamples; each neural model runs a couple of epochs (``MODEL_EDITS``).
- Only ``MODELS[suite]`` run: popularity, a baseline and one of the suite's own neural models.
  DVBPR (CNN-F, 224 pixels in the suite) runs at 32 pixels, 256 triples and one epoch, on the
  suite's first split only (``FIRST_SPLIT_ONLY``): about 6 s a split on one thread.

Each split card must carry the paper's protocol and the counts it implies (ncf: the authors'
99 negatives per test user; strong: the held-out user counts; VBPR: the cold-start filter;
DVBPR: the authors' partition), every ``metrics.json`` the suite's metrics, and the audit
must report each claim on a model that ran as run (with our number), not "not run".
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import zlib
from pathlib import Path
from types import MappingProxyType

import pandas as pd
import pytest
import yaml

import datasets.registry as registry
from datasets.__main__ import main as datasets_cli
from datasets.synthetic import write_synthetic_raw
from protocols.__main__ import main as protocols_cli
from protocols.params import load_params
from reports.__main__ import main as reports_cli

REPO = Path(__file__).resolve().parents[1]
HELDOUT_USERS = 30  # per held-out group; the papers: 10,000 (ML-20M), 40,000 (Netflix), 50,000 (MSD)
TRIALS = 2
# (text in params.yaml, replacement, occurrences): the run's size, not its protocol
PARAMS_EDITS = [
    ("    default: {trials: 5, startup_trials: 2}", f"    default: {{trials: {TRIALS}, startup_trials: 1}}", 1),
    ("  seeds: 3 ", "  seeds: 1 ", 1),
    ("  n_resamples: 1000 ", "  n_resamples: 200 ", 1),
    ("heldout_users: 10000,", f"heldout_users: {HELDOUT_USERS},", 2),
    ("heldout_users: 40000,", f"heldout_users: {HELDOUT_USERS},", 2),
    ("heldout_users: 50000,", f"heldout_users: {HELDOUT_USERS},", 2),
]
MODEL_EDITS = [  # a couple of epochs for the neural models that run
    ("mlp-paper: {model: mlp}", "mlp-paper: {model: mlp, epochs: 2, patience: 1}", 1),
    ("  multvae: {epochs: 100, patience: 10}", "  multvae: {epochs: 3, patience: 1}", 1),
    ("  vbpr: {}", "  vbpr: {epochs: 2, patience: 1}", 1),
    ("dvbpr-paper: {model: dvbpr, image_size: 224}",
     "dvbpr-paper: {model: dvbpr, image_size: 32, triples_per_epoch: 256, epochs: 1, patience: 1}", 1),
]
MODELS = {
    "ncf-paper": ["pop", "itemknn-cosine", "mlp-paper"],
    "multvae-paper": ["pop", "ease", "multvae"],
    "ease-paper": ["pop", "ease", "sansa"],
    "vbpr-paper": ["pop", "itemknn-cosine", "vbpr"],
    "dvbpr-paper": ["pop", "itemknn-cosine", "dvbpr-paper"],
}
FIRST_SPLIT_ONLY = {"dvbpr-paper"}  # labels run on the suite's first split only
PAPERS = {"ncf-paper": ["ncf"], "multvae-paper": ["multvae"], "ease-paper": ["ease", "sansa"],
          "vbpr-paper": ["vbpr"], "dvbpr-paper": ["dvbpr"]}  # claims files (reports/claims/) of each suite
STRONG = ("movielens-20m", "netflix-prize", "msd-taste-profile")
# claims (model label, split) the audit must show as run
RUN_CLAIMS = {
    "ncf-paper": {("mlp-paper", "movielens-1m-ncf/leave-one-out"), ("mlp-paper", "pinterest-20-ncf/leave-one-out")},
    "multvae-paper": {("multvae", f"{d}/strong") for d in STRONG},
    "ease-paper": {("pop", "movielens-20m/strong"), ("pop", "msd-taste-profile/strong"),  # EASE's pop claims
                   *((model, f"{d}/strong") for model in ("ease", "sansa") for d in STRONG)},
    "vbpr-paper": {(model, f"{d}/vbpr-{s}") for model in ("pop", "vbpr") for s in ("all-items", "cold-start")
                   for d in ("amazon-women-vbpr", "amazon-men-vbpr", "amazon-phones-vbpr", "tradesy-vbpr")},
    "dvbpr-paper": set(),  # DVBPR's claims are on Wikimedia Commons, no split of this suite
}


def edit(text: str, old: str, new: str, count: int) -> str:
    assert text.count(old) == count, f"params.yaml no longer has {count} x {old!r}: update this test"
    return text.replace(old, new)


def stand_in_registry(datasets: list[str], mirror: Path, standins: Path) -> MappingProxyType:
    """Write each dataset's stand-in, copy its files to their mirror paths, and return the
    registry with these entries' checksums replaced by the stand-ins' sha256."""
    entries = dict(registry.registered_datasets())
    for name in datasets:
        spec = entries[name]
        # one seed per set of mirror files: datasets that share files (Amazon Women and Men) share a stand-in
        raw = write_synthetic_raw(name, standins / name, seed=zlib.crc32(spec.files[0].mirror.encode()) % 1000)
        files = []
        for file in spec.files:
            target = mirror / file.mirror
            target.parent.mkdir(parents=True, exist_ok=True)
            content = (raw / file.name).read_bytes()
            if target.exists():  # a file two datasets share (VBPR's Amazon Women and Men)
                assert target.read_bytes() == content, file.mirror
            target.write_bytes(content)
            files.append(dataclasses.replace(file, checksum=f"sha256:{hashlib.sha256(content).hexdigest()}"))
        entries[name] = dataclasses.replace(spec, files=tuple(files))
    return MappingProxyType(entries)


def run(cli, *argv: str) -> None:
    assert cli(list(argv)) in (0, None), argv


def check_card(suite: str, key: str, entry: dict, card: dict, prepared: Path) -> None:
    """The card names the paper's protocol with the suite's params, and holds the counts it implies."""
    assert card["protocol"] == entry["protocol"]
    assert {k: card["params"].get(k) for k in entry if k not in ("dataset", "protocol")} == \
        {k: v for k, v in entry.items() if k not in ("dataset", "protocol")}
    parts, negatives = card["parts"], card["sanity"].get("negatives", {})
    assert parts["test"]["users"] > 0 and parts["train"]["rows"] > 0
    if suite == "ncf-paper":  # the authors' test item and 99 negatives per user, carried through
        authors = {part: pd.read_parquet(prepared / "given" / "ncf" / f"{part}.parquet")
                   for part in ("test", "negatives")}
        assert parts["test"]["rows"] == parts["test"]["users"] == len(authors["test"]) == card["n_users"]
        for part in ("test_negatives", "validation_negatives"):
            assert (negatives[part]["min_per_user"], negatives[part]["max_per_user"]) == (99, 99)
            assert negatives[part]["users"] == parts[part.removesuffix("_negatives")]["users"] > 0
        ours = pd.read_parquet(Path("data/splits") / key / "negatives.parquet")
        assert pairs(ours) == pairs(authors["negatives"])
    elif entry["protocol"] == "strong":  # held-out users: HELDOUT_USERS per group, disjoint from train
        for part in ("validation_input", "test_input"):
            assert parts[part]["users"] == HELDOUT_USERS, (key, part, parts[part])
        assert parts["train"]["users"] == card["n_users"] - 2 * HELDOUT_USERS
        assert 0 < parts["test"]["rows"] < parts["test_input"]["rows"]  # 80% of each user's items are input
    elif suite == "vbpr-paper":  # one random test item per user, ranked against every item (AUC)
        assert parts["test"]["rows"] == parts["test"]["users"] and not negatives
        if "cold_test_max_train" in entry:  # cold start: test items with at most 5 training interactions
            train, test = (pd.read_parquet(Path("data/splits") / key / f"{part}.parquet") for part in ("train", "test"))
            assert train["item"].value_counts().reindex(test["item"], fill_value=0).max() <= 5
            assert card["excluded"]["test_items_above_cold_threshold"]["count"] > 0
    elif entry["protocol"] == "given":  # DVBPR: the authors' test part
        authors = pd.read_parquet(prepared / "given" / "dvbpr" / "test.parquet")
        assert parts["test"]["rows"] == len(authors)
    else:  # DVBPR's released AUC: 100 sampled items per test user
        assert (negatives["test_negatives"]["min_per_user"], negatives["test_negatives"]["max_per_user"]) == \
            (100, 100)


def pairs(frame: pd.DataFrame) -> set[tuple[int, int]]:
    return set(zip(frame["user"].tolist(), frame["item"].tolist()))


@pytest.mark.parametrize("suite", list(MODELS))
def test_paper_suite_runs_end_to_end_on_stand_ins(suite, tmp_path, monkeypatch):
    params_text = (REPO / "params.yaml").read_text()
    paper_suite = yaml.safe_load(params_text)["paper_suites"][suite]
    datasets = list(paper_suite["datasets"])
    mirror = tmp_path / "mirror"
    patched = stand_in_registry(datasets, mirror, tmp_path / "standins")
    monkeypatch.setattr(registry, "registered_datasets", lambda: patched)
    monkeypatch.setenv("RECAUDIT_MIRROR", str(mirror))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for old, new, count in PARAMS_EDITS + MODEL_EDITS:
        params_text = edit(params_text, old, new, count)
    Path("params.yaml").write_text(params_text)
    run(protocols_cli, "enable-suite", suite, "--params", "params.yaml")
    params = load_params("params.yaml")
    assert params["suite"]["splits"] == paper_suite["suite"]["splits"]
    assert set(MODELS[suite]) <= set(params["suite"]["models"])

    for name in datasets:  # dvc.yaml's fetch and prepare stages
        run(datasets_cli, "fetch", name, "--out", f"data/raw/{name}")
        run(datasets_cli, "prepare", name, "--raw", f"data/raw/{name}", "--out", f"data/prepared/{name}")
    evaluation = params["suite"]["evaluation"]
    report_metrics = params["suite"]["reports"]["metrics"]
    for key in params["suite"]["splits"]:
        entry = params["splits"][key]
        run(protocols_cli, "split", key, "--out", f"data/splits/{key}")
        card = json.loads((Path("data/splits") / key / "card.json").read_text())
        check_card(suite, key, entry, card, Path("data/prepared") / entry["dataset"])
        for model in MODELS[suite]:
            if model in FIRST_SPLIT_ONLY and key != params["suite"]["splits"][0]:
                continue
            tuned = f"tuned/{key}/{model}.yaml"
            run(protocols_cli, "tune", "--split", key, "--model", model, "--out", tuned)
            run(protocols_cli, "evaluate", "--split", key, "--model", model, "--params", tuned)
            record = json.loads((Path("results") / key / model / "metrics.json").read_text())
            assert record["status"] == "ok", (key, model, record.get("reason"))
            assert record["tuning"]["trials_run"] <= TRIALS
            expected = {f"{m}@{k}" for m in evaluation["metrics"] if m != "auc" for k in evaluation["cutoffs"]}
            expected |= {"auc"} & set(evaluation["metrics"])
            assert expected | set(report_metrics) <= set(record["metrics"]), (key, model)

    run(reports_cli, "statistics", "--results-root", "results", "--out", "reports/statistics.json")
    rows = []
    for paper in PAPERS[suite]:
        run(reports_cli, "audit", paper, "--results-root", "results", "--statistics", "reports/statistics.json",
            "--out", f"reports/audit-{paper}.md")
        rows += audit_rows(Path(f"reports/audit-{paper}.md").read_text())
    ran = {(row["model"], row["split"]) for row in rows if row["reproduction"] != "not run"}
    assert RUN_CLAIMS[suite] <= ran, RUN_CLAIMS[suite] - ran
    for row in rows:
        if row["split"] not in params["suite"]["splits"]:
            continue  # a claim on data no suite has (SANSA's Amazon-Books)
        if row["reproduction"] == "not run":  # waits only for a model this test leaves out, never for data
            assert row["model"] not in MODELS[suite], row
            assert row["notes"].startswith((f"no result file for split {row['split']}, model {row['model']}",
                                            f"model {row['model']} not registered")), row
        else:
            assert row["reproduction"] in ("reproduced", "not reproduced") and row["ours"] != "–", row


def audit_rows(markdown: str) -> list[dict[str, str]]:
    """The claim rows of ``reports/audit.md``'s per-paper tables, by column; ``model`` is the
    results label (the cell's first word)."""
    rows, header = [], None
    for line in markdown.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip()[1:-1])]
        if header is None:
            header = cells
        elif not set(cells[0]) <= set("-:"):
            row = dict(zip(header, cells))
            if "reproduction" in row:
                row["model"] = row.pop("model (paper's name)").split(" ")[0]
                rows.append(row)
    return rows
