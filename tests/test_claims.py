"""The claims registry: every number re-read from paper-claims.md (CDL and CVAE: from the TOIS
CiteULike section of content-and-visual-models.md), the schema's one-line errors, and the model
and dataset names the claims use."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from common.errors import RecAuditError
from reports.claims import CLAIMS_DIR, is_metric_label, load_claims, load_paper_claims

ROOT = Path(__file__).resolve().parents[1]
PAPER_CLAIMS = ROOT / ".." / "shared" / "reference" / "paper-claims.md"
CONTENT_MODELS = ROOT / ".." / "shared" / "reference" / "content-and-visual-models.md"
# Papers whose numbers come from content-and-visual-models.md, not paper-claims.md.
TOIS_CITEULIKE_PAPERS = ("cdl", "cvae")
TOIS_CITEULIKE_SPLITS = ("citeulike-a/tois-p1", "citeulike-a/tois-p10", "citeulike-t/tois-p1",
                         "citeulike-t/tois-p10")

# ---------------------------------------------------------------- the real registry

# Models and datasets the claims name that RecAudit does not hold yet. A typo in a claim's
# model or dataset name (e.g. "multvea") lands here and fails the test.
NOT_YET_MODELS = {"ibr", "mmmf",
                  "visrank-inception-resnet-v2", "visrank-inception-v3", "visrank-nasnet-large",
                  "visrank-resnet50", "visrank-vgg19"}
NOT_YET_DATASETS = {"amazon-books", "wikimedia-commons"}


def all_claims():
    return [claim for paper in load_claims() for claim in paper.claims]


def test_registry_loads_every_paper():
    papers = load_claims()
    assert [p.key for p in papers] == ["cdl", "curatornet", "cvae", "delrio", "dvbpr", "ease", "multvae", "ncf",
                                       "sansa", "vbpr"]
    counts = {p.key: len(p.claims) for p in papers}
    # cells of paper-claims.md: NCF 3x4, Mult-VAE 2x9 + 6 notebook values, EASE 6x6 + 3 Netflix values,
    # SANSA 7x3 + 2 poster values, VBPR 8x6, DVBPR 8, CuratorNet 6x7, del Rio 6x4;
    # content-and-visual-models.md: CDL 4 splits x 6 cutoffs (TOIS re-run), CVAE the same + the paper's 4 x 6
    assert counts == {"ncf": 12, "multvae": 24, "ease": 39, "sansa": 23, "vbpr": 48, "dvbpr": 8,
                      "curatornet": 42, "delrio": 24, "cdl": 24, "cvae": 48}


def test_claimed_model_and_dataset_names_are_registered_or_known_to_be_missing():
    from datasets.registry import registered_datasets
    from protocols.registry import registered_models

    claims = all_claims()
    assert {c.model for c in claims} - set(registered_models()) == NOT_YET_MODELS
    assert {c.dataset for c in claims} - set(registered_datasets()) == NOT_YET_DATASETS


def test_registered_datasets_use_split_keys_of_the_pipeline_form():
    from datasets.registry import registered_datasets
    from protocols.params import load_params

    params = load_params(ROOT / "params.yaml")
    splits = set(params["splits"])
    for suite in (params.get("paper_suites") or {}).values():
        splits |= set(suite.get("splits") or {})
    private = {"ugallery-curatornet"}  # no files to fetch, so no split can be defined
    for claim in all_claims():
        assert claim.protocol.startswith(claim.dataset + "/")
        if claim.dataset in registered_datasets() and claim.dataset not in private:
            assert claim.protocol in splits, claim


def test_paper_selection_by_stem_or_name_and_unknown_lists_known():
    assert [p.key for p in load_claims(paper="ncf")] == ["ncf"]
    assert [p.key for p in load_claims(paper="mult-vae")] == ["multvae"]
    assert [p.key for p in load_claims(paper="CVAE")] == ["cvae"]
    with pytest.raises(RecAuditError, match=r"unknown paper 'bert4rec'; known papers: cdl, curatornet, cvae, delrio"):
        load_claims(paper="bert4rec")


@pytest.mark.parametrize("label, ok", [("ndcg@10", True), ("recall_mv@20", True), ("auc", True), ("hr@1", True),
                                       ("auc@10", False), ("ndcg", False), ("ndcg@0", False), ("NDCG@10", False),
                                       ("coverage@10", False), ("recall@", False), ("bleu@4", False)])
def test_metric_labels(label, ok):
    assert is_metric_label(label) is ok


# ---------------------------------------------------------------- transcription check

DATASETS = {"ML-1M": "movielens-1m-ncf", "Pinterest": "pinterest-20-ncf", "ML-20M": "movielens-20m",
            "Netflix": "netflix-prize", "MSD": "msd-taste-profile", "Amazon Women": "amazon-women-vbpr",
            "Amazon Men": "amazon-men-vbpr", "Amazon Phones": "amazon-phones-vbpr", "Tradesy.com": "tradesy-vbpr"}
# Mult-VAE's Recall@R divides by min(R, held out): RecAudit's recall_mv. Elsewhere plain recall.
STRONG_METRICS = {"R@20": "recall_mv@20", "R@50": "recall_mv@50", "NDCG@100": "ndcg@100", "HR@10": "hr@10",
                  "NDCG@10": "ndcg@10"}
TOP_N_METRICS = {"AUC": "auc", "RR": "mrr@32959", "R@20": "recall@20", "P@20": "precision@20",
                 "nDCG@20": "ndcg@20", "R@100": "recall@100", "P@100": "precision@100", "nDCG@100": "ndcg@100",
                 "MRR@20": "mrr@20"}
SECTIONS = {"NCF": "ncf", "Mult-VAE": "multvae", "EASE": "ease", "SANSA": "sansa", "VBPR": "vbpr",
            "DVBPR": "dvbpr", "CuratorNet": "curatornet", "Transfer of ImageNet CNNs": "delrio"}
NOT_CLAIMS = {"Not found"}


def parse_sections(text: str) -> dict[str, str]:
    sections = re.split(r"^## ", text, flags=re.MULTILINE)[1:]
    return {section.split("\n", 1)[0]: section for section in sections}


def section_key(heading: str) -> str | None:
    if heading in NOT_CLAIMS:
        return None
    matches = [key for prefix, key in SECTIONS.items() if heading.startswith(prefix + ":")
               or heading.startswith(prefix + " ")]
    assert len(matches) == 1, f"paper-claims.md has a section the claims registry does not cover: {heading!r}"
    return matches[0]


def tables(section: str) -> list[list[list[str]]]:
    """Each Markdown table of a section as rows of stripped cells (header first, rule dropped)."""
    found, current = [], []
    for line in section.splitlines() + [""]:
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if not all(re.fullmatch(r"-+", cell) for cell in cells):
                current.append(cells)
        elif current:
            found.append(current)
            current = []
    return found


def tags(text: str) -> tuple[str, ...]:
    return tuple(re.findall(r"\[(paper|reprint|lecture)[\]:]", text))


def cell_value(text: str, carried_note: str) -> tuple[float | None, str]:
    if re.fullmatch(r"\d*\.\d+", text):
        return float(text), ""
    if text in ("N/A", "did not finish"):
        return None, text
    assert text == "" and carried_note, f"unexpected cell {text!r}"
    return None, carried_note


def metric_columns(header: list[str], metric_names: dict[str, str]) -> dict[int, tuple[str | None, str]]:
    """Column index -> (dataset or None, metric label); a bare metric continues the last dataset."""
    columns, dataset = {}, None
    for index, cell in enumerate(header):
        prefix, _, name = cell.rpartition(" ")
        if name in metric_names and (not prefix or prefix in DATASETS):
            dataset = DATASETS[prefix] if prefix else dataset
            columns[index] = (dataset, metric_names[name])
    return columns


def wide_table(key, table, metric_names, setting, provenance=None):
    """Rows = models (first column), columns = [dataset] metric, optional source column."""
    header, *rows = table
    columns = metric_columns(header, metric_names)
    expected = {}
    for row in rows:
        note = ""
        source = tags(row[header.index("source")]) if "source" in header else provenance
        for index, (dataset, metric) in columns.items():
            value, note = cell_value(row[index], note)
            expected[(key, dataset, row[0], setting, metric)] = (value, note, source)
    return expected


def expected_cells(text: str) -> dict[tuple, tuple]:
    expected: dict[tuple, tuple] = {}
    for heading, section in parse_sections(text).items():
        key = section_key(heading)
        if key is None:
            continue
        found = tables(section)
        if key == "ncf":
            setting = re.search(r"\((.+)\)", found[0][0][0]).group(1)
            expected |= wide_table(key, found[0], STRONG_METRICS, setting)
        elif key in ("multvae", "ease"):
            expected |= wide_table(key, found[0], STRONG_METRICS, "")
        elif key == "sansa":
            header, *rows = found[0]
            hardware = re.search(r"training s \((.+)\)", header[-1]).group(1)
            for dataset, model, density, *values, seconds in rows:
                setting = f"weight density {density}; training {seconds} s on {hardware}"
                for name, value in zip(header[3:-1], values):
                    expected[(key, DATASETS[dataset], model, setting, STRONG_METRICS[name])] = \
                        (float(value), "", ("paper",))
        elif key == "vbpr":
            header, *rows = found[0]
            for dataset, setting, *values in rows:
                for model, text in zip(header[2:], values):
                    value, note = cell_value(text, "")
                    expected[(key, DATASETS[dataset], model, setting, "auc")] = (value, note, ("lecture",))
        elif key == "curatornet":
            header, *rows = found[0]
            for method, l2, *values in rows:
                setting = "" if l2 == "-" else f"L2 {l2}"
                for name, text in zip(header[2:], values):
                    expected[(key, "ugallery-curatornet", method, setting, TOP_N_METRICS[name])] = \
                        (float(text), "", ("paper",))
        elif key == "delrio":
            header, *rows = found[0]
            for cnn, *values in rows:
                for name, text in zip(header[1:], values):
                    expected[(key, "ugallery-curatornet", cnn, "", TOP_N_METRICS[name])] = (float(text), "", ("lecture",))
        assert len(found) == (0 if key == "dvbpr" else 1), f"unexpected tables in {heading!r}"
        expected |= prose_cells(key, section)
    return expected


def prose_cells(key: str, section: str) -> dict[tuple, tuple]:
    """Values given in sentences rather than tables."""
    cells = {}
    if key == "multvae":
        found = re.search(r"printed Mult-VAE NDCG@100 ([\d.]+), Recall@20 ([\d.]+), Recall@50 ([\d.]+) and "
                          r"Mult-DAE ([\d.]+) / ([\d.]+) / ([\d.]+) \[paper\]", section)
        for model, values in (("Mult-VAE", found.groups()[:3]), ("Mult-DAE", found.groups()[3:])):
            for metric, value in zip(("ndcg@100", "recall_mv@20", "recall_mv@50"), values):
                cells[(key, "movielens-20m", model, "authors' notebook re-run", metric)] = \
                    (float(value), "", ("paper",))
    elif key == "ease":
        found = re.search(r"EASE\^R on Netflix: R@20 ([\d.]+), R@50 ([\d.]+), NDCG@100 ([\d.]+) \[reprint\]",
                          section)
        for metric, value in zip(("recall_mv@20", "recall_mv@50", "ndcg@100"), found.groups()):
            cells[(key, "netflix-prize", "EASE^R", "", metric)] = (float(value), "", ("reprint",))
    elif key == "sansa":
        found = re.search(r"SANSA reached recall@20 ([\d.]+), nDCG@20 ([\d.]+) in (\d+) s on (\d+) vCPUs with "
                          r"([\d.]+) GB peak memory \[paper", section)
        recall, ndcg, seconds, cpus, memory = found.groups()
        setting = f"BARS split; training {seconds} s on {cpus} vCPU; {memory} GB peak memory"
        cells[(key, "amazon-books", "SANSA", setting, "recall@20")] = (float(recall), "", ("paper",))
        cells[(key, "amazon-books", "SANSA", setting, "ndcg@20")] = (float(ndcg), "", ("paper",))
    elif key == "dvbpr":
        model = re.search(r"(AlexNet-style CNN with K=\d+, BPR loss) \[lecture\]", section).group(1)
        line = next(line for line in section.splitlines() if line.startswith("AUC "))
        for name, value in re.findall(r"(AUC|RR|R@\d+|P@\d+|nDCG@\d+) ([\d.]+\d)", line):
            cells[(key, "wikimedia-commons", "DVBPR", f"{model}; lecture tutorial re-run", TOP_N_METRICS[name])] = \
                (float(value), "", ("lecture",))
        assert len(cells) == 8
    return cells


@pytest.mark.skipif(not PAPER_CLAIMS.is_file(), reason=f"{PAPER_CLAIMS} not present (CI has it)")
def test_every_registry_value_matches_paper_claims_md():
    text = PAPER_CLAIMS.read_text(encoding="utf-8")
    expected = expected_cells(text)
    claims = [c for c in all_claims() if c.paper not in TOIS_CITEULIKE_PAPERS]
    registry = {(c.paper, c.dataset, c.paper_model, c.setting, c.metric): (c.reported, c.note if c.reported is None
                                                                            else "", c.provenance)
                for c in claims}
    assert len(registry) == len(claims)  # the key tells every claim apart
    missing = sorted(set(expected) - set(registry))
    extra = sorted(set(registry) - set(expected))
    assert not missing, f"cells of paper-claims.md without a claim: {missing[:5]}"
    assert not extra, f"claims without a cell in paper-claims.md: {extra[:5]}"
    wrong = {key: (registry[key], value) for key, value in expected.items() if registry[key] != value}
    assert not wrong, f"registry value != paper-claims.md (registry, md): {dict(list(wrong.items())[:5])}"
    assert len(expected) == 220


@pytest.mark.skipif(not PAPER_CLAIMS.is_file(), reason=f"{PAPER_CLAIMS} not present (CI has it)")
def test_ease_notes_keep_the_later_l2_values():
    text = PAPER_CLAIMS.read_text(encoding="utf-8")
    l2 = re.search(r"L2 values the author later used with this protocol: (.+?) \[paper", text).group(1)
    ease = load_claims(paper="ease")[0]
    assert any(l2 in note for note in ease.notes)


def test_transcription_check_catches_a_typo():
    """The check above is only worth having if it fails: one digit changed must show."""
    text = ("## NCF: x\n\n| model (32 factors) | ML-1M HR@10 | source |\n|---|---|---|\n"
            "| MLP (3 layers) | 0.692 | [reprint] |\n")
    cells = expected_cells(text)
    assert cells == {("ncf", "movielens-1m-ncf", "MLP (3 layers)", "32 factors", "hr@10"): (0.692, "", ("reprint",))}
    typo = expected_cells(text.replace("0.692", "0.629"))
    registry_value = next(c for c in all_claims() if c.paper == "ncf" and c.metric == "hr@10"
                          and c.dataset == "movielens-1m-ncf" and c.paper_model == "MLP (3 layers)").reported
    assert list(cells.values())[0][0] == registry_value != list(typo.values())[0][0]


# ---------------------------------------------------------------- CDL and CVAE: the TOIS CiteULike section

RECALL_CUTOFFS = (50, 100, 150, 200, 250, 300)
TOIS_SETTING, FIGURES_SETTING = "TOIS re-run of the authors' code", "the paper's figures"


def citeulike_protocol(label: str) -> str:
    """``CiteULike-a P=10`` -> ``citeulike-a/tois-p10``."""
    found = re.fullmatch(r"CiteULike-([at]) P=(1|10)", label)
    assert found, f"unexpected split label {label!r}"
    return f"citeulike-{found.group(1)}/tois-p{found.group(2)}"


def tois_citeulike_cells(text: str) -> dict[tuple, tuple]:
    """(paper, protocol, paper_model, setting, metric) -> (value, provenance, flagged not comparable):
    the TOIS re-run table (CVAE and CDL) and the CVAE paper's own curves, read from the section
    "The CiteULike protocol of the TOIS study" of content-and-visual-models.md."""
    (section,) = [body for heading, body in parse_sections(text).items()
                  if heading.startswith("The CiteULike protocol of the TOIS study")]
    (table,) = tables(section)
    header, *rows = table
    assert header == ["split", "CVAE", "CDL"]
    expected = {}
    for label, *columns in rows:
        for model, cell in zip(header[1:], columns):
            values = cell.split()
            assert len(values) == len(RECALL_CUTOFFS), f"{label} {model}: {cell!r}"
            for cutoff, value in zip(RECALL_CUTOFFS, values):
                expected[(model.lower(), citeulike_protocol(label), model, TOIS_SETTING, f"recall@{cutoff}")] = \
                    (float(value), ("rerun",), False)
    own = section.split("The CVAE paper's own curves", 1)[1].split("\n- ", 1)[0]
    assert "flawed evaluation" in own and "[authors' issue tracker" in own  # the authors' artefact: [paper]
    curves = re.findall(r"(CiteULike-[at] P=\d+)((?:\s+\.\d+){6})", own)
    assert len(curves) == 4
    for label, values in curves:
        for cutoff, value in zip(RECALL_CUTOFFS, values.split()):
            expected[("cvae", citeulike_protocol(label), "CVAE", FIGURES_SETTING, f"recall@{cutoff}")] = \
                (float(value), ("paper",), True)
    return expected


@pytest.mark.skipif(not CONTENT_MODELS.is_file(), reason=f"{CONTENT_MODELS} not present (CI has it)")
def test_cdl_and_cvae_values_match_content_and_visual_models_md():
    expected = tois_citeulike_cells(CONTENT_MODELS.read_text(encoding="utf-8"))
    claims = [c for c in all_claims() if c.paper in TOIS_CITEULIKE_PAPERS]
    registry = {(c.paper, c.protocol, c.paper_model, c.setting, c.metric): (c.reported, c.provenance,
                                                                             bool(c.not_comparable))
                for c in claims}
    assert len(registry) == len(claims) == len(expected) == 72  # 2 models x 4 splits x 6 + CVAE's own 4 x 6
    assert registry == expected


def test_cdl_and_cvae_claims_point_at_the_tois_splits_and_flag_the_flawed_curves():
    from protocols.params import load_params
    from protocols.registry import registered_models

    params = load_params(ROOT / "params.yaml")
    suite = params["suites"]["citeulike"]
    assert set(TOIS_CITEULIKE_SPLITS) <= set(params["splits"]) and set(suite["splits"]) == set(TOIS_CITEULIKE_SPLITS)
    assert set(RECALL_CUTOFFS) <= set(suite["evaluation"]["cutoffs"]) and "recall" in suite["evaluation"]["metrics"]
    papers = {p.key: p for p in load_claims() if p.key in TOIS_CITEULIKE_PAPERS}
    assert {p.paper for p in papers.values()} == {"CDL", "CVAE"}
    for key, paper in papers.items():
        assert key in registered_models() and {c.model for c in paper.claims} == {key}
        assert {c.dataset for c in paper.claims} == {"citeulike-a", "citeulike-t"}
        assert {c.protocol for c in paper.claims} == set(TOIS_CITEULIKE_SPLITS)
        assert {c.metric for c in paper.claims} == {f"recall@{k}" for k in RECALL_CUTOFFS}
        for claim in paper.claims:
            if claim.dataset == "citeulike-a":  # our content is the tags; the paper's was the text
                assert "content differs" in claim.note and "tags" in claim.note and "mult.dat" in claim.note
            else:
                assert claim.note == ""
        rerun = [c for c in paper.claims if c.setting == TOIS_SETTING]
        assert len(rerun) == 24 and all(c.provenance == ("rerun",) and not c.not_comparable for c in rerun)
        assert all("TOIS 2021" in c.where for c in rerun)
    assert not any(c.not_comparable for c in papers["cdl"].claims)
    flagged = [c for c in papers["cvae"].claims if c.not_comparable]
    assert len(flagged) == 24 and {c.setting for c in flagged} == {FIGURES_SETTING}
    assert {c.provenance for c in flagged} == {("paper",)}
    for claim in flagged:
        assert claim.not_comparable.startswith("flawed protocol:")
        assert "training items as hits" in claim.not_comparable and "README" in claim.not_comparable
    assert any("not_comparable" in note for note in papers["cvae"].notes)


# ---------------------------------------------------------------- schema errors

VALID = """\
paper: Test
citation: A. Author. 2020. A paper.
defaults: {where: Table 1, provenance: [paper]}
claims:
  - {dataset: movielens-100k, protocol: movielens-100k/holdout, model: ease, paper_model: EASE,
     values: {ndcg@10: 0.5}}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "test.yaml"
    path.write_text(text)
    return path


