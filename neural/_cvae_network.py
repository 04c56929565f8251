"""The torch parts of CVAE (imported only when the model is fitted).

The inference network and the generation network of the authors' TensorFlow code, with its
weight tying: the generation network reuses the inference network's hidden matrices transposed
and its hidden biases (the first generated hidden layer has a bias of its own), and ends in a
visible bias over the words. The closed-form sweep, the pre-training of the hidden layers as
tied DAEs and the losses come from :mod:`neural._cdl_network`.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from neural._cdl_network import (CollaborativeFactors, Layer, bernoulli_cross_entropy, encode_in_chunks,
                                 sparse_linear)
from neural.training import SparseRows, _progress_bar, sparse_rows


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, I)) per row, averaged over the batch."""
    return 0.5 * (mu.pow(2) + torch.exp(logvar) - logvar - 1).sum(dim=1).mean()


def reparameterise(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """z = mu + sqrt(max(exp(logvar), 1e-10)) * eps, eps ~ N(0, I) from ``generator`` (the authors' form)."""
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + torch.sqrt(torch.clamp(torch.exp(logvar), min=1e-10)) * eps


class CVAENetwork(CollaborativeFactors):
    """Inference ``x -> h_1 -> ... -> h_L -> (mu, log sigma^2)`` and generation
    ``z -> g_L -> ... -> g_1 -> logits``, sigmoid hidden units, for ``layers = [W, h_1, ..., h_L]``:

    - ``h_{l+1} = sigmoid(h_l W_l + b_l)`` (``weights[l]``, ``biases[l]``), ``h_0 = x``;
    - ``mu = h_L W_mu + b_mu``, ``log sigma^2 = h_L W_s + b_s``;
    - ``g_L = sigmoid(z W_g + b_g)``, ``g_l = sigmoid(g_{l+1} W_l^T + b_{l-1})`` (tied, shared bias),
      ``logits = g_1 W_0^T + b_x``.
    """

    def __init__(self, n_users: int, n_items: int, layers: list[int], factors: int):
        super().__init__()
        self.layers = [int(n) for n in layers]
        self.weights = nn.ParameterList(nn.Parameter(torch.empty(a, b)) for a, b in zip(self.layers[:-1],
                                                                                         self.layers[1:]))
        self.biases = nn.ParameterList(nn.Parameter(torch.empty(n)) for n in self.layers[1:])
        top = self.layers[-1]
        self.mu_weight, self.mu_bias = nn.Parameter(torch.empty(top, factors)), nn.Parameter(torch.empty(factors))
        self.logvar_weight = nn.Parameter(torch.empty(top, factors))
        self.logvar_bias = nn.Parameter(torch.empty(factors))
        self.generation_weight = nn.Parameter(torch.empty(factors, top))
        self.generation_bias = nn.Parameter(torch.empty(top))
        self.visible_bias = nn.Parameter(torch.empty(self.layers[0]))
        self._init_factors(n_users, n_items, factors)

    def reset_parameters(self, generator: torch.Generator) -> None:
        """Glorot-uniform weights (TensorFlow's ``xavier_initializer``), zero biases; U = V = 0."""
        for weight in (*self.weights, self.mu_weight, self.logvar_weight, self.generation_weight):
            nn.init.xavier_uniform_(weight, generator=generator)
        for bias in (*self.biases, self.mu_bias, self.logvar_bias, self.generation_bias, self.visible_bias):
            nn.init.zeros_(bias)
        self._reset_factors()

    def hidden(self, rows: SparseRows) -> torch.Tensor:
        h = torch.sigmoid(sparse_linear(rows, rows.values, self.weights[0], self.biases[0]))
        for level in range(1, len(self.weights)):
            h = torch.sigmoid(torch.addmm(self.biases[level], h, self.weights[level]))
        return h

    def encode(self, rows: SparseRows) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.hidden(rows)
        return torch.addmm(self.mu_bias, h, self.mu_weight), torch.addmm(self.logvar_bias, h, self.logvar_weight)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        g = torch.sigmoid(torch.addmm(self.generation_bias, z, self.generation_weight))
        for level in range(len(self.weights) - 1, 0, -1):
            g = torch.sigmoid(torch.addmm(self.biases[level - 1], g, self.weights[level].T))
        return torch.addmm(self.visible_bias, g, self.weights[0].T)

    def elbo_terms(self, rows: SparseRows, generator: torch.Generator):
        """(reconstruction cross-entropy, KL, sampled z) of a batch, both averaged over its rows."""
        mu, logvar = self.encode(rows)
        z = reparameterise(mu, logvar, generator)
        return bernoulli_cross_entropy(self.decode(z), rows), gaussian_kl(mu, logvar), z

    def weight_penalty(self) -> torch.Tensor:
        """sum_l ||W_l||^2 over the tied hidden matrices: the authors' ``reg_loss`` (their four
        ``l2_loss`` terms, 1/2 ||.||^2 each, count every tied matrix twice)."""
        return sum(weight.pow(2).sum() for weight in self.weights)

    def encode_items(self, content: sp.csr_matrix, device) -> torch.Tensor:
        """theta: z_mean of every item."""
        return encode_in_chunks(lambda rows: self.encode(rows)[0], content, device)


def train_latent_layer(layer: Layer, factors: int, *, epochs: int, batch_size: int, make_optimizer: Callable,
                       init_generator: torch.Generator, generator: torch.Generator, rng: np.random.Generator,
                       progress: bool = False, label: str = "latent"):
    """The authors' ``run_latent``: a VAE over the last hidden codes ``h`` with linear
    ``mu``/``log sigma^2`` and ``sigmoid(z W_g + b_g)`` reconstructing ``h`` (cross-entropy + KL).
    Returns (W_mu, b_mu, W_s, b_s, W_g, b_g)."""
    device, width = layer.device, layer.width
    shapes = ((width, factors), (factors,), (width, factors), (factors,), (factors, width), (width,))
    tensors = []
    for shape in shapes:
        tensor = torch.empty(shape)
        if len(shape) == 2:
            nn.init.xavier_uniform_(tensor, generator=init_generator)
        else:
            nn.init.zeros_(tensor)
        tensors.append(nn.Parameter(tensor.to(device)))
    mu_w, mu_b, lv_w, lv_b, g_w, g_b = tensors
    optimizer = make_optimizer(tensors)
    bar = _progress_bar(progress, epochs, 0, label)
    try:
        for _ in range(epochs):
            order = rng.permutation(len(layer))
            for start in range(0, len(order), batch_size):
                h = layer.batch(order[start:start + batch_size])
                mu, logvar = torch.addmm(mu_b, h, mu_w), torch.addmm(lv_b, h, lv_w)
                logits = torch.addmm(g_b, reparameterise(mu, logvar, generator), g_w)
                loss = bernoulli_cross_entropy(logits, h) + gaussian_kl(mu, logvar)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            bar.update(1)
    finally:
        bar.close()
    return tuple(t.detach() for t in tensors)


def train_whole_vae(network: CVAENetwork, content: sp.csr_matrix, *, epochs: int, batch_size: int,
                    make_optimizer: Callable, generator: torch.Generator, rng: np.random.Generator, device,
                    progress: bool = False, label: str = "vae") -> None:
    """The authors' ``run_all``: the whole VAE (reconstruction cross-entropy + KL, no input noise)."""
    optimizer = make_optimizer(list(network.parameters()))
    bar = _progress_bar(progress, epochs, 0, label)
    try:
        for _ in range(epochs):
            order = rng.permutation(content.shape[0])
            for start in range(0, len(order), batch_size):
                reconstruction, kl, _ = network.elbo_terms(sparse_rows(content, order[start:start + batch_size],
                                                                       device), generator)
                loss = reconstruction + kl
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            bar.update(1)
    finally:
        bar.close()
