"""Issue 15, "Trust every number", cases 1 and 4-8: every input verified before use, loose
types refused, one-line errors instead of tracebacks, implausible data refused, leftovers
cleaned up, size limits on archive members, and user-supplied names escaped in Markdown.

Each test names the numbered case of the issue it covers.
"""
from __future__ import annotations

import errno
import io
import json
import os
import re
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from common.atomic import atomic_directory, atomic_file
from common.errors import RecAuditError, run_cli
from datasets.canonical import PreparedData, write_prepared
from protocols.__main__ import main as protocols_main
from protocols.split_data import TUNING_PARTS, load_split, write_split
from protocols.splits import make_split

KEY = "toy/holdout"
RERUN = (f"python -m protocols split {KEY}", f"dvc repro split@{KEY}")


# ---------------------------------------------------------------- a real split on disk

def toy_prepared(n_users: int = 30, n_items: int = 12, seed: int = 3) -> PreparedData:
    rng = np.random.default_rng(seed)
    pairs = sorted({(int(u), int(i)) for u, i in zip(rng.integers(0, n_users, 300), rng.integers(0, n_items, 300))})
    users, items = map(np.array, zip(*pairs))
    return PreparedData(name="toy", interactions=pd.DataFrame({"user": users, "item": items}), n_users=n_users,
                        n_items=n_items, users=pd.DataFrame({"user": np.arange(n_users)}),
                        items=pd.DataFrame({"item": np.arange(n_items)}))


@pytest.fixture
def workspace(tmp_path):
    write_split(make_split(toy_prepared(), "holdout", 7), tmp_path / "splits" / "toy" / "holdout")
    (tmp_path / "params.yaml").write_text("seed: 42\nmodels:\n  pop: {}\n  random: {}\n  itemknn: {}\n"
                                          "evaluation:\n  cutoffs: [10]\n  metrics: [ndcg]\n")
    return tmp_path


def split_dir(workspace: Path) -> Path:
    return workspace / "splits" / "toy" / "holdout"


def run(main, argv) -> int:
    with pytest.raises(SystemExit) as exit_:
        run_cli(main, argv)
    return exit_.value.code


def evaluate(workspace: Path, *extra: str) -> int:
    return run(protocols_main, ["evaluate", "--params-yaml", str(workspace / "params.yaml"),
                                "--splits-root", str(workspace / "splits"),
                                "--results-root", str(workspace / "results"),
                                "--features-root", str(workspace / "features"), "--raw-root", str(workspace / "raw"),
                                "--split", KEY, *extra])


def one_line_error(capsys) -> str:
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1, error
    assert "Traceback" not in error
    return error


def flip_a_bit_that_still_decodes(path: Path) -> None:
    """Flip the lowest bit of the first byte whose flip still decodes to different data."""
    original = path.read_bytes()
    before = pd.read_parquet(io.BytesIO(original))
    for offset in range(4, len(original) - 8):
        changed = bytearray(original)
        changed[offset] ^= 1
        try:
            after = pd.read_parquet(io.BytesIO(bytes(changed)))
        except Exception:  # noqa: BLE001 - this flip breaks the file; try the next byte
            continue
        if list(after.columns) == list(before.columns) and len(after) == len(before) and not after.equals(before):
            path.write_bytes(bytes(changed))
            return
    raise AssertionError("no bit flip decodes to different data")


# ---------------------------------------------------------------- case 1: split parts against the card

def test_case1_an_intact_split_loads_and_evaluates(workspace):
    assert evaluate(workspace, "--model", "pop") == 0
    assert len(load_split(split_dir(workspace), parts=TUNING_PARTS).train) > 0


