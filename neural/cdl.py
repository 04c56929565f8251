"""CDL: Collaborative Deep Learning, trained as the authors' release trains it.

Wang, Wang and Yeung, "Collaborative Deep Learning for Recommender Systems", KDD 2015
(https://doi.org/10.1145/2783258.2783273). Architecture, schedule and hyperparameters follow
the authors' Matlab + C++ release (github.com/js05212/CDL, built on deepmat and on CTR's C++
solver), not Cornac's jointly-trained variant; see :class:`CDL` for the formulas and for where
this port had to choose.

:class:`HybridFactorModel` is what CDL and CVAE (:mod:`neural.cvae`) share: the item content
(a named feature set scaled to [0, 1]), the layer-wise pre-training hook, and the epoch of the
shared loop (:mod:`neural.training`) made of the network's mini-batch updates *followed by one
closed-form ALS sweep* of U and V (run after the epoch's last batch, inside ``_epoch_batches``),
so that early stopping, checkpoints and resumption see the network and U, V together (U and V
are buffers of the network). Importing this module does not import torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from baselines.content import item_content, resolve_features
from common.errors import RecAuditError
from neural.memory import FLOAT, parameter_bytes, require_fit_memory, validation_bytes
from neural.training import NeuralRecommender, _is_number, _require, sparse_rows
from protocols.contract import ANY_FEATURES, Requirements, TrainingData
from protocols.registry import register
from protocols.space import Categorical, Real

CONTENT_SCALINGS = ("word-max", "item-max", "binary")
_ALS_CHUNK_NUMBERS = 1 << 22  # numbers per gathered chunk of the ALS sweep (baselines.ials._CHUNK_NUMBERS)


def scaled_content(model_name: str, data: TrainingData, features: str | None, scaling: str) -> sp.csr_matrix:
    """The items x words matrix of the chosen feature set, scaled to [0, 1] for the
    sigmoid-cross-entropy reconstruction.

    - ``word-max`` (the authors' ``mult_nor``): every word's column divided by its largest value
      over all items ("normalized over the maximum occurrences of each word in all articles",
      the CVAE author on the shared CiteULike data);
    - ``item-max``: every item's row divided by its largest value;
    - ``binary``: 1 where the value is nonzero.

    Features must be non-negative (a bag of words, TF-IDF, tags).
    """
    content = item_content(model_name, data, features).copy()
    content.eliminate_zeros()
    if content.nnz and content.data.min() < 0:
        raise RecAuditError(f"model {model_name!r} reads non-negative item content (a bag of words, TF-IDF or "
                            "tags) scaled to [0, 1]; the chosen feature set has negative values: pick another "
                            "with `features`")
    if scaling == "binary":
        content.data[:] = 1.0
    elif scaling == "word-max":
        peak = content.max(axis=0).toarray().ravel()
        content = content @ sp.diags(np.where(peak > 0, 1.0 / np.where(peak > 0, peak, 1.0), 0.0).astype(np.float32))
    elif scaling == "item-max":
        peak = content.max(axis=1).toarray().ravel()
        content = sp.diags(np.where(peak > 0, 1.0 / np.where(peak > 0, peak, 1.0), 0.0).astype(np.float32)) @ content
    content = sp.csr_matrix(content, dtype=np.float32)
    content.sort_indices()
    return content


@dataclass
class _Prepared:
    """Computed once per fit: the scaled content and the interactions as ALS plans."""

    content: sp.csr_matrix
    plan: object  # neural._cdl_network.ALSPlan


class HybridFactorModel(NeuralRecommender):
    """Shared by CDL and CVAE: content network + weighted MF with v_j pulled towards the
    network's code of item j; one epoch = network updates, then theta, then one ALS sweep."""

    folds_in_users: ClassVar[bool] = False
    # One CPU thread while training, as iALS: on the shared 2-core machine a CiteULike-t-sized
    # SDAE step took 50 ms on one thread and 230-250 ms on two (load ~3: every element-wise op
    # then waits for a descheduled second thread); results also stop depending on the core count.
    training_threads: ClassVar[int | None] = 1
    # Regularisation of the user factors (lambda_u) and of v_j - theta_j (lambda_v), set by subclasses.
    lambda_u: float
    lambda_v: float

    memory_fix = ("drop rare users and items in the dataset's prepare filters (the ALS plan takes about 48 bytes per "
                  "training interaction, U and V 24 bytes per user or item and factor), use a smaller vocabulary "
                  "(feature set) or first hidden width (words x hidden weights, with gradients, optimiser state and "
                  "a copy), or lower batch_size (each batch is batch_size x words dense)")

    # ----- memory ------------------------------------------------------------------------------
    def _parameter_count(self, n_words: int) -> int:
        """Parameters of the content network over ``n_words`` words."""
        raise NotImplementedError

    def fit_memory_bytes(self, train, n_words: int = 0, content_nnz: int = 0) -> int:
        """The content network's parameters (words x hidden first; values, gradients, the
        optimiser's two accumulators, the best epoch's snapshot, or pre-training's own copy of the
        layer it trains), U and V (float64: the buffers, their snapshot and the sweep's new
        ones), the ALS plan (padded interactions of both sides, index and weight: about 48 bytes
        per interaction), the scaled content (sparse copies: about 32 bytes per nonzero), plus the
        largest of one batch's dense batch_size x words tensors (logits, softplus, gradients: 4),
        the sweep's chunk (gathered factors, systems and their Cholesky factors: four float64
        arrays of the chunk's 2**22 numbers) and the validation pass (1,024 users x items in
        float64 and its float32 copy per chunk).

        ``n_words`` and ``content_nnz`` describe the feature set, 0 when not known:
        ``Recommender.fit`` passes the interactions only, and ``_fit`` checks again with the
        chosen set before anything is built.
        """
        self._check_shared_params()
        self._check_params()
        n_users, n_items = train.shape
        network = parameter_bytes(self._parameter_count(n_words))
        factors = 3 * 8 * (n_users + n_items) * int(self.factors)
        batch = 4 * FLOAT * min(self.batch_size, n_items) * n_words
        sweep = 4 * 8 * _ALS_CHUNK_NUMBERS
        scoring = validation_bytes(n_users, n_items, 3 * min(self._score_chunk(), n_users) * n_items)
        return network + factors + 48 * train.nnz + 32 * content_nnz + max(batch, sweep, scoring)

    def _fit(self, data: TrainingData) -> None:
        features = resolve_features(self.name, data, self.features)
        nnz = features.values.nnz if features.is_sparse else int(np.count_nonzero(features.values))
        require_fit_memory(self, data.interactions, self.fit_memory_bytes(data.interactions, features.dim, nnz))
        super()._fit(data)

    # ----- requirements and content ------------------------------------------------------------
    def requirements(self) -> Requirements:
        return Requirements(user_embeddings=not self.folds_in_users, item_features=self.features or ANY_FEATURES)

    def _content(self, data: TrainingData) -> sp.csr_matrix:
        self.features_key_ = resolve_features(self.name, data, self.features).key
        return scaled_content(self.name, data, self.features, self.content_scaling)

    def _check_common_params(self) -> None:
        _require(self, "factors", isinstance(self.factors, int) and self.factors >= 1, "an integer >= 1")
        hidden = self.hidden
        _require(self, "hidden", isinstance(hidden, (tuple, list)) and all(isinstance(h, int) and h >= 1
                                                                          for h in hidden),
                 "a tuple of integers >= 1 (the hidden layer widths)")
        for name in ("lambda_u", "lambda_v"):
            _require(self, name, _is_number(getattr(self, name)) and getattr(self, name) > 0, "a number > 0")
        _require(self, "a", _is_number(self.a) and self.a > 0, "a number > 0")
        _require(self, "b", _is_number(self.b) and 0 < self.b <= self.a, "a number in (0, a]")
        _require(self, "content_scaling", self.content_scaling in CONTENT_SCALINGS,
                 f"one of {', '.join(CONTENT_SCALINGS)}")
        _require(self, "corruption", _is_number(self.corruption) and 0 <= self.corruption < 1, "a number in [0, 1)")

    def _layers(self, n_words: int) -> list[int]:
        return [n_words, *(int(h) for h in self.hidden), int(self.factors)]

    # ----- hooks of the shared loop ------------------------------------------------------------
    def _training_data(self, data: TrainingData) -> _Prepared:
        from neural._cdl_network import ALSPlan

        return _Prepared(content=self._content(data), plan=ALSPlan(data.interactions, int(self.factors)))

    def _initial_network(self, data: TrainingData, generator, device):
        """Build, pre-train (layer-wise, from ``generator``), then theta_0 = code(x_j), V = theta_0, U = 0."""
        import torch

        network = self._build_network(data)
        network.reset_parameters(generator)
        network = network.to(device)
        content = self._content(data)
        self._pretrain(network, content, generator, device)
        with torch.no_grad():
            network.item_factors.copy_(network.encode_items(content, device).to(torch.float64))
            network.user_factors.zero_()
        return network

    def _pretrain(self, network, content: sp.csr_matrix, generator, device) -> None:
        raise NotImplementedError

    def _pretraining_items(self, n_items: int, fraction: float) -> np.ndarray:
        """The random ``fraction`` of the items the release pre-trains on (sorted ids)."""
        rng = np.random.default_rng([int(self.seed), 1])
        return np.sort(rng.permutation(n_items)[:int(np.ceil(fraction * n_items))])

    def _epoch_batches(self, prepared: _Prepared, rng, generator, device):
        """Mini-batches of items (a new permutation each epoch), then, after the last one has
        been applied, theta = code(x_j) of every item and one ALS sweep of U and V."""
        import torch

        order = rng.permutation(prepared.content.shape[0])
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            yield sparse_rows(prepared.content, rows, device), torch.from_numpy(rows).to(device)
        self._alternate(self.network_, prepared, device)

    def _alternate(self, network, prepared: _Prepared, device) -> None:
        import torch

        from neural._cdl_network import als_sweep

        with torch.no_grad():
            theta = network.encode_items(prepared.content, device)
            users, items = als_sweep(prepared.plan, network.item_factors, theta, float(self.a), float(self.b),
                                     float(self.lambda_u), float(self.lambda_v))
            network.user_factors.copy_(users)
            network.item_factors.copy_(items)

    # ----- scoring: u_i^T v_j ------------------------------------------------------------------
    def _network_scores(self, network, users, history, device):
        import torch

        u = network.user_factors[torch.from_numpy(users).to(device)]
        return (u @ network.item_factors.T).float().cpu().numpy()

    def _network_candidate_scores(self, network, users, history, candidates, device):
        import torch

        u = network.user_factors[torch.from_numpy(users).to(device)]
        v = network.item_factors[torch.from_numpy(candidates).to(device)]
        return (v @ u[:, :, None]).squeeze(-1).float().cpu().numpy()

    @property
    def item_factors(self) -> np.ndarray:
        """V (items x K) of the fitted model, as float64 numpy."""
        return self.network_.item_factors.detach().cpu().numpy()

    @property
    def user_factors(self) -> np.ndarray:
        """U (users x K) of the fitted model, as float64 numpy."""
        return self.network_.user_factors.detach().cpu().numpy()


# The release's pre-training settings that are not hyperparameters of the paper (example/cdl_worker.m).
_DAE_SPARSITY = 0.1            # my.sparsity.cost, target 0
_PRETRAIN_FRACTION = 0.75      # DAEs train on a random 3/4 of the items (the rest only monitored them)
_ADADELTA_RHO, _ADADELTA_EPS = 0.99, 1e-8


@register("cdl")
class CDL(HybridFactorModel):
    r"""Collaborative Deep Learning (Wang, Wang and Yeung, KDD 2015), as the authors' release trains it.

    **Model.** A stacked denoising autoencoder (SDAE) over each item's bag of words
    :math:`x_j \in [0, 1]^{W}`, with layers ``[W, *hidden, factors]`` (release: [W, 200, 50]),
    sigmoid units everywhere (bottleneck included), tied weights and one bias per layer shared
    by encoder and decoder (deepmat's SDAE, :class:`neural._cdl_network.TiedSDAE`); its code
    :math:`\theta_j = f_e(x_j)` couples to weighted matrix factorisation. Score:
    :math:`\hat r_{ij} = u_i^\top v_j`.

    **Objective** (MAP of the paper, divided by :math:`\lambda_n` on the network side as the
    release does):

    .. math::

        \min\; \tfrac12 \sum_{ij} C_{ij} (R_{ij} - u_i^\top v_j)^2 + \tfrac{\lambda_u}{2}\|U\|^2
        + \tfrac{\lambda_v}{2} \sum_j \|v_j - f_e(\tilde x_j)\|^2 + \lambda_n\,\mathrm{CE}(x_j, f(\tilde x_j))
        + \tfrac{\lambda_w}{2}\|W\|^2

    with :math:`C_{ij} = a` (1) observed, :math:`b` (0.01) unobserved.

    **Training** (release schedule, every step explicit):

    1. *Layer-wise DAE pre-training* (``pretrain_epochs`` per layer, on a random 3/4 of the items):
       tied DAE ``h = sigmoid(x~ W + c)``, reconstruction ``sigmoid(h~ W^T + b)``; masking noise
       ``corruption`` on the input, dropout ``dropout`` on h, cross-entropy + deepmat's sparsity
       term (0.1 x sum_k softplus(z_k), target 0), weight decay :math:`\lambda_w`, the release's
       Adadelta (:class:`neural._cdl_network.DeepmatAdadelta`, rho 0.99, eps 1e-8), batch 128;
       visible bias started at the clipped log-odds of the word means. Layer l+1 trains on the
       clean codes of layer l.
    2. theta_0 = f_e(x_j) for every item; V = theta_0, U = 0.
    3. ``epochs`` epochs of: (a) one pass of SDAE updates over all items in mini-batches,
       per batch the loss :math:`\tfrac1B\sum_j[\mathrm{CE}(x_j, \hat x_j) + \tfrac{\lambda_v}{2\lambda_n}
       \|f_e(\tilde x_j) - v_j\|^2]` (masking noise, dropout 0.1 — see
       :meth:`~neural._cdl_network.TiedSDAE.training_pass`), Adadelta with weight decay
       :math:`\lambda_w` on every weight and bias; (b) theta_j = f_e(x_j) (clean, no dropout);
       (c) ONE closed-form ALS sweep of U then V (:func:`neural._cdl_network.als_sweep`):
       :math:`u_i = (b V_W^\top V_W + (a-b) V_i^\top V_i + \lambda_u I)^{-1} a V_i^\top \mathbf 1`,
       :math:`v_j = (b U^\top U + (a-b) U_j^\top U_j + \lambda_v I)^{-1}(a U_j^\top \mathbf 1 + \lambda_v \theta_j)`.
       Cold items (no training interaction) get :math:`v_j = (bU^\top U + \lambda_v I)^{-1}\lambda_v\theta_j`,
       i.e. they are scored through their encoded content.

    Validation (when the data has it) ranks after step (c); the shared loop keeps the best
    epoch's network, U and V.

    **Choices where the release leaves room** (documented deviations):

    - input scaling ``content_scaling="word-max"``: the release's ``mult_nor.mat`` divides every
      word's counts by that word's maximum over the articles; here it is applied to whichever
      feature set is read (default: the dataset's text, ``bow-tfidf`` first);
    - dropout is inverted (scaled by 1/(1-p) in training, identity at scoring); the release
      drops without scaling and rescales pre-activations at scoring;
    - the SDAE's visible bias starts from the first DAE's trained visible bias (the release
      leaves it at zero after pre-training, since its shared-bias layout has no slot for it);
    - mini-batches are a new random permutation every epoch (the release fixes one order);
    - one sweep per epoch throughout (the release lets CTR's solver run up to 100 sweeps after
      the very last epoch);
    - masks and dropout are drawn per entry (Bernoulli) from the seeded generators.

    Users need training interactions (``folds_in_users = False``).

    Parameters
    ----------
    factors : int
        K, the bottleneck width and the factor dimension (50).
    hidden : tuple of int
        Widths of the SDAE's hidden encoder layers before the bottleneck ((200,)).
    lambda_u, lambda_v, lambda_n, weight_decay : float
        :math:`\lambda_u` (1), :math:`\lambda_v` (10), :math:`\lambda_n` (1000), :math:`\lambda_w` (1e-4).
    a, b : float
        Confidence of observed (1) and unobserved (0.01) entries.
    corruption : float
        Masking-noise rate of the input (0.3).
    dropout : float
        Dropout rate of the hidden units (0.1).
    pretrain_epochs : int
        DAE epochs per layer (200, the TOIS re-run; 0 skips pre-training).
    epochs : int
        SDAE epochs, each followed by one ALS sweep (200, the TOIS re-run).
    batch_size : int
        Items per SDAE update (128).
    lr : float
        Multiplier of the Adadelta step (1.0 = the release, whose Adadelta has no learning rate).
    content_scaling : {"word-max", "item-max", "binary"}
        How the content is brought to [0, 1] (see above).
    features : str or None
        The item feature set read (None: ``bow-tfidf``, ``tags``, ``genres``, ``bow``, first present).
    seed, device, validate_every, patience, checkpoint_dir, progress :
        The shared training loop's settings (:mod:`neural.training`).
    """

    conformance_params: ClassVar[dict] = {"factors": 4, "hidden": (8,), "pretrain_epochs": 1, "epochs": 2,
                                          "batch_size": 16, "device": "cpu"}
    search_space: ClassVar[dict] = {
        "factors": Categorical((25, 50, 100)),
        "lambda_u": Real(0.01, 100.0, log=True),
        "lambda_v": Real(0.1, 1000.0, log=True),
        "lambda_n": Real(10.0, 1e5, log=True),
        "corruption": Real(0.0, 0.6),
        "lr": Real(0.1, 10.0, log=True),
    }

    def __init__(self, factors: int = 50, hidden: tuple = (200,), lambda_u: float = 1.0, lambda_v: float = 10.0,
                 lambda_n: float = 1000.0, weight_decay: float = 1e-4, a: float = 1.0, b: float = 0.01,
                 corruption: float = 0.3, dropout: float = 0.1, pretrain_epochs: int = 200, epochs: int = 200,
                 batch_size: int = 128, lr: float = 1.0, content_scaling: str = "word-max",
                 features: str | None = None, seed: int = 0, device: str = "auto", validate_every: int = 1,
                 patience: int | None = None, checkpoint_dir: str | None = None, progress: bool = False):
        self.factors = factors
        self.hidden = hidden
        self.lambda_u = lambda_u
        self.lambda_v = lambda_v
        self.lambda_n = lambda_n
        self.weight_decay = weight_decay
        self.a = a
        self.b = b
        self.corruption = corruption
        self.dropout = dropout
        self.pretrain_epochs = pretrain_epochs
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
        _require(self, "lambda_n", _is_number(self.lambda_n) and self.lambda_n > 0, "a number > 0")
        _require(self, "weight_decay", _is_number(self.weight_decay) and self.weight_decay >= 0, "a number >= 0")
        _require(self, "dropout", _is_number(self.dropout) and 0 <= self.dropout < 1, "a number in [0, 1)")
        _require(self, "pretrain_epochs", isinstance(self.pretrain_epochs, int) and self.pretrain_epochs >= 0,
                 "an integer >= 0")

    def _parameter_count(self, n_words: int) -> int:
        # tied weights [W, *hidden, K] and one bias per layer
        layers = self._layers(n_words)
        return sum(a * b for a, b in zip(layers[:-1], layers[1:])) + sum(layers)

    def _build_network(self, data):
        from neural._cdl_network import CDLNetwork

        content = resolve_features(self.name, data, self.features)
        return CDLNetwork(data.n_users, data.n_items, self._layers(content.dim))

    def _make_optimizer(self, network):
        from neural._cdl_network import DeepmatAdadelta

        return DeepmatAdadelta(network.parameters(), lr=float(self.lr), rho=_ADADELTA_RHO, eps=_ADADELTA_EPS,
                               weight_decay=float(self.weight_decay))

    def _pretrain(self, network, content, generator, device) -> None:
        import torch

        from neural._cdl_network import (DeepmatAdadelta, Layer, column_mean, hidden_of, log_odds_bias,
                                         noise_generator, train_dae_layer)

        sdae = network.sdae
        items = self._pretraining_items(content.shape[0], _PRETRAIN_FRACTION)
        if self.pretrain_epochs == 0:  # the release without pre-training: visible bias from the word means
            with torch.no_grad():
                sdae.biases[0].copy_(torch.from_numpy(log_odds_bias(column_mean(content[items]))))
            return
        noise = noise_generator(generator, device)
        rng = np.random.default_rng([int(self.seed), 2])
        layer = Layer(content[items], device)
        for level in range(sdae.depth):
            weight, bias, visible = train_dae_layer(
                layer, sdae.layers[level + 1], epochs=int(self.pretrain_epochs), batch_size=int(self.batch_size),
                corruption=float(self.corruption), rate=float(self.dropout), sparsity=_DAE_SPARSITY,
                make_optimizer=lambda params: DeepmatAdadelta(params, lr=float(self.lr), rho=_ADADELTA_RHO,
                                                              eps=_ADADELTA_EPS,
                                                              weight_decay=float(self.weight_decay)),
                visible_bias="log-odds", init_generator=generator, generator=noise, rng=rng,
                progress=self.progress, label=f"{self.name} DAE {level + 1}")
            with torch.no_grad():
                sdae.weights[level].copy_(weight)
                sdae.biases[level + 1].copy_(bias)
                if level == 0:
                    sdae.biases[0].copy_(visible)
            if level + 1 < sdae.depth:
                layer = hidden_of(layer, weight, bias)

    def _batch_loss(self, network, batch, generator, step):
        from neural._cdl_network import bernoulli_cross_entropy, mask_entries

        rows, items = batch
        corrupted = mask_entries(rows.values, float(self.corruption), generator)
        logits, code = network.sdae.training_pass(rows, corrupted, float(self.dropout), generator)
        v = network.item_factors[items].to(code.dtype)
        coupling = 0.5 * (code - v).pow(2).sum(dim=1).mean()
        return bernoulli_cross_entropy(logits, rows) + (float(self.lambda_v) / float(self.lambda_n)) * coupling
