"""The one training loop of every neural recommender, and the helpers the models share.

:class:`NeuralRecommender` implements ``_fit`` once: seeding, device choice, epochs of
mini-batch updates, early stopping on the validation data's metric (the tuning metric) with
the shared :class:`~protocols.early_stopping.EarlyStopping`, per-epoch checkpoints with
resumption and an optional progress bar. Training length is counted in epochs only, never in
seconds, so the same parameters give the same model on a fast or a busy machine. A model
supplies its network and its batches through hooks that receive the whole
:class:`~datasets.item_data.TrainingData` (interactions, item feature sets, images):

- ``_build_network(data)``: the ``torch.nn.Module`` with uninitialised parameters, on the
  CPU; the loop initialises it with ``network.reset_parameters(generator)`` and moves it;
- ``_epoch_batches(prepared, rng, generator, device)``: an iterable of one epoch's batches,
  where ``prepared = _training_data(data)`` is computed once per fit (a negative sampler, say);
- ``_batch_loss(network, batch, generator, step)``: a scalar loss tensor (``step`` counts
  the updates made before this batch, for schedules such as KL annealing);
- ``_network_scores(network, users, history, device)``: dense float32 scores (called under
  ``torch.no_grad`` with the network in eval mode).

Randomness: ``np.random.default_rng(seed)`` drives sampling and shuffling; a local
``torch.Generator`` seeded from it drives initialisation, dropout and noise. The global
numpy and torch generators are never read or advanced (layers are constructed without
torch's default initialisers). On the CPU the same seed gives bit-identical weights and
scores with the same number of torch threads.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from common.errors import RecAuditError
from neural.checkpoint import fingerprint, load_checkpoint, save_checkpoint
from common.threads import thread_scope
from neural.device import check_device_name, deterministic_scope, resolve_device
from protocols.contract import Recommender, TrainingData
from protocols.early_stopping import DEFAULT_METRIC, EarlyStopping

OPTIMIZERS = ("adam", "sgd", "adagrad")


class TrainingDivergedError(RecAuditError):
    """The training loss became NaN or infinite."""


class NeuralRecommender(Recommender):
    """Base class of the neural models: the shared loop (see the module docstring).

    Subclasses declare every hyperparameter in ``__init__``; the shared ones are ``epochs``,
    ``batch_size``, ``lr``, ``seed``, ``device``, ``validate_every``, ``patience``,
    ``checkpoint_dir`` and ``progress``.

    Attributes set by ``fit``: ``network_`` (the trained module, on ``device_``),
    ``history_`` (one record per epoch: ``epoch``, ``loss``, the validation metric or None,
    ``seconds``), ``best_epoch_`` (the epoch whose weights were kept), ``epochs_run_``,
    ``stopped_early_``, ``resumed_from_epoch_`` and ``fit_seconds_``.
    """

    family: ClassVar[str] = "neural"
    conformance_params: ClassVar[dict] = {}
    # CPU threads while training (None: torch's current setting); see common.threads.thread_scope.
    # One by default: on ML-100K a Mult-VAE epoch took 0.07 s on two threads and 0.12 s on one
    # on a quiet 2-core machine, but 2.9 s against 0.23 s while another process used a core, so one
    # thread per fit keeps a busy machine's slowdown proportional (and results independent of the
    # core count). A model whose large matrix products gain from more threads sets None.
    training_threads: ClassVar[int | None] = 1

    # ----- hooks ---------------------------------------------------------------------
    def _build_network(self, data: TrainingData):
        raise NotImplementedError

    def _training_data(self, data: TrainingData):
        """What ``_epoch_batches`` draws from, prepared once per fit (default: the interactions)."""
        return data.interactions

    def _epoch_batches(self, data, rng: np.random.Generator, generator, device) -> Iterable:
        raise NotImplementedError

    def _batch_loss(self, network, batch, generator, step: int):
        raise NotImplementedError

    def _network_scores(self, network, users: np.ndarray, history: sp.csr_matrix, device) -> np.ndarray:
        raise NotImplementedError

    def _network_candidate_scores(self, network, users, history, candidates, device) -> np.ndarray:
        scores = self._network_scores(network, users, history, device)
        return np.take_along_axis(scores, candidates, axis=1)

    def _score_chunk(self) -> int:
        """Users scored per forward pass."""
        return 1024

    def _optimizer_settings(self) -> tuple[str, float, float]:
        """(optimiser name, learning rate, weight decay) for this fit."""
        return getattr(self, "optimizer", "adam"), self.lr, 0.0

    def _check_params(self) -> None:
        """Raise RecAuditError for a model-specific parameter out of range (extend in subclasses)."""

    def _learning_rates(self) -> tuple[float, ...]:
        """The rates training steps through: the first, then the next each time validation runs
        out of patience (early stopping once the list is spent); default ``(lr,)``."""
        return (float(self.lr),)

    def _fixed_rate_drops(self) -> tuple[int, ...] | None:
        """Epochs after which to move to the next rate regardless of validation (a refit
        replaying the drops its tuning trial made), or None to follow validation."""
        return None

    def _initial_network(self, data: TrainingData, generator, device):
        """The network training starts from: freshly initialised (NeuMF may pretrain here)."""
        return self._fresh_network(data, generator, device)

    def _training_extras(self) -> dict:
        """Attributes set by ``_initial_network`` that a checkpoint must carry (plain values)."""
        return {}

    def _restore_training_extras(self, extras: dict) -> None:
        """Set again what :meth:`_training_extras` returned, when resuming from a checkpoint."""

    # ----- the loop ------------------------------------------------------------------
    def _fit(self, data: TrainingData) -> None:
        started = time.perf_counter()
        self._check_shared_params()
        self._check_params()
        device = resolve_device(self.device)
        self.device_ = str(device)
        threads = self.training_threads if device.type == "cpu" else None
        with deterministic_scope(device), thread_scope(threads):
            self._train(data, device)
        self.fit_seconds_ = time.perf_counter() - started
        self.network_.eval()

    def _train(self, data: TrainingData, device) -> None:
        import torch

        validation = data.validation
        rng = np.random.default_rng(self.seed)
        init_seed, device_seed = (int(s) for s in rng.integers(0, 2**62, size=2))
        init_generator = torch.Generator().manual_seed(init_seed)
        generator = torch.Generator(device=device).manual_seed(device_seed)
        rates = self._learning_rates()
        fixed_drops = self._fixed_rate_drops()
        stopper = EarlyStopping(validation, validate_every=self.validate_every, patience=self.patience,
                                metric=validation.metric if validation is not None else DEFAULT_METRIC,
                                rate_steps=len(rates) - 1 if fixed_drops is None else 0)

        item_data = {key: features.sha256 for key, features in data.item_features.items()}
        if data.images is not None:
            item_data["images"] = data.images.manifest_sha256
        key = fingerprint(self, data.interactions, validation, device.type, item_data) if self.checkpoint_dir else None
        saved = load_checkpoint(self.checkpoint_dir, key, self.epochs) if key else None
        state = {"epoch": 0, "step": 0, "extras": {}, "rate_drops": []}
        if saved is None:
            network = self._initial_network(data, init_generator, device)
            state["extras"] = self._training_extras()
            optimizer = self._make_optimizer(network)
        else:
            network = self._build_network(data)
            network.load_state_dict(saved["network"])
            network = network.to(device)
            optimizer = self._make_optimizer(network)
            optimizer.load_state_dict(saved["optimizer"])
            rng.bit_generator.state = saved["numpy_rng"]
            generator.set_state(saved["torch_rng"])
            state = {name: saved[name] if name in saved else value for name, value in state.items()}
            stopper.load_state(saved["stopper"])
            self._restore_training_extras(state["extras"])
        self.network_ = network
        self.resumed_from_epoch_ = state["epoch"]
        batches_from = self._training_data(data) if state["epoch"] < self.epochs and not stopper.stopped_early else None
        history = list(saved["loss_history"]) if saved is not None else []

        def snapshot():
            return {k: v.detach().to("cpu", copy=True) for k, v in network.state_dict().items()}

        progress = _progress_bar(self.progress, self.epochs, state["epoch"], self.name)
        try:
            while state["epoch"] < self.epochs and not stopper.stopped_early:
                epoch_started = time.perf_counter()
                network.train()
                loss_sum = torch.zeros((), device=device)
                n_batches = 0
                for batch in self._epoch_batches(batches_from, rng, generator, device):
                    loss = self._batch_loss(network, batch, generator, state["step"])
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    loss_sum += loss.detach()
                    n_batches += 1
                    state["step"] += 1
                epoch_loss = float(loss_sum) / max(n_batches, 1)
                state["epoch"] += 1
                if not math.isfinite(epoch_loss):
                    raise TrainingDivergedError(
                        f"model {self.name!r} diverged: training loss is {epoch_loss} at epoch "
                        f"{state['epoch']}; lower lr or raise regularisation")
                network.eval()
                stopper.after_epoch(state["epoch"], self, snapshot=snapshot, last=state["epoch"] == self.epochs)
                self._step_rate(optimizer, rates, fixed_drops, stopper, state)
                validated = stopper.history[-1] if stopper.history and stopper.history[-1]["epoch"] == state["epoch"] \
                    else None
                record = {"epoch": state["epoch"], "loss": epoch_loss, stopper.metric: None if validated is None
                          else validated[stopper.metric], "seconds": time.perf_counter() - epoch_started}
                history.append(record)
                if self.checkpoint_dir:
                    save_checkpoint(self.checkpoint_dir, {
                        "fingerprint": key, **state, "stopper": stopper.state(), "loss_history": history,
                        "network": network.state_dict(), "optimizer": optimizer.state_dict(),
                        "numpy_rng": rng.bit_generator.state, "torch_rng": generator.get_state()})
                progress.update(1)
                progress.set_postfix({k: v for k, v in record.items() if k in ("loss", stopper.metric)
                                      and v is not None})
        finally:
            progress.close()

        if stopper.best_snapshot is not None:
            network.load_state_dict(stopper.best_snapshot)
        self.best_epoch_ = stopper.best_epoch_or(state["epoch"])
        self.history_ = history
        self.epochs_run_ = state["epoch"]
        self.stopped_early_ = stopper.stopped_early
        self.rate_drops_ = list(state["rate_drops"])

    @staticmethod
    def _step_rate(optimizer, rates, fixed_drops, stopper, state) -> None:
        """Move to the rate that validation (or the fixed drops) asks for after this epoch."""
        if fixed_drops is None:
            wanted = stopper.rate_step
        else:
            wanted = sum(1 for epoch in fixed_drops if epoch <= state["epoch"])
        wanted = min(wanted, len(rates) - 1)
        if wanted > len(state["rate_drops"]):
            state["rate_drops"].extend([state["epoch"]] * (wanted - len(state["rate_drops"])))
            for group in optimizer.param_groups:
                group["lr"] = rates[wanted]

    # ----- scoring -------------------------------------------------------------------
    def _score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        import torch

        device = next(self.network_.parameters()).device
        self.network_.eval()
        out = np.empty((len(users), self.n_items_), dtype=np.float32)
        chunk = self._score_chunk()
        with torch.no_grad():
            for start in range(0, len(users), chunk):
                part = slice(start, start + chunk)
                out[part] = self._network_scores(self.network_, users[part], history[part], device)
        return out

    def _score_candidates(self, users, history, candidates) -> np.ndarray:
        import torch

        device = next(self.network_.parameters()).device
        self.network_.eval()
        # Rows of unequal length come padded with negative ids (the evaluator's PAD_ITEM):
        # score a real item in their place, then give the padding -inf.
        padding = candidates < 0
        candidates = np.where(padding, 0, candidates).astype(np.int64)
        out = np.empty(candidates.shape, dtype=np.float32)
        chunk = self._score_chunk()
        with torch.no_grad():
            for start in range(0, len(users), chunk):
                part = slice(start, start + chunk)
                out[part] = self._network_candidate_scores(self.network_, users[part], history[part],
                                                           candidates[part], device)
        out[padding] = -np.inf
        return out

    # ----- helpers -------------------------------------------------------------------
    def _fresh_network(self, data: TrainingData, generator, device):
        """The network initialised on the CPU from ``generator`` (so that CPU and GPU runs
        start from the same weights), then moved to ``device``."""
        network = self._build_network(data)  # parameters allocated, not initialised
        network.reset_parameters(generator)
        return network.to(device)

    def _make_optimizer(self, network):
        import torch

        name, lr, weight_decay = self._optimizer_settings()
        parameters = list(network.parameters())
        # The fused kernels update all parameters in one pass (faster for many small steps).
        if name == "adam":
            return torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay, fused=True)
        if name == "sgd":
            return torch.optim.SGD(parameters, lr=lr, weight_decay=weight_decay, fused=True)
        if name == "adagrad":
            return torch.optim.Adagrad(parameters, lr=lr, weight_decay=weight_decay)
        raise RecAuditError(f"model {self.name!r}: unknown optimizer {name!r}; use one of {', '.join(OPTIMIZERS)}")

    def _check_shared_params(self) -> None:
        check_device_name(self.device)
        _require(self, "epochs", isinstance(self.epochs, int) and self.epochs >= 1, "an integer >= 1")
        _require(self, "batch_size", isinstance(self.batch_size, int) and self.batch_size >= 1, "an integer >= 1")
        _require(self, "lr", _is_number(self.lr) and self.lr > 0, "a number > 0")
        _require(self, "seed", isinstance(self.seed, int | np.integer), "an integer")
        _require(self, "validate_every", isinstance(self.validate_every, int) and self.validate_every >= 1,
                 "an integer >= 1")
        _require(self, "patience", self.patience is None or (isinstance(self.patience, int) and self.patience >= 1),
                 "None or an integer >= 1")
        # The folder is created by the first checkpoint write (common.atomic), so a fit refused
        # before training (memory, requirements) leaves nothing behind.
        _require(self, "checkpoint_dir", self.checkpoint_dir is None or not Path(self.checkpoint_dir).is_file(),
                 "None or a folder path (it names a file)")
        if getattr(self, "optimizer", "adam") not in OPTIMIZERS:
            _require(self, "optimizer", False, f"one of {', '.join(OPTIMIZERS)}")


def _is_number(value) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def _require(model, name: str, condition: bool, expected: str) -> None:
    """Raise the standard one-line error for a parameter that is out of range."""
    if not condition:
        raise RecAuditError(f"model {model.name!r}: parameter {name}={getattr(model, name)!r} is invalid; "
                            f"use {expected}")


class _NoProgress:
    def update(self, n: int) -> None: ...

    def set_postfix(self, values: dict) -> None: ...

    def close(self) -> None: ...


def _progress_bar(enabled: bool, total: int, initial: int, name: str):
    if not enabled:
        return _NoProgress()
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=name, unit="epoch", leave=False)


@dataclass(frozen=True)
class SparseRows:
    """A batch of CSR rows as tensors: entry k is (row_ids[k], indices[k]) with value
    values[k]; row r's entries start at offsets[r]."""

    row_ids: object
    indices: object
    offsets: object
    values: object
    n_rows: int