@pytest.mark.parametrize("part", ["train.parquet", "test.parquet"])
def test_case1_a_flipped_bit_that_still_decodes_is_refused(workspace, capsys, part):
    flip_a_bit_that_still_decodes(split_dir(workspace) / part)
    assert evaluate(workspace, "--model", "pop") == 2
    error = one_line_error(capsys)
    assert part in error and "does not match" in error and all(command in error for command in RERUN)
    assert not (workspace / "results").exists()
    if part == "train.parquet":  # the tuning reads train too, and refuses it the same way
        with pytest.raises(RecAuditError, match="train.parquet"):
            load_split(split_dir(workspace), parts=TUNING_PARTS)
    else:  # the tuning never reads the test part, so nothing stops it
        load_split(split_dir(workspace), parts=TUNING_PARTS)


def edit_card(folder: Path, **changes) -> None:
    card = json.loads((folder / "card.json").read_text())
    card.update(changes)
    (folder / "card.json").write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")


@pytest.mark.parametrize("changes, fragment", [
    ({"protocol": "strong"}, "protocol"),
    ({"protocol": "no-such-protocol"}, "unknown protocol"),
    ({"n_items": 5000}, "card.json"),
    ({"n_items": 5}, "n_items"),
    ({"n_users": 4}, "n_users"),
    ({"seed": 8}, "card.json"),
    ({"params": {"test_fraction": 0.5, "validation_fraction": 0.1, "min_user_interactions": 2}}, "card.json"),
    ({"params": {"test_fraction": 2.0, "validation_fraction": 0.1, "min_user_interactions": 2}}, "test_fraction"),
])
def test_case1_an_edited_card_is_refused(workspace, capsys, changes, fragment):
    edit_card(split_dir(workspace), **changes)
    assert evaluate(workspace, "--model", "pop") == 2
    error = one_line_error(capsys)
    assert fragment in error and "card.json" in error and all(command in error for command in RERUN)
    with pytest.raises(RecAuditError):
        load_split(split_dir(workspace), parts=TUNING_PARTS)


def test_case1_edited_part_counts_are_refused(workspace, capsys):
    card = json.loads((split_dir(workspace) / "card.json").read_text())
    card["parts"]["train"]["rows"] += 1
    (split_dir(workspace) / "card.json").write_text(json.dumps(card))
    assert evaluate(workspace, "--model", "pop") == 2
    error = one_line_error(capsys)
    assert "train" in error and "rows" in error


def test_case1_a_card_written_without_hashes_gets_them(tmp_path):
    """Hand-built splits (tests, tools) go through write_split too: it records what it wrote."""
    frame = pd.DataFrame({"user": [0, 0, 1], "item": [0, 1, 1]})
    empty = frame.iloc[:0]
    from protocols.split_data import Split

    write_split(Split(train=frame, validation=empty, test=pd.DataFrame({"user": [1], "item": [0]}),
                      card={"protocol": "holdout", "params": {}, "seed": 0, "n_users": 2, "n_items": 2}),
                tmp_path / "split")
    card = json.loads((tmp_path / "split" / "card.json").read_text())
    assert card["parts"]["train"]["rows"] == 3 and len(card["parts"]["test"]["sha256"]) == 64
    assert len(card["card_sha256"]) == 64
    assert len(load_split(tmp_path / "split").train) == 3


# ---------------------------------------------------------------- case 5: unreadable split files

