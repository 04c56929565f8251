"""``python -m datasets``: list, fetch, prepare and the one-line error for an unknown name."""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pandas as pd
import pytest

import datasets.__main__ as cli
from datasets import registry
from common.errors import RecAuditError
from datasets.registry import DatasetSpec, FileSpec

REPO = Path(__file__).resolve().parent.parent
MIRROR = os.environ.get("RECAUDIT_MIRROR")


def toy_registry(monkeypatch, tmp_path: Path) -> Path:
    """Register one synthetic dataset ``toy`` (2 files) and return a fake mirror holding it."""
    contents = {"ratings.txt": b"0 1 5\n1 2 3\n", "split/test.txt": b"0 2\n"}
    for name, content in contents.items():
        (tmp_path / "mirror" / "toy" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "mirror" / "toy" / name).write_bytes(content)
    files = tuple(FileSpec(name, f"toy/{name}", "sha256:" + hashlib.sha256(content).hexdigest(),
                           url=f"https://example.org/{name}") for name, content in contents.items())
    spec = DatasetSpec(name="toy", description="synthetic", citation="-", licence="-", licence_short="made up",
                       homepage="-", side_information=("item colours",), published_users=2, published_items=3,
                       published_interactions=2, stats_source="-", files=files)
    monkeypatch.setattr(registry, "registered_datasets", lambda: {"toy": spec})
    monkeypatch.setattr(cli, "registered_datasets", lambda: {"toy": spec})
    monkeypatch.chdir(tmp_path)
    return tmp_path / "mirror"


def table_row(output: str, name: str) -> list[str]:
    line = next(line for line in output.splitlines() if line.startswith(name + " "))
    return re.split(r"\s{2,}", line.strip())


def test_list_shows_published_counts_and_where_raw_files_are(monkeypatch, tmp_path, capsys):
    mirror = toy_registry(monkeypatch, tmp_path)
    monkeypatch.delenv("RECAUDIT_MIRROR", raising=False)
    cli.main(["list"])
    row = table_row(capsys.readouterr().out, "toy")
    assert row == ["toy", "2", "3", "2", "published", "?", "item colours", "made up", "no"]
    monkeypatch.setenv("RECAUDIT_MIRROR", str(mirror))
    cli.main(["list"])
    assert table_row(capsys.readouterr().out, "toy")[-1] == "mirror"


def test_list_prefers_prepared_counts_and_sees_local_raw_files(monkeypatch, tmp_path, capsys):
    mirror = toy_registry(monkeypatch, tmp_path)
    monkeypatch.setenv("RECAUDIT_MIRROR", str(mirror))
    cli.main(["fetch", "toy"])
    assert "toy: 2 files" in capsys.readouterr().out
    (tmp_path / "data" / "prepared" / "toy").mkdir(parents=True)
    meta = {"n_users": 1234, "n_items": 56, "n_interactions": 7890}
    (tmp_path / "data" / "prepared" / "toy" / "meta.json").write_text(json.dumps(meta))
    cli.main(["list"])
    row = table_row(capsys.readouterr().out, "toy")
    assert row[1:5] == ["1,234", "56", "7,890", "prepared"]
    assert row[-1] == "local, mirror"


def test_fetch_writes_to_data_raw_or_to_out(monkeypatch, tmp_path, capsys):
    mirror = toy_registry(monkeypatch, tmp_path)
    monkeypatch.setenv("RECAUDIT_MIRROR", str(mirror))
    cli.main(["fetch", "toy"])
    assert (tmp_path / "data" / "raw" / "toy" / "split" / "test.txt").read_bytes() == b"0 2\n"
    cli.main(["fetch", "toy", "--out", "elsewhere"])
    assert (tmp_path / "elsewhere" / "ratings.txt").is_file()
    assert "verified into elsewhere from mirror" in capsys.readouterr().out


