"""The torch module behind VBPR (:mod:`neural.vbpr`); imported only when a model is fitted.

Parameters are allocated uninitialised and initialised in ``reset_parameters(generator)``
from an explicit ``torch.Generator`` (never torch's global one), as in :mod:`neural._networks`.
The item features and the mask of items with training interactions are non-persistent
buffers: they move with the module and are pickled with it, but stay out of the state dict
(checkpoints and early-stopping snapshots hold the learned parameters only; the features are
rebuilt from the data by ``_build_network``).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


class VBPRNetwork(nn.Module):
    """x_ui = w_i (beta_i + gamma_u . gamma_i) + theta_u . (E f_i) + beta' . f_i.

    ``w_i`` is 1 for items with training interactions and 0 for the others, whose scores come
    from their features alone (their beta_i and gamma_i never receive a gradient).

    Shapes: gamma_user (users, K), gamma_item (items, K), theta_user (users, K'),
    embedding E (K', F), beta_item (items,), beta_visual beta' (F,), features (items, F).
    """

    def __init__(self, n_users: int, n_items: int, features: np.ndarray, warm: np.ndarray, factors: int,
                 visual_factors: int, init_std: float):
        super().__init__()
        n_features = features.shape[1]
        self.init_std = float(init_std)
        self.gamma_user = nn.Parameter(torch.empty(n_users, factors))
        self.gamma_item = nn.Parameter(torch.empty(n_items, factors))
        self.theta_user = nn.Parameter(torch.empty(n_users, visual_factors))
        self.embedding = nn.Parameter(torch.empty(visual_factors, n_features))
        self.beta_item = nn.Parameter(torch.empty(n_items))
        self.beta_visual = nn.Parameter(torch.empty(n_features))
        self.register_buffer("features", torch.from_numpy(np.array(features, dtype=np.float32)), persistent=False)
        self.register_buffer("warm", torch.from_numpy(np.asarray(warm, dtype=np.float32).copy()), persistent=False)

    def reset_parameters(self, generator: torch.Generator) -> None:
        """Factors N(0, init_std^2); E N(0, init_std^2 / F) so that E f starts on the scale of
        the factors for features of unit scale; both biases zero (as the authors' code)."""
        for factors in (self.gamma_user, self.gamma_item, self.theta_user):
            nn.init.normal_(factors, std=self.init_std, generator=generator)
        nn.init.normal_(self.embedding, std=self.init_std / math.sqrt(max(self.embedding.shape[1], 1)),
                        generator=generator)
        nn.init.zeros_(self.beta_item)
        nn.init.zeros_(self.beta_visual)

    # ----- the parts of x_ui ---------------------------------------------------------
    def item_terms(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(w_i beta_i, w_i gamma_i) of ``items`` (any shape): zero for cold items."""
        warm = self.warm[items]
        return self.beta_item[items] * warm, self.gamma_item[items] * warm.unsqueeze(-1)

    def visual_item_factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(E f_i for every item (items, K'), beta'. f_i for every item (items,))."""
        return self.features @ self.embedding.T, self.features @ self.beta_visual

    def scores(self, users: torch.Tensor) -> torch.Tensor:
        """x_ui for ``users`` over every item: (len(users), items)."""
        all_items = torch.arange(self.beta_item.shape[0], device=users.device)
        beta, gamma = self.item_terms(all_items)
        visual, visual_bias = self.visual_item_factors()
        return (beta + visual_bias) + self.gamma_user[users] @ gamma.T + self.theta_user[users] @ visual.T

    def candidate_scores(self, users: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """x_ui for each row of ``candidates`` (len(users), c), item ids."""
        beta, gamma = self.item_terms(candidates)
        visual, visual_bias = self.visual_item_factors()
        latent = (gamma @ self.gamma_user[users].unsqueeze(-1)).squeeze(-1)
        appearance = (visual[candidates] @ self.theta_user[users].unsqueeze(-1)).squeeze(-1)
        return beta + visual_bias[candidates] + latent + appearance