@pytest.mark.parametrize("content, fragment", [
    ("{", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    ('{"protocol": "holdout"}', "lacks"),
    ("", "not valid JSON"),
])
def test_case5_an_invalid_or_incomplete_card_is_one_line(workspace, capsys, content, fragment):
    (split_dir(workspace) / "card.json").write_text(content)
    assert evaluate(workspace, "--model", "pop") == 2
    error = one_line_error(capsys)
    assert fragment in error and "card.json" in error and RERUN[0] in error


def test_case5_a_truncated_parquet_part_is_one_line(workspace, capsys):
    path = split_dir(workspace) / "train.parquet"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert evaluate(workspace, "--model", "pop") == 2
    error = one_line_error(capsys)
    assert "train.parquet" in error and RERUN[0] in error


# ---------------------------------------------------------------- case 4: tuned files

def tuned_file(workspace: Path, model: str, params: dict, **overrides) -> Path:
    record = {"model": model, "split": KEY, "status": "ok", "params": params, "validation_metric": "ndcg@10",
              "best_value": 0.5, "trials_run": 2, "trials_budget": 2, "budget": "fixed", "study_name": "x",
              "storage": "sqlite:///x.db", "seed": 42, "seconds": 1.0}
    record.update(overrides)
    path = workspace / "tuned" / f"{model}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(record, sort_keys=False))
    return path


def test_case4_a_well_typed_tuned_file_runs(workspace):
    path = tuned_file(workspace, "itemknn", {"topk": 5, "shrink": 0.0, "normalize": False})
    assert evaluate(workspace, "--model", "itemknn", "--params", str(path)) == 0
    record = json.loads((workspace / "results" / "toy" / "holdout" / "itemknn" / "metrics.json").read_text())
    assert record["params"]["normalize"] is False and record["tuning"]["best_value"] == 0.5


@pytest.mark.parametrize("model, params, overrides, fragments", [
    ("pop", {}, {"split": "toy/strong"}, ["'toy/strong'", f"'{KEY}'"]),
    ("pop", {}, {"model": "ease"}, ["'ease'", "'pop'"]),
    ("pop", {}, {"best_value": "high"}, ["best_value", "number"]),
    ("pop", {}, {"best_value": True}, ["best_value", "number"]),
    ("pop", {}, {"best_value": float("nan")}, ["best_value", "number"]),
    ("pop", {}, {"validation_metric": 10}, ["validation_metric"]),
    ("pop", {}, {"status": "fine"}, ["status"]),
    ("itemknn", {"normalize": "no"}, {}, ["normalize", "'no'", "true or false"]),
    ("itemknn", {"normalize": 0}, {}, ["normalize", "true or false"]),
    ("itemknn", {"topk": "50"}, {}, ["topk", "number"]),
    ("itemknn", {"shrink": True}, {}, ["shrink", "number"]),
    ("itemknn", {"similarity": 3}, {}, ["similarity", "string"]),
])
def test_case4_loose_tuned_files_are_refused(workspace, capsys, model, params, overrides, fragments):
    path = tuned_file(workspace, overrides.pop("model", model), params, **overrides)
    assert evaluate(workspace, "--model", model, "--params", str(path)) == 2
    error = one_line_error(capsys)
    assert str(path) in error and all(fragment in error for fragment in fragments), error
    assert not (workspace / "results").exists()


def test_case4_the_reader_of_tuned_files_checks_types_too(workspace):
    from protocols.runner import read_tuned

    path = tuned_file(workspace, "itemknn", {"normalize": "no"}, best_value=[1])
    with pytest.raises(RecAuditError, match="best_value"):
        read_tuned(path, model="itemknn", split=KEY)


def test_case4_a_models_entry_with_a_loose_boolean_is_refused(workspace, capsys):
    (workspace / "params.yaml").write_text("seed: 42\nmodels:\n  knn: {model: itemknn, normalize: 'no'}\n"
                                           "evaluation:\n  cutoffs: [10]\n  metrics: [ndcg]\n")
    assert evaluate(workspace, "--model", "knn") == 2
    error = one_line_error(capsys)
    assert "normalize" in error and "true or false" in error and "models.knn" in error


# ---------------------------------------------------------------- case 5: seeds, output folders, full disks

def test_case5_a_negative_seed_is_one_line(workspace, capsys):
    assert evaluate(workspace, "--model", "random", "--seed", "-1") == 2
    assert "seed" in one_line_error(capsys)
    (workspace / "params.yaml").write_text("seed: -3\nmodels:\n  random: {}\n")
    assert evaluate(workspace, "--model", "random") == 2
    assert "seed" in one_line_error(capsys)


def test_case5_a_negative_split_seed_is_one_line(tmp_path, capsys):
    write_prepared(toy_prepared(), tmp_path / "prepared" / "toy")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"seed": -1, "splits": {
        KEY: {"dataset": "toy", "protocol": "holdout"}}}))
    code = run(protocols_main, ["split", KEY, "--params", str(tmp_path / "params.yaml"),
                                "--prepared-root", str(tmp_path / "prepared"), "--out", str(tmp_path / "out")])
    assert code == 2 and "seed" in one_line_error(capsys)
    assert not (tmp_path / "out").exists()