def run_module(*args: str, cwd: Path = REPO, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = dict(os.environ, PYTHONPATH=str(REPO), **(env or {}))
    return subprocess.run([sys.executable, "-m", "datasets", *args], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=120)


def test_unknown_dataset_is_one_line_exit_2_without_traceback(tmp_path):
    for command in (["fetch", "movielens-2m"], ["prepare", "movielens-2m"]):
        result = run_module(*command, cwd=tmp_path)
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        assert result.stderr.startswith("error: unknown dataset 'movielens-2m'; known datasets: amazon-digital-music-dmf, ")
    assert not (tmp_path / "data").exists()


def test_list_runs_as_a_module(tmp_path):
    result = run_module("list", cwd=tmp_path, env={"RECAUDIT_MIRROR": ""})
    assert result.returncode == 0, result.stderr
    assert table_row(result.stdout, "movielens-1m")[:5] == ["movielens-1m", "6,040", "3,706", "1,000,209", "published"]
    assert table_row(result.stdout, "citeulike-t")[-1] == "no"


@pytest.mark.skipif(not MIRROR, reason="needs the real-data mirror: set RECAUDIT_MIRROR")
def test_fetch_movielens_100k_from_the_mirror_as_a_module(tmp_path):
    result = run_module("fetch", "movielens-100k", cwd=tmp_path, env={"RECAUDIT_MIRROR": str(Path(MIRROR).resolve())})
    assert result.returncode == 0, result.stderr
    raw = tmp_path / "data" / "raw" / "movielens-100k"
    assert sorted(p.name for p in raw.iterdir()) == \
        ["MovieImages", "README", "ml100k_item_to_ml1m_movie.tsv", "movies.dat", "u.data", "u.genre", "u.item",
         "u.occupation", "u.user"]
    assert len(list((raw / "MovieImages").iterdir())) == 1600
    assert result.stdout.startswith("movielens-100k: 1608 files")


# ---------------------------------------------------------------- prepare

@pytest.fixture
def fake_prepare(monkeypatch):
    """Stand in for datasets.prepare so these tests check only the command line's part."""
    calls = []

    def prepare_dataset(name, raw_dir, out_dir, options):
        calls.append((name, Path(raw_dir), Path(out_dir), options))
        frame = pd.DataFrame({"user": [0, 1, 1], "item": [0, 0, 1]})
        return types.SimpleNamespace(n_users=2, n_items=2, interactions=frame)

    monkeypatch.setitem(sys.modules, "datasets.prepare", types.SimpleNamespace(prepare_dataset=prepare_dataset))
    return calls


def test_prepare_merges_params_over_the_registry_defaults(monkeypatch, tmp_path, capsys, fake_prepare):
    toy_registry(monkeypatch, tmp_path)
    (tmp_path / "data" / "raw" / "toy").mkdir(parents=True)
    (tmp_path / "params.yaml").write_text("datasets:\n  toy:\n    rating_threshold: 4\n    min_user_interactions: 5\n")
    cli.main(["prepare", "toy"])
    assert fake_prepare == [("toy", Path("data/raw/toy"), Path("data/prepared/toy"),
                             {"rating_threshold": 4, "deduplicate": True, "min_user_interactions": 5,
                              "min_item_interactions": 0, "k_core": "iterative"})]
    assert capsys.readouterr().out == "toy: 2 users, 2 items, 3 interactions -> data/prepared/toy\n"


@pytest.mark.parametrize("params", ["", "seed: 1\n", "datasets:\n  toy:\n"])
def test_prepare_without_options_uses_the_defaults(monkeypatch, tmp_path, fake_prepare, params):
    toy_registry(monkeypatch, tmp_path)
    (tmp_path / "raw").mkdir()
    (tmp_path / "p.yaml").write_text(params)
    cli.main(["prepare", "toy", "--raw", "raw", "--out", "out", "--params", "p.yaml"])
    assert fake_prepare[0][1:] == (Path("raw"), Path("out"), dict(registry.default_preprocessing()))


@pytest.mark.parametrize("params, problem", [
    ("datasets:\n  toy:\n    min_users: 5\n", "datasets.toy.min_users: unknown preprocessing option 'min_users'"),
    ("datasets:\n  toy:\n    deduplicate: 'yes'\n", "datasets.toy.deduplicate must be true or false"),
    ("datasets:\n  toy:\n    min_item_interactions: -1\n", "datasets.toy.min_item_interactions must be an integer >= 0"),
    ("datasets:\n  toy:\n    rating_threshold: high\n", "must be a number or null"),
    ("datasets:\n  toy: [1, 2]\n", "datasets.toy must be a mapping"),
    ("datasets: [toy]\n", "datasets must be a mapping of dataset name"),
    ("datasets: {toy: [\n", "is not valid YAML"),
    ("datasets:\n  other: {}\n", "datasets.other: unknown dataset 'other'"),
])
def test_prepare_refuses_bad_params_before_parsing(monkeypatch, tmp_path, fake_prepare, params, problem):
    toy_registry(monkeypatch, tmp_path)
    (tmp_path / "data" / "raw" / "toy").mkdir(parents=True)
    (tmp_path / "params.yaml").write_text(params)
    with pytest.raises(RecAuditError, match=problem.replace("[", r"\[")):
        cli.main(["prepare", "toy"])
    assert fake_prepare == []


def test_prepare_without_raw_files_says_to_fetch_first(monkeypatch, tmp_path, fake_prepare):
    toy_registry(monkeypatch, tmp_path)
    with pytest.raises(RecAuditError, match=r"no raw files for toy at data/raw/toy; run `python -m datasets fetch toy`"):
        cli.main(["prepare", "toy"])
    with pytest.raises(RecAuditError, match="params file missing.yaml does not exist"):
        cli.main(["prepare", "toy", "--params", "missing.yaml"])
