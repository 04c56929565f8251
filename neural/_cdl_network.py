"""The torch parts of CDL (and what CVAE shares with it): imported only when a model is fitted.

- :class:`TiedSDAE`: the stacked denoising autoencoder of deepmat, the toolbox the CDL release
  is built on: tied weights (the decoder uses the encoder's matrices transposed) and one bias
  vector per layer, shared by the encoder (which computes that layer) and the decoder (which
  reconstructs it); sigmoid units everywhere, the bottleneck included;
- :func:`train_dae_layer`: one layer of the layer-wise pre-training (a tied DAE);
- :class:`DeepmatAdadelta`: the Adadelta variant of deepmat (the release's optimiser);
- :func:`als_sweep`: one sweep of the closed-form weighted-MF updates of U then V, batched;
- :func:`bernoulli_cross_entropy`: the reconstruction loss over every word.

Every parameter is created uninitialised and initialised from an explicit ``torch.Generator``;
noise and dropout draw from a generator too (never from torch's global one).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn
from torch.nn import functional as F

from baselines.ials import _PaddedRows, _spd_solve
from neural.training import SparseRows, _progress_bar, dropout, sparse_rows

# Items encoded per forward pass when computing theta for every item.
ENCODE_CHUNK = 4096
# Entries per slice of the CPU optimiser update (a few slices of it fit in a core's L2 cache).
_UPDATE_SLICE = 1 << 16


# ----- losses and small helpers ----------------------------------------------------------------
def bernoulli_cross_entropy(logits: torch.Tensor, target) -> torch.Tensor:
    r"""Mean over the batch rows of :math:`\sum_w [\mathrm{softplus}(a_w) - x_w a_w]`, the cross-entropy
    :math:`-\sum_w [x_w \log\sigma(a_w) + (1 - x_w)\log(1 - \sigma(a_w))]` of targets
    :math:`x \in [0, 1]` under sigmoid outputs, summed over *every* column (zeros included).

    ``target`` is a :class:`~neural.training.SparseRows` (only its nonzeros enter the second term)
    or a dense tensor shaped like ``logits``.
    """
    if isinstance(target, SparseRows):
        return _SparseTargetCrossEntropy.apply(logits, target.row_ids, target.indices, target.values)
    return (F.softplus(logits) - target * logits).sum() / logits.shape[0]


class _SparseTargetCrossEntropy(torch.autograd.Function):
    """:func:`bernoulli_cross_entropy` for sparse targets with a hand-written backward,
    ``(sigmoid(a) - x) / B``, formed in one buffer (autograd would add three dense ones)."""

    @staticmethod
    def forward(ctx, logits, row_ids, indices, values):
        ctx.save_for_backward(logits, row_ids, indices, values)
        picked = logits[row_ids, indices]
        return (F.softplus(logits).sum() - (picked * values).sum()) / logits.shape[0]

    @staticmethod
    def backward(ctx, grad):
        logits, row_ids, indices, values = ctx.saved_tensors
        out = torch.sigmoid(logits)
        out.index_put_((row_ids, indices), -values, accumulate=True)
        return out.mul_(grad / logits.shape[0]), None, None, None


def sparse_linear(rows: SparseRows, values: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``x W + b`` for sparse rows ``x`` (entries ``values`` at ``rows.indices``), costing only the nonzeros."""
    # sparse=True: the gradient reaches only the rows of the words present (dense when the
    # weight is also used densely, as the tied decoder does), saving a dense zero-fill and add.
    return F.embedding_bag(rows.indices, weight, rows.offsets, mode="sum", per_sample_weights=values,
                           sparse=True) + bias


def mask_entries(values: torch.Tensor, rate: float, generator: torch.Generator) -> torch.Tensor:
    """Masking noise: each entry is set to zero with probability ``rate`` (zeros stay zero, so
    for sparse input only the nonzeros need a draw)."""
    if rate <= 0:
        return values
    keep = torch.rand(values.shape, generator=generator, device=values.device) >= rate
    return values * keep


