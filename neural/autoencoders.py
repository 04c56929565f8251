"""Mult-VAE and Mult-DAE: autoencoders with a multinomial likelihood over items.

Liang, Krishnan, Hoffman and Jebara, "Variational Autoencoders for Collaborative
Filtering", WWW 2018 (https://doi.org/10.1145/3178876.3186150), checked against the
authors' notebook (github.com/dawenl/vae_cf).

Shared by both models:

- **Input**: the user's binary interaction row x_u, L2-normalised, with dropout
  (``dropout=0.5``, inverted scaling) on the normalised input during training only.
- **Likelihood**: multinomial, log p(x_u | z_u) = sum_i x_ui log softmax(f(z_u))_i; the
  batch loss is its negative mean over users.
- **Training**: Adam (lr 0.001), batches of 500 users shuffled every epoch, 200 epochs
  in the paper (early stopping on validation NDCG keeps the best epoch, as the authors'
  notebook keeps the best NDCG@100 epoch).
- **Initialisation**: Glorot-uniform weights, biases N(0, 0.001^2) truncated at two
  deviations (the notebook's ``truncated_normal(stddev=0.001)``).
- **Scores** are the decoder's logits for ``history`` (held-out users are folded in: no
  user parameters, ``folds_in_users = True``).
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from neural.memory import FLOAT, parameter_bytes, validation_bytes
from neural.training import NeuralRecommender, _require, sparse_rows
from protocols.registry import register
from protocols.space import Categorical, Integer, Real


class _MultAutoencoder(NeuralRecommender):
    folds_in_users: ClassVar[bool] = True
    variational: ClassVar[bool] = False
    memory_fix = ("lower hidden (the first and last layers are items x hidden, kept with gradients, Adam's two "
                  "moments and the best epoch's snapshot) or batch_size (each batch is batch_size x items dense: "
                  "logits, log-softmax and their gradients), or drop rare items in the dataset's prepare filters")

    def _dims(self, n_items: int) -> tuple[list[int], list[int]]:
        raise NotImplementedError

    def fit_memory_bytes(self, train) -> int:
        """Parameters (items x hidden twice; values, gradients, Adam's moments, the best
        epoch's snapshot) plus the larger of one batch's dense batch_users x items tensors
        (logits, log-softmax and their gradients: 4) and the validation pass (evaluation's
        block of scores and 1,024 users x items logits)."""
        self._check_shared_params()
        self._check_params()
        n_users, n_items = train.shape
        encoder, decoder = self._dims(n_items)
        if self.variational:
            encoder = [*encoder[:-1], 2 * encoder[-1]]  # the last encoder layer outputs mu and log sigma^2
        n_parameters = sum(a * b + b for dims in (encoder, decoder) for a, b in zip(dims[:-1], dims[1:]))
        batch = min(self.batch_size, n_users) * n_items
        return parameter_bytes(n_parameters) + max(4 * FLOAT * batch, validation_bytes(
            n_users, n_items, min(self._score_chunk(), n_users) * n_items))

    def _build_network(self, data):
        from neural._networks import MultAutoencoder

        train = data.interactions
        encoder, decoder = self._dims(train.shape[1])
        return MultAutoencoder(encoder, decoder, variational=self.variational)

    def _check_params(self) -> None:
        _require(self, "dropout", isinstance(self.dropout, int | float) and 0 <= self.dropout < 1,
                 "a number in [0, 1)")
        _require(self, "lam", isinstance(self.lam, int | float) and self.lam >= 0, "a number >= 0")

    def _training_data(self, data):
        train = data.interactions
        return train[np.diff(train.indptr) > 0]

    def _epoch_batches(self, rows, rng, generator, device):
        order = rng.permutation(rows.shape[0])
        for start in range(0, len(order), self.batch_size):
            yield sparse_rows(rows, order[start:start + self.batch_size], device)

    def _reconstruction(self, network, rows, generator):
        """-mean_u sum_i x_ui log softmax(f(z_u))_i, summed over the nonzeros x_ui only."""
        from torch.nn import functional as F

        logits, mu, logvar = network(rows, input_dropout=self.dropout, generator=generator)
        log_probabilities = F.log_softmax(logits, dim=1)[rows.row_ids, rows.indices]
        negative_log_likelihood = -(log_probabilities * rows.values).sum() / rows.n_rows
        return negative_log_likelihood, mu, logvar

    def _network_scores(self, network, users, history, device):
        logits, _, _ = network(sparse_rows(history, None, device))
        return logits.cpu().numpy()


@register("multvae")
class MultVAE(_MultAutoencoder):
    """Mult-VAE^PR: variational autoencoder with a multinomial likelihood (Liang et al., 2018).

    Architecture [I - hidden - latent - hidden - I] (default [I-600-200-600-I]), tanh
    between layers; the encoder outputs mu and log sigma^2 of q(z | x) = N(mu, diag sigma^2).

    Loss (negative annealed ELBO, per batch, averaged over its users):

        -sum_i x_ui log softmax(f(z_u))_i + beta * KL(q(z_u | x_u) || N(0, I)) + lam * sum ||W||^2

    with z_u = mu + sigma * eps during training and z_u = mu when scoring, and
    KL = 1/2 sum_k (-log sigma_k^2 + sigma_k^2 + mu_k^2 - 1). beta is annealed linearly,
    beta = min(beta_cap, updates / total_anneal_steps) where updates counts the gradient
    steps taken so far (the paper's partial regularisation, beta_cap 0.2 over 200,000 steps).

    Parameters
    ----------
    hidden : int
        Width of the hidden layers of encoder and decoder (600).
    latent : int
        Dimension of z (200).
    dropout : float
        Dropout rate on the normalised input (0.5).
    beta_cap : float
        Final KL weight (0.2).
    total_anneal_steps : int
        Updates over which beta rises from 0 to ``beta_cap`` (200,000; 0 starts at the cap).
    lam : float
        L2 weight on the weight matrices (0.0, as the authors' Mult-VAE).
    epochs, batch_size, lr, seed :
        200 epochs, 500 users per batch, Adam lr 0.001; the seed drives initialisation,
        shuffling, dropout and the reparameterisation noise.
    device, validate_every, patience, checkpoint_dir, progress :
        The shared training loop's settings (:mod:`neural.training`).
    """

    variational: ClassVar[bool] = True
    conformance_params: ClassVar[dict] = {"hidden": 8, "latent": 4, "epochs": 2, "batch_size": 20,
                                          "total_anneal_steps": 10, "device": "cpu"}
    search_space: ClassVar[dict] = {
        "hidden": Categorical((200, 600)),
        "latent": Categorical((50, 100, 200)),
        "dropout": Real(0.0, 0.8),
        "beta_cap": Real(0.0, 1.0),
        "total_anneal_steps": Integer(0, 200000),
    }

    def __init__(self, hidden: int = 600, latent: int = 200, dropout: float = 0.5, beta_cap: float = 0.2,
                 total_anneal_steps: int = 200000, lam: float = 0.0, epochs: int = 200, batch_size: int = 500,
                 lr: float = 0.001, seed: int = 0, device: str = "auto", validate_every: int = 1,
                 patience: int | None = None, checkpoint_dir: str | None = None, progress: bool = False):
        self.hidden = hidden
        self.latent = latent
        self.dropout = dropout
        self.beta_cap = beta_cap
        self.total_anneal_steps = total_anneal_steps
        self.lam = lam
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.seed = seed
        self.device = device
        self.validate_every = validate_every
        self.patience = patience
        self.checkpoint_dir = checkpoint_dir
        self.progress = progress

    def _dims(self, n_items):
        return [n_items, self.hidden, self.latent], [self.latent, self.hidden, n_items]

    def _check_params(self) -> None:
        super()._check_params()
        for name in ("hidden", "latent"):
            _require(self, name, isinstance(getattr(self, name), int) and getattr(self, name) >= 1,
                     "an integer >= 1")
        _require(self, "beta_cap", isinstance(self.beta_cap, int | float) and self.beta_cap >= 0, "a number >= 0")
        _require(self, "total_anneal_steps", isinstance(self.total_anneal_steps, int) and self.total_anneal_steps >= 0,
                 "an integer >= 0")

    def kl_weight(self, step: int) -> float:
        """beta after ``step`` updates: min(beta_cap, step / total_anneal_steps)."""
        if self.total_anneal_steps == 0:
            return float(self.beta_cap)
        return float(min(self.beta_cap, step / self.total_anneal_steps))

    def _batch_loss(self, network, rows, generator, step):
        import torch

        negative_log_likelihood, mu, logvar = self._reconstruction(network, rows, generator)
        kl = (0.5 * (-logvar + torch.exp(logvar) + mu.pow(2) - 1)).sum(dim=1).mean()
        loss = negative_log_likelihood + self.kl_weight(step) * kl
        if self.lam:
            loss = loss + self.lam * network.weight_norm()
        return loss


@register("multdae")
class MultDAE(_MultAutoencoder):
    """Mult-DAE: denoising autoencoder with a multinomial likelihood (Liang et al., 2018).

    Architecture [I - hidden - I] (default [I-200-I]), tanh on the hidden layer.

    Loss per batch, averaged over its users:

        -sum_i x_ui log softmax(f(dropout(x_u / ||x_u||)))_i + (lam / batch_size) * sum ||W||^2

    The L2 term follows the authors' code, which builds the model with
    ``lam = 0.01 / batch_size`` and adds ``2 * l2_regularizer(lam)`` = lam * sum ||W||^2 over
    weight matrices (not biases) to every batch loss; here ``lam`` is the numerator (0.01)
    and the division by ``batch_size`` is done for you, so tuning ``batch_size`` keeps the
    authors' scaling.

    Parameters
    ----------
    hidden : int
        Width of the hidden layer (200).
    dropout : float
        Dropout rate on the normalised input (0.5).
    lam : float
        L2 numerator (0.01); the penalty weight is ``lam / batch_size``.
    epochs, batch_size, lr, seed, device, validate_every, patience, checkpoint_dir, progress :
        As for :class:`MultVAE`.
    """

    conformance_params: ClassVar[dict] = {"hidden": 8, "epochs": 2, "batch_size": 20, "device": "cpu"}
    search_space: ClassVar[dict] = {
        "hidden": Categorical((100, 200, 400, 600)),
        "dropout": Real(0.0, 0.8),
        "lam": Real(1e-4, 1.0, log=True),
    }

    def __init__(self, hidden: int = 200, dropout: float = 0.5, lam: float = 0.01, epochs: int = 200,
                 batch_size: int = 500, lr: float = 0.001, seed: int = 0, device: str = "auto",
                 validate_every: int = 1, patience: int | None = None, checkpoint_dir: str | None = None,
                 progress: bool = False):
        self.hidden = hidden
        self.dropout = dropout
        self.lam = lam
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.seed = seed
        self.device = device
        self.validate_every = validate_every
        self.patience = patience
        self.checkpoint_dir = checkpoint_dir
        self.progress = progress

    def _dims(self, n_items):
        return [n_items, self.hidden], [self.hidden, n_items]

    def _check_params(self) -> None:
        super()._check_params()
        _require(self, "hidden", isinstance(self.hidden, int) and self.hidden >= 1, "an integer >= 1")

    def _batch_loss(self, network, rows, generator, step):
        negative_log_likelihood, _, _ = self._reconstruction(network, rows, generator)
        return negative_log_likelihood + (self.lam / self.batch_size) * network.weight_norm()
