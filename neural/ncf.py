"""Neural Collaborative Filtering: GMF, MLP and NeuMF.

He, Liao, Zhang, Nie, Hu and Chua, "Neural Collaborative Filtering", WWW 2017
(https://doi.org/10.1145/3038912.3052569), checked against the authors' Keras code
(github.com/hexiangnan/neural_collaborative_filtering).

Shared by the three models:

- **Loss**: pointwise log loss (binary cross-entropy) over every training interaction
  (label 1) and ``negatives`` items per interaction drawn uniformly from the user's
  non-interacted items (label 0), resampled every epoch and shuffled together (paper,
  Sec. 3.1.1). Negatives are exact: never a training positive (the authors' code meant to
  reject positives but its ``and`` test never does).
- **Optimiser**: Adam, lr 0.001, batches of 256 (paper Sec. 4.1; README commands).
- **Initialisation**: embeddings N(0, 0.01^2), hidden layers Glorot-uniform, output layer
  LeCun-uniform, zero biases (authors' code).
- **Scores** are the logits h^T phi(u, i) + b (the sigmoid is monotone, and logits do not
  saturate into ties). Scoring all items uses the linearity of each model's first layer and
  never forms per-pair MLP inputs for the first layer; candidate scoring scores only the
  candidates.
- **Sizes**: ``factors`` is the paper's number of predictive factors: GMF's embedding size
  and the MLP tower's last layer. The MLP tower has ``mlp_layers`` ReLU layers of halving
  sizes, so ``factors=8, mlp_layers=3`` is the paper's [64, 32, 16, 8] (64 the concatenated
  user and item embeddings, 32 each).

Users need embeddings: ``folds_in_users = False``.
"""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from neural.memory import FLOAT, parameter_bytes, sampler_bytes, validation_bytes
from neural.sampling import NegativeSampler
from neural.training import NeuralRecommender, _require
from protocols.registry import register
from protocols.space import Categorical, Integer, Real

PAIR_BUDGET = 2**19  # user-item pairs per scoring chunk (bounds MLP activations to ~64 MB)


