"""BPR-MF: matrix factorisation trained with Bayesian Personalized Ranking.

Rendle, Freudenthaler, Gantner and Schmidt-Thieme, "BPR: Bayesian Personalized Ranking
from Implicit Feedback", UAI 2009 (https://arxiv.org/abs/1205.2618).
"""
from __future__ import annotations

from typing import ClassVar


from neural.memory import FLOAT, parameter_bytes, sampler_bytes, validation_bytes
from neural.sampling import NegativeSampler
from neural.training import NeuralRecommender, _require
from protocols.registry import register
from protocols.space import Categorical, Real


@register("bprmf")
class BPRMF(NeuralRecommender):
    """Matrix factorisation with the BPR-Opt criterion (Rendle et al., UAI 2009).

    Model: x_ui = <w_u, h_i> with user and item factors of size ``factors``, initialised
    N(0, ``init_std``^2) (the paper's LearnBPR initialises randomly; 0.1 as in MyMediaLite).

    Loss per batch of triples (u, i, j), i a training item of u and j not:

        mean_{(u,i,j)} [ -ln sigma(x_ui - x_uj) + l2/2 (||w_u||^2 + ||h_i||^2 + ||h_j||^2) ]

    i.e. the negated BPR-Opt with the regularisation of the factors each triple touches,
    the objective whose stochastic gradient is LearnBPR's update (Sec. 4.3; the update
    theta <- theta + alpha (e^-x / (1 + e^-x) dx/dtheta - lambda theta) is the gradient of
    lambda/2 ||theta||^2). Sampling is the paper's bootstrap: each epoch draws as many triples
    as there are training interactions, (u, i) uniformly with replacement among them and j
    uniformly among u's other items (vectorised). ``optimizer="sgd"`` with ``batch_size=1``
    is LearnBPR exactly; the default is Adam on mini-batches, which converges in far fewer
    epochs.

    Users need factors: ``folds_in_users = False``.

    Parameters
    ----------
    factors : int
        Number of latent factors (64).
    l2 : float
        Regularisation weight lambda (1e-4).
    init_std : float
        Standard deviation of the initial factors (0.1).
    optimizer : str
        "adam" (default) or "sgd" (the paper's; also "adagrad").
    epochs, batch_size, lr, seed :
        Training length, triples per batch (1024), learning rate (0.001); the seed drives
        initialisation and sampling.
    device, validate_every, patience, checkpoint_dir, progress :
        The shared training loop's settings (:mod:`neural.training`).
    """

    folds_in_users: ClassVar[bool] = False
    training_threads: ClassVar[int | None] = 1
    conformance_params: ClassVar[dict] = {"factors": 4, "epochs": 2, "batch_size": 64, "device": "cpu"}
    search_space: ClassVar[dict] = {
        "factors": Categorical((16, 32, 64, 128, 256)),
        "l2": Real(1e-6, 1e-1, log=True),
        "lr": Real(1e-4, 1e-1, log=True),
    }

    def __init__(self, factors: int = 64, l2: float = 1e-4, init_std: float = 0.1, optimizer: str = "adam",
                 epochs: int = 50, batch_size: int = 1024, lr: float = 0.001, seed: int = 0,
                 device: str = "auto", validate_every: int = 1, patience: int | None = None,
                 checkpoint_dir: str | None = None, progress: bool = False):
        self.factors = factors
        self.l2 = l2
        self.init_std = init_std
        self.optimizer = optimizer
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.seed = seed
        self.device = device
        self.validate_every = validate_every
        self.patience = patience
        self.checkpoint_dir = checkpoint_dir
        self.progress = progress

    memory_fix = ("drop rare users and items in the dataset's prepare filters (the negative sampler and each "
                  "epoch's triples take about 100 bytes per training interaction) or lower factors (users and "
                  "items x factors, with gradients and Adam's two moments)")

    def fit_memory_bytes(self, train) -> int:
        """Parameters ((users + items) x factors; values, gradients, the optimiser's state, the
        best epoch's snapshot), the negative sampler and one epoch's triples (one per training
        interaction, three int64; the last batch's views keep them through validation), plus the
        larger of the sampling's temporaries with one batch's tensors (about 18 float32 copies
        of batch_size x factors) and the validation pass (evaluation's block of scores and 1,024
        users x items per chunk)."""
        self._check_shared_params()
        self._check_params()
        n_users, n_items = train.shape
        triples, sampling = 24 * train.nnz, 32 * train.nnz + 18 * FLOAT * self.batch_size * self.factors
        scoring = validation_bytes(n_users, n_items, min(self._score_chunk(), n_users) * n_items)
        return (parameter_bytes((n_users + n_items) * self.factors, self.optimizer) + sampler_bytes(train.nnz)
                + triples + max(sampling, scoring))

    def _check_params(self) -> None:
        _require(self, "factors", isinstance(self.factors, int) and self.factors >= 1, "an integer >= 1")
        _require(self, "l2", isinstance(self.l2, int | float) and self.l2 >= 0, "a number >= 0")
        _require(self, "init_std", isinstance(self.init_std, int | float) and self.init_std > 0, "a number > 0")

    def _build_network(self, data):
        from neural._networks import MatrixFactorization

        train = data.interactions
        return MatrixFactorization(train.shape[0], train.shape[1], self.factors, float(self.init_std))

    def _training_data(self, data):
        train = data.interactions
        return NegativeSampler(train)

    def _epoch_batches(self, sampler: NegativeSampler, rng, generator, device):
        import torch

        users, positives, negatives = (torch.from_numpy(a).to(device) for a in
                                       sampler.bootstrap_triples(len(sampler.positive_rows), rng))
        for start in range(0, len(users), self.batch_size):
            part = slice(start, start + self.batch_size)
            yield users[part], positives[part], negatives[part]

    def _batch_loss(self, network, batch, generator, step):
        from torch.nn import functional as F

        users, positives, negatives = batch
        w_u = network.user_factors(users)
        h_i = network.item_factors(positives)
        h_j = network.item_factors(negatives)
        difference = (w_u * (h_i - h_j)).sum(dim=1)
        loss = -F.logsigmoid(difference).mean()
        if self.l2:
            loss = loss + 0.5 * self.l2 * (w_u.pow(2).sum(1) + h_i.pow(2).sum(1) + h_j.pow(2).sum(1)).mean()
        return loss

    def _network_scores(self, network, users, history, device):
        import torch

        w_u = network.user_factors(torch.from_numpy(users).to(device))
        return (w_u @ network.item_factors.weight.T).cpu().numpy()

    def _network_candidate_scores(self, network, users, history, candidates, device):
        import torch

        w_u = network.user_factors(torch.from_numpy(users).to(device))
        h = network.item_factors(torch.from_numpy(candidates).to(device))
        return (h @ w_u[:, :, None]).squeeze(-1).cpu().numpy()
