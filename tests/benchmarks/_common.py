"""What the benchmark scripts share: the real ML-1M data, synthetic matrices, peak memory."""
from __future__ import annotations

import os
import resource
import sys
from pathlib import Path

import pandas as pd
import scipy.sparse as sp


def synthetic_binary(users, items, n_users: int, n_items: int) -> sp.csr_matrix:
    from protocols.evaluation import interaction_matrix

    return interaction_matrix([pd.DataFrame({"user": users, "item": items})], n_users, n_items)


def load_movielens() -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """(train, test) of the LCFN ML-1M split from ``$RECAUDIT_MIRROR``; exits when it is unset."""
    mirror = os.environ.get("RECAUDIT_MIRROR")
    if not mirror:
        sys.exit("set RECAUDIT_MIRROR to the data mirror (e.g. ../shared/data)")
    from tests.mirror_raw import lcfn_matrices

    return lcfn_matrices(Path(mirror))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
