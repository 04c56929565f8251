"""Figures: every file written, one paper column wide at 300 dpi, no text under 7 pt, the
same bytes twice, CSV data for DVC, and the empty states (no neural result, no split folder)."""
from __future__ import annotations

import pandas as pd
import pytest
from matplotlib.text import Text
from PIL import Image

from common.errors import run_cli
from reports import figures
from reports.__main__ import main
from reports.plots import popularity_frame, time_frame, write_plots
from reports.statistics import entries_by_split, read_entries, read_statistics
from tests.report_results import BASE, REFERENCE, STEP, write_model, write_params, write_split_folder, write_statistics

COLUMN_PIXELS = round(figures.COLUMN_WIDTH * figures.DPI)  # 990


def draw(root, params, out, splits_root):
    statistics = write_statistics(root, params, out.with_name(out.name + ".statistics.json"))
    with pytest.raises(SystemExit) as exit_:
        run_cli(main, ["plots", "--results-root", str(root), "--splits-root", str(splits_root), "--out-dir",
                       str(out), "--statistics", str(statistics)])
    assert exit_.value.code == 0
    return sorted(path.name for path in out.iterdir())


@pytest.fixture
def results(tmp_path):
    """holdout: two baselines, two neural methods (one better, one worse), a split folder;
    loo: one baseline, no split folder."""
    root = tmp_path / "results"
    write_model(root, "holdout", "ease", REFERENCE, 0.2, fit_seconds=0.5)
    write_model(root, "holdout", "pop", BASE, 0.01, fit_seconds=0.0)
    write_model(root, "holdout", "up", REFERENCE + STEP, family="neural", fit_seconds=30.0)
    write_model(root, "holdout", "down", REFERENCE - STEP, family="neural", fit_seconds=12.0)
    write_model(root, "loo", "pop", BASE, 0.01)
    write_split_folder(tmp_path / "splits" / "ml" / "holdout")
    return root, write_params(tmp_path / "params.yaml"), tmp_path / "splits"


def test_every_figure_is_written_at_column_width(results, tmp_path, monkeypatch, capsys):
    root, params, splits = results
    sizes = []
    original_save = figures.save

    def checked_save(figure, stem):
        sizes.extend(text.get_fontsize() for text in figure.findobj(Text) if text.get_text().strip())
        return original_save(figure, stem)

    monkeypatch.setattr(figures, "save", checked_save)
    names = draw(root, params, tmp_path / "plots", splits)
    stems = [f"ml__holdout__{kind}" for kind in ("accuracy_vs_time", "metric_by_cutoff", "per_user", "popularity")]
    stems += [f"ml__loo__{kind}" for kind in ("accuracy_vs_time", "metric_by_cutoff", "per_user")] + ["progress"]
    assert names == sorted([f"{stem}.{suffix}" for stem in stems for suffix in ("png", "svg")] +
                           ["accuracy_vs_time.csv", "metrics_by_cutoff.csv", "progress.csv"])
    assert "no split folder" in capsys.readouterr().out  # loo has none: its card is skipped
    for name in names:
        assert (tmp_path / "plots" / name).stat().st_size > 1000 or name.endswith(".csv")
    for name in (n for n in names if n.endswith(".png")):
        with Image.open(tmp_path / "plots" / name) as image:
            assert image.size[0] == COLUMN_PIXELS, name
            assert round(image.info["dpi"][0]) == figures.DPI
    assert sizes and min(sizes) >= figures.FONT_SIZE


