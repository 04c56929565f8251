"""Per-epoch checkpoints of a neural fit, so that an interrupted run resumes where it stopped.

A checkpoint holds everything the rest of the run depends on: network and optimiser state,
the numpy and torch generator states, the update counter, the history, the early-stopping
state (best weights, best metric, validations without improvement) and the number of
completed epochs. Resuming from it reproduces the uninterrupted run's final weights bit for
bit on the CPU. A fingerprint of the parameters and data guards against resuming a
checkpoint written for something else.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from common.atomic import atomic_file
from common.errors import RecAuditError

CHECKPOINT_FILE = "checkpoint.pt"
FORMAT_VERSION = 1
# Settings that may differ between an interrupted run and the run that resumes it.
RUN_SETTINGS = frozenset({"epochs", "checkpoint_dir", "progress", "device"})


def _digest_arrays(digest, *arrays) -> None:
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(str((array.dtype.str, array.shape)).encode())
        digest.update(array.tobytes())


def _digest_matrix(digest, matrix) -> None:
    matrix = sp.csr_matrix(matrix)
    digest.update(str(matrix.shape).encode())
    _digest_arrays(digest, matrix.indptr.astype(np.int64), matrix.indices.astype(np.int64),
                   matrix.data.astype(np.float32))


def fingerprint(model, train: sp.csr_matrix, validation, device_type: str, item_data: dict | None = None) -> str:
    """A hash of the model's class, its parameters (except :data:`RUN_SETTINGS`), the device
    type, the training and validation data and ``item_data`` (the hashes of the item feature
    sets and images the fit can read), so a checkpoint never resumes on other content."""
    digest = hashlib.sha256()
    params = {key: value for key, value in model.get_params().items() if key not in RUN_SETTINGS}
    digest.update(json.dumps([type(model).__qualname__, device_type, params, dict(sorted((item_data or {}).items()))],
                             sort_keys=True, default=repr).encode())
    _digest_matrix(digest, train)
    if validation is not None:
        _digest_arrays(digest, np.asarray(validation.users, dtype=np.int64))
        _digest_matrix(digest, validation.history)
        _digest_matrix(digest, validation.truth)
        if validation.candidates is not None:
            _digest_arrays(digest, np.asarray(validation.candidates, dtype=np.int64))
    return digest.hexdigest()


def save_checkpoint(directory: Path | str, payload: dict) -> None:
    """Write ``payload`` to ``directory/checkpoint.pt`` atomically (never half-written)."""
    import torch

    with atomic_file(Path(directory) / CHECKPOINT_FILE) as handle:
        torch.save({"format": FORMAT_VERSION, **payload}, handle)


def load_checkpoint(directory: Path | str, expected_fingerprint: str, epochs: int) -> dict | None:
    """The checkpoint in ``directory`` (tensors on the CPU), or None if there is none.

    Raises RecAuditError if it was written for other parameters or data, or has run past
    ``epochs``.
    """
    import torch

    path = Path(directory) / CHECKPOINT_FILE
    if not path.exists():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a damaged file
        raise RecAuditError(f"checkpoint {path} cannot be read ({type(error).__name__}); "
                            "delete it to train from scratch") from None
    if payload.get("format") != FORMAT_VERSION or payload.get("fingerprint") != expected_fingerprint:
        raise RecAuditError(f"checkpoint {path} was written for other parameters or data; "
                            "delete it or choose another checkpoint_dir")
    if payload["epoch"] > epochs:
        raise RecAuditError(f"checkpoint {path} has already run {payload['epoch']} epochs, more than "
                            f"epochs={epochs}; raise epochs or choose another checkpoint_dir")
    return payload
