"""CDAE: Collaborative Denoising Auto-Encoder.

Wu, DuBois, Zheng and Ester, "Collaborative Denoising Auto-Encoders for Top-N Recommender
Systems", WSDM 2016 (https://doi.org/10.1145/2835776.2835837).
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from neural.memory import FLOAT, parameter_bytes, sampler_bytes, validation_bytes
from neural.sampling import NegativeSampler
from neural.training import NeuralRecommender, _require, dense_rows, dropout
from protocols.registry import register
from protocols.space import Categorical, Integer, Real

LOSSES = ("log", "square")
HIDDEN_ACTIVATIONS = ("sigmoid", "identity", "tanh", "relu")


@register("cdae")
class CDAE(NeuralRecommender):
    """Collaborative Denoising Auto-Encoder (Wu et al., WSDM 2016).

    Architecture (paper Sec. 4.1): a one-hidden-layer denoising autoencoder over the user's
    binary row y_u with an extra per-user input node, i.e. a user embedding V_u added to
    the hidden layer:

        z_u = h(W^T y~_u + V_u + b),   y^_u = f(W'^T z_u + b')

    where y~_u is y_u corrupted by drop-out noise (each entry zeroed with probability
    ``corruption`` = q, kept entries scaled by 1 / (1 - q)) during training, and y~_u = y_u
    when scoring. h is ``hidden_activation`` (sigmoid by default). f follows the loss: the
    sigmoid for the logistic loss (whose l(y, y^) = -y log y^ - (1 - y) log(1 - y^) needs
    y^ in (0, 1); computed stably from the logits) and the identity for the square loss.

    Loss (paper Sec. 4.2), per batch of users B:

        1/|B| sum_{u in B} sum_{i in O_u + S_u} l(y_ui, y^_ui)
            + l2/2 (||W||^2 + ||W'||^2 + ||b||^2 + ||b'||^2 + 1/|B| sum_{u in B} ||V_u||^2)

    O_u are the user's training items and S_u holds ``negatives`` x |O_u| items drawn
    uniformly from the user's other items, resampled every epoch (the paper's negative
    sampling, Sec. 4.3); ``negatives=None`` sums over all items (the full loss). The
    penalty matches per-user stochastic gradient steps on the paper's objective (1/U) sum_u
    l_u + R, in which every step regularises W, W', b, b' and the user's own V_u.
    Optimiser: AdaGrad as in the paper (``optimizer="adam"`` or ``"sgd"`` also accepted).
    Initialisation (not given in the paper): Glorot-uniform W, W', zero biases, V ~ N(0, 0.01^2).
    Scores are the output pre-activations (monotone in y^).

    The user node is a learned embedding, so held-out users cannot be scored
    (``folds_in_users = False``; score raises UnsupportedProtocolError).

    Parameters
    ----------
    hidden : int
        Hidden units K (50, the paper's main setting).
    corruption : float
        Drop-out corruption level q in [0, 1) (0.2).
    hidden_activation : str
        h: "sigmoid" (default), "identity", "tanh" or "relu".
    loss : str
        "log" (logistic, default) or "square".
    negatives : int or None
        Negative samples per positive (5); None for the full loss over all items.
    l2 : float
        Regularisation weight lambda (0.01).
    optimizer : str
        "adagrad" (default), "adam" or "sgd".
    epochs, batch_size, lr, seed :
        Training length, users per batch (256), learning rate (0.1); the seed drives
        initialisation, shuffling, negative sampling and corruption.
    device, validate_every, patience, checkpoint_dir, progress :
        The shared training loop's settings (:mod:`neural.training`).
    """

    folds_in_users: ClassVar[bool] = False
    training_threads: ClassVar[int | None] = 1  # batches of 256 x K=50 are too small to split
    conformance_params: ClassVar[dict] = {"hidden": 4, "epochs": 2, "batch_size": 20, "device": "cpu"}
    search_space: ClassVar[dict] = {
        "hidden": Categorical((50, 100, 200)),
        "corruption": Real(0.0, 0.8),
        "negatives": Integer(1, 10),
        "l2": Real(1e-5, 1.0, log=True),
        "lr": Real(1e-3, 1.0, log=True),
    }

    def __init__(self, hidden: int = 50, corruption: float = 0.2, hidden_activation: str = "sigmoid",
                 loss: str = "log", negatives: int | None = 5, l2: float = 0.01, optimizer: str = "adagrad",
                 epochs: int = 100, batch_size: int = 256, lr: float = 0.1, seed: int = 0,
                 device: str = "auto", validate_every: int = 1, patience: int | None = None,
                 checkpoint_dir: str | None = None, progress: bool = False):
        self.hidden = hidden
        self.corruption = corruption
        self.hidden_activation = hidden_activation
        self.loss = loss
        self.negatives = negatives
        self.l2 = l2
        self.optimizer = optimizer
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.seed = seed
        self.device = device
        self.validate_every = validate_every
        self.patience = patience
        self.checkpoint_dir = checkpoint_dir
        self.progress = progress

    memory_fix = ("drop rare users and items in the dataset's prepare filters (the negative sampler takes about 40 "
                  "bytes per training interaction; the first and last layers are items x hidden) or lower batch_size "
                  "(each batch is batch_size x items dense: targets, the corrupted input, outputs, losses and their "
                  "gradients)")

    def fit_memory_bytes(self, train) -> int:
        """Parameters (items x hidden twice, users x hidden; values, gradients, the optimiser's
        state, the best epoch's snapshot), the negative sampler, plus the larger of one batch's
        dense batch_users x items tensors (about 10 float32 copies: targets, dropout mask and
        corrupted input, output, per-entry and masked losses, gradients) and the validation pass
        (1,024 users x items dense input and output per chunk, and the last batch's targets)."""
        self._check_shared_params()
        self._check_params()
        n_users, n_items = train.shape
        n_parameters = 2 * n_items * self.hidden + self.hidden + n_items + n_users * self.hidden
        batch = min(self.batch_size, n_users) * n_items
        scoring = validation_bytes(n_users, n_items, 2 * min(self._score_chunk(), n_users) * n_items + 2 * batch)
        return (parameter_bytes(n_parameters, self.optimizer) + sampler_bytes(train.nnz)
                + max(10 * FLOAT * batch, scoring))

    def _check_params(self) -> None:
        _require(self, "hidden", isinstance(self.hidden, int) and self.hidden >= 1, "an integer >= 1")
        _require(self, "corruption", isinstance(self.corruption, int | float) and 0 <= self.corruption < 1,
                 "a number in [0, 1)")
        _require(self, "hidden_activation", self.hidden_activation in HIDDEN_ACTIVATIONS,
                 f"one of {', '.join(HIDDEN_ACTIVATIONS)}")
        _require(self, "loss", self.loss in LOSSES, f"one of {', '.join(LOSSES)}")
        _require(self, "negatives", self.negatives is None or (isinstance(self.negatives, int) and self.negatives >= 0),
                 "None or an integer >= 0")
        _require(self, "l2", isinstance(self.l2, int | float) and self.l2 >= 0, "a number >= 0")

    def _build_network(self, data):
        from neural._networks import CDAENet

        train = data.interactions
        return CDAENet(train.shape[0], train.shape[1], self.hidden, self.hidden_activation)

    def _training_data(self, data):
        train = data.interactions
        return train, NegativeSampler(train)

    def _epoch_batches(self, data, rng, generator, device):
        import torch

        train, sampler = data
        users = np.flatnonzero(np.diff(train.indptr) > 0)
        users = users[rng.permutation(len(users))]
        for start in range(0, len(users), self.batch_size):
            batch = users[start:start + self.batch_size]
            targets = dense_rows(train, batch, device)
            if self.negatives is None:
                mask = None
            else:
                mask = targets > 0
                rows = np.repeat(np.arange(len(batch)), self.negatives * sampler.degree[batch]
                                 * sampler.sampleable[batch])
                items = sampler.sample(batch[rows], rng)
                mask[torch.from_numpy(rows).to(device), torch.from_numpy(items).to(device)] = True
            yield torch.from_numpy(batch).to(device), targets, mask

    def _batch_loss(self, network, batch, generator, step):
        from torch.nn import functional as F

        users, targets, mask = batch
        output = network(dropout(targets, self.corruption, generator), users)
        if self.loss == "log":
            entry_loss = F.binary_cross_entropy_with_logits(output, targets, reduction="none")
        else:
            entry_loss = (output - targets).pow(2)
        if mask is not None:
            entry_loss = entry_loss * mask
        loss = entry_loss.sum(dim=1).mean()
        if self.l2:
            shared = sum(p.pow(2).sum() for p in (network.encoder.weight, network.encoder.bias,
                                                  network.decoder.weight, network.decoder.bias))
            own = network.user_embedding(users).pow(2).sum(dim=1).mean()
            loss = loss + 0.5 * self.l2 * (shared + own)
        return loss

    def _network_scores(self, network, users, history, device):
        import torch

        output = network(dense_rows(history, None, device), torch.from_numpy(users).to(device))
        return output.cpu().numpy()
