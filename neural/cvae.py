"""CVAE: the Collaborative Variational Autoencoder, trained as the authors' code trains it.

Li and She, "Collaborative Variational Autoencoder for Recommender Systems", KDD 2017
(https://doi.org/10.1145/3097983.3098077); schedule and hyperparameters from the authors'
TensorFlow code (github.com/eelxpeng/CollaborativeVAE: ``test_vae.py``, ``test_cvae.py``,
``lib/vae.py``, ``lib/cvae.py``). Shares the content handling, the epoch-plus-ALS-sweep schedule
and the scoring with CDL (:class:`neural.cdl.HybridFactorModel`). Importing this module does not
import torch.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from baselines.content import resolve_features
from neural.cdl import HybridFactorModel
from neural.training import _is_number, _require
from protocols.registry import register
from protocols.space import Categorical, Real

_PRETRAIN_FRACTION = 0.8  # test_vae.py pre-trains on a random 80% of the items


@register("cvae")
class CVAE(HybridFactorModel):
    r"""Collaborative Variational Autoencoder (Li and She, KDD 2017), as the authors' code trains it.

    **Model.** An inference network over each item's bag of words :math:`x_j \in [0, 1]^W`,
    ``[W, *hidden]`` sigmoid layers (authors: [W, 200, 100]) then linear
    :math:`\mu_j, \log\sigma_j^2` of size ``factors`` (50); a generation network mirroring it
    with tied hidden matrices (see :class:`neural._cvae_network.CVAENetwork`); PMF couples
    :math:`v_j = z_j + \epsilon_j` to the ratings. Score :math:`\hat r_{ij} = u_i^\top v_j`.

    **Training** (every step of the authors' code):

    1. *Pre-training* on a random 80% of the items (``lib/vae.py``): each hidden layer as a tied
       DAE (masking noise ``corruption``, cross-entropy, Adam ``pretrain_lr``, ``pretrain_epochs``
       epochs; the next layer trains on the clean codes); then the latent layer as a small VAE
       over the last hidden codes (``pretrain_epochs``); then the whole VAE, reconstruction +
       KL, no noise (``pretrain_vae_epochs``), visible bias from zero.
    2. :math:`\theta_j = \mu(x_j)`; V = :math:`\Theta`, U = 0.
    3. ``epochs`` epochs of: (a) one pass over all items in mini-batches of Adam (``lr``) steps on

       .. math::

           \tfrac1B\textstyle\sum_j\Big[\mathrm{CE}(x_j, \hat x_j) + \mathrm{KL}(q(z_j|x_j)\,\|\,\mathcal N(0, I))
           + \tfrac{\lambda_v}{\lambda_r}\|v_j - z_j\|^2\Big] + \lambda_w\textstyle\sum_l\|W_l\|^2

       with :math:`z_j = \mu_j + \sigma_j\epsilon` sampled, :math:`\lambda_w` = ``weight_decay``
       (2e-4) over the tied hidden matrices; (b) :math:`\theta_j = \mu(x_j)`; (c) ONE ALS sweep of
       U then V with :math:`\lambda_u, \lambda_v`, confidences ``a``/``b``
       (:func:`neural._cdl_network.als_sweep`). Cold items get
       :math:`v_j = (bU^\top U + \lambda_v I)^{-1}\lambda_v\theta_j` (scored through their content).

    **Choices where the code leaves room**: content scaled by ``content_scaling`` ("word-max" =
    the authors' ``mult_nor``); masking noise drawn per entry (the authors zero a fixed 30% of
    the positions of each row); every epoch (pre-training included) is a permutation of the items
    in batches (the authors draw ``n / 128`` random batches); evaluation excludes training items
    (the paper's ``evaluatePaper.m`` did not, see the reference notes).

    Parameters
    ----------
    factors : int
        Dimension of z, u and v (50).
    hidden : tuple of int
        Hidden widths of the inference network ((200, 100)).
    lambda_u, lambda_v, lambda_r : float
        0.1, 10, 1 (the authors' ``test_cvae.py``).
    weight_decay : float
        Weight of sum ||W_l||^2 in the fine-tuning loss (2e-4).
    a, b : float
        Confidence of observed (1) and unobserved (0.01) entries.
    corruption : float
        Masking-noise rate of the DAE pre-training (0.3).
    pretrain_epochs, pretrain_vae_epochs, pretrain_lr : int, int, float
        Epochs per DAE layer and for the latent layer (50), for the whole VAE (100); Adam rate 0.01
        (0 epochs skip pre-training).
    epochs, batch_size, lr : int, int, float
        Fine-tuning epochs (100), items per batch (128), Adam rate (1e-3).
    content_scaling, features :
        As for :class:`neural.cdl.CDL`.
    seed, device, validate_every, patience, checkpoint_dir, progress :
        The shared training loop's settings (:mod:`neural.training`).
    """

    conformance_params: ClassVar[dict] = {"factors": 4, "hidden": (8, 6), "pretrain_epochs": 1,
                                          "pretrain_vae_epochs": 1, "epochs": 2, "batch_size": 16, "device": "cpu"}
    search_space: ClassVar[dict] = {
        "factors": Categorical((25, 50, 100)),
        "lambda_u": Real(0.01, 10.0, log=True),
        "lambda_v": Real(0.1, 1000.0, log=True),
        "lambda_r": Real(0.1, 100.0, log=True),
        "corruption": Real(0.0, 0.6),
        "lr": Real(1e-4, 1e-2, log=True),
    }

    def __init__(self, factors: int = 50, hidden: tuple = (200, 100), lambda_u: float = 0.1, lambda_v: float = 10.0,
                 lambda_r: float = 1.0, weight_decay: float = 2e-4, a: float = 1.0, b: float = 0.01,
                 corruption: float = 0.3, pretrain_epochs: int = 50, pretrain_vae_epochs: int = 100,
                 pretrain_lr: float = 0.01, epochs: int = 100, batch_size: int = 128, lr: float = 1e-3,
                 content_scaling: str = "word-max", features: str | None = None, seed: int = 0,
                 device: str = "auto", validate_every: int = 1, patience: int | None = None,
                 checkpoint_dir: str | None = None, progress: bool = False):
        self.factors = factors
        self.hidden = hidden
        self.lambda_u = lambda_u
        self.lambda_v = lambda_v
        self.lambda_r = lambda_r
        self.weight_decay = weight_decay
        self.a = a
        self.b = b
        self.corruption = corruption
        self.pretrain_epochs = pretrain_epochs
        self.pretrain_vae_epochs = pretrain_vae_epochs
        self.pretrain_lr = pretrain_lr
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.content_scaling = content_scaling
        self.features = features
        self.seed = seed
        self.device = device
        self.validate_every = validate_every
        self.patience = patience
        self.checkpoint_dir = checkpoint_dir
        self.progress = progress

    def _check_params(self) -> None:
        self._check_common_params()
        _require(self, "hidden", len(self.hidden) >= 1, "at least one hidden layer")
        _require(self, "lambda_r", _is_number(self.lambda_r) and self.lambda_r > 0, "a number > 0")
        _require(self, "weight_decay", _is_number(self.weight_decay) and self.weight_decay >= 0, "a number >= 0")
        for name in ("pretrain_epochs", "pretrain_vae_epochs"):
            _require(self, name, isinstance(getattr(self, name), int) and getattr(self, name) >= 0, "an integer >= 0")
        _require(self, "pretrain_lr", _is_number(self.pretrain_lr) and self.pretrain_lr > 0, "a number > 0")

    def _parameter_count(self, n_words: int) -> int:
        # tied hidden weights [W, *hidden] and their biases, mu, log sigma^2 and the generation
        # layer (top x factors each), the visible bias
        layers, top, k = self._layers(n_words)[:-1], int(self.hidden[-1]), int(self.factors)
        return (sum(a * b + b for a, b in zip(layers[:-1], layers[1:])) + 2 * (top * k + k) + k * top + top
                + n_words)

    def _build_network(self, data):
        from neural._cvae_network import CVAENetwork

        content = resolve_features(self.name, data, self.features)
        return CVAENetwork(data.n_users, data.n_items, self._layers(content.dim)[:-1], int(self.factors))

    def _adam(self, lr: float):
        import torch

        return lambda params: torch.optim.Adam(params, lr=lr, fused=True)

    def _pretrain(self, network, content, generator, device) -> None:
        import torch

        from neural._cdl_network import Layer, hidden_of, noise_generator, train_dae_layer
        from neural._cvae_network import train_latent_layer, train_whole_vae

        items = self._pretraining_items(content.shape[0], _PRETRAIN_FRACTION)
        noise = noise_generator(generator, device)
        rng = np.random.default_rng([int(self.seed), 2])
        adam = self._adam(float(self.pretrain_lr))
        shared = {"batch_size": int(self.batch_size), "init_generator": generator, "generator": noise, "rng": rng,
                  "progress": self.progress, "make_optimizer": adam}
        if self.pretrain_epochs > 0:
            layer = Layer(content[items], device)
            for level in range(len(network.weights)):
                weight, bias, _ = train_dae_layer(
                    layer, network.layers[level + 1], epochs=int(self.pretrain_epochs),
                    corruption=float(self.corruption), rate=0.0, sparsity=0.0, visible_bias="zeros",
                    label=f"{self.name} DAE {level + 1}", **shared)
                with torch.no_grad():
                    network.weights[level].copy_(weight)
                    network.biases[level].copy_(bias)
                layer = hidden_of(layer, weight, bias)
            latent = train_latent_layer(layer, int(self.factors), epochs=int(self.pretrain_epochs),
                                        label=f"{self.name} latent", **shared)
            with torch.no_grad():
                for target, value in zip((network.mu_weight, network.mu_bias, network.logvar_weight,
                                          network.logvar_bias, network.generation_weight, network.generation_bias),
                                         latent):
                    target.copy_(value)
        if self.pretrain_vae_epochs > 0:
            train_whole_vae(network, content[items], epochs=int(self.pretrain_vae_epochs), device=device,
                            label=f"{self.name} VAE", **{k: v for k, v in shared.items() if k != "init_generator"})

    def _batch_loss(self, network, batch, generator, step):
        rows, items = batch
        reconstruction, kl, z = network.elbo_terms(rows, generator)
        v = network.item_factors[items].to(z.dtype)
        coupling = (z - v).pow(2).sum(dim=1).mean()
        loss = reconstruction + kl + (float(self.lambda_v) / float(self.lambda_r)) * coupling
        if self.weight_decay:
            loss = loss + float(self.weight_decay) * network.weight_penalty()
        return loss