@pytest.fixture
def fit_forbidden(monkeypatch):
    """Fail the test if any model is fitted: the check must come before the fit."""
    from protocols.contract import Recommender

    def no_fit(self, data):
        raise AssertionError("the model was fitted before the output folder was checked")

    monkeypatch.setattr(Recommender, "fit", no_fit)


def test_case5_an_output_folder_that_cannot_be_made_is_refused_before_the_fit(workspace, capsys, fit_forbidden):
    (workspace / "blocker").write_text("a file where a folder should be")
    code = run(protocols_main, ["evaluate", "--params-yaml", str(workspace / "params.yaml"),
                                "--splits-root", str(workspace / "splits"),
                                "--results-root", str(workspace / "blocker" / "results"),
                                "--features-root", str(workspace / "features"), "--raw-root", str(workspace / "raw"),
                                "--split", KEY, "--model", "pop"])
    assert code == 2
    error = one_line_error(capsys)
    assert "blocker" in error and "results" in error


def test_case5_a_read_only_output_folder_is_refused_before_the_fit(workspace, capsys, fit_forbidden, monkeypatch):
    results = workspace / "results"
    results.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if Path(path) == results / "toy" / "holdout"
                        or Path(path) == results else real_access(path, mode, **kw))
    (results / "toy" / "holdout").mkdir(parents=True)
    assert evaluate(workspace, "--model", "pop") == 2
    error = one_line_error(capsys)
    assert "not writable" in error and str(results) in error


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_case5_a_chmod_read_only_output_folder_is_refused_before_the_fit(workspace, capsys, fit_forbidden):
    results = workspace / "results" / "toy" / "holdout"
    results.mkdir(parents=True)
    results.chmod(0o555)
    try:
        assert evaluate(workspace, "--model", "pop") == 2
        assert "not writable" in one_line_error(capsys)
    finally:
        results.chmod(0o755)


def test_case5_a_full_disk_while_writing_results_is_one_line_and_leaves_nothing(workspace, capsys, monkeypatch):
    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full)
    assert evaluate(workspace, "--model", "pop") == 2
    error = one_line_error(capsys)
    assert "no space left" in error.lower() and "free" in error
    folder = workspace / "results" / "toy" / "holdout"
    assert not folder.exists() or not any(folder.iterdir())  # no result, no staging folder


def test_case5_sqlite_database_or_disk_is_full_is_one_line(capsys):
    import sqlalchemy.exc

    def study(argv):
        try:
            raise sqlite3.OperationalError("database or disk is full")
        except sqlite3.OperationalError as error:
            raise sqlalchemy.exc.OperationalError("INSERT INTO trials ...", {}, error) from error

    assert run(study, []) == 2
    error = one_line_error(capsys)
    assert "disk is full" in error and "free" in error

    def bare(argv):
        raise sqlite3.OperationalError("database or disk is full")

    assert run(bare, []) == 2
    assert "disk is full" in one_line_error(capsys)


def test_case5_a_tuned_file_that_cannot_be_written_is_refused_before_any_trial(workspace, capsys, fit_forbidden):
    (workspace / "blocker").write_text("a file where a folder should be")
    code = run(protocols_main, ["tune", "--params-yaml", str(workspace / "params.yaml"),
                                "--splits-root", str(workspace / "splits"), "--split", KEY, "--model", "pop",
                                "--features-root", str(workspace / "features"), "--raw-root", str(workspace / "raw"),
                                "--out", str(workspace / "blocker" / "pop.yaml")])
    assert code == 2
    assert "blocker" in one_line_error(capsys)


