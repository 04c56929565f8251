"""Result folders and an HTML reader shared by the site tests (``test_site*.py``).

One split, ``ml / holdout``, with five models whose order is known by hand:

======  ========  ========================  ============================
rank    model     mean ndcg@10              why
======  ========  ========================  ============================
1       pop       0.2833 (reference)        best baseline
2       random    0.0000                    baseline, worse for every user
3       mf        0.3433                    neural, better for every user
4       EVIL      0.2833 (= pop per user)   neural, named with markup
5       ncf       n/a                       neural, unsupported
======  ========  ========================  ============================

pop's per-user value is ``(u % 7) / 10`` for users ``u < 30``: mean
``(4 * 2.1 + 0.1 + 0.2) / 30 = 0.2833``; mf adds ``0.05 + (u % 3) / 100``.
"""
from __future__ import annotations

from html.parser import HTMLParser

import numpy as np
import pandas as pd

from protocols.results import result_dir, write_run

N_USERS = 30
USERS = np.arange(N_USERS)
POP = (USERS % 7) / 10
BETTER = POP + 0.05 + (USERS % 3) / 100
SEED = 42
EVIL = '<script>alert("x")</script>&amp;'
EVIL_PARAM = "<img src=x onerror=alert(1)>"
EVIL_REASON = "needs <b>user</b> embeddings"
TABLE_ID = "table-split-ml-holdout"
LEADERBOARD_ORDER = ["pop", "random", "mf", EVIL, "ncf"]


def record(model: str, metrics: dict, **overrides) -> dict:
    base = dict(dataset="ml", protocol="holdout", model=model, family="baseline", params={}, seed=None,
                seeds=[None], sampled=False, metric_version="1", metrics=metrics, metrics_std=None, tuning=None,
                n_users=N_USERS, fit_seconds=1.25, eval_seconds=0.04, peak_rss_mb=100.0, status="ok")
    base.update(overrides)
    return base


def write_model(root, folder: str, model: str, ndcg, coverage: float, **overrides) -> None:
    per_user = pd.DataFrame({"user": USERS, "ndcg@10": ndcg})
    metrics = {"ndcg@10": float(np.mean(ndcg)), "coverage@10": coverage}
    write_run(result_dir(root, "ml", "holdout", folder), record(model, metrics, **overrides), per_user)


def write_results(root) -> None:
    """The five result folders, written in an order unlike the table's."""
    write_model(root, "evil", EVIL, POP.copy(), 0.3, family="neural", params={"note": EVIL_PARAM})
    write_model(root, "random", "random", np.zeros(N_USERS), 0.9, params={"seed": 7}, seeds=[7], seed=7,
                fit_seconds=0.001, eval_seconds=0.05)
    write_model(root, "mf", "mf", BETTER, 0.2, family="neural", seed=1, seeds=[1, 2, 3],
                params={"seed": 1, "factors": 64}, metrics_std={"ndcg@10": 0.0123, "coverage@10": 0.01},
                tuning={"trials_run": 17, "trials_budget": 20, "budget": "fixed", "validation_metric": "ndcg@10",
                        "best_value": 0.25})
    write_run(result_dir(root, "ml", "holdout", "ncf"),
              record("ncf", {}, family="neural", status="unsupported", metric_version=None, reason=EVIL_REASON,
                     n_users=0, fit_seconds=None, eval_seconds=None, seeds=[]),
              pd.DataFrame({"user": pd.Series([], dtype="int64")}))
    write_model(root, "pop", "pop", POP, 0.01)


def write_params(path) -> None:
    path.write_text(f"seed: {SEED}\nreports:\n  metrics: [ndcg@10, coverage@10]\n")


class PageReader(HTMLParser):
    """The parts of the page the tests check: every table (header labels and attributes, each
    row's cells as (text, attributes)), every element id, img src and a href."""

    def __init__(self, page: str):
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, dict] = {}
        self.ids: list[str] = []
        self.sources: list[str] = []
        self.links: list[str] = []
        self.tags: list[str] = []
        self._table = self._cell = self._row = None
        self.feed(page)
        self.close()

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.tags.append(tag)
        if "id" in attributes:
            self.ids.append(attributes["id"])
        if tag == "img":
            self.sources.append(attributes.get("src", ""))
        if tag in ("a", "link"):
            self.links.append(attributes.get("href", ""))
        if tag == "table":
            self._table = self.tables.setdefault(attributes.get("id", f"#{len(self.tables)}"),
                                                 {"headers": [], "rows": [], "attrs": attributes})
        elif tag == "tr" and self._table is not None:
            self._row = {"attrs": attributes, "cells": []}
        elif tag in ("td", "th") and self._table is not None:
            self._cell = [tag, [], attributes]

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[1].append(data)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            kind, parts, attributes = self._cell
            text = " ".join("".join(parts).split())
            if kind == "th":
                self._table["headers"].append((text, attributes))
            else:
                self._row["cells"].append((text, attributes))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._row["cells"]:
                self._table["rows"].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None