def sparse_rows(matrix: sp.csr_matrix, rows: np.ndarray | None, device) -> SparseRows:
    """Rows of a CSR matrix (all when ``rows`` is None) as :class:`SparseRows` on ``device``."""
    import torch

    part = matrix[rows] if rows is not None else matrix
    counts = np.diff(part.indptr)
    as_tensor = lambda array, dtype: torch.from_numpy(np.ascontiguousarray(array, dtype=dtype)).to(device)  # noqa: E731
    return SparseRows(row_ids=as_tensor(np.repeat(np.arange(part.shape[0]), counts), np.int64),
                      indices=as_tensor(part.indices, np.int64), offsets=as_tensor(part.indptr[:-1], np.int64),
                      values=as_tensor(part.data, np.float32), n_rows=part.shape[0])


def dense_rows(matrix: sp.csr_matrix, rows: np.ndarray, device):
    """Rows of a CSR matrix as a dense float32 tensor on ``device`` (only nonzeros travel)."""
    import torch

    part = matrix[rows] if rows is not None else matrix
    if device.type == "cpu":
        return torch.from_numpy(part.toarray().astype(np.float32, copy=False))
    out = torch.zeros(part.shape, dtype=torch.float32, device=device)
    row_ids = np.repeat(np.arange(part.shape[0], dtype=np.int64), np.diff(part.indptr))
    out[torch.from_numpy(row_ids).to(device), torch.from_numpy(part.indices.astype(np.int64)).to(device)] = \
        torch.from_numpy(part.data.astype(np.float32)).to(device)
    return out


def dropout(x, rate: float, generator):
    """Inverted dropout drawn from ``generator`` (``torch.nn.functional.dropout`` would draw
    from the global generator): keep each entry with probability 1 - rate, scaled by 1/(1 - rate)."""
    import torch

    if rate <= 0:
        return x
    if rate >= 1:
        return torch.zeros_like(x)
    keep = torch.rand(x.shape, generator=generator, device=x.device) >= rate
    return x * keep / (1.0 - rate)