# ---------------------------------------------------------------- case 6: implausible data

@pytest.fixture
def raw_ml1m(tmp_path):
    from datasets.synthetic import write_synthetic_raw

    return write_synthetic_raw("movielens-1m", tmp_path / "raw", n_users=12, seed=4)


def test_case6_the_plain_synthetic_data_prepares(raw_ml1m, tmp_path):
    from datasets.prepare import prepare_dataset

    assert prepare_dataset("movielens-1m", raw_ml1m, tmp_path / "out", {}).n_users == 12


def test_case6_filters_that_remove_every_interaction_are_refused(raw_ml1m, tmp_path):
    from datasets.prepare import prepare_dataset

    with pytest.raises(RecAuditError) as error:
        prepare_dataset("movielens-1m", raw_ml1m, tmp_path / "out", {"min_user_interactions": 10_000})
    message = str(error.value)
    assert "\n" not in message and "every interaction" in message and "min_user_interactions" in message
    assert not (tmp_path / "out").exists()


def append_line(path: Path, line: str) -> None:
    with open(path, "a", encoding="iso-8859-1") as handle:
        handle.write(line)


def first_fields(path: Path) -> list[str]:
    return path.read_text(encoding="iso-8859-1").splitlines()[0].split("::")


@pytest.mark.parametrize("fields, fragment", [
    (lambda user, item: f"{user}::{item}::99::978300760\n", "rating"),
    (lambda user, item: f"{user}::{item}::0::978300760\n", "rating"),
    (lambda user, item: f"-3::{item}::4::978300760\n", "negative"),
    (lambda user, item: f"{user}::-7::4::978300760\n", "negative"),
])
def test_case6_implausible_rows_are_refused(raw_ml1m, tmp_path, fields, fragment):
    from datasets.prepare import prepare_dataset

    user, item = first_fields(raw_ml1m / "ratings.dat")[:2]
    append_line(raw_ml1m / "ratings.dat", fields(int(user) + 1000, item))
    with pytest.raises(RecAuditError) as error:
        prepare_dataset("movielens-1m", raw_ml1m, tmp_path / "out", {})
    message = str(error.value)
    assert "\n" not in message and fragment in message and "ratings.dat" in message
    assert not (tmp_path / "out").exists()


def test_case6_a_line_truncated_mid_field_is_refused(raw_ml1m, tmp_path):
    from datasets.prepare import prepare_dataset

    path = raw_ml1m / "ratings.dat"
    path.write_bytes(path.read_bytes().rstrip(b"\n")[:-3])  # the last timestamp loses its last digits
    with pytest.raises(RecAuditError) as error:
        prepare_dataset("movielens-1m", raw_ml1m, tmp_path / "out", {})
    message = str(error.value)
    assert "\n" not in message and "truncated" in message and "ratings.dat" in message


# ---------------------------------------------------------------- case 7: leftovers and limits

def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_case7_staging_folders_of_killed_runs_are_cleaned(tmp_path):
    from common.atomic import _host

    destination = tmp_path / "holdout"
    stale_old = tmp_path / ".holdout.a1b2c3d4.partial"  # written before staging names carried a pid
    stale_dead = tmp_path / f".holdout.pid{dead_pid()}@{_host()}.q9w8e7r6.partial"
    live = tmp_path / f".holdout.pid{os.getpid()}@{_host()}.z1x2c3v4.partial"  # a run in progress: left alone
    remote = tmp_path / f".holdout.pid{dead_pid()}@another-machine.z1x2c3v4.partial"  # not ours to judge
    other = tmp_path / ".holdout-other.a1b2c3d4.partial"  # another destination's: left alone
    for folder in (stale_old, stale_dead, live, remote, other):
        (folder / "sub").mkdir(parents=True)
        (folder / "sub" / "big.bin").write_bytes(b"x" * 1000)
    stale_file = tmp_path / ".card.json.k3j4h5g6.partial"
    stale_file.write_text("half")
    with atomic_directory(destination) as staging:
        (staging / "ok").write_text("done")
    assert (destination / "ok").read_text() == "done"
    assert not stale_old.exists() and not stale_dead.exists()
    assert live.exists() and remote.exists() and other.exists() and stale_file.exists()
    with atomic_file(tmp_path / "card.json", mode="w") as handle:
        handle.write("{}")
    assert not stale_file.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == \
        sorted([live.name, remote.name, other.name])


