"""The static leaderboard page: the leaderboard's rows and statistics, self-contained (nothing
fetched), every file-borne text escaped, verdicts and plots embedded, same inputs -> same bytes.
The sorting script itself runs in a real browser in ``test_site_browser.py``."""
from __future__ import annotations

import argparse
import base64
import re

import numpy as np
import pytest

from protocols.bootstrap import DEFAULT_RESAMPLES, bootstrap_mean_ci
from reports import site
from reports.__main__ import COMMANDS
from reports.statistics import Statistics, StatisticsSettings
from tests.report_results import write_statistics
from tests.site_results import (BETTER, EVIL, EVIL_PARAM, EVIL_REASON, LEADERBOARD_ORDER, POP, SEED, TABLE_ID,
                                PageReader, write_params, write_results)


def ci(values) -> str:
    """The interval the page must show: the documented bootstrap, called on its own (the one
    default number of resamples: params set none)."""
    found = bootstrap_mean_ci(values, seed=SEED, n_resamples=DEFAULT_RESAMPLES)
    return f"[{found.low:.4f}, {found.high:.4f}]"


def build(tmp_path, *extra: str, name: str = "index.html") -> str:
    """Run ``python -m reports statistics``, then the page command as ``python -m reports site``
    would (its parser and run), and return the page."""
    out = tmp_path / "site" / name
    statistics = write_statistics(tmp_path / "results", tmp_path / "params.yaml", tmp_path / "statistics.json")
    parser = argparse.ArgumentParser()
    site.add_arguments(parser)
    args = parser.parse_args(["--results-root", str(tmp_path / "results"), "--statistics", str(statistics),
                              "--plots-dir", str(tmp_path / "plots"), "--out", str(out), *extra])
    assert site.run(args) == 0
    return out.read_text(encoding="utf-8")


@pytest.fixture
def results(tmp_path):
    write_results(tmp_path / "results")
    write_params(tmp_path / "params.yaml")
    return tmp_path


def test_registered_as_reports_command():
    assert COMMANDS["site"][0] == "reports.site"


def test_results_table_rows_cells_and_sort_keys(results):
    table = PageReader(build(results)).tables[TABLE_ID]
    assert [label for label, _ in table["headers"]] == ["#", "family", "model", "ndcg@10", "coverage@10", "trials",
                                                        "seeds", "fit s", "eval s"]
    texts = [[text for text, _ in row["cells"]] for row in table["rows"]]
    assert texts == [
        ["1", "baseline", "pop (ref)", f"0.2833 {ci(POP)}", "0.0100", "0 (defaults)", "-", "1.25", "0.04"],
        ["2", "baseline", "random", f"0.0000 ▼ {ci(np.zeros(30))}", "0.9000", "0 (defaults)", "1", "0.00", "0.05"],
        ["3", "neural", "mf", f"0.3433 ± 0.0123 ▲ {ci(BETTER)}", "0.2000 ± 0.0100", "17/20", "3", "1.25", "0.04"],
        ["4", "neural", EVIL, f"0.2833 {ci(POP)}", "0.3000", "0 (defaults)", "-", "1.25", "0.04"],
        ["5", "neural", "ncf", f"n/a ({EVIL_REASON})", "n/a", "0 (defaults)", "", "", ""],
    ]
    # The page sorts a metric by the record's mean at full precision; no value -> empty key.
    ndcg_keys = [row["cells"][3][1]["data-sort"] for row in table["rows"]]
    assert ndcg_keys == [repr(float(np.mean(POP))), "0.0", repr(float(np.mean(BETTER))), repr(float(np.mean(POP))),
                         ""]
    assert [row["attrs"]["data-order"] for row in table["rows"]] == ["0", "1", "2", "3", "4"]
    # The best value of each metric column is highlighted: mf on ndcg@10, random on coverage@10.
    best = [[label for (label, _), (_, attrs) in zip(table["headers"], row["cells"])
             if "best" in attrs.get("class", "").split()] for row in table["rows"]]
    assert best == [[], ["coverage@10"], ["ndcg@10"], [], []]
    assert [row["attrs"]["class"] for row in table["rows"]] == ["family-baseline", "family-baseline",
                                                                "family-neural", "family-neural",
                                                                "family-neural unsupported"]
    headers = dict(table["headers"])
    assert headers["#"]["aria-sort"] == "ascending"  # the rows start in the leaderboard's order
    assert {h["aria-sort"] for label, h in table["headers"] if label != "#"} == {"none"}
    assert (headers["ndcg@10"]["data-type"], headers["ndcg@10"]["data-first"]) == ("number", "descending")
    assert (headers["model"]["data-type"], headers["fit s"]["data-first"]) == ("text", "ascending")


def test_legend_and_hyperparameters_match_the_leaderboard(results):
    page = build(results)
    reader = PageReader(page)
    assert "two-sided paired Wilcoxon signed-rank test over users, Holm correction within each metric column of " \
           "this split (one family per split and metric: every other model against the reference; ndcg@10: 3 " \
           "comparisons)" in page
    assert "Bold: the best value of each metric column" in page
    hyper = reader.tables["hyper-split-ml-holdout"]
    assert [[text for text, _ in row["cells"]] for row in hyper["rows"]] == [
        ["pop", "0 (defaults)", "-", "-", "-"],
        ["random", "0 (defaults)", "-", "7", "-"],
        ["mf", "17/20", "ndcg@10 = 0.2500", "1..3", "factors=64"],
        [EVIL, "0 (defaults)", "-", "-", f"note={EVIL_PARAM}"],
        ["ncf", "0 (defaults)", "-", "-", "-"],
    ]


