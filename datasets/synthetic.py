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
#
# One writer per upstream format: write_ml20m (ratings.csv), write_msd_triplets
# (train_triplets.txt), write_netflix (training_set.tar / training_set/ / combined_data_*.txt, and
# movie_titles.txt), write_ncf_files (the NCF authors' *.rating and *.test.negative),
# write_gzip_lines (McAuley's JSON / Python-literal lines, gzipped), write_vbpr_features (VBPR's
# binary .b records), write_dvbpr_npy (DVBPR's pickled .npy), _write_lines (MovieLens 1M's
# ``::`` files). The parser tests write hand-made rows through them; write_synthetic_raw writes a
# whole stand-in of a dataset through them, drawn from make_synthetic's planted structure.

# Each kind's stand-in: (n_users, n_items, density, make_synthetic keywords). The paper-scale and
# visual kinds are sized so that the paper's preprocessing keeps a few hundred users and items
# (MSD: songs with >= 200 users, then users with >= 20 songs) and every user keeps at least the
# interactions its protocol needs (NCF: 99 unrated items for the negatives; DVBPR: 3 for its parts).
RAW_SHAPES: dict[str, tuple[int, int, float, dict]] = {
    "movielens-1m": (30, 150, 0.1, {}),
    "movielens-1m-posters": (30, 150, 0.1, {}),
    "movielens-1m-ncf": (200, 300, 0.05, {}),
    "pinterest-20-ncf": (200, 300, 0.08, {"min_user_interactions": 20, "activity_sigma": 0.4}),
    "movielens-20m": (300, 200, 0.08, {"min_user_interactions": 10}),
    "netflix-prize": (300, 150, 0.1, {"min_user_interactions": 10}),
    "msd-taste-profile": (800, 100, 0.35, {"min_user_interactions": 20, "popularity_exponent": 0.3,
                                           "activity_sigma": 0.3}),
    "amazon-women-vbpr": (240, 180, 0.06, {"min_user_interactions": 6}),
    "amazon-men-vbpr": (240, 180, 0.06, {"min_user_interactions": 6}),
    "amazon-phones-vbpr": (200, 120, 0.05, {"min_user_interactions": 4}),
    "tradesy-vbpr": (200, 120, 0.05, {"min_user_interactions": 4}),
    "amazon-fashion-dvbpr": (150, 200, 0.03, {"min_user_interactions": 4}),
    "amazon-women-dvbpr": (150, 200, 0.03, {"min_user_interactions": 4}),
    "amazon-men-dvbpr": (150, 200, 0.03, {"min_user_interactions": 4}),
    "tradesy-dvbpr": (150, 200, 0.03, {"min_user_interactions": 4}),
}
RAW_KINDS = tuple(RAW_SHAPES)
DVBPR_FILES = {"amazon-fashion-dvbpr": "AmazonFashion6ImgPartitioned.npy",
               "amazon-women-dvbpr": "AmazonWomenWithImgPartitioned.npy",
               "amazon-men-dvbpr": "AmazonMenWithImgPartitioned.npy", "tradesy-dvbpr": "TradesyImgPartitioned.npy"}
CLOTHING = "Clothing_Shoes_and_Jewelry"
PHONES = "Cell_Phones_and_Accessories"
VBPR_DIM = 4096
NCF_PREFIX = {"movielens-1m-ncf": "ml-1m", "pinterest-20-ncf": "pinterest-20"}
NETFLIX_FIRST_DAY = np.datetime64("1999-11-11")  # the first and last rating dates of the Prize data
NETFLIX_DAYS = int((np.datetime64("2005-12-31") - NETFLIX_FIRST_DAY).astype(int))
# (year or None, title) of the first three movie ids in movie_titles.txt: the cases its format
# has (a NULL year; a title with a comma and a letter outside ASCII, written in ISO-8859-1).
NETFLIX_TITLES = {1: (2003, "Dinosaur Planet"), 2: (None, "Isle of Man TT 2004 Review"),
                  3: (1997, "Character, The Caf\u00e9")}