def test_case7_a_run_killed_mid_write_leaves_staging_that_the_next_write_removes(tmp_path):
    import signal

    script = ("import sys, time; from common.atomic import atomic_directory\n"
              "with atomic_directory(sys.argv[1]) as staging:\n"
              "    (staging / 'big.bin').write_bytes(b'0' * 100_000)\n"
              "    print(staging, flush=True)\n"
              "    time.sleep(120)\n")
    process = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "results")], stdout=subprocess.PIPE,
                               text=True, cwd=Path(__file__).resolve().parents[1])
    try:
        staging = Path(process.stdout.readline().strip())
        assert staging.is_dir() and staging.name.startswith(".results.pid")
        with atomic_directory(tmp_path / "results") as other:  # the killed run is still alive: left alone
            (other / "ok").write_text("1")
        assert staging.is_dir()
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert staging.is_dir()  # kill -9 leaves it behind
    with atomic_directory(tmp_path / "results") as other:
        (other / "ok").write_text("2")
    assert not staging.exists() and (tmp_path / "results" / "ok").read_text() == "2"


def test_case7_a_split_rerun_cleans_the_staging_folder_a_killed_run_left(workspace):
    stale = workspace / "splits" / "toy" / ".holdout.x7y8z9w0.partial"
    (stale / "half").mkdir(parents=True)
    (stale / "half" / "train.parquet").write_bytes(b"\0" * 5000)
    write_split(make_split(toy_prepared(), "holdout", 7), split_dir(workspace))
    assert not stale.exists()
    assert sorted(p.name for p in (workspace / "splits" / "toy").iterdir()) == ["holdout"]


