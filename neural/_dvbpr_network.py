"""The torch modules behind DVBPR (:mod:`neural.dvbpr`); imported only when a model is fitted.

:class:`CNNF` is the image network of Kang et al.'s released TensorFlow code, layer by layer:
TensorFlow's ``SAME`` padding (asymmetric where the arithmetic asks for it) on every
convolution and max-pool, ReLU after each convolution, dropout after both 4096-unit layers,
Xavier-uniform weights and zero biases. Its flattened size follows the input size (7 x 7 x 256
at 224 pixels), so a smaller image size keeps every layer and only shrinks the first fully
connected one.

Parameters are allocated uninitialised and initialised in ``reset_parameters(generator)``
from an explicit ``torch.Generator``, as in :mod:`neural._networks`.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from neural._networks import Linear
from neural.training import dropout

# (kernel, stride, output channels) of the five convolutions; max-pool 2 after 1, 2 and 5.
CONVOLUTIONS = ((11, 4, 64), (5, 1, 256), (3, 1, 256), (3, 1, 256), (3, 1, 256))
POOL_AFTER = (0, 1, 4)
HIDDEN_UNITS = 4096


def same_size(size: int, stride: int) -> int:
    """Output side of a TensorFlow ``SAME`` convolution or pool: ceil(size / stride)."""
    return -(-size // stride)


def flattened_size(image_size: int) -> int:
    """Inputs of the first fully connected layer for a square image of ``image_size`` pixels."""
    side = image_size
    for index, (_, stride, _) in enumerate(CONVOLUTIONS):
        side = same_size(side, stride)
        if index in POOL_AFTER:
            side = same_size(side, 2)
    return side * side * CONVOLUTIONS[-1][2]


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) zero padding of TensorFlow's ``SAME``: the extra pixel goes after."""
    total = max((same_size(size, stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class CNNF(nn.Module):
    """Phi(X): image batch (N, 3, s, s) scaled to [-1, 1] -> (N, factors)."""

    def __init__(self, image_size: int, factors: int, hidden_units: int = HIDDEN_UNITS, keep_probability: float = 0.5):
        super().__init__()
        self.image_size = int(image_size)
        self.drop_rate = 1.0 - float(keep_probability)
        channels = 3
        self.convolutions = nn.ModuleList()
        for kernel, stride, out_channels in CONVOLUTIONS:
            self.convolutions.append(Conv2d(channels, out_channels, kernel, stride=stride, padding=0))
            channels = out_channels
        self.hidden1 = Linear(flattened_size(self.image_size), hidden_units)
        self.hidden2 = Linear(hidden_units, hidden_units)
        self.output = Linear(hidden_units, factors)

    def reset_parameters(self, generator: torch.Generator) -> None:
        """Xavier-uniform weights (TensorFlow's ``xavier_initializer``: fans include the
        receptive field), zero biases."""
        for layer in (*self.convolutions, self.hidden1, self.hidden2, self.output):
            nn.init.xavier_uniform_(layer.weight, generator=generator)
            nn.init.zeros_(layer.bias)

    def weights(self) -> list[torch.Tensor]:
        """The weights the released code regularises (every layer's, never a bias)."""
        return [layer.weight for layer in (*self.convolutions, self.hidden1, self.hidden2, self.output)]

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = images
        for index, convolution in enumerate(self.convolutions):
            kernel, stride = convolution.kernel_size[0], convolution.stride[0]
            before_h, after_h = same_padding(x.shape[2], kernel, stride)
            before_w, after_w = same_padding(x.shape[3], kernel, stride)
            x = F.relu(convolution(F.pad(x, (before_w, after_w, before_h, after_h))))
            if index in POOL_AFTER:
                x = F.max_pool2d(x, 2, 2, ceil_mode=True)  # == TensorFlow's SAME max-pool
        x = x.permute(0, 2, 3, 1).flatten(1)  # NHWC order, as the released code flattens
        training = self.training and generator is not None
        x = F.relu(self.hidden1(x))
        x = dropout(x, self.drop_rate, generator) if training else x
        x = F.relu(self.hidden2(x))
        x = dropout(x, self.drop_rate, generator) if training else x
        return self.output(x)


class DVBPRNetwork(nn.Module):
    """x_ui = theta_u . Phi(X_i) (+ gamma_u . gamma_i with ``latent_factors`` > 0).

    ``pixels`` (items, 3, s, s) uint8 on the CPU is a plain attribute, never a buffer: it
    stays out of checkpoints, moves to the device one batch at a time, and is dropped by
    :meth:`release_pixels` once every item's Phi(X_i) is cached in ``item_vectors``.
    Items without an image hold the value 128 everywhere: they enter Phi as a mid-grey image.
    The optional gamma_i of items without training interactions (``warm`` 0) is masked to
    zero, so cold items are scored through their images alone.
    """

    def __init__(self, n_users: int, n_items: int, pixels: torch.Tensor, warm, factors: int,
                 latent_factors: int, hidden_units: int = HIDDEN_UNITS):
        super().__init__()
        self.cnn = CNNF(pixels.shape[-1], factors, hidden_units)
        self.theta_user = nn.Parameter(torch.empty(n_users, factors))
        self.latent_factors = int(latent_factors)
        if self.latent_factors:
            self.gamma_user = nn.Parameter(torch.empty(n_users, latent_factors))
            self.gamma_item = nn.Parameter(torch.empty(n_items, latent_factors))
        self.pixels = pixels
        self.n_items = int(n_items)
        self.register_buffer("item_vectors", None, persistent=False)
        self.register_buffer("warm", torch.as_tensor(warm, dtype=torch.float32).clone(), persistent=False)

    def reset_parameters(self, generator: torch.Generator) -> None:
        """CNN as :meth:`CNNF.reset_parameters`; theta_u ~ U(0, 1) / 100 as the released code;
        the optional gamma factors likewise."""
        self.cnn.reset_parameters(generator)
        with torch.no_grad():
            for factors in self.user_item_factors():
                factors.uniform_(0.0, 0.01, generator=generator)

    def user_item_factors(self) -> list[torch.Tensor]:
        factors = [self.theta_user]
        if self.latent_factors:
            factors += [self.gamma_user, self.gamma_item]
        return factors

    def item_gamma(self, items: torch.Tensor) -> torch.Tensor:
        return self.gamma_item[items] * self.warm[items].unsqueeze(-1)

    # ----- images ----------------------------------------------------------------------------
    def images(self, items: torch.Tensor) -> torch.Tensor:
        """The scaled images of ``items`` on the parameters' device: uint8 -> [-1, 1]."""
        device = self.theta_user.device
        raw = self.pixels[items.cpu()].to(device, non_blocking=True)
        return (raw.float() - 127.5) / 127.5

    def item_outputs(self, items: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return self.cnn(self.images(items), generator)

    # ----- cache of Phi(X_i) for scoring ----------------------------------------------------------
    def train(self, mode: bool = True):
        if mode:
            self.item_vectors = None  # weights are about to change
        return super().train(mode)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        self.item_vectors = None
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def cached_item_vectors(self, batch_size: int) -> torch.Tensor:
        """Phi(X_i) of every item (items, factors) in eval mode, computed once per weight state."""
        if self.item_vectors is None:
            if self.pixels is None:
                raise RuntimeError("the item images were released before the item vectors were computed")
            was_training = self.training
            self.eval()
            with torch.no_grad():
                parts = [self.item_outputs(torch.arange(start, min(start + batch_size, self.n_items)), None)
                         for start in range(0, self.n_items, batch_size)]
            self.item_vectors = torch.cat(parts) if parts else torch.empty(0, self.cnn.output.out_features)
            if was_training:
                nn.Module.train(self, True)
        return self.item_vectors

    def release_pixels(self, batch_size: int) -> None:
        self.cached_item_vectors(batch_size)
        self.pixels = None

    def scores(self, users: torch.Tensor, batch_size: int) -> torch.Tensor:
        out = self.theta_user[users] @ self.cached_item_vectors(batch_size).T
        if self.latent_factors:
            out = out + self.gamma_user[users] @ (self.gamma_item * self.warm.unsqueeze(-1)).T
        return out

    def candidate_scores(self, users: torch.Tensor, candidates: torch.Tensor, batch_size: int) -> torch.Tensor:
        vectors = self.cached_item_vectors(batch_size)[candidates]
        out = (vectors @ self.theta_user[users].unsqueeze(-1)).squeeze(-1)
        if self.latent_factors:
            out = out + (self.item_gamma(candidates) @ self.gamma_user[users].unsqueeze(-1)).squeeze(-1)
        return out


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` whose constructor leaves the parameters uninitialised."""

    def reset_parameters(self) -> None:
        pass
