"""What the neural models' memory estimates (``fit_memory_bytes``) share.

Each model counts the terms of its fit that grow with the data, in float32 bytes unless
said otherwise: its parameters as training holds them, the dense tensors of one batch, any
dense copy of the item features it makes, the negative sampler and the epoch's sampled
instances, and the validation pass that scores users x items blocks. Importing this module
does not import torch.

Models whose largest terms follow the item features (VBPR, CDL, CVAE, CuratorNet) cannot
see them in ``fit_memory_bytes(train)``, which ``Recommender.fit`` calls with the
interactions only: they estimate there what the interactions decide, and check the full
estimate again with :func:`require_fit_memory` at the start of ``_fit``, once the feature
set is known and before anything is built.
"""
from __future__ import annotations

from common.memory import require_memory

FLOAT = 4
# Copies of every parameter beyond the values and their gradient (dense, embeddings included):
# the optimiser's state, dense over every row (Adam: two moments; AdaGrad: one sum; SGD: none).
_OPTIMIZER_STATE = {"adam": 2, "adagrad": 1, "sgd": 0}
# Entries of one evaluation batch of scores (protocols.evaluation.DEFAULT_MAX_BATCH_ENTRIES).
EVALUATION_BATCH_ENTRIES = 2**25
# Ranking temporaries of the evaluation, per batch (a few int64 arrays of RANK_BLOCK_ENTRIES).
RANKING_BYTES = 4 * 8 * 2**20
# NegativeSampler: per interaction three int64 arrays kept (rows, items, gap keys) and more while
# it is built (measured peak: 32 bytes per interaction, 2M interactions).
SAMPLER_BYTES_PER_INTERACTION = 40


def parameter_bytes(n_parameters: int, optimizer: str = "adam") -> int:
    """float32 parameters as training holds them: the values, their gradients, the optimiser's
    state and the early-stopping snapshot of the best epoch (``optimizer``: adam, adagrad, sgd)."""
    return FLOAT * int(n_parameters) * (3 + _OPTIMIZER_STATE.get(optimizer, 2))


def validation_bytes(n_users: int, n_items: int, chunk_entries: int = 0) -> int:
    """The validation pass after an epoch: evaluation's batch of float32 scores (at most
    ``EVALUATION_BATCH_ENTRIES`` users x items) and its ranking temporaries, plus
    ``chunk_entries`` float32 numbers of the model's own scoring tensors. It runs between
    batches, so a model adds the larger of it and its batch tensors to what stays allocated."""
    block = min(int(n_users) * int(n_items), max(EVALUATION_BATCH_ENTRIES, int(n_items)))
    return FLOAT * (block + int(chunk_entries)) + RANKING_BYTES


def sampler_bytes(n_interactions: int) -> int:
    """The negative sampler (:class:`neural.sampling.NegativeSampler`) over the interactions."""
    return SAMPLER_BYTES_PER_INTERACTION * int(n_interactions)


def require_fit_memory(model, train, needed: int) -> None:
    """The check ``Recommender.fit`` makes, again with an estimate that reads more than ``train``
    (the item features): the same one-line refusal naming the model, the need, the memory
    available and ``model.memory_fix``."""
    if needed:
        require_memory(int(needed), f"{model.name or type(model).__name__} on {train.shape[0]:,} users x "
                                    f"{train.shape[1]:,} items", model.memory_fix)
