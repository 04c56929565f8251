"""The torch module behind CuratorNet (:mod:`neural.curatornet`); imported only when fitted.

Layers as the released ``Networks.py`` builds them (TensorFlow ``tf.layers.dense``: Glorot-
uniform weights, zero biases), allocated uninitialised and initialised from an explicit
generator in ``reset_parameters``.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from neural._networks import Linear


def _tower(sizes: list[int]) -> nn.ModuleList:
    return nn.ModuleList(Linear(n_in, n_out) for n_in, n_out in zip(sizes[:-1], sizes[1:]))


def _run(layers: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
    """The layers with SELU after each, the last included, in ``x``'s precision (scoring runs
    in float64 so that a user's scores do not depend on the batch the BLAS kernel saw)."""
    for layer in layers:
        weight, bias = layer.weight, layer.bias
        if weight.dtype != x.dtype:
            weight, bias = weight.to(x.dtype), bias.to(x.dtype)
        x = F.selu(F.linear(x, weight, bias))
    return x


class CuratorNetwork(nn.Module):
    """Item tower f(x_i) (features -> 200 -> 200, SELU); user tower over the concatenated
    average and maximum of the profile's item vectors (400 -> 300 -> 300 -> 200, SELU);
    score = user vector . item vector. ``features`` (items, F) z-scored is a non-persistent buffer."""

    def __init__(self, features: np.ndarray, item_units=(200, 200), user_units=(300, 300, 200)):
        super().__init__()
        if user_units[-1] != item_units[-1]:
            raise ValueError("the user and item vectors must have the same size")
        self.register_buffer("features", torch.from_numpy(np.array(features, dtype=np.float32)), persistent=False)
        self.item_tower = _tower([features.shape[1], *item_units])
        self.user_tower = _tower([2 * item_units[-1], *user_units])
        self.register_buffer("item_vectors", None, persistent=False)

    def reset_parameters(self, generator: torch.Generator) -> None:
        for layer in (*self.item_tower, *self.user_tower):
            nn.init.xavier_uniform_(layer.weight, generator=generator)
            nn.init.zeros_(layer.bias)

    def weights(self) -> list[torch.Tensor]:
        """What the released code regularises: every variable whose name has no 'bias'."""
        return [layer.weight for layer in (*self.item_tower, *self.user_tower)]

    def items(self, items: torch.Tensor) -> torch.Tensor:
        return _run(self.item_tower, self.features[items])

    def users(self, rows: torch.Tensor, vectors: torch.Tensor, n_rows: int) -> torch.Tensor:
        """User vectors of ``n_rows`` profiles whose items' vectors are ``vectors`` (one row per
        profile item, ``rows`` saying whose): masked average and maximum, concatenated, through
        the user tower. An empty profile pools to zeros."""
        width = vectors.shape[1]
        sizes = torch.bincount(rows, minlength=n_rows).clamp(min=1).to(vectors.dtype)
        average = torch.zeros(n_rows, width, dtype=vectors.dtype, device=vectors.device).index_add_(0, rows, vectors)
        average = average / sizes[:, None]
        maximum = torch.zeros(n_rows, width, dtype=vectors.dtype, device=vectors.device).scatter_reduce_(
            0, rows[:, None].expand(-1, width), vectors, reduce="amax", include_self=False)
        return _run(self.user_tower, torch.cat([average, maximum], dim=1))

    # ----- cache of every item's vector for scoring ----------------------------------------------
    def train(self, mode: bool = True):
        if mode:
            self.item_vectors = None
        return super().train(mode)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        self.item_vectors = None
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def all_item_vectors(self) -> torch.Tensor:
        """Every item's vector in float64, computed once per weight state."""
        if self.item_vectors is None:
            with torch.no_grad():
                self.item_vectors = _run(self.item_tower, self.features.double())
        return self.item_vectors
