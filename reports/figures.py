"""Drawing the report's figures (``reports.plots`` prepares their data).

Every figure is one paper column wide (:data:`COLUMN_WIDTH` inches, saved at :data:`DPI`, so
a PNG is about 990 px wide) with no text under :data:`FONT_SIZE` points, laid out by
matplotlib's constrained layout (never cropped, so the width stays fixed). Each is saved as
PNG and SVG; the SVG carries no date and fixed element ids, so the same data give the same
bytes. Styles apply inside a context manager only: no global matplotlib state is changed.
A model keeps its colour across the figures of a split (leaderboard order, ``tab20``);
neural models are drawn dashed / as squares.
"""
from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display, no GUI toolkit

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from scipy import stats  # noqa: E402

COLUMN_WIDTH = 3.3  # inches: one column of a two-column ACM / IEEE paper
DPI = 300
FONT_SIZE = 7  # points: the smallest text of every figure
FORMATS = ("png", "svg")
STYLE = {
    "font.size": FONT_SIZE, "axes.titlesize": FONT_SIZE + 1, "axes.labelsize": FONT_SIZE,
    "xtick.labelsize": FONT_SIZE, "ytick.labelsize": FONT_SIZE, "legend.fontsize": FONT_SIZE,
    "legend.title_fontsize": FONT_SIZE, "figure.titlesize": FONT_SIZE + 1, "lines.linewidth": 1.0,
    "lines.markersize": 3.5, "svg.hashsalt": "recaudit", "svg.fonttype": "path", "savefig.dpi": DPI,
}
FAMILY_MARKERS = {"baseline": "o", "neural": "s"}
FAMILY_DASHES = {"baseline": "", "neural": (3, 1.5)}


@contextlib.contextmanager
def paper_style():
    with sns.axes_style("whitegrid"), plt.rc_context(STYLE):
        yield


def new_figure(height: float):
    figure = plt.figure(figsize=(COLUMN_WIDTH, height), layout="constrained")
    return figure, figure.add_subplot()


def save(figure, stem: Path) -> int:
    """Write ``stem.png`` and ``stem.svg``; returns 1 (one figure written)."""
    try:
        for suffix in FORMATS:
            metadata = {"Date": None} if suffix == "svg" else {"Software": None}
            figure.savefig(stem.with_name(f"{stem.name}.{suffix}"), format=suffix, dpi=DPI, metadata=metadata)
    finally:
        plt.close(figure)
    return 1


def palette(models: list[str]) -> dict[str, tuple]:
    colours = sns.color_palette("tab20", n_colors=max(len(models), 1))
    return dict(zip(models, colours))


def legend_height(n_entries: int, columns: int = 2) -> float:
    return 0.16 * int(np.ceil(n_entries / columns))


def empty_figure(message: str, title: str, stem: Path) -> int:
    with paper_style():
        figure, axes = new_figure(1.2)
        axes.set_axis_off()
        axes.set_title(title)
        axes.text(0.5, 0.5, message, ha="center", va="center", wrap=True, transform=axes.transAxes)
        return save(figure, stem)


def metric_by_cutoff(frame: pd.DataFrame, metric: str, key: str, stem: Path) -> int:
    family = metric.split("@")[0]
    if frame.empty:
        return empty_figure(f"No {family}@k values in the results of this split.", key, stem)
    models = list(dict.fromkeys(frame["model"]))
    families = frame.drop_duplicates("model").set_index("model")["family"]
    with paper_style():
        figure, axes = new_figure(2.2 + legend_height(len(models)))
        colours = palette(models)
        for model in models:
            rows = frame[frame["model"] == model]
            kind = families[model]
            axes.plot(rows["cutoff"], rows["value"], color=colours[model], marker=FAMILY_MARKERS.get(kind, "^"),
                      dashes=FAMILY_DASHES.get(kind, (1, 1)), label=model)
        cutoffs = sorted(frame["cutoff"].unique())
        axes.set_xscale("log")
        axes.set_xticks(cutoffs, [str(c) for c in cutoffs])
        axes.minorticks_off()
        axes.set(xlabel="cutoff k", ylabel=f"{family}@k", title=key)
        figure.legend(loc="outside lower center", ncol=2, frameon=False, handlelength=2.2)
        return save(figure, stem)