def test_page_is_self_contained(results):
    plots = results / "plots"
    plots.mkdir()
    (plots / "scatter.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')
    page = build(results)
    reader = PageReader(page)
    assert reader.sources and all(src.startswith("data:image/") for src in reader.sources)
    assert reader.links and all(href.startswith("#") for href in reader.links)
    assert not re.search(r"\b(src|href|action|poster)\s*=\s*[\"']?\s*(https?:)?//", page, re.IGNORECASE)
    assert not re.search(r"@import|url\(|<link|<iframe|<object|<embed", page, re.IGNORECASE)
    assert "http://" not in page and "https://" not in page
    assert reader.tags.count("script") == 1 and "<script src" not in page  # only the page's own inline script
    # Every in-page link lands on an element of the page.
    assert {href[1:] for href in reader.links} <= set(reader.ids)
    assert len(reader.ids) == len(set(reader.ids))


def test_file_borne_text_is_escaped(results):
    page = build(results)
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;amp;" in page
    assert "<img src=x" not in page and "<b>user" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "needs &lt;b&gt;user&lt;/b&gt; embeddings" in page
    # The parsed page gives back the original names: nothing was interpreted as markup.
    model_cells = [row["cells"][2][0] for row in PageReader(page).tables[TABLE_ID]["rows"]]
    assert model_cells == ["pop (ref)", *LEADERBOARD_ORDER[1:]]


def test_same_inputs_same_bytes(results):
    first = build(results, name="first.html")
    second = build(results, name="second.html")
    assert first == second


def test_plots_embedded_png_preferred_split_figures_under_their_table(results):
    plots = results / "plots"
    (plots / "sub").mkdir(parents=True)
    (plots / "ml__holdout__per_user.png").write_bytes(b"\x89PNG per user")
    (plots / "ml__holdout__per_user.svg").write_bytes(b"<svg/>")  # same figure: the PNG is shown
    (plots / "progress.svg").write_bytes(b"<svg>progress</svg>")
    (plots / "sub" / "a.png").write_bytes(b"\x89PNG a")
    (plots / ".hidden.png").write_bytes(b"x")
    (plots / "notes.txt").write_text("not a plot")
    page = build(results)
    reader = PageReader(page)
    per_user, progress, nested = ("data:image/png;base64," + base64.b64encode(b"\x89PNG per user").decode(),
                                  "data:image/svg+xml;base64," + base64.b64encode(b"<svg>progress</svg>").decode(),
                                  "data:image/png;base64," + base64.b64encode(b"\x89PNG a").decode())
    assert reader.sources == [per_user, progress, nested]
    split_section = page[page.index('id="split-ml-holdout"'):page.index('id="plots"')]
    assert f'src="{per_user}" alt="per_user"' in split_section
    assert '<figcaption>sub/a</figcaption>' in page[page.index('id="plots"'):]


def test_without_plots_the_page_says_so_and_shows_the_verdicts(results):
    page = build(results)
    assert "No plots yet in" in page
    table = PageReader(page).tables["verdicts-table"]
    assert [text for text, _ in table["headers"]] == ["dataset", "split", "neural method", "best baseline",
                                                      "ndcg@10 neural", "ndcg@10 baseline", "difference [95% CI]",
                                                      "p (Holm)", "verdict"]
    rows = {row["cells"][2][0]: row["cells"][-1][0] for row in table["rows"]}
    assert rows == {EVIL: "not different", "mf": "significantly better", "ncf": f"not run ({EVIL_REASON})"}


def test_no_neural_results_note(tmp_path):
    from tests.site_results import write_model
    write_model(tmp_path / "results", "pop", "pop", POP, 0.01)
    write_params(tmp_path / "params.yaml")
    assert "No neural results yet" in build(tmp_path)


def test_the_page_reads_no_report_file_back(results):
    """The verdicts come from the statistics file, not from reports/verdicts.md: a verdicts file
    beside the results, saying the opposite, changes nothing on the page."""
    page = build(results)
    (results / "verdicts.md").write_text("| model | verdict |\n|---|---|\n| mf | significantly worse |\n")
    assert build(results, name="again.html") == page
    assert not hasattr(site, "verdicts_file")
    with pytest.raises(SystemExit):
        build(results, "--verdicts", str(results / "verdicts.md"))


def test_empty_results_root(tmp_path):
    (tmp_path / "results").mkdir()
    write_params(tmp_path / "params.yaml")
    page = build(tmp_path)
    assert "No result files yet" in page and "from 0 result files" in page


def test_unique_anchors():
    assert site.unique_anchors(["split-ML/a b", "split-ml-a-b", "???"]) == ["split-ml-a-b", "split-ml-a-b-2",
                                                                           "section"]


def test_needs_a_metric():
    with pytest.raises(ValueError, match="at least one metric"):
        site.build_site([], Statistics((), StatisticsSettings(), "", 0, {}))