def test_case7_an_archive_member_beyond_the_size_limit_is_refused_before_it_is_written(tmp_path, monkeypatch):
    import hashlib

    from datasets import fetch as fetch_module
    from datasets.registry import ArchiveSpec, DatasetSpec, FileSpec

    monkeypatch.delenv("RECAUDIT_MIRROR", raising=False)
    bomb = b"\0" * (8 << 20)  # 8 MiB of zeros: a few kB once deflated
    cache = tmp_path / "downloads"
    cache.mkdir()
    with zipfile.ZipFile(cache / "toy.zip", "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("toy/ratings.txt", bomb)
    assert (cache / "toy.zip").stat().st_size < 64 << 10
    archive = ArchiveSpec("toy.zip", "https://example.org/toy.zip", None)
    spec = DatasetSpec(name="toy", description="-", citation="-", licence="-", licence_short="-", homepage="-",
                       side_information=(), published_users=None, published_items=None, published_interactions=None,
                       stats_source="-", files=(FileSpec("ratings.txt", "toy/ratings.txt",
                                                         "sha256:" + hashlib.sha256(bomb).hexdigest(),
                                                         archive=archive, member="toy/ratings.txt"),))
    copied = []
    real_copy = fetch_module.copy_verified
    monkeypatch.setattr(fetch_module, "copy_verified", lambda *a, **k: copied.append(a[2]) or real_copy(*a, **k))
    with pytest.raises(RecAuditError) as error:
        fetch_module.fetch_dataset(spec, tmp_path / "raw" / "toy", progress=False, cache=cache)
    message = str(error.value)
    assert "\n" not in message and "toy/ratings.txt" in message and "toy.zip" in message and "limit" in message
    assert copied == []  # refused from the archive's own listing, before a byte was written
    assert not (tmp_path / "raw").exists() or not any((tmp_path / "raw").iterdir())


def test_case7_a_member_within_the_limit_is_extracted(tmp_path, monkeypatch):
    import hashlib

    from datasets import fetch as fetch_module
    from datasets.registry import ArchiveSpec, DatasetSpec, FileSpec

    monkeypatch.delenv("RECAUDIT_MIRROR", raising=False)
    content = bytes(np.random.default_rng(0).integers(0, 256, 200_000, dtype=np.uint8))
    cache = tmp_path / "downloads"
    cache.mkdir()
    with zipfile.ZipFile(cache / "toy.zip", "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("toy/ratings.txt", content)
    archive = ArchiveSpec("toy.zip", "https://example.org/toy.zip", None)
    spec = DatasetSpec(name="toy", description="-", citation="-", licence="-", licence_short="-", homepage="-",
                       side_information=(), published_users=None, published_items=None, published_interactions=None,
                       stats_source="-", files=(FileSpec("ratings.txt", "toy/ratings.txt",
                                                         "sha256:" + hashlib.sha256(content).hexdigest(),
                                                         archive=archive, member="toy/ratings.txt"),))
    fetch_module.fetch_dataset(spec, tmp_path / "raw" / "toy", progress=False, cache=cache)
    assert (tmp_path / "raw" / "toy" / "ratings.txt").read_bytes() == content


# ---------------------------------------------------------------- case 8: Markdown escaping

NASTY = "<script>x</script>|a"
NASTY_PARAM = "<img src=x onerror=alert(1)>|b"


def markdown_tables(text: str) -> list[list[str]]:
    """Each GitHub table of ``text`` as its lines."""
    tables, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return tables


def cell_count(line: str) -> int:
    return len(re.split(r"(?<!\\)\|", line.strip().strip("|")))


def assert_escaped(text: str) -> None:
    for raw in ("<script>", "</script>", "<img", "<b>", "<i>"):
        assert not re.search(r"(?<!\\)" + re.escape(raw), text), f"{raw!r} lands raw in the Markdown"
    tables = markdown_tables(text)
    assert tables
    for table in tables:
        counts = {cell_count(line) for line in table}
        assert len(counts) == 1, f"a name's pipe breaks a table: {table}"


def report_entries():
    from reports.tables import Entry

    users = np.arange(30)
    base = (users % 7) / 10

    def entry(model, family, values, **extra):
        record = {"dataset": "ml", "protocol": "holdout", "model": model, "family": family, "params": {},
                  "seed": None, "seeds": [None], "sampled": False, "metric_version": "1",
                  "metrics": {"ndcg@10": float(np.mean(values))}, "metrics_std": None, "tuning": None,
                  "n_users": 30, "fit_seconds": 1.0, "eval_seconds": 0.1, "peak_rss_mb": 1.0, "status": "ok",
                  **extra}
        return Entry(record, pd.DataFrame({"user": users, "ndcg@10": values}))

    return [entry("pop", "baseline", base),
            entry(NASTY, "neural", base + 0.05 + (users % 3) / 100, params={"note": NASTY_PARAM}),
            Entry({**entry("ncf", "neural", base).record, "status": "unsupported", "metrics": {},
                   "reason": "needs <b>user</b> embeddings | x"}, None)]


def test_case8_the_leaderboard_escapes_names_and_parameters():
    from reports.leaderboard import build_leaderboard
    from reports.statistics import statistics_of

    entries = report_entries()
    text = build_leaderboard(entries, statistics_of(entries, ["ndcg@10"]))
    assert_escaped(text)
    assert r"\<script\>x\</script\>\|a" in text and r"note=\<img src=x onerror=alert(1)\>\|b" in text


def test_case8_the_tables_escape_names():
    from reports.export import markdown_table
    from reports.statistics import statistics_of
    from reports.tables import split_table

    entries = report_entries()
    statistics = statistics_of(entries, ["ndcg@10"])
    text = markdown_table(split_table("ml", "holdout", entries, statistics), statistics)
    assert_escaped(text)


def test_case8_the_verdicts_escape_names():
    from reports.statistics import statistics_of
    from reports.verdicts import verdict_table, verdicts_markdown

    entries = report_entries()
    statistics = statistics_of(entries, ["ndcg@10"])
    text = verdicts_markdown(verdict_table({("ml", "holdout"): entries}, statistics), statistics)
    assert_escaped(text)
    assert r"\<script\>x\</script\>\|a" in text


def test_case8_the_page_shows_escaped_verdicts_as_the_plain_name(tmp_path):
    from reports.site import build_site
    from reports.statistics import statistics_of

    entries = report_entries()
    page = build_site(entries, statistics_of(entries, ["ndcg@10"]))  # the verdicts: the same rows, as HTML
    assert "<script>x" not in page and "<img" not in page
    assert "&lt;script&gt;x&lt;/script&gt;|a" in page and r"\&lt;" not in page and r"\|" not in page


def test_case8_the_claims_audit_escapes_names(tmp_path, monkeypatch):
    """Claims files name models in lower case, but papers, citations, notes and the paper's own
    model names are free text, and the best baseline's label comes from the results."""
    from protocols.results import write_run
    from reports.__main__ import main as reports_main

    monkeypatch.delenv("RECAUDIT_MIRROR", raising=False)
    users = np.arange(30)
    label = "<b>base<b>|a"  # the audit names baselines by their result folder, which cannot hold a '/'
    for folder, model, family, values in ((label, label, "baseline", (users % 7) / 10),
                                          ("multvae", "multvae", "neural", (users % 7) / 10 + 0.05)):
        record = report_entries()[0].record | {"dataset": "movielens-100k", "model": model, "family": family,
                                               "metrics": {"ndcg@10": float(np.mean(values))}}
        write_run(tmp_path / "results" / "movielens-100k" / "holdout" / folder, record,
                  pd.DataFrame({"user": users, "ndcg@10": values}))
    (tmp_path / "claims").mkdir()
    document = {"paper": "Paper <i>X</i> | 2024", "citation": "Nobody. 2024. <script>alert(1)</script>",
                "notes": ["a note | with <b>markup</b>"], "defaults": {"where": "Table <b>1</b>", "provenance": ["paper"]},
                "claims": [{"dataset": "movielens-100k", "protocol": "movielens-100k/holdout", "model": "multvae",
                            "paper_model": "<b>M</b>|x", "values": {"ndcg@10": 0.4}, "note": "see <script>|"}]}
    (tmp_path / "claims" / "x.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({
        "seed": 1, "splits": {"movielens-100k/holdout": {"dataset": "movielens-100k", "protocol": "holdout"}},
        "reports": {"n_resamples": 100}}))
    out = tmp_path / "audit.md"
    assert reports_main(["statistics", "--results-root", str(tmp_path / "results"), "--params-yaml",
                         str(tmp_path / "params.yaml"), "--out", str(tmp_path / "statistics.json")]) == 0
    assert reports_main(["audit", "--results-root", str(tmp_path / "results"), "--claims-dir",
                         str(tmp_path / "claims"), "--params-yaml", str(tmp_path / "params.yaml"),
                         "--statistics", str(tmp_path / "statistics.json"), "--out", str(out)]) == 0
    text = out.read_text()
    assert_escaped(text)
    assert r"\<b\>base\<b\>\|a 0.2833" in text  # the best baseline, by its escaped label


def test_case8_the_helper():
    from reports.markdown import markdown_text

    assert markdown_text(NASTY) == r"\<script\>x\</script\>\|a"
    assert markdown_text("itemknn-cbf normalize_scores=true") == "itemknn-cbf normalize_scores=true"
    assert markdown_text("_x_ *y* `z` [l](u) a\\b") == r"\_x\_ \*y\* \`z\` \[l\](u) a\\b"
    assert markdown_text("two\nlines") == "two lines"
