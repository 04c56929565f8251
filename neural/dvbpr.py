"""DVBPR: Deep-style Visual BPR, an image network trained end to end on pixels with BPR.

Kang, Fang, Wang and McAuley, "Visually-Aware Fashion Recommendation and Design with
Generative Image Models", ICDM 2017 (https://arxiv.org/abs/1711.02231), as the authors'
released TensorFlow code (kang205/DVBPR, ``DVBPR/main.py``) trains it.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from common.errors import RecAuditError
from datasets.item_data import ItemImages
from neural.memory import FLOAT, parameter_bytes, sampler_bytes, validation_bytes
from neural.sampling import NegativeSampler
from neural.training import NeuralRecommender, _is_number, _require
from protocols.contract import Requirements, TrainingData
from protocols.registry import register
from protocols.space import Real

MISSING_IMAGE_VALUE = 128  # mid-grey: about 0 after scaling to [-1, 1]
_PIXEL_CACHE: dict = {}  # the last decoded image set, reused by the next fit in this process (tuning)


@register("dvbpr")
class DVBPR(NeuralRecommender):
    """A CNN-F over each item's image, trained end to end with BPR against user vectors.

    Preference predictor, Phi the image network (:class:`neural._dvbpr_network.CNNF`)::

        x_ui = theta_u . Phi(X_i)                      (+ gamma_u . gamma_i, latent_factors > 0)

    Loss of one batch of triples (u, i, j), i an item of u and j not, as the released code
    writes it (a sum over the batch, TensorFlow's ``l2_loss`` = half the squared norm)::

        -sum ln sigma(x_ui - x_uj) + lambda_cnn * 1/2 sum_W ||W||^2 + lambda_theta * 1/2 sum_batch ||theta_u||^2

    with W every weight of the CNN (no bias), theta_u counted once per triple. The released
    hyperparameters are the defaults: K = 100, lambda_cnn = 1e-3 (weight decay on the CNN),
    lambda_theta = 1.0, Adam at 1e-4, batches of 128, 20 epochs, dropout keeping half the units
    after both 4096-unit layers. (One framework swaps the two regularisers; here the 1e-3 is
    the CNN's.)

    Faithful to the released code:

    - CNN-F with TensorFlow ``SAME`` padding, Xavier-uniform weights and zero biases;
      theta_u ~ U(0, 1) / 100; no item bias and no non-visual factors
      (``latent_factors=0``; the IUI 2021 tutorial adds 100-d gamma and found them crucial on
      its data, so ``latent_factors=100`` gives that variant, regularised by lambda_theta).
    - Images are stretched to ``image_size`` x ``image_size`` (no crop, as PIL's
      ``resize((224, 224))``) and scaled to [-1, 1] as (x - 127.5) / 127.5.
    - Sampling: u uniform among the users, i uniform among u's items, j uniform among u's
      non-interacted items; an epoch is as many triples as there are training interactions
      (``triples_per_epoch`` None), triples drawn afresh every epoch.

    Choices where the code leaves room or the machine asks for them:

    - ``image_size``: 224 as in the paper; the CPU suites run a smaller size, recorded in
      the results with the other parameters. Every layer is kept; only the first fully
      connected layer's input shrinks (7 x 7 x 256 at 224, 2 x 2 x 256 at 64).
    - Resizing is Pillow's antialiased bilinear (the 2017 code relied on Pillow's default of
      the time, nearest neighbour).
    - Items without an image enter the CNN as a uniform mid-grey image.
    - ``triples_per_epoch`` shortens an epoch (validation then runs more often); None is the
      authors' epoch.
    - Images are decoded once per fit by the shared loader (:mod:`datasets.images`) into a
      uint8 cache; Phi(X_i) of every item is computed once per validation from that cache (in
      batches, dropout off), never per user. After fitting only the item vectors are kept.
    - Early stopping on the validation metric (the shared loop); the released code
      evaluates every epoch and keeps the last weights.
    - The released code's evaluation is an AUC against 100 sampled items (protocol
      ``sampled-auc``, labelled as sampled); full rankings are scored from the same vectors.

    Users need embeddings: ``folds_in_users = False``. The CNN trains on CUDA when present.
    """

    folds_in_users: ClassVar[bool] = False
    training_threads: ClassVar[int | None] = 1
    conformance_params: ClassVar[dict] = {"factors": 4, "image_size": 32, "hidden_units": 32, "epochs": 1,
                                          "batch_size": 64, "device": "cpu"}
    search_space: ClassVar[dict] = {
        "lr": Real(1e-5, 1e-3, log=True),
        "lambda_theta": Real(1e-3, 1e1, log=True),
        "lambda_cnn": Real(1e-5, 1e-1, log=True),
    }

    def __init__(self, factors: int = 100, latent_factors: int = 0, image_size: int = 224,
                 hidden_units: int = 4096, lambda_cnn: float = 1e-3, lambda_theta: float = 1.0,
                 triples_per_epoch: int | None = None, epochs: int = 20, batch_size: int = 128, lr: float = 1e-4,
                 seed: int = 0, device: str = "auto", validate_every: int = 1, patience: int | None = None,
                 checkpoint_dir: str | None = None, progress: bool = False):
        self.factors = factors
        self.latent_factors = latent_factors
        self.image_size = image_size
        self.hidden_units = hidden_units
        self.lambda_cnn = lambda_cnn
        self.lambda_theta = lambda_theta
        self.triples_per_epoch = triples_per_epoch
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
        return Requirements(user_embeddings=True, item_images=True)

    memory_fix = ("lower image_size (the pixel cache holds every item's image as 3 x size x size bytes; the "
                  "CNN's first fully connected layer and activations shrink with it) or batch_size (each batch "
                  "runs the CNN on 2 x batch_size images)")

    def fit_memory_bytes(self, train) -> int:
        """The pixel cache (uint8 items x 3 x size x size), the parameters (the CNN-F, whose first
        fully connected layer is flattened size x hidden_units, and users x factors; values,
        gradients, Adam's moments, the best epoch's snapshot), the negative sampler and an
        epoch's triples, plus the larger of one batch's CNN activations over 2 x batch_size
        images (what the forward pass keeps for the backward pass; measured peaks were 0.8-0.9
        of this count at image sizes 64 and 128) and the validation pass (evaluation's block of
        scores and 1,024 users x items per chunk)."""
        self._check_shared_params()
        self._check_params()
        n_users, n_items = train.shape
        size = self.image_size
        pixels = n_items * 3 * size * size
        n_parameters, floats_per_image = cnn_sizes(size, self.hidden_units, self.factors)
        n_parameters += n_users * (self.factors + self.latent_factors) + n_items * self.latent_factors
        triples = self.triples_per_epoch or train.nnz
        batch = FLOAT * 2 * self.batch_size * floats_per_image
        scoring = validation_bytes(n_users, n_items, min(self._score_chunk(), n_users) * n_items)
        return (pixels + parameter_bytes(n_parameters) + sampler_bytes(train.nnz) + 40 * triples
                + max(batch, scoring))

    def _check_params(self) -> None:
        for name, low in (("factors", 1), ("latent_factors", 0), ("image_size", 32), ("hidden_units", 1)):
            value = getattr(self, name)
            _require(self, name, isinstance(value, int) and not isinstance(value, bool) and value >= low,
                     f"an integer >= {low}")
        for name in ("lambda_cnn", "lambda_theta"):
            _require(self, name, _is_number(getattr(self, name)) and getattr(self, name) >= 0, "a number >= 0")
        _require(self, "triples_per_epoch", self.triples_per_epoch is None or (
            isinstance(self.triples_per_epoch, int) and self.triples_per_epoch >= 1), "None or an integer >= 1")

    def _fit(self, data: TrainingData) -> None:
        # Data without images was refused by fit's requirement check (needs item images).
        if data.images.n_items != data.n_items:
            raise RecAuditError(f"model {self.name!r}: the image table has {data.images.n_items} items, the "
                                f"interactions {data.n_items}; prepare the dataset again")
        super()._fit(data)
        import torch

        with torch.no_grad():
            self.network_.release_pixels(self._score_batch())

    # ----- hooks ---------------------------------------------------------------------
    def _score_batch(self) -> int:
        return max(self.batch_size, 64)

    def _build_network(self, data: TrainingData):
        from neural._dvbpr_network import DVBPRNetwork

        train = data.interactions
        warm = np.diff(train.tocsc().indptr) > 0
        return DVBPRNetwork(train.shape[0], train.shape[1], item_pixels(data.images, self.image_size), warm,
                            self.factors, self.latent_factors, self.hidden_units)

    def _training_data(self, data: TrainingData):
        return NegativeSampler(data.interactions)

    def _epoch_batches(self, sampler: NegativeSampler, rng, generator, device):
        import torch

        n_triples = self.triples_per_epoch or len(sampler.positive_rows)
        triples = sampler.user_uniform_triples(n_triples, rng)
        users, positives, negatives = (torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in triples)
        for start in range(0, n_triples, self.batch_size):
            part = slice(start, start + self.batch_size)
            yield users[part], positives[part], negatives[part]

    def _batch_loss(self, network, batch, generator, step):
        import torch
        from torch.nn import functional as F

        users, positives, negatives = batch
        outputs = network.item_outputs(torch.cat([positives, negatives]), generator)
        visual_i, visual_j = outputs[: len(users)], outputs[len(users):]
        theta_u = network.theta_user[users]
        x_uij = (theta_u * (visual_i - visual_j)).sum(1)
        penalty = theta_u.pow(2).sum()
        if network.latent_factors:
            gamma_u = network.gamma_user[users]
            gamma_i, gamma_j = network.item_gamma(positives), network.item_gamma(negatives)
            x_uij = x_uij + (gamma_u * (gamma_i - gamma_j)).sum(1)
            penalty = penalty + gamma_u.pow(2).sum() + gamma_i.pow(2).sum() + gamma_j.pow(2).sum()
        cnn_penalty = sum(weight.pow(2).sum() for weight in network.cnn.weights())
        return -F.logsigmoid(x_uij).sum() + 0.5 * self.lambda_cnn * cnn_penalty + 0.5 * self.lambda_theta * penalty

    def _network_scores(self, network, users, history, device):
        import torch

        return network.scores(torch.from_numpy(users).to(device), self._score_batch()).cpu().numpy()

    def _network_candidate_scores(self, network, users, history, candidates, device):
        import torch

        return network.candidate_scores(torch.from_numpy(users).to(device), torch.from_numpy(candidates).to(device),
                                        self._score_batch()).cpu().numpy()


def cnn_sizes(image_size: int, hidden_units: int, factors: int) -> tuple[int, int]:
    """(parameters of the CNN-F, float32 numbers one image's forward pass keeps for the backward
    pass): the scaled image, each convolution's padded input, output and ReLU, each max-pool's
    output and int64 indices, the fully connected layers' outputs and dropout masks."""
    from neural._dvbpr_network import CONVOLUTIONS, POOL_AFTER, flattened_size, same_padding, same_size

    n_parameters, floats, side, channels = 0, 2 * 3 * image_size * image_size, image_size, 3
    for index, (kernel, stride, out_channels) in enumerate(CONVOLUTIONS):
        n_parameters += kernel * kernel * channels * out_channels + out_channels
        floats += channels * (side + sum(same_padding(side, kernel, stride))) ** 2
        side, channels = same_size(side, stride), out_channels
        floats += 2 * channels * side * side
        if index in POOL_AFTER:
            side = same_size(side, 2)
            floats += 3 * channels * side * side
    flat = flattened_size(image_size)
    n_parameters += flat * hidden_units + hidden_units + hidden_units * hidden_units + hidden_units \
        + hidden_units * factors + factors
    floats += flat + 6 * hidden_units + factors
    return n_parameters, floats


def item_pixels(images: ItemImages, image_size: int):
    """Every item's image as uint8 (items, 3, s, s) on the CPU, stretched to s x s by the shared
    loader; items without an image are mid-grey. The last image set decoded stays cached for the
    next fit of this process (tuning fits the same images many times)."""
    import torch
    from datasets.images import Preprocessing, iter_batches

    key = (images.manifest_sha256, str(images.root), int(image_size))
    if key in _PIXEL_CACHE:
        return _PIXEL_CACHE[key]
    preprocessing = Preprocessing(resize=image_size, crop=image_size, scaling="none", resize_mode="exact")
    pixels = torch.full((images.n_items, 3, image_size, image_size), MISSING_IMAGE_VALUE, dtype=torch.uint8)
    for batch in iter_batches(images, preprocessing, batch_size=64):
        pixels[torch.from_numpy(batch.items)] = torch.from_numpy(np.rint(batch.pixels).astype(np.uint8))
    _PIXEL_CACHE.clear()
    _PIXEL_CACHE[key] = pixels
    return pixels