def test_not_comparable_flag_and_rerun_tag(tmp_path):
    text = VALID.replace("provenance: [paper]}", "provenance: [rerun]}").replace(
        "values: {ndcg@10: 0.5}}", "values: {ndcg@10: 0.5}}\n"
        "  - {dataset: movielens-100k, protocol: movielens-100k/holdout, model: ease, paper_model: EASE,\n"
        "     setting: own, not_comparable: '  flawed  protocol: training items counted', values: {ndcg@10: 0.9}}")
    first, second = load_paper_claims(write(tmp_path, text)).claims
    assert (first.provenance, first.not_comparable, first.tags) == (("rerun",), "", "[rerun]")
    assert second.not_comparable == "flawed protocol: training items counted"  # whitespace folded like every text


def test_valid_file_expands_defaults(tmp_path):
    paper = load_paper_claims(write(tmp_path, VALID))
    (claim,) = paper.claims
    assert (paper.key, paper.paper, claim.where, claim.provenance, claim.setting, claim.reported) == \
        ("test", "Test", "Table 1", ("paper",), "", 0.5)
    assert claim.tags == "[paper]"


@pytest.mark.parametrize("old, new, field, problem", [
    ("paper: Test\n", "", r"\(top level\)", "lacks required key\\(s\\) paper"),
    ("paper: Test\n", "paper: Test\ntitle: x\n", r"\(top level\)", "unknown key\\(s\\) title"),
    ("model: ease,", "model: EASE,", r"claims\[0\]\.model", "lower-case name"),
    ("paper_model: EASE,", "", r"claims\[0\]", "lacks required key\\(s\\) paper_model"),
    ("{ndcg@10: 0.5}", "{ndcg10: 0.5}", r"claims\[0\]\.values\.ndcg10", "not a RecAudit metric label"),
    ("{ndcg@10: 0.5}", "{ndcg@10: 1.5}", r"claims\[0\]\.values\.ndcg@10", "must lie in \\[0, 1\\]"),
    ("{ndcg@10: 0.5}", "{ndcg@10: true}", r"claims\[0\]\.values\.ndcg@10", "must be a number or null"),
    ("{ndcg@10: 0.5}", "{ndcg@10: '0.5'}", r"claims\[0\]\.values\.ndcg@10", "must be a number or null"),
    ("{ndcg@10: 0.5}", "{ndcg@10: null}", r"claims\[0\]\.values\.ndcg@10", "no note saying why"),
    ("{ndcg@10: 0.5}", "{}", r"claims\[0\]\.values", "non-empty mapping"),
    ("provenance: [paper]", "provenance: [preprint]", r"claims\[0\]\.provenance", "distinct tags"),
    ("provenance: [paper]", "provenance: []", r"claims\[0\]\.provenance", "distinct tags"),
    ("protocol: movielens-100k/holdout", "protocol: movielens-1m/holdout", r"claims\[0\]\.protocol",
     "must be 'movielens-100k/<split name>'"),
    ("where: Table 1, ", "where: '', ", r"claims\[0\]\.where", "non-empty string"),
    ("defaults: {", "defaults: {values: {}, ", "defaults", "unknown key\\(s\\) values"),
    ("paper_model: EASE,", "paper_model: EASE, not_comparable: '',", r"claims\[0\]\.not_comparable",
     "non-empty string"),
    ("paper_model: EASE,", "paper_model: EASE, not_comparable: true,", r"claims\[0\]\.not_comparable",
     "non-empty string"),
])
def test_schema_errors_name_file_and_field(tmp_path, old, new, field, problem):
    assert old in VALID
    path = write(tmp_path, VALID.replace(old, new))
    with pytest.raises(RecAuditError) as raised:
        load_paper_claims(path)
    message = str(raised.value)
    assert "\n" not in message
    assert re.match(rf"{re.escape(str(path))}: {field}: .*{problem}", message), message