def write_synthetic_raw(kind: str, folder: Path | str, *, n_users: int | None = None, n_items: int | None = None,
                        density: float | None = None, seed: int = 0, n_negatives: int = 99) -> Path:
    """Write the raw files of a dataset ``kind`` in its exact upstream format, with the names
    ``data/raw/<dataset>/`` holds (a stand-in for files this machine cannot download). Sizes not
    given are the kind's :data:`RAW_SHAPES`.

    - ``movielens-1m``: ``ratings.dat`` (``UserID::MovieID::Rating::Timestamp``), ``movies.dat``
      (ISO-8859-1, ``MovieID::Title::Genres``, one title with a non-ASCII letter) and
      ``users.dat`` (``UserID::Gender::Age::Occupation::Zip``); ids 1-based, movie ids with gaps.
    - ``movielens-1m-posters``: the same plus ``MovieImages/<MovieID>.jpg`` (8 x 8 JPEG) for
      two movies in three.
    - ``movielens-1m-ncf`` / ``pinterest-20-ncf``: NCF's ``<prefix>.train.rating`` /
      ``<prefix>.test.rating`` (``user\\titem\\trating\\ttimestamp``, 0-based, each user's latest
      interaction held out; Pinterest's lines are ``user\\titem\\t1\\t0``) and
      ``<prefix>.test.negative`` (``(user,item)`` then ``n_negatives`` items the user never touched).
    - ``movielens-20m``: ``ratings.csv`` (header ``userId,movieId,rating,timestamp``, half stars).
    - ``netflix-prize``: ``training_set.tar`` (``training_set/mv_NNNNNNN.txt``: ``MovieID:`` then
      ``CustomerID,Rating,Date``; sparse customer ids) and ``movie_titles.txt`` (ISO-8859-1).
    - ``msd-taste-profile``: ``train_triplets.txt`` (40-hex user, ``SO...`` song, play count).
    - ``amazon-women-vbpr`` / ``amazon-men-vbpr`` (the same files: Clothing, Shoes & Jewelry with
      Women, Men and Girls items), ``amazon-phones-vbpr``: the 2014 Amazon ``reviews_*.json.gz``
      (JSON lines), ``meta_*.json.gz`` (Python literals, clothing only) and
      ``image_features_*.b`` (10-byte ASIN + 4096 float32, one item in ten without a record).
    - ``tradesy-vbpr``: ``tradesy.json.gz`` (``{'lists': {...bought, want, selling, sold}, 'uid'}``
      literals) and ``image_features_tradesy.b`` (space-padded numeric ids).
    - the four DVBPR kinds: the authors' ``.npy`` of ``[user_train, user_validation, user_test,
      Item, usernum, itemnum]`` (latest interaction test, the one before validation; each item's
      8 x 6 JPEG under ``imgs``).

    Returns ``folder``.
    """
    if kind not in RAW_SHAPES:
        from common.errors import unknown_name_error

        raise unknown_name_error("synthetic raw kind", kind, RAW_KINDS)
    shape_users, shape_items, shape_density, keywords = RAW_SHAPES[kind]
    n_users = shape_users if n_users is None else n_users
    n_items = shape_items if n_items is None else n_items
    density = shape_density if density is None else density
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = make_synthetic(n_users, n_items, density, seed, ratings=True,
                          **{"min_user_interactions": 2, **keywords})
    rng = np.random.default_rng(seed + 1)
    frame = data.interactions
    if kind in NCF_PREFIX:
        _write_ncf(frame, folder, NCF_PREFIX[kind], n_items, n_negatives, rng, implicit=kind == "pinterest-20-ncf")
    elif kind == "movielens-20m":
        movie_ids = _sparse_ids(rng, n_items, 1)
        half_stars = np.maximum(frame["rating"].to_numpy() - 0.5 * (rng.random(len(frame)) < 0.5), 0.5)
        write_ml20m(folder, list(zip((frame["user"] + 1).tolist(), movie_ids[frame["item"]].tolist(),
                                     half_stars.tolist(), frame["timestamp"].tolist())))
    elif kind == "netflix-prize":
        customers = _sparse_ids(rng, n_users, 1)
        days = NETFLIX_FIRST_DAY + rng.integers(0, NETFLIX_DAYS + 1, size=len(frame)).astype("timedelta64[D]")
        movies: dict[int, list] = {}
        for user, item, stars, day in zip(frame["user"], frame["item"], frame["rating"].astype(int), days.astype(str)):
            movies.setdefault(int(item) + 1, []).append((int(customers[user]), int(stars), day))
        write_netflix(folder, "tar", dict(sorted(movies.items())))
    elif kind == "msd-taste-profile":
        plays = rng.geometric(0.3, size=len(frame))
        write_msd_triplets(folder, list(zip(map(msd_user_id, frame["user"].tolist()),
                                            map(msd_song_id, frame["item"].tolist()), plays.tolist())))
    elif kind.endswith("-vbpr"):
        _write_vbpr(kind, frame, folder, n_items, rng)
    elif kind.endswith("-dvbpr"):
        _write_dvbpr(frame, folder / DVBPR_FILES[kind], n_users, n_items, rng)
    else:
        _write_movielens_1m(kind, frame, folder, n_users, n_items, rng)
    return folder


