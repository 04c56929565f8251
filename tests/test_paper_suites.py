"""Paper suites: enabling one copies its datasets, splits and models into the pipeline's
sections and selects it, keeping the file's comments; conflicts and unknown names refuse."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from common.errors import RecAuditError
from datasets.registry import registered_datasets
from protocols.params import load_params
from protocols.paper_suites import check_paper_suite, enable_suite, paper_suites
from protocols.registry import registered_models

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def params(tmp_path):
    path = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", path)
    return path


def test_every_paper_suite_holds_together_and_names_registered_things():
    params = load_params(ROOT / "params.yaml")
    suites = paper_suites(params)
    assert {"vbpr-paper", "dvbpr-paper"} <= set(suites)
    for name, suite in suites.items():
        check_paper_suite(name, suite)
        assert set(suite["datasets"]) <= set(registered_datasets()), name
        entries = {**params["models"], **(suite.get("models") or {})}
        for model in suite["suite"]["models"]:
            # a label without an entry runs the registered model of that name with its defaults
            assert (entries.get(model) or {}).get("model", model) in registered_models(), (name, model)


def test_enable_copies_sections_selects_the_suite_and_keeps_comments(params):
    before = params.read_text()
    added = enable_suite(params, "vbpr-paper")
    assert "datasets: tradesy-vbpr" in added and "splits: tradesy-vbpr/vbpr-cold-start" in added
    text = params.read_text()
    assert "# Paper suites over data that is a large download" in text  # comments kept
    assert "suite: *vbpr_paper" in text
    loaded = load_params(params)
    assert loaded["suite"]["splits"][0] == "amazon-women-vbpr/vbpr-all-items"
    assert loaded["tuning"]["metric"] == "auc"  # the suite's overrides apply
    assert loaded["splits"]["tradesy-vbpr/vbpr-cold-start"]["cold_test_max_train"] == 5
    assert "amazon-men-vbpr" in loaded["datasets"]
    assert loaded["suites"]["default"]["splits"] == yaml.safe_load(before)["suites"]["default"]["splits"]
    # Enabling again changes nothing but re-selects it.
    enable_suite(params, "vbpr-paper")
    assert params.read_text() == text


def test_enable_refuses_conflicts_and_unknown_names_without_writing(params):
    text = params.read_text().replace(
        "  movielens-1m-lcfn/given:",
        "  tradesy-vbpr/vbpr-all-items: {dataset: tradesy-vbpr, protocol: holdout}\n  movielens-1m-lcfn/given:")
    params.write_text(text)
    with pytest.raises(RecAuditError, match=r"splits.tradesy-vbpr/vbpr-all-items already exists with other settings"):
        enable_suite(params, "vbpr-paper")
    assert params.read_text() == text
    with pytest.raises(RecAuditError, match=r"unknown paper suite 'vbpr'.*dvbpr-paper, ease-paper, multvae-paper, "
                                            r"ncf-paper, vbpr-paper"):
        enable_suite(params, "vbpr")


def test_a_suite_naming_an_undefined_split_is_refused():
    with pytest.raises(RecAuditError, match=r"runs split 'a/b' but does not define it"):
        check_paper_suite("x", {"datasets": {}, "splits": {}, "suite": {"splits": ["a/b"], "models": []}})