class _NCFBase(NeuralRecommender):
    folds_in_users: ClassVar[bool] = False
    training_threads: ClassVar[int | None] = 1
    search_space: ClassVar[dict] = {
        "factors": Categorical((8, 16, 32, 64)),
        "lr": Real(1e-4, 1e-2, log=True),
        "negatives": Integer(1, 10),
    }

    memory_fix = ("lower negatives (each epoch holds training interactions x (1 + negatives) instances, 20 "
                  "bytes each and three times that while they are drawn) or factors (users and items x "
                  "embedding width, with gradients and Adam's two moments), or drop rare users and items in "
                  "the dataset's prepare filters")

    def _towers(self, n_users: int, n_items: int) -> list:
        raise NotImplementedError

    def _tower_sizes(self) -> tuple[int, list[int]]:
        """(embedding width per user and per item, widths of the MLP tower's layers or [])."""
        raise NotImplementedError

    def _parameter_copies_bytes(self, n_parameters: int) -> int:
        return parameter_bytes(n_parameters, self._optimizer_settings()[0])

    def fit_memory_bytes(self, train) -> int:
        """Parameters ((users + items) x embedding width and the MLP layers; values, gradients,
        the optimiser's state, the best epoch's snapshot), the negative sampler and one epoch's
        instances (interactions x (1 + negatives): user, item int64 and label float32; the last
        batch's views keep them through validation), plus the larger of the drawing's
        temporaries (about twice the instances again) and the validation pass (evaluation's
        block of scores and the all-items logits of a chunk of 2**19 user-item pairs: GMF's
        products, the MLP tower's first-layer activations twice)."""
        self._check_shared_params()
        self._check_params()
        n_users, n_items = train.shape
        width, mlp = self._tower_sizes()
        n_parameters = (n_users + n_items + 1) * width + sum(a * b + b for a, b in zip(mlp[:-1], mlp[1:])) + 1
        instances = train.nnz * (1 + self.negatives)
        chunk = max(1, PAIR_BUDGET // max(n_items, 1)) * n_items  # pairs scored per chunk
        pair_floats = 1 + (2 * mlp[1] if mlp else 0)
        batch = 10 * FLOAT * self.batch_size * (2 * width + sum(mlp[1:]))
        return (self._parameter_copies_bytes(n_parameters) + sampler_bytes(train.nnz) + 20 * instances
                + max(44 * instances + batch, validation_bytes(n_users, n_items, chunk * pair_floats)))

    def _mlp_sizes(self) -> tuple[int, ...]:
        return tuple(self.factors * 2 ** (self.mlp_layers - k) for k in range(self.mlp_layers + 1))

    def _build_network(self, data):
        from neural._networks import NCFNet

        train = data.interactions
        return NCFNet(self._towers(*train.shape))

    def _check_params(self) -> None:
        _require(self, "factors", isinstance(self.factors, int) and self.factors >= 1, "an integer >= 1")
        _require(self, "negatives", isinstance(self.negatives, int) and self.negatives >= 0, "an integer >= 0")
        if hasattr(self, "mlp_layers"):
            _require(self, "mlp_layers", isinstance(self.mlp_layers, int) and self.mlp_layers >= 1,
                     "an integer >= 1")

    def _training_data(self, data):
        train = data.interactions
        return NegativeSampler(train)

    def _epoch_batches(self, sampler: NegativeSampler, rng, generator, device):
        import torch

        users, items, labels = sampler.pointwise_instances(self.negatives, rng)
        users = torch.from_numpy(users).to(device)
        items = torch.from_numpy(items).to(device)
        labels = torch.from_numpy(labels).to(device)
        for start in range(0, len(users), self.batch_size):
            part = slice(start, start + self.batch_size)
            yield users[part], items[part], labels[part]

    def _batch_loss(self, network, batch, generator, step):
        from torch.nn import functional as F

        users, items, labels = batch
        return F.binary_cross_entropy_with_logits(network(users, items), labels)

    def _score_chunk(self) -> int:
        return max(1, PAIR_BUDGET // self.n_items_)

    def _network_scores(self, network, users, history, device):
        import torch

        return network.all_items_logits(torch.from_numpy(users).to(device)).cpu().numpy()

    def _network_candidate_scores(self, network, users, history, candidates, device):
        import torch

        pair_users = torch.from_numpy(np.repeat(users, candidates.shape[1])).to(device)
        pair_items = torch.from_numpy(candidates.reshape(-1)).to(device)
        return network(pair_users, pair_items).view(candidates.shape).cpu().numpy()


@register("gmf")
class GMF(_NCFBase):
    """Generalized Matrix Factorization (He et al., WWW 2017, Sec. 3.2).

    Architecture: y(u, i) = sigma(h^T (p_u * q_i) + b), embeddings p_u, q_i of size
    ``factors``; trained with log loss on sampled negatives (see the module docstring).

    Parameters
    ----------
    factors : int
        Embedding size (predictive factors), 8 in the paper's main runs.
    negatives : int
        Negatives sampled per training interaction, every epoch (4).
    epochs, batch_size, lr, optimizer :
        Training length and Adam settings (20 epochs in the authors' README; 256; 0.001).
    seed : int
        Seeds initialisation, sampling and shuffling.
    device, validate_every, patience, checkpoint_dir, progress :
        The shared training loop's settings (:mod:`neural.training`).
    """

    conformance_params: ClassVar[dict] = {"factors": 4, "epochs": 2, "batch_size": 64, "device": "cpu"}

    def __init__(self, factors: int = 8, negatives: int = 4, epochs: int = 20, batch_size: int = 256,
                 lr: float = 0.001, optimizer: str = "adam", seed: int = 0, device: str = "auto",
                 validate_every: int = 1, patience: int | None = None, checkpoint_dir: str | None = None,
                 progress: bool = False):
        self.factors = factors
        self.negatives = negatives
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.seed = seed
        self.device = device
        self.validate_every = validate_every
        self.patience = patience
        self.checkpoint_dir = checkpoint_dir
        self.progress = progress

    def _towers(self, n_users, n_items):
        from neural._networks import GMFTower

        return [GMFTower(n_users, n_items, self.factors)]

    def _tower_sizes(self):
        return self.factors, []


@register("mlp")
class MLP(_NCFBase):
    """Multi-Layer Perceptron recommender (He et al., WWW 2017, Sec. 3.3).

    Architecture: y(u, i) = sigma(h^T a_L(...a_1([p_u; q_i]))) with ReLU layers a_l of
    halving sizes ending at ``factors`` (``factors=8, mlp_layers=3``: [64, 32, 16, 8], the
    first being the concatenated embeddings of 32 each); log loss on sampled negatives.

    Parameters
    ----------
    factors : int
        Size of the last hidden layer (predictive factors).
    mlp_layers : int
        Number of hidden ReLU layers (3 in the paper's default tower).
    negatives, epochs, batch_size, lr, optimizer, seed, device, validate_every, patience,
    checkpoint_dir, progress :
        As for :class:`GMF`.
    """

    conformance_params: ClassVar[dict] = {"factors": 2, "mlp_layers": 1, "epochs": 2, "batch_size": 64,
                                          "device": "cpu"}

    def __init__(self, factors: int = 8, mlp_layers: int = 3, negatives: int = 4, epochs: int = 20,
                 batch_size: int = 256, lr: float = 0.001, optimizer: str = "adam", seed: int = 0,
                 device: str = "auto", validate_every: int = 1, patience: int | None = None,
                 checkpoint_dir: str | None = None, progress: bool = False):
        self.factors = factors
        self.mlp_layers = mlp_layers
        self.negatives = negatives
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.seed = seed
        self.device = device
        self.validate_every = validate_every
        self.patience = patience
        self.checkpoint_dir = checkpoint_dir
        self.progress = progress

    def _towers(self, n_users, n_items):
        from neural._networks import MLPTower

        return [MLPTower(n_users, n_items, self._mlp_sizes())]

    def _tower_sizes(self):
        sizes = list(self._mlp_sizes())
        return sizes[0] // 2, sizes


@register("neumf")
class NeuMF(_NCFBase):
    """Neural Matrix Factorization, the fusion of GMF and MLP (He et al., WWW 2017, Sec. 3.4).

    Architecture: y(u, i) = sigma(h^T [p^G_u * q^G_i; a_L(...a_1([p^M_u; q^M_i]))] + b)
    with separate GMF and MLP embeddings; log loss on sampled negatives.

    Pre-training (Sec. 3.4.1), when ``pretrain=True``: a :class:`GMF` and an :class:`MLP`
    with the same sizes, data, negatives, epochs and early stopping are trained inside
    ``fit`` (their seeds derived from ``seed``; checkpoints under ``checkpoint_dir/gmf`` and
    ``checkpoint_dir/mlp``), their embeddings and hidden layers initialise NeuMF, and the
    output layer becomes h = [alpha h^GMF; (1 - alpha) h^MLP], b = alpha b^GMF + (1 - alpha)
    b^MLP with alpha = ``pretrain_alpha`` (0.5; the authors' code halves the summed biases,
    the same at alpha = 0.5). NeuMF is then trained with ``finetune_optimizer``: plain SGD
    as the paper states ("Adam ... is unsuitable to further optimize NeuMF" without its
    momentum state), at ``lr``. The authors' README instead runs this phase with Adam
    (``finetune_optimizer="adam"`` reproduces that).

    Parameters
    ----------
    factors : int
        Predictive factors: GMF embedding size and the MLP tower's last layer (8).
    mlp_layers : int
        Hidden ReLU layers of the MLP tower (3: [64, 32, 16, 8] for 8 factors).
    pretrain : bool
        Initialise from GMF and MLP trained inside ``fit`` (default False).
    pretrain_alpha : float
        Weight of GMF in the combined output layer (0.5).
    finetune_optimizer : str
        Optimiser after pre-training ("sgd" per the paper).
    gmf_epochs, mlp_epochs : int or None
        Train that pre-training part for exactly this many epochs, without early stopping
        (None: ``epochs`` with early stopping on the validation data). Tuning freezes them at
        the parts' best epochs of the winning trial (``frozen_params_``), so the final refit
        on train + validation pre-trains as long as that trial did.
    negatives, epochs, batch_size, lr, optimizer, seed, device, validate_every, patience,
    checkpoint_dir, progress :
        As for :class:`GMF` (``optimizer`` trains NeuMF without pre-training, and the GMF
        and MLP parts with it).
    """

    conformance_params: ClassVar[dict] = {"factors": 2, "mlp_layers": 1, "epochs": 2, "batch_size": 64,
                                          "device": "cpu"}
    search_space: ClassVar[dict] = {**_NCFBase.search_space, "pretrain": Categorical((False, True))}

    def __init__(self, factors: int = 8, mlp_layers: int = 3, negatives: int = 4, epochs: int = 20,
                 batch_size: int = 256, lr: float = 0.001, optimizer: str = "adam", pretrain: bool = False,
                 pretrain_alpha: float = 0.5, finetune_optimizer: str = "sgd", gmf_epochs: int | None = None,
                 mlp_epochs: int | None = None, seed: int = 0,
                 device: str = "auto", validate_every: int = 1, patience: int | None = None,
                 checkpoint_dir: str | None = None, progress: bool = False):
        self.factors = factors
        self.mlp_layers = mlp_layers
        self.negatives = negatives
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.pretrain = pretrain
        self.pretrain_alpha = pretrain_alpha
        self.finetune_optimizer = finetune_optimizer
        self.gmf_epochs = gmf_epochs
        self.mlp_epochs = mlp_epochs
        self.seed = seed
        self.device = device
        self.validate_every = validate_every
        self.patience = patience
        self.checkpoint_dir = checkpoint_dir
        self.progress = progress

    def _towers(self, n_users, n_items):
        from neural._networks import GMFTower, MLPTower

        return [GMFTower(n_users, n_items, self.factors), MLPTower(n_users, n_items, self._mlp_sizes())]

    def _tower_sizes(self):
        sizes = list(self._mlp_sizes())
        return self.factors + sizes[0] // 2, sizes

    def _parameter_copies_bytes(self, n_parameters: int) -> int:
        if not self.pretrain:
            return super()._parameter_copies_bytes(n_parameters)
        # Pre-training holds NeuMF's parameters once besides GMF's and MLP's as they train.
        return max(parameter_bytes(n_parameters, self.finetune_optimizer),
                   FLOAT * n_parameters + parameter_bytes(n_parameters, self.optimizer))

    def _check_params(self) -> None:
        super()._check_params()
        _require(self, "pretrain_alpha", isinstance(self.pretrain_alpha, int | float)
                 and 0 <= self.pretrain_alpha <= 1, "a number in [0, 1]")
        _require(self, "finetune_optimizer", self.finetune_optimizer in ("adam", "sgd", "adagrad"),
                 "one of adam, sgd, adagrad")
        for name in ("gmf_epochs", "mlp_epochs"):
            value = getattr(self, name)
            _require(self, name, value is None or (isinstance(value, int) and not isinstance(value, bool)
                                                   and value >= 1), "None or an integer >= 1")

    def _optimizer_settings(self):
        return (self.finetune_optimizer if self.pretrain else self.optimizer), self.lr, 0.0

    def _initial_network(self, data, generator, device):
        import torch

        network = super()._initial_network(data, generator, device)
        if not self.pretrain:
            return network
        shared = {name: getattr(self, name) for name in (
            "factors", "negatives", "batch_size", "lr", "optimizer", "device", "validate_every", "progress")}
        parts = {}
        seeds = np.random.default_rng([self.seed, 1]).integers(0, 2**31, size=2)
        for (name, cls, extra), seed in zip((("gmf", GMF, {}), ("mlp", MLP, {"mlp_layers": self.mlp_layers})), seeds):
            checkpoint = None if self.checkpoint_dir is None else str(Path(self.checkpoint_dir) / name)
            fixed_epochs = getattr(self, f"{name}_epochs")
            length = ({"epochs": self.epochs, "patience": self.patience} if fixed_epochs is None
                      else {"epochs": fixed_epochs, "patience": None})
            parts[name] = cls(**shared, **extra, **length, seed=int(seed), checkpoint_dir=checkpoint)
            parts[name].fit(data if fixed_epochs is None else data.with_validation(None))
        gmf, mlp = parts["gmf"].network_, parts["mlp"].network_
        alpha = float(self.pretrain_alpha)
        with torch.no_grad():
            network.towers[0].load_state_dict(gmf.towers[0].state_dict())
            network.towers[1].load_state_dict(mlp.towers[0].state_dict())
            network.output.weight.copy_(torch.cat([alpha * gmf.output.weight, (1 - alpha) * mlp.output.weight], 1))
            network.output.bias.copy_(alpha * gmf.output.bias + (1 - alpha) * mlp.output.bias)
        self.pretrain_history_ = {name: part.history_ for name, part in parts.items()}
        self.pretrain_best_epochs_ = {name: part.best_epoch_ for name, part in parts.items()}
        return network

    @property
    def frozen_params_(self) -> dict:
        """Keywords that make a refit pre-train as this fit did (read by the tuner)."""
        if not self.pretrain:
            return {}
        return {f"{name}_epochs": int(epochs) for name, epochs in self.pretrain_best_epochs_.items()}

    def _training_extras(self) -> dict:
        if not self.pretrain:
            return {}
        return {"pretrain_history": self.pretrain_history_, "pretrain_best_epochs": self.pretrain_best_epochs_}

    def _restore_training_extras(self, extras: dict) -> None:
        if extras:
            self.pretrain_history_ = extras["pretrain_history"]
            self.pretrain_best_epochs_ = extras["pretrain_best_epochs"]