def _sparse_ids(rng, count: int, start: int) -> np.ndarray:
    """``count`` sorted distinct ids from ``start`` on, with gaps (as published ids have)."""
    return np.sort(rng.choice(np.arange(start, start + 3 * count), size=count, replace=False))


def _write_movielens_1m(kind: str, frame: pd.DataFrame, folder: Path, n_users: int, n_items: int, rng) -> None:
    movie_ids = _sparse_ids(rng, n_items, 1)
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


def _write_ncf(frame: pd.DataFrame, folder: Path, prefix: str, n_items: int, n_negatives: int, rng,
               implicit: bool = False) -> None:
    """NCF's leave-one-out files: the latest interaction of each user is the test item."""
    frame = frame.assign(rating=frame["rating"].astype(int)).sort_values(["user", "timestamp", "item"], kind="stable")
    if implicit:  # Pinterest: pins carry neither a rating nor a time
        frame = frame.assign(rating=1, timestamp=0)
    is_test = ~frame["user"].duplicated(keep="last").to_numpy()
    train, test = frame[~is_test], frame[is_test]
    seen = np.zeros((frame["user"].max() + 1, n_items), dtype=bool)
    seen[frame["user"].to_numpy(), frame["item"].to_numpy()] = True
    if n_negatives > (~seen).sum(axis=1).min():
        raise RecAuditError(f"n_negatives={n_negatives} exceeds the unrated items of some user; raise n_items")
    # a random order of each user's unrated items; the first n_negatives are the candidates
    order = np.argsort(np.where(seen, np.inf, rng.random(seen.shape)), axis=1)[:, :n_negatives]
    write_ncf_files(folder, prefix, train, test, order[test["user"].to_numpy()])


