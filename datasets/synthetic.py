"""Seeded synthetic datasets with planted latent structure, at any size.

Generative model (a popularity-weighted topic model; cf. LDA, Blei et al. 2003, and the
"Poisson factorisation" view of implicit feedback, Gopalan et al. 2015):

- item popularity ``pop_i = rank_i ** -popularity_exponent`` (``rank`` a random permutation
  of ``1..n_items``: a power law);
- user factors ``theta_u ~ Dirichlet(user_concentration)`` and item factors
  ``psi_i ~ Dirichlet(item_concentration)``, both over ``n_factors`` latent factors;
- a user's interactions are drawn without replacement from
  ``P(i | u) = sum_z theta_uz * pop_i * psi_iz / sum_j pop_j * psi_jz``;
- user activity ``n_u`` is log-normal, scaled so that ``sum_u n_u ~= density * n_users * n_items``.

Small concentrations make users and items focus on few factors, so a rank-``n_factors``
model predicts held-out items far better than popularity. Everything is vectorised
(inverse-CDF sampling: first a factor per draw, then an item per factor with one
``searchsorted`` per factor), with loops over factors only, never over users or
interactions: 138,000 x 20,000 at 0.5% density takes a few seconds.

Optional side information: sparse item content (the feature set ``bow``: a bag of words drawn
from per-factor word distributions mixed by ``psi_i``, plus uniform noise words) and tiny PNG
images whose colour follows ``psi_i`` (written to a folder the caller gives; ``item_images``
paths are relative to it, with each file's sha256). Rows are ordered by user then item; timestamps are uniform over two years and are
not sorted within a user.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from datasets.canonical import PreparedData
from common.errors import RecAuditError
from datasets.item_data import make_feature_set
from datasets.parsers.raw import sorted_unique
from datasets.parsers.readers import sha256_file

START_TIMESTAMP = 1_500_000_000  # July 2017
TIME_SPAN = 2 * 365 * 24 * 3600
MAX_TOP_UP_ROUNDS = 8


def make_synthetic(
    n_users: int,
    n_items: int,
    density: float,
    seed: int,
    *,
    popularity_exponent: float = 0.8,
    n_factors: int = 8,
    user_concentration: float = 0.05,
    item_concentration: float = 0.05,
    activity_sigma: float = 0.8,
    min_user_interactions: int = 1,
    content_features: int = 0,
    content_words_per_item: float = 20.0,
    content_noise: float = 0.1,
    images: bool = False,
    image_dir: Path | str | None = None,
    image_size: int = 8,
    timestamps: bool = True,
    ratings: bool = False,
    name: str = "synthetic",
) -> PreparedData:
    """Generate a :class:`PreparedData` (see the module docstring for the model).

    ``images=True`` writes ``<item>.png`` files of ``image_size`` pixels square into
    ``image_dir``. ``ratings=True`` adds 1-5 stars that grow with the user-item affinity.
    The same arguments and seed give identical data.
    """
    _check_arguments(n_users, n_items, density, n_factors, min_user_interactions, images, image_dir)
    rng = np.random.default_rng(seed)
    popularity = np.arange(1, n_items + 1, dtype=np.float64)[rng.permutation(n_items)] ** -popularity_exponent
    user_factors = _dirichlet(rng, user_concentration, (n_users, n_factors))
    item_factors = _dirichlet(rng, item_concentration, (n_items, n_factors))
    item_given_factor = popularity[:, None] * item_factors
    item_given_factor /= item_given_factor.sum(axis=0, keepdims=True)

    per_user = _activity(rng, n_users, n_items, density, activity_sigma, min_user_interactions)
    keys = _sample_interactions(rng, per_user, user_factors, item_given_factor.T)
    users = (keys // n_items).astype(np.int32)
    items = (keys % n_items).astype(np.int32)
    columns = {"user": users, "item": items}
    if ratings:
        columns["rating"] = _stars(rng, users, items, user_factors, item_factors)
    if timestamps:
        columns["timestamp"] = START_TIMESTAMP + rng.integers(0, TIME_SPAN, size=len(keys), dtype=np.int64)

    data = PreparedData(
        name=name,
        interactions=pd.DataFrame(columns),
        n_users=n_users,
        n_items=n_items,
        users=pd.DataFrame({"user": np.arange(n_users, dtype=np.int32), "original_id": np.arange(n_users).astype(str)}),
        items=pd.DataFrame({"item": np.arange(n_items, dtype=np.int32), "original_id": np.arange(n_items).astype(str)}),
    )
    data.meta = {
        "synthetic": {
            "seed": seed, "density": density, "popularity_exponent": popularity_exponent, "n_factors": n_factors,
            "user_concentration": user_concentration, "item_concentration": item_concentration,
            "activity_sigma": activity_sigma, "min_user_interactions": min_user_interactions,
            "content_features": content_features, "images": images, "ratings": ratings, "timestamps": timestamps,
        },
        "interaction_columns": list(columns),
    }
    if content_features:
        content = _content(rng, item_factors, content_features, content_words_per_item, content_noise)
        bow = make_feature_set("bow", content, meta={"dataset": name, "source": "synthetic",
                                                     "features": "bag of words (counts) drawn from the item factors"})
        data.item_features = {"bow": bow}
        data.meta["item_features"] = {"bow": bow.describe()}
    if images:
        data.item_images = _write_images(rng, item_factors, Path(image_dir), image_size)
        # no path here: meta.json never records a machine path
        data.meta["item_images"] = {"paths_relative_to": "the image_dir given to make_synthetic", "size": image_size,
                                    "items_with_image": int(data.item_images["image_path"].notna().sum())}
    return data


def _check_arguments(n_users, n_items, density, n_factors, min_user_interactions, images, image_dir) -> None:
    if n_users < 1 or n_items < 2 or n_factors < 1:
        raise RecAuditError(f"synthetic data needs n_users >= 1, n_items >= 2, n_factors >= 1; "
                            f"got {n_users}, {n_items}, {n_factors}")
    if not 0 < density <= 0.5:
        raise RecAuditError(f"synthetic density must be in (0, 0.5], got {density}")
    if min_user_interactions > n_items // 2:
        raise RecAuditError(f"min_user_interactions={min_user_interactions} exceeds half of n_items={n_items}")
    if images and image_dir is None:
        raise RecAuditError("images=True needs image_dir, the folder the PNG files are written to")


def _dirichlet(rng: np.random.Generator, concentration: float, shape: tuple[int, int]) -> np.ndarray:
    """Rows ~ Dirichlet(concentration); normalised gammas (vectorised, unlike ``rng.dirichlet``)."""
    gammas = rng.gamma(concentration, size=shape)
    # with small concentrations a whole row can underflow to zero: put its mass on one factor
    empty = gammas.sum(axis=1) == 0
    gammas[empty, rng.integers(0, shape[1], size=int(empty.sum()))] = 1.0
    return gammas / gammas.sum(axis=1, keepdims=True)


def _activity(rng, n_users, n_items, density, sigma, minimum) -> np.ndarray:
    """Log-normal interactions per user, stochastically rounded, in [minimum, n_items / 2]."""
    target = density * n_users * n_items
    raw = rng.lognormal(0.0, sigma, size=n_users)
    expected = raw * (target / raw.sum())
    counts = np.floor(expected) + (rng.random(n_users) < expected - np.floor(expected))
    return np.clip(counts, minimum, n_items // 2).astype(np.int64)


def _mixture_draws(rng: np.random.Generator, draws_per_row: np.ndarray, row_mixtures: np.ndarray,
                   components: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``draws_per_row[r]`` iid draws for each row ``r``: a component ``z ~ row_mixtures[r]``,
    then a column ``~ components[z]``. Returns (rows, columns), sorted by row.

    Exact and loop-free over rows: the component counts of every row come from one
    vectorised multinomial; the draws of component ``z`` are exchangeable, so their columns
    are a multinomial sample over the columns, shuffled into the slots (loop over components).
    """
    n_rows, n_components = row_mixtures.shape
    counts = rng.multinomial(draws_per_row, row_mixtures).ravel()
    rows = np.repeat(np.repeat(np.arange(n_rows, dtype=np.int64), n_components), counts)
    component = np.repeat(np.tile(np.arange(n_components, dtype=np.int16), n_rows), counts)
    slots = np.argsort(component, kind="stable")  # radix sort on int16
    per_component = np.bincount(component, minlength=n_components)
    columns = np.empty(len(rows), dtype=np.int64)
    start = 0
    for z, size in enumerate(per_component):
        drawn = np.repeat(np.arange(components.shape[1], dtype=np.int64), rng.multinomial(size, components[z]))
        columns[slots[start:start + size]] = rng.permutation(drawn)
        start += size
    return rows, columns


