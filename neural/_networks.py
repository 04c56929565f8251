"""The torch modules behind the neural models (imported only when a model is fitted).

Every module builds its layers without initialising them and initialises all parameters in
``reset_parameters(generator)`` from an explicit ``torch.Generator``, never from torch's
global generator (``nn.Linear`` and ``nn.Embedding`` would draw from it in their
constructors; building on the meta device instead would import torch's compiler, ~3 s).
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class Linear(nn.Linear):
    """``nn.Linear`` whose constructor leaves the parameters uninitialised."""

    def reset_parameters(self) -> None:
        pass


class Embedding(nn.Embedding):
    """``nn.Embedding`` whose constructor leaves the weights uninitialised."""

    def reset_parameters(self) -> None:
        pass


def lecun_uniform_(weight: torch.Tensor, generator: torch.Generator) -> None:
    """U(-sqrt(3 / fan_in), sqrt(3 / fan_in)), Keras' ``lecun_uniform`` (NCF's output layer)."""
    limit = math.sqrt(3.0 / weight.shape[1])
    nn.init.uniform_(weight, -limit, limit, generator=generator)


def glorot_linear_(layer: nn.Linear, generator: torch.Generator, bias_std: float = 0.0) -> None:
    """Glorot-uniform weights; zero biases, or N(0, bias_std) truncated at two deviations."""
    nn.init.xavier_uniform_(layer.weight, generator=generator)
    if bias_std > 0:
        nn.init.trunc_normal_(layer.bias, std=bias_std, a=-2 * bias_std, b=2 * bias_std, generator=generator)
    else:
        nn.init.zeros_(layer.bias)


# ----- NCF (He et al., 2017) ------------------------------------------------------------
class GMFTower(nn.Module):
    """phi(u, i) = p_u * q_i (element-wise), embeddings N(0, 0.01^2)."""

    def __init__(self, n_users: int, n_items: int, factors: int):
        super().__init__()
        self.user_embedding = Embedding(n_users, factors)
        self.item_embedding = Embedding(n_items, factors)
        self.dim = factors

    def reset_parameters(self, generator: torch.Generator) -> None:
        nn.init.normal_(self.user_embedding.weight, std=0.01, generator=generator)
        nn.init.normal_(self.item_embedding.weight, std=0.01, generator=generator)

    def features(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.user_embedding(users) * self.item_embedding(items)

    def all_items_logits(self, users: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """features(u, i) @ weight for every item i, without forming the (n, items, f) array."""
        return (self.user_embedding(users) * weight) @ self.item_embedding.weight.T


class MLPTower(nn.Module):
    """phi(u, i) = ReLU(W_L ... ReLU(W_1 [p_u; q_i] + b_1) ... + b_L) with halving sizes."""

    def __init__(self, n_users: int, n_items: int, sizes: tuple[int, ...]):
        super().__init__()
        self.user_embedding = Embedding(n_users, sizes[0] // 2)
        self.item_embedding = Embedding(n_items, sizes[0] // 2)
        self.hidden = nn.ModuleList(Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.dim = sizes[-1]

    def reset_parameters(self, generator: torch.Generator) -> None:
        nn.init.normal_(self.user_embedding.weight, std=0.01, generator=generator)
        nn.init.normal_(self.item_embedding.weight, std=0.01, generator=generator)
        for layer in self.hidden:
            glorot_linear_(layer, generator)

    def _tower(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.hidden:
            x = F.relu(layer(x))
        return x

    def features(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.user_embedding(users), self.item_embedding(items)], dim=-1)
        return self._tower(x)

    def all_items_logits(self, users: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        # The first layer acts on [p_u; q_i], so W_1 [p_u; q_i] = W_u p_u + W_i q_i: the user
        # and item halves are computed once each and broadcast.
        first = self.hidden[0]
        half = self.user_embedding.embedding_dim
        user_part = self.user_embedding(users) @ first.weight[:, :half].T + first.bias
        item_part = self.item_embedding.weight @ first.weight[:, half:].T
        x = F.relu(user_part[:, None, :] + item_part[None, :, :])
        for layer in self.hidden[1:]:
            x = F.relu(layer(x))
        return x @ weight


class NCFNet(nn.Module):
    """y(u, i) = h^T [phi_1(u, i); ...; phi_T(u, i)] + b over one or more towers (logits)."""

    def __init__(self, towers: list[nn.Module]):
        super().__init__()
        self.towers = nn.ModuleList(towers)
        self.output = Linear(sum(t.dim for t in towers), 1)

    def reset_parameters(self, generator: torch.Generator) -> None:
        for tower in self.towers:
            tower.reset_parameters(generator)
        lecun_uniform_(self.output.weight, generator)
        nn.init.zeros_(self.output.bias)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        features = torch.cat([t.features(users, items) for t in self.towers], dim=-1)
        return self.output(features).squeeze(-1)

    def all_items_logits(self, users: torch.Tensor) -> torch.Tensor:
        weights = torch.split(self.output.weight[0], [t.dim for t in self.towers])
        return sum(t.all_items_logits(users, w) for t, w in zip(self.towers, weights)) + self.output.bias


# ----- Mult-VAE / Mult-DAE (Liang et al., 2018) -----------------------------------------
class SparseInputLinear(nn.Module):
    """x W + b for sparse rows x, as a weighted embedding-bag sum over each row's nonzeros,
    so that the cost grows with the number of interactions, not of items (4x faster than a
    dense product at MovieLens-1M's 4% density). ``weight`` is (in_features, out_features).
    """

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        self.bias = nn.Parameter(torch.empty(out_features))

    def forward(self, rows, values: torch.Tensor) -> torch.Tensor:
        return F.embedding_bag(rows.indices, self.weight, rows.offsets, mode="sum",
                               per_sample_weights=values) + self.bias


class MultAutoencoder(nn.Module):
    """Encoder [I -> ... -> d] and decoder [d -> ... -> I], tanh after every layer except
    the decoder's output and the variational encoder's output. The input is a batch of
    sparse rows (:class:`neural.training.SparseRows`); the first layer reads only nonzeros.

    Variational: the encoder's last layer outputs (mu, log sigma^2) of size 2d each half d.
    Initialisation as in the authors' code: Glorot-uniform weights, biases N(0, 0.001^2)
    truncated at two deviations.
    """

    def __init__(self, encoder_dims: list[int], decoder_dims: list[int], variational: bool):
        super().__init__()
        self.variational = variational
        out = list(encoder_dims[1:])
        if variational:
            out[-1] *= 2
        self.encoder = nn.ModuleList([SparseInputLinear(encoder_dims[0], out[0])]
                                     + [Linear(a, b) for a, b in zip(out[:-1], out[1:])])
        self.decoder = nn.ModuleList(Linear(a, b) for a, b in zip(decoder_dims[:-1], decoder_dims[1:]))
        self.latent = encoder_dims[-1]

    def reset_parameters(self, generator: torch.Generator) -> None:
        for layer in [*self.encoder, *self.decoder]:
            glorot_linear_(layer, generator, bias_std=0.001)

    def weight_norm(self) -> torch.Tensor:
        """sum ||W||_F^2 over weight matrices (not biases), the authors' L2 penalty."""
        return sum(layer.weight.pow(2).sum() for layer in [*self.encoder, *self.decoder])

    def forward(self, rows, input_dropout: float = 0.0, generator: torch.Generator | None = None):
        """Logits over items, and (mu, log sigma^2) for the variational model (else Nones).

        Training passes ``input_dropout`` and ``generator``: dropout on the L2-normalised
        input and z ~ N(mu, sigma^2); scoring passes neither: no dropout and z = mu.
        Dropout of a zero entry leaves it zero, so only the nonzeros draw a mask.
        """
        from neural.training import dropout

        norms = torch.zeros(rows.n_rows, device=rows.values.device).index_add_(0, rows.row_ids, rows.values ** 2)
        values = rows.values / norms.sqrt().clamp_min(1e-12)[rows.row_ids]
        if input_dropout > 0:
            values = dropout(values, input_dropout, generator)
        for k, layer in enumerate(self.encoder):
            h = layer(rows, values) if k == 0 else layer(h)
            # tanh after every layer but the variational output (mu, log sigma^2)
            if k < len(self.encoder) - 1 or not self.variational:
                h = torch.tanh(h)
        mu = logvar = None
        if self.variational:
            mu, logvar = h[:, :self.latent], h[:, self.latent:]
            h = mu
            if generator is not None:
                noise = torch.randn(mu.shape, generator=generator, device=mu.device)
                h = mu + noise * torch.exp(0.5 * logvar)
        for k, layer in enumerate(self.decoder):
            h = layer(h)
            if k < len(self.decoder) - 1:
                h = torch.tanh(h)
        return h, mu, logvar


# ----- CDAE (Wu et al., 2016) -----------------------------------------------------------
class CDAENet(nn.Module):
    """out(y~_u, u) = W' h(W y~_u + V_u + b) + b'  (pre-activation of the output mapping f)."""

    ACTIVATIONS = {"sigmoid": torch.sigmoid, "identity": lambda x: x, "tanh": torch.tanh, "relu": F.relu}

    def __init__(self, n_users: int, n_items: int, hidden: int, activation: str):
        super().__init__()
        self.encoder = Linear(n_items, hidden)
        self.user_embedding = Embedding(n_users, hidden)
        self.decoder = Linear(hidden, n_items)
        self.activation = self.ACTIVATIONS[activation]

    def reset_parameters(self, generator: torch.Generator) -> None:
        glorot_linear_(self.encoder, generator)
        glorot_linear_(self.decoder, generator)
        nn.init.normal_(self.user_embedding.weight, std=0.01, generator=generator)

    def forward(self, corrupted: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        hidden = self.activation(self.encoder(corrupted) + self.user_embedding(users))
        return self.decoder(hidden)


# ----- BPR-MF (Rendle et al., 2009) -----------------------------------------------------
class MatrixFactorization(nn.Module):
    """x(u, i) = <w_u, h_i>, factors N(0, init_std^2)."""

    def __init__(self, n_users: int, n_items: int, factors: int, init_std: float):
        super().__init__()
        self.user_factors = Embedding(n_users, factors)
        self.item_factors = Embedding(n_items, factors)
        self.init_std = init_std

    def reset_parameters(self, generator: torch.Generator) -> None:
        nn.init.normal_(self.user_factors.weight, std=self.init_std, generator=generator)
        nn.init.normal_(self.item_factors.weight, std=self.init_std, generator=generator)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return (self.user_factors(users) * self.item_factors(items)).sum(-1)