def write_ncf_files(folder: Path | str, prefix: str, train: pd.DataFrame, test: pd.DataFrame,
                    negatives: np.ndarray) -> Path:
    """The NCF authors' three files: ``<prefix>.train.rating`` and ``<prefix>.test.rating``
    (``user\\titem\\trating\\ttimestamp`` lines, the frames' columns in that order) and
    ``<prefix>.test.negative``: per test row ``(user,item)`` then its row of ``negatives``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    columns = ["user", "item", "rating", "timestamp"]
    _write_lines(folder / f"{prefix}.train.rating", train[columns], "\t")
    _write_lines(folder / f"{prefix}.test.rating", test[columns], "\t")
    heads = "(" + test["user"].astype(str) + "," + test["item"].astype(str) + ")"
    rows = pd.DataFrame(np.asarray(negatives)).astype(str).agg("\t".join, axis=1)
    (folder / f"{prefix}.test.negative").write_text("\n".join(heads.to_numpy() + "\t" + rows.to_numpy()) + "\n")
    return folder


def write_ml20m(folder: Path | str, rows: list[tuple[int, int, float, int]], movies: bool = False) -> Path:
    """MovieLens 20M's ``ratings.csv`` (its header, then ``userId,movieId,rating,timestamp``;
    ratings with one decimal); ``movies=True`` adds a three-movie ``movies.csv`` (a quoted
    title with a comma, a movie with ``(no genres listed)``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    text = "userId,movieId,rating,timestamp\n" + "".join(f"{u},{i},{r:.1f},{t}\n" for u, i, r, t in rows)
    (folder / "ratings.csv").write_text(text)
    if movies:
        (folder / "movies.csv").write_text('movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n'
                                           '2,"American President, The (1995)",Comedy|Drama|Romance\n'
                                           '3,Unknown (2015),(no genres listed)\n')
    return folder


def msd_user_id(k: int) -> str:
    """A user id of the Taste Profile's form: 40 hexadecimal digits."""
    import hashlib

    return hashlib.sha1(str(k).encode()).hexdigest()


def msd_song_id(k: int) -> str:
    """A song id of the Echo Nest's form: ``SO`` + 16 upper-case hexadecimal digits."""
    return f"SO{k:016X}"[:18]


def write_msd_triplets(folder: Path | str, rows: list[tuple[str, str, int]]) -> Path:
    """The Taste Profile's ``train_triplets.txt``: ``user<TAB>song<TAB>play count`` lines."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train_triplets.txt").write_text("".join(f"{u}\t{s}\t{c}\n" for u, s, c in rows))
    return folder


def _netflix_block(movie: int, rows) -> str:
    return f"{movie}:\n" + "".join(f"{c},{r},{d}\n" for c, r, d in rows)


def write_netflix(folder: Path | str, layout: str, movies: dict[int, list[tuple[int, int, str]]]) -> Path:
    """Netflix Prize files for ``movies`` (movie id -> ``(customer, rating, "YYYY-MM-DD")`` rows):
    ``layout`` ``"tar"`` writes ``training_set.tar`` (a ``training_set`` directory entry, then one
    ``training_set/mv_NNNNNNN.txt`` per movie), ``"folder"`` the ``training_set/`` folder of those
    files, anything else Kaggle's ``combined_data_1.txt`` (the first two movies' blocks) and
    ``combined_data_2.txt`` (the rest). Always ``movie_titles.txt`` (ISO-8859-1,
    ``MovieID,YearOfRelease,Title``, NULL for an unknown year): :data:`NETFLIX_TITLES` for the
    first three movie ids, ``Movie N`` for the others."""
    import io
    import tarfile

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = {f"training_set/mv_{m:07d}.txt": _netflix_block(m, rows).encode() for m, rows in movies.items()}
    if layout == "tar":
        with tarfile.open(folder / "training_set.tar", "w") as archive:
            info = tarfile.TarInfo("training_set")
            info.type = tarfile.DIRTYPE
            archive.addfile(info)
            for name, content in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
    elif layout == "folder":
        for name, content in files.items():
            (folder / name).parent.mkdir(exist_ok=True)
            (folder / name).write_bytes(content)
    else:  # Kaggle: the same blocks, split over combined_data_1..4.txt
        items = list(movies.items())
        (folder / "combined_data_1.txt").write_text("".join(_netflix_block(m, rows) for m, rows in items[:2]))
        (folder / "combined_data_2.txt").write_text("".join(_netflix_block(m, rows) for m, rows in items[2:]))
    titles = [(m, *NETFLIX_TITLES.get(m, (1950 + m % 56, f"Movie {m}"))) for m in sorted(set(movies) | {1, 2, 3})]
    (folder / "movie_titles.txt").write_bytes("".join(f"{m},{'NULL' if year is None else year},{title}\n"
                                                      for m, year, title in titles).encode("iso-8859-1"))
    return folder


def write_gzip_lines(path: Path | str, lines: list[str]) -> Path:
    """McAuley's files: one record per line (JSON, or a Python dict literal), gzipped (no time
    or name in the header: the same lines give the same bytes)."""
    import gzip

    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as handle:
        handle.write(("\n".join(lines) + "\n").encode("utf-8"))
    return Path(path)


def write_vbpr_features(path: Path | str, records) -> Path:
    """VBPR's image features: per record a 10-byte ASCII item id, then 4096 little-endian float32."""
    with open(path, "wb") as handle:
        for item, values in records:
            if len(item) != 10:
                raise RecAuditError(f"a VBPR feature record's id is 10 bytes, got {item!r}")
            handle.write(item + np.asarray(values, dtype="<f4").tobytes())
    return Path(path)


def write_dvbpr_npy(path: Path | str, objects: list) -> Path:
    """DVBPR's ``.npy``: the six objects pickled in one object array (what ``np.save`` writes)."""
    np.save(path, np.array(objects, dtype=object), allow_pickle=True)
    return Path(path)


