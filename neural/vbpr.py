"""VBPR: Visual Bayesian Personalized Ranking from implicit feedback.

He and McAuley, "VBPR: Visual Bayesian Personalized Ranking from Implicit Feedback", AAAI 2016
(https://arxiv.org/abs/1510.01784), as the authors' C++ release trains it.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from baselines.visrank import dense_feature_requirements, resolve_dense_features
from neural.memory import FLOAT, parameter_bytes, require_fit_memory, sampler_bytes, validation_bytes
from neural.sampling import NegativeSampler
from neural.training import NeuralRecommender, _is_number, _require
from protocols.contract import Requirements, TrainingData
from protocols.registry import register
from protocols.space import Real

FEATURE_SCALINGS = ("max", "none")
SAMPLINGS = ("user", "interaction")


@register("vbpr")
class VBPR(NeuralRecommender):
    """Matrix factorisation plus a visual factor and a visual bias, trained with BPR.

    Preference predictor (He and McAuley, Eq. 3), f_i the item's (scaled) feature vector::

        x_ui = beta_i + gamma_u . gamma_i + theta_u . (E f_i) + beta' . f_i

    with latent factors gamma_u, gamma_i (``factors`` = K), visual user factors theta_u
    (``visual_factors`` = K'), the embedding E (K' x F), the item bias beta_i and the visual
    bias beta' (F). The paper's setting is K = K' = 20 (its AUC table), the defaults here.

    Loss: mean over a batch of triples (u, i, j), i an item of u and j not, of the negated
    BPR-Opt with the regularisation of the authors' C++ ``updateFactors`` (their SGD update
    theta <- theta + lr (sigma(-x_uij) dx_uij/dtheta - lambda theta) is the gradient of the
    term lambda/2 theta^2 below)::

        -ln sigma(x_ui - x_uj)
          + lambda_theta/2 (||gamma_u||^2 + ||theta_u||^2 + ||gamma_i||^2)
          + lambda_theta/20 ||gamma_j||^2              # lambda/10 on the NEGATIVE item's factors
          + lambda_beta/2 (beta_i^2 + beta_j^2)        # full lambda_beta on both biases
          + lambda_e/2 (||E||^2 + ||beta'||^2)

    The /10 sits on gamma_j only, as in the authors' code; Cornac puts it on beta_j instead
    and lands about 4 AUC points under the paper on Tradesy. lambda_e = 0 (the default) leaves
    E and beta' unregularised, as the authors did on the Amazon data ("they introduce only a
    constant (and small) number of parameters"); their code regularises, per triple, the
    columns of E where f_i - f_j is non-zero, i.e. all of them for dense features.

    Sampling (``sampling="user"``, the authors' ``oneiteration``): each epoch draws as many
    triples as there are training interactions; u uniform among users with at least one and
    not every item, i drawn without replacement from u's items (starting over once all were
    drawn that epoch), j uniform among u's non-interacted items; all resampled every epoch.
    ``sampling="interaction"`` draws (u, i) uniformly among the interactions instead (BPR-MF's
    bootstrap here).

    Choices where the references leave room (see also :mod:`neural._vbpr_network`):

    - Features come from the dense item feature set ``features`` (None: the dataset's only
      dense set; refused, before training, when it has none or several). Items without
      features (``present`` False) have f_i = 0. ``feature_scaling="max"`` divides every
      feature by the largest absolute value over the items, as the authors' loader divides by
      "the largest feature observed"; ``"none"`` uses the values as they are.
    - Cold items (no training interaction) are scored through their features alone,
      x_ui = theta_u . (E f_i) + beta' . f_i, in training (as negatives) and in scoring: their
      beta_i and gamma_i are masked to zero, never the random values of an untrained row.
    - Initialisation: gamma, theta ~ N(0, ``init_std``^2), E ~ N(0, ``init_std``^2 / F), both
      biases zero (the authors zero the biases too but draw factors and E from U(0, 1), which
      with dense 1280-d features makes x_ui start in the hundreds and saturates the sigmoid).
    - Optimiser: Adam on mini-batches by default; ``optimizer="sgd", batch_size=1, lr=0.005``
      is the authors' SGD exactly.

    Users need embeddings: ``folds_in_users = False``.

    Parameters
    ----------
    factors, visual_factors : int
        K and K' (20 and 20).
    lambda_theta, lambda_beta, lambda_e : float
        Regularisation of the factors (gamma, theta; gamma_j at a tenth), of the item biases,
        and of E and beta'.
    features : str or None
        Name of the dense item feature set (None: the dataset's only dense set).
    feature_scaling : str
        "max" (the authors') or "none".
    sampling : str
        "user" (the authors') or "interaction".
    init_std : float
        Standard deviation of the initial factors (0.1).
    optimizer, epochs, batch_size, lr, seed :
        "adam" (default), "sgd" or "adagrad"; training length, triples per batch (1024),
        learning rate (0.001); the seed drives initialisation and sampling.
    device, validate_every, patience, checkpoint_dir, progress :
        The shared training loop's settings (:mod:`neural.training`).

    References
    ----------
    He and McAuley, AAAI 2016; Rendle et al., UAI 2009 (BPR); He and McAuley, WWW 2016
    ("Ups and Downs", the same code base and regularisation of E and beta').
    """

    folds_in_users: ClassVar[bool] = False
    training_threads: ClassVar[int | None] = 1
    conformance_params: ClassVar[dict] = {"factors": 4, "visual_factors": 4, "epochs": 2, "batch_size": 64,
                                          "device": "cpu"}
    search_space: ClassVar[dict] = {
        "lr": Real(1e-4, 1e-1, log=True),
        "lambda_theta": Real(1e-5, 1e1, log=True),
        "lambda_beta": Real(1e-5, 1e1, log=True),
    }

    def __init__(self, factors: int = 20, visual_factors: int = 20, lambda_theta: float = 1e-3,
                 lambda_beta: float = 1e-3, lambda_e: float = 0.0, features: str | None = None,
                 feature_scaling: str = "max", sampling: str = "user", init_std: float = 0.1,
                 optimizer: str = "adam", epochs: int = 50, batch_size: int = 1024, lr: float = 0.001,
                 seed: int = 0, device: str = "auto", validate_every: int = 1, patience: int | None = None,
                 checkpoint_dir: str | None = None, progress: bool = False):
        self.factors = factors
        self.visual_factors = visual_factors
        self.lambda_theta = lambda_theta
        self.lambda_beta = lambda_beta
        self.lambda_e = lambda_e
        self.features = features
        self.feature_scaling = feature_scaling
        self.sampling = sampling
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

    def requirements(self) -> Requirements:
        return dense_feature_requirements(self.features, user_embeddings=True)

    def _check_params(self) -> None:
        for name in ("factors", "visual_factors"):
            value = getattr(self, name)
            _require(self, name, isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                     "an integer >= 1")
        for name in ("lambda_theta", "lambda_beta", "lambda_e"):
            _require(self, name, _is_number(getattr(self, name)) and getattr(self, name) >= 0, "a number >= 0")
        _require(self, "init_std", _is_number(self.init_std) and self.init_std > 0, "a number > 0")
        _require(self, "feature_scaling", self.feature_scaling in FEATURE_SCALINGS,
                 f"one of {', '.join(FEATURE_SCALINGS)}")
        _require(self, "sampling", self.sampling in SAMPLINGS, f"one of {', '.join(SAMPLINGS)}")

    memory_fix = ("drop rare users and items in the dataset's prepare filters (the negative sampler and each "
                  "epoch's triples take about 170 bytes per training interaction; the features are items x "
                  "features float32, three copies while the network is built), or use a feature set of fewer "
                  "dimensions")

    def fit_memory_bytes(self, train, n_features: int = 0) -> int:
        """Parameters (users x (factors + visual_factors), items x (factors + 1), visual_factors x
        F; values, gradients, the optimiser's state, the best epoch's snapshot), the item features
        (items x F float32: masked, scaled and the network's buffer while it is built), the
        negative sampler and one epoch's triples (three int64 per interaction, kept through
        validation by the last batch's views), plus the largest of the sampling's temporaries
        (about 100 bytes per interaction), one batch's feature rows (batch_size x F: positives,
        negatives, their difference) and the validation pass (1,024 users x items, 4 float32
        copies per chunk).

        ``n_features`` is F, 0 when not known: ``Recommender.fit`` passes the interactions only,
        and ``_fit`` checks again with the chosen feature set's width before building anything.
        """
        self._check_shared_params()
        self._check_params()
        n_users, n_items = train.shape
        n_parameters = (n_users * (self.factors + self.visual_factors) + n_items * (self.factors + 1)
                        + (self.visual_factors + 1) * n_features)
        features = 3 * FLOAT * n_items * n_features
        batch = 3 * FLOAT * self.batch_size * n_features
        scoring = validation_bytes(n_users, n_items, 4 * min(self._score_chunk(), n_users) * n_items)
        return (parameter_bytes(n_parameters, self.optimizer) + features + sampler_bytes(train.nnz)
                + 24 * train.nnz + max(100 * train.nnz, batch, scoring))

    def _fit(self, data: TrainingData) -> None:
        # Resolve the feature set before any training, so a missing one is refused up front.
        features = resolve_dense_features(self.name, data, self.features)
        self.features_key_ = features.key
        require_fit_memory(self, data.interactions, self.fit_memory_bytes(data.interactions, features.dim))
        super()._fit(data)

    # ----- hooks ---------------------------------------------------------------------
    def _item_feature_matrix(self, data: TrainingData) -> np.ndarray:
        """f_i for every item (items x F, float32): zero rows for items without features,
        scaled by ``feature_scaling``."""
        features = resolve_dense_features(self.name, data, self.features)
        values = np.where(np.asarray(features.present, bool)[:, None], features.dense(), np.float32(0))
        values = values.astype(np.float32, copy=False)
        if self.feature_scaling == "max":
            largest = float(np.abs(values).max()) if values.size else 0.0
            if largest > 0:
                values = values / np.float32(largest)
        return values

    def _build_network(self, data: TrainingData):
        from neural._vbpr_network import VBPRNetwork

        train = data.interactions
        warm = np.diff(train.tocsc().indptr) > 0  # items with a training interaction
        return VBPRNetwork(train.shape[0], train.shape[1], self._item_feature_matrix(data), warm, self.factors,
                           self.visual_factors, float(self.init_std))

    def _training_data(self, data: TrainingData):
        return NegativeSampler(data.interactions)

    def _epoch_batches(self, sampler: NegativeSampler, rng, generator, device):
        import torch

        n_samples = len(sampler.positive_rows)
        if self.sampling == "user":
            triples = user_uniform_triples(sampler, n_samples, rng)
        else:
            triples = sampler.bootstrap_triples(n_samples, rng)
        users, positives, negatives = (torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in triples)
        for start in range(0, len(users), self.batch_size):
            part = slice(start, start + self.batch_size)
            yield users[part], positives[part], negatives[part]

    def _batch_loss(self, network, batch, generator, step):
        from torch.nn import functional as F

        users, positives, negatives = batch
        gamma_u, theta_u = network.gamma_user[users], network.theta_user[users]
        beta_i, gamma_i = network.item_terms(positives)
        beta_j, gamma_j = network.item_terms(negatives)
        feature_difference = network.features[positives] - network.features[negatives]
        x_uij = (beta_i - beta_j + (gamma_u * (gamma_i - gamma_j)).sum(1)
                 + (theta_u * (feature_difference @ network.embedding.T)).sum(1)
                 + feature_difference @ network.beta_visual)
        loss = -F.logsigmoid(x_uij).mean()
        penalty = (self.lambda_theta * (gamma_u.pow(2).sum(1) + theta_u.pow(2).sum(1) + gamma_i.pow(2).sum(1))
                   + (self.lambda_theta / 10.0) * gamma_j.pow(2).sum(1)
                   + self.lambda_beta * (beta_i.pow(2) + beta_j.pow(2)))
        loss = loss + 0.5 * penalty.mean()
        if self.lambda_e:
            loss = loss + 0.5 * self.lambda_e * (network.embedding.pow(2).sum() + network.beta_visual.pow(2).sum())
        return loss

    def _network_scores(self, network, users, history, device):
        import torch

        return network.scores(torch.from_numpy(users).to(device)).cpu().numpy()

    def _network_candidate_scores(self, network, users, history, candidates, device):
        import torch

        return network.candidate_scores(torch.from_numpy(users).to(device),
                                        torch.from_numpy(candidates).to(device)).cpu().numpy()


def user_uniform_triples(sampler: NegativeSampler, n_samples: int, rng: np.random.Generator):
    """The authors' epoch of BPR triples, vectorised: ``n_samples`` users drawn uniformly
    among those with at least one and not every item; the t-th draw of user u takes the t-th
    item of a random permutation of u's items (a fresh permutation each time they run out);
    negatives uniform among u's non-interacted items. Returns ``users, positives, negatives``
    in draw order."""
    candidates = np.flatnonzero(sampler.sampleable & (sampler.degree > 0))
    if len(candidates) == 0:
        raise ValueError("no user has both positive and negative items")
    users = candidates[rng.integers(0, len(candidates), size=n_samples)]
    degree = sampler.degree[users]
    # Occurrence number of each draw among the draws of its user, in draw order.
    order = np.argsort(users, kind="stable")
    sorted_users = users[order]
    group_start = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
    group_size = np.diff(np.r_[group_start, len(users)])
    occurrence = np.empty(n_samples, dtype=np.int64)
    occurrence[order] = np.arange(n_samples) - np.repeat(group_start, group_size)
    # One random permutation of the user's items per (user, round of its items): a block of
    # deg(u) random keys, ranked within the block.
    drawn_users = sorted_users[group_start]
    drawn_degree = sampler.degree[drawn_users]
    rounds = -(-group_size // drawn_degree)  # ceil
    block_size = np.repeat(drawn_degree, rounds)
    block_start = np.r_[0, np.cumsum(block_size)[:-1]]
    block_of_entry = np.repeat(np.arange(len(block_size)), block_size)
    slot = np.arange(int(block_size.sum())) - np.repeat(block_start, block_size)
    permuted = slot[np.lexsort((rng.random(len(slot)), block_of_entry))]  # within-block shuffle
    # Block index of each draw: the user's first block plus the round of the draw.
    first_block = np.r_[0, np.cumsum(rounds)[:-1]]
    user_rank = np.searchsorted(drawn_users, users)
    block = first_block[user_rank] + occurrence // degree
    local = permuted[block_start[block] + occurrence % degree]
    positives = sampler.positive_items[sampler.indptr[users] + local]
    return users, positives, sampler.sample(users, rng)