def _sample_interactions(rng, per_user: np.ndarray, user_factors: np.ndarray, factor_items: np.ndarray) -> np.ndarray:
    """Sorted unique keys ``user * n_items + item``: ``per_user[u]`` distinct items per user
    (fewer only if ``MAX_TOP_UP_ROUNDS`` redraws of the duplicates were not enough)."""
    n_users = user_factors.shape[0]
    n_items = factor_items.shape[1]
    keys = np.zeros(0, dtype=np.int64)
    needed = per_user
    for _ in range(MAX_TOP_UP_ROUNDS):
        if not needed.any():
            break
        users, items = _mixture_draws(rng, needed, user_factors, factor_items)
        new = sorted_unique(users * n_items + items)
        # both parts are sorted: the stable sort (timsort) merges them in linear time
        merged = np.sort(np.concatenate([keys, new]), kind="stable")
        keys = merged[np.concatenate(([True], merged[1:] != merged[:-1]))] if len(merged) else merged
        needed = np.maximum(per_user - np.bincount(keys // n_items, minlength=n_users), 0)
    return keys


def _stars(rng, users, items, user_factors, item_factors, chunk: int = 1 << 20) -> np.ndarray:
    """1-5 stars: ``round(1 + 4 * (1 - exp(-k * theta_u . psi_i)) + N(0, 0.5))``, clipped."""
    n_factors = user_factors.shape[1]
    stars = np.empty(len(users), dtype=np.float32)
    for start in range(0, len(users), chunk):
        u, i = users[start:start + chunk], items[start:start + chunk]
        affinity = np.einsum("ij,ij->i", user_factors[u], item_factors[i]) * n_factors
        value = 1 + 4 * (1 - np.exp(-affinity)) + rng.normal(0, 0.5, size=len(u))
        stars[start:start + chunk] = np.clip(np.rint(value), 1, 5)
    return stars


def _content(rng, item_factors: np.ndarray, n_features: int, words_per_item: float, noise: float) -> sp.csr_matrix:
    """Items x features word counts: each word comes from factor ``z ~ psi_i`` and then
    ``word ~ beta_z`` (sparse per-factor vocabularies), or uniformly with probability ``noise``."""
    n_items, n_factors = item_factors.shape
    word_given_factor = _dirichlet(rng, 0.05, (n_factors, n_features))
    lengths = np.maximum(rng.poisson(words_per_item, size=n_items), 1)
    owners, words = _mixture_draws(rng, lengths, item_factors, word_given_factor)
    is_noise = rng.random(len(words)) < noise
    words[is_noise] = rng.integers(0, n_features, size=int(is_noise.sum()))
    content = sp.csr_matrix((np.ones(len(words), dtype=np.float32), (owners, words)), shape=(n_items, n_features))
    content.sum_duplicates()
    return content


def _write_images(rng, item_factors: np.ndarray, folder: Path, size: int) -> pd.DataFrame:
    """``<item>.png``, ``size`` x ``size`` RGB: a colour projected from ``psi_i`` plus pixel noise."""
    from PIL import Image  # Pillow comes with matplotlib (seaborn); only needed for images

    folder.mkdir(parents=True, exist_ok=True)
    projection = rng.random((item_factors.shape[1], 3))
    colours = item_factors @ projection
    colours = 255 * (colours - colours.min(axis=0)) / np.maximum(np.ptp(colours, axis=0), 1e-12)
    pixels = colours[:, None, None, :] + rng.normal(0, 12, size=(len(colours), size, size, 3))
    pixels = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
    names = [f"{item}.png" for item in range(len(colours))]
    for name, image in zip(names, pixels):
        Image.fromarray(image, mode="RGB").save(folder / name)
    hashes = [sha256_file(folder / name) for name in names]
    return pd.DataFrame({"item": np.arange(len(colours), dtype=np.int32), "image_path": pd.Series(names, dtype=object),
                         "sha256": pd.Series(hashes, dtype=object)})


# ----- synthetic raw files in the published formats ------------------------------------

RAW_KINDS = ("movielens-1m", "movielens-1m-posters", "movielens-1m-ncf")


def write_synthetic_raw(kind: str, folder: Path | str, *, n_users: int = 30, n_items: int = 150,
                        density: float = 0.1, seed: int = 0, n_negatives: int = 99) -> Path:
    """Write small raw files in the exact format of a dataset whose real files the mirror lacks.

    - ``movielens-1m``: ``ratings.dat`` (``UserID::MovieID::Rating::Timestamp``), ``movies.dat``
      (ISO-8859-1, ``MovieID::Title::Genres``, one title with a non-ASCII letter) and
      ``users.dat`` (``UserID::Gender::Age::Occupation::Zip``); ids 1-based, movie ids with gaps.
    - ``movielens-1m-posters``: the same plus ``MovieImages/<MovieID>.jpg`` (8 x 8 JPEG) for
      two movies in three.
    - ``movielens-1m-ncf``: NCF's ``ml-1m.train.rating`` / ``ml-1m.test.rating``
      (``user\\titem\\trating\\ttimestamp``, 0-based, each user's latest rating held out) and
      ``ml-1m.test.negative`` (``(user,item)`` then ``n_negatives`` items the user never rated).

    Returns ``folder``.
    """
    if kind not in RAW_KINDS:
        from common.errors import unknown_name_error

        raise unknown_name_error("synthetic raw kind", kind, RAW_KINDS)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = make_synthetic(n_users, n_items, density, seed, ratings=True, min_user_interactions=2)
    rng = np.random.default_rng(seed + 1)
    frame = data.interactions
    if kind == "movielens-1m-ncf":
        _write_ncf(frame, folder, n_items, n_negatives, rng)
        return folder
    movie_ids = np.sort(rng.choice(np.arange(1, 3 * n_items + 1), size=n_items, replace=False))
    ratings = pd.DataFrame({"user": frame["user"] + 1, "item": movie_ids[frame["item"]],
                            "rating": frame["rating"].astype(int), "timestamp": frame["timestamp"]})
    _write_lines(folder / "ratings.dat", ratings, "::")
    genres = np.array(["Action", "Animation", "Children's", "Comedy", "Drama", "Film-Noir", "Sci-Fi"])
    first, second = rng.integers(0, len(genres), size=(2, n_items))
    titles = [f"Movie {movie} ({1950 + movie % 50})" for movie in movie_ids]
    titles[0] = f"Cr\u00e8me br\u00fbl\u00e9e ({1950 + movie_ids[0] % 50})"
    pairs = np.char.add(np.char.add(genres[first], "|"), genres[second])
    movies = pd.DataFrame({"item": movie_ids, "title": titles, "genres": np.where(first == second, genres[first], pairs)})
    _write_lines(folder / "movies.dat", movies, "::", encoding="iso-8859-1")
    users = pd.DataFrame({"user": np.arange(1, n_users + 1), "gender": rng.choice(["F", "M"], size=n_users),
                          "age": rng.choice([1, 18, 25, 35, 45, 50, 56], size=n_users),
                          "occupation": rng.integers(0, 21, size=n_users),
                          "zip": [f"{code:05d}" for code in rng.integers(0, 100000, size=n_users)]})
    _write_lines(folder / "users.dat", users, "::")
    if kind == "movielens-1m-posters":
        from PIL import Image

        (folder / "MovieImages").mkdir(exist_ok=True)
        for movie in movie_ids[np.arange(n_items) % 3 != 2]:
            pixels = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
            Image.fromarray(pixels, mode="RGB").save(folder / "MovieImages" / f"{movie}.jpg", format="JPEG")
    return folder


def _write_ncf(frame: pd.DataFrame, folder: Path, n_items: int, n_negatives: int, rng) -> None:
    """NCF's leave-one-out files: the latest interaction of each user is the test item."""
    frame = frame.assign(rating=frame["rating"].astype(int)).sort_values(["user", "timestamp", "item"], kind="stable")
    is_test = ~frame["user"].duplicated(keep="last").to_numpy()
    train, test = frame[~is_test], frame[is_test]
    _write_lines(folder / "ml-1m.train.rating", train, "\t")
    _write_lines(folder / "ml-1m.test.rating", test, "\t")
    seen = np.zeros((frame["user"].max() + 1, n_items), dtype=bool)
    seen[frame["user"].to_numpy(), frame["item"].to_numpy()] = True
    if n_negatives > (~seen).sum(axis=1).min():
        raise RecAuditError(f"n_negatives={n_negatives} exceeds the unrated items of some user; raise n_items")
    # a random order of each user's unrated items; the first n_negatives are the candidates
    order = np.argsort(np.where(seen, np.inf, rng.random(seen.shape)), axis=1)[:, :n_negatives]
    heads = "(" + test["user"].astype(str) + "," + test["item"].astype(str) + ")"
    negatives = pd.DataFrame(order[test["user"].to_numpy()]).astype(str).agg("\t".join, axis=1)
    lines = heads.to_numpy() + "\t" + negatives.to_numpy()
    (folder / "ml-1m.test.negative").write_text("\n".join(lines) + "\n")


def _write_lines(path: Path, frame: pd.DataFrame, sep: str, encoding: str = "utf-8") -> None:
    text = frame.astype(str).agg(sep.join, axis=1)
    path.write_bytes(("\n".join(text) + "\n").encode(encoding))
