"""``python -m protocols split KEY``: params entry -> prepared data -> written split."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import yaml

from datasets.canonical import PreparedData, write_prepared
from common.errors import run_cli
from datasets.item_data import make_feature_set
from protocols.__main__ import main
from protocols.split_data import FEATURES_DIR, IMAGES_FILE, PART_FILES, load_split


def write_toy_prepared(folder, content_seed: int = 0):
    """25 users x 30 items with a sparse ``tags`` feature set and two item images."""
    rng = np.random.default_rng(0)
    users, items = np.nonzero(rng.random((25, 30)) < 0.4)
    interactions = pd.DataFrame({"user": users, "item": items, "timestamp": rng.integers(0, 500, len(users))})
    content = sp.random(30, 12, density=0.2, format="csr", rng=np.random.default_rng(content_seed))
    images = pd.DataFrame({"item": [0, 3], "image_path": ["img/0.png", "img/3.png"], "sha256": ["a" * 64, "b" * 64]})
    write_prepared(PreparedData("toy", interactions, 25, 30, pd.DataFrame({"user": range(25)}),
                                pd.DataFrame({"item": range(30)}),
                                item_features={"tags": make_feature_set("tags", content)}, item_images=images),
                   folder)


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A repository-like folder: params.yaml and data/prepared/toy."""
    write_toy_prepared(tmp_path / "data/prepared/toy")
    params = {"seed": 7, "splits": {
        "toy/holdout": {"dataset": "toy", "protocol": "holdout", "test_fraction": 0.25},
        "toy/loo": {"dataset": "toy", "protocol": "leave-one-out", "order": "latest", "negatives": 5, "seed": 11},
        "toy/bad": {"dataset": "toy", "protocol": "holdout", "test_share": 0.25},
    }}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_split_writes_every_part_and_prints_one_line(project, capsys):
    assert main(["split", "toy/holdout"]) == 0
    out = project / "data/splits/toy/holdout"
    assert sorted(p.name for p in out.iterdir()) == sorted([*PART_FILES.values(), "card.json", FEATURES_DIR,
                                                            IMAGES_FILE])
    card = json.loads((out / "card.json").read_text())
    assert (card["protocol"], card["seed"], card["dataset"]) == ("holdout", 7, "toy")
    assert card["params"] == {"test_fraction": 0.25, "validation_fraction": 0.1, "min_user_interactions": 2}
    split = load_split(out)
    assert len(split.test) == card["parts"]["test"]["rows"] > 0
    tags = split.item_features["tags"]
    assert tags.is_sparse and (tags.n_items, tags.dim) == (30, 12)
    assert card["side"]["feature_sets"] == {"tags": tags.sha256} and card["side"]["items_sha256"] is None
    assert card["side"]["images"]["items_with_image"] == 2 and len(card["side"]["images"]["manifest_sha256"]) == 64
    assert "image_root" not in card and str(project) not in json.dumps(card)  # no machine path in a card
    images = split.item_images.set_index("item")
    assert images.loc[3, "image_path"] == "img/3.png" and images.loc[3, "sha256"] == "b" * 64
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1 and printed[0].startswith("toy/holdout: holdout seed 7: train ")
    assert printed[0].endswith(f"-> {out.relative_to(project)}")


def test_other_item_content_gives_another_card(project):
    write_toy_prepared(project / "data/prepared/other", content_seed=1)
    assert main(["split", "toy/holdout", "--out", "first"]) == 0
    (project / "data/prepared/toy").rename(project / "data/prepared/old")
    (project / "data/prepared/other").rename(project / "data/prepared/toy")
    assert main(["split", "toy/holdout", "--out", "second"]) == 0
    first, second = (json.loads((project / name / "card.json").read_text()) for name in ("first", "second"))
    assert first["parts"] == second["parts"]  # the same interactions, split the same way
    assert first["side"]["feature_sets"] != second["side"]["feature_sets"] and first != second


def test_raw_root_is_no_option_any_more(project, capsys):
    with pytest.raises(SystemExit):
        main(["split", "toy/holdout", "--raw-root", "data/raw"])
    assert "unrecognized arguments: --raw-root" in capsys.readouterr().err


def test_entry_seed_and_options(project, tmp_path):
    out = tmp_path / "elsewhere"
    main(["split", "toy/loo", "--params", str(project / "params.yaml"),
          "--prepared-root", str(project / "data/prepared"), "--out", str(out)])
    card = json.loads((out / "card.json").read_text())
    assert card["seed"] == 11 and card["params"] == {"order": "latest", "negatives": 5, "cold_test_max_train": None,
                                                     "ties": "higher-item", "validation_order": "same",
                                                     "shared_negatives": False}
    assert card["sanity"]["negatives"]["test_negatives"]["min_per_user"] == 5


@pytest.mark.parametrize("argv, message", [
    (["split", "toy/nope"], "error: unknown split 'toy/nope'; known splits: toy/bad, toy/holdout, toy/loo\n"),
    (["split", "toy/bad"], "error: holdout: unknown parameter 'test_share'; valid parameters: test_fraction, "
                           "validation_fraction, min_user_interactions\n"),
    (["split", "toy/holdout", "--prepared-root", "missing"], "error: no prepared dataset at missing/toy; "),
])
def test_errors_are_one_line_and_write_nothing(project, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1
    assert not (project / "data/splits").exists()


def test_missing_seed_is_an_error(project, capsys):
    params = yaml.safe_load((project / "params.yaml").read_text())
    del params["seed"]
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(SystemExit):
        run_cli(main, ["split", "toy/holdout"])
    assert "no seed for split 'toy/holdout'" in capsys.readouterr().err