class NoFigures:
    """Stands in for ``reports.figures``: the data and CSV files without drawing."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: 1


def test_figure_data_as_csv(results, tmp_path):
    root, params, splits = results
    entries, statistics = read_statistics(write_statistics(root, params), root, per_user=True)
    written, skipped = write_plots(entries_by_split(entries), statistics, splits, tmp_path / "plots", NoFigures())
    assert (written, skipped) == (8, ["ml/loo"])
    cutoffs = pd.read_csv(tmp_path / "plots" / "metrics_by_cutoff.csv")
    holdout = cutoffs[cutoffs["split_key"] == "ml/holdout"]
    # leaderboard order: baselines, then neural models, each best first
    assert list(dict.fromkeys(holdout["model"])) == ["ease", "pop", "up", "down"]
    ease = holdout[holdout["model"] == "ease"].set_index("cutoff")["value"]
    assert ease.to_dict() == pytest.approx({5: 0.8 * REFERENCE.mean(), 10: REFERENCE.mean(),
                                            20: 1.2 * REFERENCE.mean()})
    times = pd.read_csv(tmp_path / "plots" / "accuracy_vs_time.csv").set_index(["split_key", "model"])
    assert times.loc[("ml/holdout", "up"), "fit_seconds"] == 30.0
    assert times.loc[("ml/holdout", "up"), "value"] == pytest.approx((REFERENCE + STEP).mean())
    progress = pd.read_csv(tmp_path / "plots" / "progress.csv").set_index("model")
    assert list(progress.index) == ["down", "up"] and set(progress["reference"]) == {"ease"}
    assert progress.loc["up", "mean_difference"] == pytest.approx(0.06)
    assert progress.loc["down", "mean_difference"] == pytest.approx(-0.06)
    assert list(progress["significant"]) == [True, True]
    card = popularity_frame(splits / "ml" / "holdout")
    assert card["train"].tolist() == list(range(1, 13)) and card["test"].tolist() == [i // 2 for i in range(1, 13)]


def test_same_data_give_the_same_files(results, tmp_path):
    root, _, _ = results
    times = time_frame(entries_by_split(read_entries(root)), "ndcg@10")
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        figures.accuracy_vs_time(times, "ndcg@10", "ml/holdout", tmp_path / folder / "figure")
    for suffix in ("png", "svg"):
        assert (tmp_path / "a" / f"figure.{suffix}").read_bytes() == (tmp_path / "b" / f"figure.{suffix}").read_bytes()


def test_empty_states(tmp_path, monkeypatch):
    """Baselines only, no split folder, no per-user values: every figure still says something."""
    texts = {}
    original_save = figures.save

    def recording_save(figure, stem):
        texts[stem.name] = " ".join(text.get_text() for text in figure.findobj(Text))
        return original_save(figure, stem)

    monkeypatch.setattr(figures, "save", recording_save)
    root = tmp_path / "results"
    write_model(root, "holdout", "ease", REFERENCE, 0.2)
    names = draw(root, write_params(tmp_path / "params.yaml"), tmp_path / "plots", tmp_path / "no-splits")
    assert "progress.png" in names and "progress.svg" in names
    assert "No neural method evaluated yet" in texts["progress"]
    assert pd.read_csv(tmp_path / "plots" / "progress.csv").empty
    with Image.open(tmp_path / "plots" / "progress.png") as image:
        assert image.size[0] == COLUMN_PIXELS
    assert not any("popularity" in name for name in names)
    assert figures.per_user(pd.DataFrame(columns=["model", "family", "value"]), "ndcg@10", "ml/x",
                            tmp_path / "empty") == 1
    assert "No per-user ndcg@10 values" in texts["empty"]
    assert (tmp_path / "empty.png").stat().st_size > 1000


@pytest.mark.parametrize("name, template, x, y", [
    ("metrics_by_cutoff", "lines_by_model", "cutoff", "value"),
    ("accuracy_vs_time", "points_by_model", "fit_seconds", "value"),
    ("progress", "intervals_by_split", "mean_difference", "split_key"),
])
def test_dvc_templates_fill_with_the_csv_data(results, tmp_path, name, template, x, y):
    """What ``dvc plots show`` does with the plots section of dvc.yaml: CSV rows (as strings)
    filled into our Vega-Lite template, no anchor left."""
    import csv
    import json
    from pathlib import Path

    from dvc_render.vega import VegaRenderer

    root, params, splits = results
    entries, statistics = read_statistics(write_statistics(root, params), root, per_user=True)
    write_plots(entries_by_split(entries), statistics, splits, tmp_path / "plots", NoFigures())
    with open(tmp_path / "plots" / f"{name}.csv", newline="") as handle:
        rows = [dict(row, rev="workspace") for row in csv.DictReader(handle)]
    assert rows
    path = Path(__file__).parents[1] / "reports" / "plot_templates" / f"{template}.json"
    spec = VegaRenderer(rows, name, template=str(path), x=x, y=y, title=name).get_filled_template()
    assert "<DVC_METRIC" not in json.dumps(spec)
    assert spec["data"]["values"] == rows and spec["title"] == name