def jpeg_bytes(colour: tuple[int, int, int], size: tuple[int, int] = (8, 6)) -> bytes:
    """A JPEG of one colour (``size`` = width, height)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, tuple(int(c) for c in colour)).save(buffer, "JPEG")
    return buffer.getvalue()


def _features(rng, ids: list[bytes]) -> list[tuple[bytes, np.ndarray]]:
    """Non-negative, mostly zero 4096-d records (as fc7 activations after a ReLU are)."""
    values = np.maximum(rng.normal(-1.0, 1.0, size=(len(ids), VBPR_DIM)), 0).astype(np.float32)
    return list(zip(ids, values))


def _write_vbpr(kind: str, frame: pd.DataFrame, folder: Path, n_items: int, rng) -> None:
    import json

    users, items = frame["user"].to_numpy(), frame["item"].to_numpy()
    if kind == "tradesy-vbpr":
        ids = [str(100_000 + 7 * item) for item in range(n_items)]
        wants = rng.random(len(frame)) < 0.4
        lines = []
        for user in np.unique(users):
            mine = items[users == user]
            bought, want = mine[~wants[users == user]], mine[wants[users == user]]
            selling = rng.choice(n_items, size=int(rng.integers(0, 3)), replace=False)
            lines.append(repr({"lists": {"selling": [ids[i] for i in selling], "sold": [],
                                         "bought": [ids[i] for i in bought], "want": [ids[i] for i in want]},
                               "uid": str(user + 1)}))
        write_gzip_lines(folder / "tradesy.json.gz", lines)
        features = "image_features_tradesy.b"
        encoded = [name.encode().ljust(10) for name in ids]
    else:
        category = PHONES if kind == "amazon-phones-vbpr" else CLOTHING
        ids = [f"B{item:09d}" for item in range(n_items)]
        reviews = [json.dumps({"reviewerID": f"A{user:013d}", "asin": ids[item], "reviewerName": f"user {user}",
                               "helpful": [0, 0], "reviewText": "fine", "overall": float(stars), "summary": "ok",
                               "unixReviewTime": int(time),
                               "reviewTime": pd.Timestamp(int(time), unit="s").strftime("%m %d, %Y")})
                   for user, item, stars, time in zip(users, items, frame["rating"], frame["timestamp"])]
        write_gzip_lines(folder / f"reviews_{category}.json.gz", reviews)
        if category == CLOTHING:  # one item in three under Women, one under Men, one under Girls
            top = "Clothing, Shoes & Jewelry"
            subs = ["Women", "Men", "Girls"]
            write_gzip_lines(folder / f"meta_{category}.json.gz", [
                repr({"asin": ids[item], "title": f"Item {item}", "price": round(5 + item % 40 * 1.25, 2),
                      "categories": [[top, subs[item % 3], "Clothing"], ["Sports"]]}) for item in range(n_items)])
        features = f"image_features_{category}.b"
        encoded = [name.encode() for name in ids]
    with_record = [item for item in range(n_items) if item % 10 != 9]  # one item in ten has no features
    write_vbpr_features(folder / features, _features(rng, [encoded[item] for item in with_record]))


def _write_dvbpr(frame: pd.DataFrame, path: Path, n_users: int, n_items: int, rng) -> None:
    frame = frame.sort_values(["user", "timestamp", "item"], kind="stable")
    rank_from_last = frame.groupby("user").cumcount(ascending=False).to_numpy()
    parts: list[dict] = [{}, {}, {}]  # user_train, user_validation, user_test
    for (user, item, time), rank in zip(frame[["user", "item", "timestamp"]].itertuples(index=False), rank_from_last):
        record = {"productid": int(item), "reviewerID": f"A{user:013d}", "asin": f"B{item:09d}",
                  "unixReviewTime": int(time)}
        parts[{0: 2, 1: 1}.get(rank, 0)].setdefault(int(user), []).append(record)
    colours = rng.integers(0, 256, size=(n_items, 3))
    images = {item: {"imgs": jpeg_bytes(colours[item]) if item % 20 != 19 else b"", "asin": f"B{item:09d}"}
              for item in range(n_items)}  # one item in twenty without an image
    write_dvbpr_npy(path, [*parts, images, n_users, n_items])


def _write_lines(path: Path, frame: pd.DataFrame, sep: str, encoding: str = "utf-8") -> None:
    text = frame.astype(str).agg(sep.join, axis=1)
    path.write_bytes(("\n".join(text) + "\n").encode(encoding))