def test_duplicate_claim_is_refused(tmp_path):
    duplicated = VALID + ("  - {dataset: movielens-100k, protocol: movielens-100k/holdout, model: ease,\n"
                          "     paper_model: EASE, values: {ndcg@10: 0.6}}\n")
    with pytest.raises(RecAuditError, match=r"test\.yaml: claims\[1\]\.values\.ndcg@10: repeats "
                                            r"claims\[0\]\.values\.ndcg@10"):
        load_paper_claims(write(tmp_path, duplicated))


@pytest.mark.parametrize("text, problem", [
    ("claims: [unclosed\n", "not valid YAML"),
    ("- a list\n", "must be a mapping"),
    (VALID.replace("claims:\n  - {", "claims: []\nx:\n  - {"), "unknown key"),
])
def test_malformed_files(tmp_path, text, problem):
    with pytest.raises(RecAuditError, match=problem):
        load_paper_claims(write(tmp_path, text))


def test_empty_folder_and_missing_file(tmp_path):
    with pytest.raises(RecAuditError, match="no claims files"):
        load_claims(tmp_path)
    with pytest.raises(RecAuditError, match="cannot read claims file"):
        load_paper_claims(tmp_path / "absent.yaml")
    assert CLAIMS_DIR.is_dir()


def test_ncf_claims_read_the_paper_suites_labels():
    """The NCF claims are reproduced by the ncf-paper suite's labels (the authors' training
    setup), not by the default suite's CPU-capped gmf/mlp/neumf entries."""
    from protocols.paper_suites import paper_suites
    from protocols.params import load_params

    claims = load_claims(paper="ncf")[0].claims
    labels = {claim.result_label for claim in claims}
    assert labels == {"mlp-paper", "neumf-paper"} and {claim.model for claim in claims} == {"mlp", "neumf"}
    suite = paper_suites(load_params(Path(__file__).resolve().parents[1] / "params.yaml"))["ncf-paper"]
    assert labels <= set(suite["suite"]["models"])
    assert all(suite["models"][label]["model"] == label.removesuffix("-paper") for label in labels)