def log_odds_bias(mean: np.ndarray) -> np.ndarray:
    """deepmat's visible bias for binary units: log(m / (1 - m)) of the column means, clipped to [-4, 4]."""
    with np.errstate(divide="ignore"):
        odds = np.log(mean) - np.log1p(-np.minimum(mean, 1.0))
    return np.clip(np.nan_to_num(odds, nan=-4.0, neginf=-4.0, posinf=4.0), -4.0, 4.0).astype(np.float32)


def column_mean(matrix) -> np.ndarray:
    if sp.issparse(matrix):
        return np.asarray(matrix.mean(axis=0)).ravel()
    return matrix.mean(dim=0).double().cpu().numpy()


def noise_generator(generator: torch.Generator, device) -> torch.Generator:
    """A generator on ``device`` seeded by a draw from ``generator`` (the loop's CPU init generator)."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return torch.Generator(device=device).manual_seed(seed)


class DeepmatAdadelta(torch.optim.Optimizer):
    r"""Adadelta as the CDL release (deepmat's ``sdae.m``/``dae.m``) applies it, per parameter:

    .. math::

        s \leftarrow \rho_t s + (1 - \rho_t) g^2,\quad
        \delta = (g + \lambda_w \theta)\,\sqrt{d + \epsilon}\,/\,\sqrt{s + \epsilon},\quad
        \theta \leftarrow \theta - \eta\,\delta,\quad
        d \leftarrow \rho_t d + (1 - \rho_t)\,\delta^2

    with :math:`\rho_t = 0` at the first update and :math:`\rho` after. Unlike
    ``torch.optim.Adadelta``, the weight decay enters the step but not the squared-gradient
    average, and the first update fills the averages instead of decaying from zero. deepmat
    has no learning rate (:math:`\eta = 1`); ``lr`` scales the step for tuning.
    """

    def __init__(self, params, lr: float = 1.0, rho: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(params, {"lr": lr, "rho": rho, "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102 - documented on the class
        for group in self.param_groups:
            for parameter in group["params"]:
                if parameter.grad is None:
                    continue
                state = self.state[parameter]
                if not state:
                    state["step"] = 0
                    state["square_avg"] = torch.zeros_like(parameter)
                    state["acc_delta"] = torch.zeros_like(parameter)
                rho = group["rho"] if state["step"] > 0 else 0.0
                state["step"] += 1
                grad = parameter.grad.to_dense() if parameter.grad.is_sparse else parameter.grad
                flat = [t.view(-1) for t in (parameter, grad, state["square_avg"], state["acc_delta"])]
                # On one CPU thread the update runs over cache-sized slices, so that its dozen
                # element-wise passes read memory about once (faster on the 4M-entry first layer);
                # with several threads (each small op would pay a parallel region) or on a GPU, in one go.
                sliced = not parameter.is_cuda and torch.get_num_threads() == 1
                size = min(flat[0].numel(), _UPDATE_SLICE) if sliced else flat[0].numel()
                scratch = [torch.empty(size, dtype=parameter.dtype, device=parameter.device) for _ in range(2)]
                for start in range(0, flat[0].numel(), size):
                    self._update(*(t[start:start + size] for t in flat), rho, group,
                                 *(t[:min(size, flat[0].numel() - start)] for t in scratch))

    @staticmethod
    def _update(parameter, grad, square_avg, acc_delta, rho, group, ratio, delta) -> None:
        eps, decay = group["eps"], group["weight_decay"]
        square_avg.mul_(rho).addcmul_(grad, grad, value=1 - rho)
        torch.add(acc_delta, eps, out=ratio)
        torch.add(square_avg, eps, out=delta)
        ratio.div_(delta).sqrt_()
        torch.mul(ratio, grad, out=delta)
        if decay:
            delta.addcmul_(ratio, parameter, value=decay)
        parameter.sub_(delta, alpha=group["lr"])
        acc_delta.mul_(rho).addcmul_(delta, delta, value=1 - rho)


# ----- the stacked denoising autoencoder -------------------------------------------------------
class TiedSDAE(nn.Module):
    """deepmat's SDAE over layers ``[n_words, h_1, ..., K]`` (``weights[l]``: layers[l] x layers[l+1];
    ``biases[l]``: layers[l], the bias of layer l in the encoder and in the decoder's reconstruction).

    Encoder: ``h_0 = x``, ``h_{l+1} = sigmoid(h_l W_l + b_{l+1})``; decoder:
    ``r_L = h_L``, ``r_l = sigmoid(r_{l+1} W_l^T + b_l)`` with ``r_0``'s pre-activation the
    reconstruction logits.
    """

    def __init__(self, layers: list[int]):
        super().__init__()
        self.layers = [int(n) for n in layers]
        self.weights = nn.ParameterList(nn.Parameter(torch.empty(a, b)) for a, b in zip(self.layers[:-1],
                                                                                         self.layers[1:]))
        self.biases = nn.ParameterList(nn.Parameter(torch.empty(n)) for n in self.layers)

    def reset_parameters(self, generator: torch.Generator) -> None:
        """deepmat's initialisation: W ~ U(-r, r), r = sqrt(6 / (fan_in + fan_out)); zero biases."""
        for weight in self.weights:
            nn.init.xavier_uniform_(weight, generator=generator)
        for bias in self.biases:
            nn.init.zeros_(bias)

    @property
    def depth(self) -> int:
        return len(self.weights)

    def _up(self, level: int, h: torch.Tensor) -> torch.Tensor:
        """sigmoid(h W_level + b_{level+1}) for a dense h (levels >= 1)."""
        return torch.sigmoid(torch.addmm(self.biases[level + 1], h, self.weights[level]))

    def encode(self, rows: SparseRows, values: torch.Tensor | None = None) -> torch.Tensor:
        """The bottleneck code of clean (or given) input, without noise or dropout."""
        h = torch.sigmoid(sparse_linear(rows, rows.values if values is None else values, self.weights[0],
                                        self.biases[1]))
        for level in range(1, self.depth):
            h = self._up(level, h)
        return h

    def training_pass(self, rows: SparseRows, corrupted: torch.Tensor, rate: float, generator: torch.Generator):
        """The reconstruction logits and the bottleneck code of the release's training step.

        As in the release, two passes share the corrupted input: the reconstruction pass drops
        units (inverted dropout, ``rate``) after every encoder layer, the bottleneck included,
        and after every hidden decoder layer; the pass whose code is pulled towards v_j drops
        the hidden encoder layers only (with masks of its own). The first layer's activation
        is computed once for both.
        """
        first = torch.sigmoid(sparse_linear(rows, corrupted, self.weights[0], self.biases[1]))
        full, half = dropout(first, rate, generator), first
        if self.depth > 1:
            half = dropout(first, rate, generator)
        for level in range(1, self.depth):
            full = dropout(self._up(level, full), rate, generator)
            half = self._up(level, half)
            if level < self.depth - 1:
                half = dropout(half, rate, generator)
        r = full
        for level in range(self.depth - 1, 0, -1):
            r = dropout(torch.sigmoid(torch.addmm(self.biases[level], r, self.weights[level].T)), rate, generator)
        logits = torch.addmm(self.biases[0], r, self.weights[0].T)
        return logits, half


class CollaborativeFactors(nn.Module):
    """U (users x K) and V (items x K) as float64 buffers, so that the loop's snapshots and
    checkpoints carry them with the network's weights."""

    def _init_factors(self, n_users: int, n_items: int, factors: int) -> None:
        self.register_buffer("user_factors", torch.zeros(n_users, factors, dtype=torch.float64))
        self.register_buffer("item_factors", torch.zeros(n_items, factors, dtype=torch.float64))

    def _reset_factors(self) -> None:
        self.user_factors.zero_()
        self.item_factors.zero_()


class CDLNetwork(CollaborativeFactors):
    def __init__(self, n_users: int, n_items: int, layers: list[int]):
        super().__init__()
        self.sdae = TiedSDAE(layers)
        self._init_factors(n_users, n_items, layers[-1])

    def reset_parameters(self, generator: torch.Generator) -> None:
        self.sdae.reset_parameters(generator)
        self._reset_factors()

    def encode_items(self, content: sp.csr_matrix, device) -> torch.Tensor:
        """theta: the clean bottleneck code of every item (no noise, no dropout)."""
        return encode_in_chunks(lambda rows: self.sdae.encode(rows), content, device)


@torch.no_grad()
def encode_in_chunks(encode: Callable, content: sp.csr_matrix, device) -> torch.Tensor:
    """``encode`` of every row of ``content``, a chunk of rows at a time (no gradient)."""
    parts = [encode(sparse_rows(content, np.arange(start, min(start + ENCODE_CHUNK, content.shape[0])), device))
             for start in range(0, content.shape[0], ENCODE_CHUNK)]
    return torch.cat(parts)


# ----- layer-wise pre-training -----------------------------------------------------------------
class Layer:
    """The input of one pre-training layer: sparse rows (the bag of words) or a dense tensor."""

    def __init__(self, data, device):
        self.data, self.device = data, device
        self.sparse = sp.issparse(data)

    def __len__(self) -> int:
        return self.data.shape[0]

    @property
    def width(self) -> int:
        return self.data.shape[1]

    def batch(self, rows: np.ndarray):
        if self.sparse:
            return sparse_rows(self.data, rows, self.device)
        return self.data[torch.from_numpy(rows).to(self.device)]


def dae_pre_activation(weight, bias, batch, corruption: float, generator) -> torch.Tensor:
    """``x~ W + c`` for masked input ``x~`` (sparse rows or a dense batch)."""
    if isinstance(batch, SparseRows):
        return sparse_linear(batch, mask_entries(batch.values, corruption, generator), weight, bias)
    return torch.addmm(bias, mask_entries(batch, corruption, generator), weight)


def train_dae_layer(layer: Layer, n_hidden: int, *, epochs: int, batch_size: int, corruption: float,
                    rate: float, sparsity: float, make_optimizer: Callable, visible_bias: str,
                    init_generator: torch.Generator, generator: torch.Generator, rng: np.random.Generator,
                    progress: bool = False, label: str = "dae"):
    """Train one tied denoising autoencoder ``x -> h = sigmoid(x~ W + c) -> sigmoid(h~ W^T + b)``.

    Loss per batch: the cross-entropy of the clean input (:func:`bernoulli_cross_entropy`) plus
    ``sparsity`` times the mean over rows of ``sum_k keep_k softplus(z_k)`` (deepmat's sparsity
    term with target 0, whose gradient on the pre-activation z is ``sparsity * h``), where
    ``x~`` is masked with probability ``corruption`` and ``h~`` is ``h`` after inverted dropout
    (``rate``, mask ``keep``). ``visible_bias``: "log-odds" (deepmat: the clipped log-odds of
    the column means) or "zeros". Batches: a new permutation of the rows every epoch.

    Returns ``(W, c, b)`` (tensors on the layer's device, detached).
    """
    device = layer.device
    weight = torch.empty(layer.width, n_hidden)
    nn.init.xavier_uniform_(weight, generator=init_generator)
    bias = torch.zeros(n_hidden)
    visible = torch.from_numpy(log_odds_bias(column_mean(layer.data))) if visible_bias == "log-odds" \
        else torch.zeros(layer.width)
    params = [nn.Parameter(t.to(device)) for t in (weight, bias, visible)]
    weight, bias, visible = params
    optimizer = make_optimizer(params)
    bar = _progress_bar(progress, epochs, 0, label)
    try:
        for _ in range(epochs):
            order = rng.permutation(len(layer))
            for start in range(0, len(order), batch_size):
                batch = layer.batch(order[start:start + batch_size])
                z = dae_pre_activation(weight, bias, batch, corruption, generator)
                h = torch.sigmoid(z)
                keep = torch.rand(h.shape, generator=generator, device=device) >= rate if rate > 0 else None
                dropped = h if keep is None else h * keep / (1.0 - rate)
                loss = bernoulli_cross_entropy(torch.addmm(visible, dropped, weight.T), batch)
                if sparsity > 0:  # on the units the reconstruction kept
                    penalty = F.softplus(z) if keep is None else F.softplus(z) * keep
                    loss = loss + sparsity * penalty.sum(dim=1).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            bar.update(1)
    finally:
        bar.close()
    return weight.detach(), bias.detach(), visible.detach()


def hidden_of(layer: Layer, weight: torch.Tensor, bias: torch.Tensor) -> Layer:
    """The next layer's input: sigmoid(x W + c) of the clean rows, as a dense tensor."""
    with torch.no_grad():
        if layer.sparse:
            out = encode_in_chunks(lambda rows: torch.sigmoid(sparse_linear(rows, rows.values, weight, bias)),
                                   layer.data, layer.device)
        else:
            out = torch.sigmoid(torch.addmm(bias, layer.data, weight))
    return Layer(out, layer.device)


# ----- the closed-form weighted-MF sweep -------------------------------------------------------
class ALSPlan:
    """The interactions (binarised) as padded rows for the batched solves of both sides."""

    def __init__(self, interactions: sp.csr_matrix, factors: int):
        matrix = sp.csr_matrix(interactions, dtype=np.float32, copy=True)
        matrix.eliminate_zeros()
        matrix.data[:] = 1.0
        self.shape = matrix.shape
        self.users = _PaddedRows.build(matrix, 1.0, factors)
        self.items = _PaddedRows.build(matrix.T.tocsr(), 1.0, factors)
        self.warm_items = np.diff(matrix.tocsc().indptr) > 0
        self.trained_users = np.diff(matrix.indptr) > 0


def _solve_rows(plan: _PaddedRows, fixed: torch.Tensor, system: torch.Tensor, extra: float, scale: float,
                prior: torch.Tensor | None, n_rows: int) -> torch.Tensor:
    """Row r solves ``(system + extra * sum_{c in r} f_c f_c^T) x_r = scale * sum_{c in r} f_c (+ prior_r)``."""
    device, dtype = fixed.device, fixed.dtype
    padded = torch.cat([fixed, torch.zeros((1, fixed.shape[1]), dtype=dtype, device=device)])
    out = torch.empty((n_rows, fixed.shape[1]), dtype=dtype, device=device)
    for rows, index in zip(plan.rows, plan.index):
        rows_t = torch.from_numpy(rows).to(device)
        gathered = padded[torch.from_numpy(index).to(device)]  # rows x length x K (padding: zero rows)
        matrices = torch.baddbmm(system.expand(len(rows), -1, -1), gathered.transpose(1, 2), gathered, alpha=extra)
        rhs = scale * gathered.sum(dim=1)
        if prior is not None:
            rhs = rhs + prior[rows_t]
        out[rows_t] = _spd_solve(matrices, rhs)
    return out


def als_sweep(plan: ALSPlan, item_factors: torch.Tensor, theta: torch.Tensor, a: float, b: float,
              lambda_u: float, lambda_v: float) -> tuple[torch.Tensor, torch.Tensor]:
    r"""One sweep of the closed-form updates of U, then V (CTR's, as CDL and CVAE call them).

    With :math:`C_{ij} = a` for observed and :math:`b` for unobserved entries:

    .. math::

        u_i = \big(b\,V_W^\top V_W + (a - b)\textstyle\sum_{j \in R_i} v_j v_j^\top + \lambda_u I\big)^{-1}
              a \textstyle\sum_{j \in R_i} v_j

        v_j = \big(b\,U^\top U + (a - b)\textstyle\sum_{i \in R_j} u_i u_i^\top + \lambda_v I\big)^{-1}
              \big(a \textstyle\sum_{i \in R_j} u_i + \lambda_v \theta_j\big)

    where :math:`V_W` holds the items with at least one training interaction (CTR builds the
    user-side Gram matrix from those only), :math:`u_i = 0` for a user without interactions and
    a cold item gets :math:`v_j = (b U^\top U + \lambda_v I)^{-1} \lambda_v \theta_j`.
    Solved in float64 on the factors' device, all rows of a chunk at once (batched Cholesky).
    Returns (U, V).
    """
    device = item_factors.device
    k = item_factors.shape[1]
    eye = torch.eye(k, dtype=torch.float64, device=device)
    items = item_factors.to(torch.float64)
    warm = items[torch.from_numpy(plan.warm_items).to(device)]
    users = _solve_rows(plan.users, items, b * (warm.T @ warm) + lambda_u * eye, a - b, a, None, plan.shape[0])
    items = _solve_rows(plan.items, users, b * (users.T @ users) + lambda_v * eye, a - b, a,
                        lambda_v * theta.to(torch.float64), plan.shape[1])
    return users, items