def accuracy_vs_time(frame: pd.DataFrame, metric: str, key: str, stem: Path) -> int:
    if frame.empty:
        return empty_figure(f"No run with {metric} and a fit time in this split.", key, stem)
    resolution = 1e-3  # records keep milliseconds
    models = list(frame["model"])
    with paper_style():
        figure, axes = new_figure(2.2 + legend_height(len(models)))
        colours = palette(models)
        for row in frame.itertuples():
            axes.scatter(max(row.fit_seconds, resolution), row.value, color=colours[row.model], label=row.model,
                         marker=FAMILY_MARKERS.get(row.family, "^"), s=14, edgecolors="none")
        axes.set_xscale("log")
        clipped = bool((frame["fit_seconds"] < resolution).any())
        axes.set(xlabel="fit seconds (log)" + ("; < 1 ms drawn at 1 ms" if clipped else ""), ylabel=metric,
                 title=key)
        figure.legend(loc="outside lower center", ncol=2, frameon=False, handletextpad=0.3)
        return save(figure, stem)


def per_user(frame: pd.DataFrame, metric: str, key: str, stem: Path) -> int:
    if frame.empty:
        return empty_figure(f"No per-user {metric} values in this split.", key, stem)
    models = list(dict.fromkeys(frame["model"]))
    with paper_style():
        figure, axes = new_figure(0.9 + 0.32 * len(models))
        with warnings.catch_warnings():  # seaborn 0.13 still passes matplotlib's deprecated ``vert``
            warnings.simplefilter("ignore", matplotlib.MatplotlibDeprecationWarning)
            sns.boxplot(data=frame, x="value", y="model", order=models, hue="model", hue_order=models,
                        palette=palette(models), legend=False, ax=axes, width=0.6, linewidth=0.7, fliersize=1.0,
                        showmeans=True, meanprops={"marker": "D", "markerfacecolor": "white",
                                                   "markeredgecolor": "black", "markersize": 3})
        axes.set(xlabel=f"{metric} per user (diamond: mean)", ylabel="", title=key)
        return save(figure, stem)


def popularity(frame: pd.DataFrame, key: str, stem: Path) -> int:
    if frame.empty or not frame["test"].any():
        return empty_figure("No test interactions in this split.", key, stem)
    rho = stats.spearmanr(frame["train"], frame["test"]).statistic if len(frame) > 1 else float("nan")
    with paper_style():
        figure, axes = new_figure(2.6)
        axes.scatter(frame["train"] + 1, frame["test"] + 1, s=2, alpha=0.3, color="tab:blue", edgecolors="none",
                     rasterized=True)
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set(xlabel="train interactions per item + 1", ylabel="test interactions per item + 1", title=key)
        axes.text(0.03, 0.97, f"{len(frame)} items, Spearman ρ = {rho:.2f}", transform=axes.transAxes,
                  ha="left", va="top", bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.8, "linewidth": 0})
        return save(figure, stem)


def progress(frame: pd.DataFrame, metric: str, stem: Path) -> int:
    title = f"Neural - best baseline, {metric}"
    if frame.empty:
        return empty_figure("No neural method evaluated yet:\nnothing to compare with the best baselines.", title,
                            stem)
    splits = sorted(frame["split_key"].unique())
    models = sorted(frame["model"].unique())
    offsets = dict(zip(models, np.linspace(-0.3, 0.3, len(models)) if len(models) > 1 else [0.0]))
    colours = dict(zip(models, sns.color_palette("colorblind", n_colors=len(models))))
    with paper_style():
        figure, axes = new_figure(1.0 + 0.3 * len(splits) + legend_height(len(models)))
        axes.axvline(0.0, color="black", linewidth=0.7)
        for model in models:
            rows = frame[frame["model"] == model]
            y = np.array([splits.index(k) for k in rows["split_key"]]) + offsets[model]
            x = rows["mean_difference"].to_numpy(dtype=float)
            error = np.vstack([x - rows["difference_ci_low"].to_numpy(dtype=float),
                               rows["difference_ci_high"].to_numpy(dtype=float) - x])
            axes.errorbar(x, y, xerr=np.clip(error, 0, None), fmt="none", ecolor=colours[model], elinewidth=0.8,
                          capsize=1.5)
            significant = rows["significant"].to_numpy(dtype=bool)
            axes.scatter(x, y, s=14, label=model, zorder=3, edgecolors=[colours[model]], linewidths=0.8,
                         facecolors=[colours[model] if s else "white" for s in significant])
        axes.set_yticks(range(len(splits)), splits)
        axes.set_ylim(len(splits) - 0.5, -0.5)
        axes.grid(axis="y", visible=False)
        axes.set(xlabel=f"{metric} difference (95% CI); filled: significant (Holm)", ylabel="", title=title)
        figure.legend(loc="outside lower center", ncol=2, frameon=False, handletextpad=0.3)
        return save(figure, stem)
