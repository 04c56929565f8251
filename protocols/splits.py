"""Split protocols: compute a :class:`~protocols.split_data.Split` from a prepared dataset.

Every protocol is a function ``(data, seed, **params) -> Split`` registered in
:data:`PROTOCOLS`; its keyword parameters come verbatim from ``params.yaml``. A wrong
parameter name or value is a one-line :class:`RecAuditError` naming the protocol, the
parameter and what it accepts. The same seed gives the identical split (``temporal`` and
``leave-one-out`` with ``order='latest'`` and ``negatives=0`` use no randomness at all).

=======================  =================================================================
``holdout``              random per-user holdout (:func:`protocols.splitting.weak.holdout`)
``interaction-holdout``  each interaction drawn to test / validation / train on its own
``leave-one-out``        one test and one validation item per user + sampled negatives
``temporal``             one global cut time; no train interaction after any held-out one
``cold-items``           held-out items: all their interactions are validation or test
``last-basket``          each user's last basket of equal timestamps (CuratorNet's replay)
``strong``               held-out users with fold-in input, as in Mult-VAE
``given``                the authors' published split, validation carved from their train
=======================  =================================================================

Each implementation's docstring states its rounding rule and what happens to users or
items it cannot hold out; the card (:mod:`protocols.split_card`) counts them.
"""
from __future__ import annotations

from collections.abc import Mapping

from datasets.canonical import PreparedData
from common.errors import unknown_name_error
from protocols.split_data import Split
from protocols.splitting.base import PROTOCOLS
from protocols.splitting.given import given_split
from protocols.splitting.strong import strong
from protocols.splitting.weak import cold_items, holdout, interaction_holdout, last_basket, leave_one_out, temporal

__all__ = ["PROTOCOLS", "make_split", "holdout", "interaction_holdout", "leave_one_out", "temporal", "cold_items", "last_basket", "strong",
           "given_split"]


def make_split(data: PreparedData, protocol: str, seed: int, params: Mapping | None = None) -> Split:
    """Run the protocol named ``protocol`` with ``params`` (a mapping from params.yaml)."""
    if protocol not in PROTOCOLS:
        raise unknown_name_error("protocol", protocol, PROTOCOLS)
    return PROTOCOLS[protocol](data, seed, **dict(params or {}))
