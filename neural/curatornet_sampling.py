"""CuratorNet's training triples: (profile, positive, negative) from the six sampling guidelines.

Messina et al. (ComplexRec 2020) train on a fixed set of triples drawn once before training;
the released notebook (``experiments/training.ipynb``) draws an equal share from each of six
strategies. Numbered as that notebook runs them:

1. real users, rank profile above non-profile: profile = all the user's items, positive one of
   them, negative drawn by the *cluster-biased sampler* outside the profile;
2. fake one-item profiles, rank the item above anything else: profile = (i,), positive i,
   negative cluster-biased, not i;
3. real users, rank items sharing an artist *and* a visual cluster with the profile above items
   of clusters and artists the user never bought: positive outside the profile from one of the
   user's artists and in one of the user's clusters (at most 20 tries), negative from a cluster
   the user never bought by an artist the user never bought;
4. fake one-item profiles, rank another work of the same artist above a visually acceptable
   work of another artist: profile = (i,), positive another item of i's artist, negative
   cluster-biased around i by another artist such that :meth:`VisualClusters.validate_triple`
   accepts (i, positive, negative) with margin 0.1 (at most 20 tries);
5. predict the next basket: for each basket but the last, profile = every item up to it,
   positive an item of the next basket, negative as in 3;
6. hide one item of a basket of two or more: profile = every item up to that basket's end but
   the hidden one, positive the hidden item, negative as in 3.

Baskets are a user's items with equal timestamps, in time order. The cluster-biased sampler
draws from the positive's cluster with probability ``fine_grained`` (0.6), otherwise from a
uniformly chosen cluster, then a uniform item of that cluster. A pair that is a near-duplicate
(same cluster and cosine 1 in the PCA space) is never (positive, negative); a triple already
drawn is not drawn twice. Where the notebook retries "5 times" or "20 times" so do we, in
vectorised rounds; what is still unresolved after them is dropped, as there.

Differences, each for a reason: the visual similarity is computed on the PCA-200 components,
where the notebook computed them on 2 (a known slip: its variable is named ``pca200``); items
without an "artist" (``artist`` -1) take part everywhere except as the shared artist of 3 and
4; without an artist attribute at all, guidelines 3 and 4 are skipped and 5 and 6 need only an
unseen cluster; without timestamps every user's items form one basket (so 5 is empty). The
notebook's per-user, per-basket and per-item counts are ceilings, which overshoot the target on
data with many small baskets (MovieLens has a basket per rating second: guideline 5 alone would
give every transition a draw, 20 times the target on ML-100K); each guideline keeps at most its
target, a uniform subset of its draws.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

FINE_GRAINED = 0.6
VISUAL_MARGIN = 0.1
GUIDELINES = (1, 2, 3, 4, 5, 6)


# ----- visual clusters ----------------------------------------------------------------------------
@dataclass(frozen=True)
class VisualClusters:
    """Items' k-means cluster and unit-length PCA vectors (for near-duplicates and margins)."""

    cluster: np.ndarray  # (items,) int
    unit: np.ndarray  # (items, d) float, rows of length 1 (or 0)

    @property
    def n_clusters(self) -> int:
        return int(self.cluster.max()) + 1 if len(self.cluster) else 0

    def similarity(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        return np.einsum("ij,ij->i", self.unit[i], self.unit[j])

    def same(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Near-duplicates: the same cluster and cosine within 1e-7 of 1 (the notebook's rule)."""
        return (self.cluster[i] == self.cluster[j]) & (np.abs(self.similarity(i, j) - 1.0) < 1e-7)

    def validate_triple(self, query: np.ndarray, positive: np.ndarray, negative: np.ndarray,
                        margin: float = VISUAL_MARGIN) -> np.ndarray:
        """The notebook's ``validate_triple``: the positive shares the query's cluster and the
        negative does not (accept); the reverse (reject); else accept when the positive is more
        similar to the query than the negative by ``margin``."""
        cq, cp, cn = self.cluster[query], self.cluster[positive], self.cluster[negative]
        clear_yes = (cq == cp) & (cq != cn)
        clear_no = (cq == cn) & (cq != cp)
        by_margin = self.similarity(query, positive) > self.similarity(query, negative) + margin
        return clear_yes | (~clear_no & by_margin)


def visual_clusters(features: np.ndarray, n_components: int = 200, n_clusters: int = 100, runs: int = 3,
                    seed: int = 0) -> VisualClusters:
    """z-score -> PCA (``n_components``) -> k-means (``n_clusters``), keeping the run with the
    best silhouette of ``runs`` seeded runs."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.metrics import silhouette_score

    n_items = len(features)
    scaled = zscore(features)
    components = max(1, min(n_components, n_items, scaled.shape[1]))
    reduced = PCA(n_components=components, svd_solver="full", random_state=seed).fit_transform(scaled)
    k = max(1, min(n_clusters, n_items))
    best, best_score = None, -np.inf
    for run in range(max(1, runs)):
        labels = KMeans(n_clusters=k, n_init=1, random_state=seed + run).fit_predict(reduced)
        distinct = len(np.unique(labels))
        score = silhouette_score(reduced, labels, sample_size=min(n_items, 10_000), random_state=seed) \
            if 1 < distinct < n_items else -1.0
        if best is None or score > best_score:
            best, best_score = labels, score
    _, labels = np.unique(best, return_inverse=True)  # clusters numbered 0..c-1, none empty
    norms = np.linalg.norm(reduced, axis=1, keepdims=True)
    unit = np.divide(reduced, norms, out=np.zeros_like(reduced), where=norms > 0)
    return VisualClusters(cluster=labels.astype(np.int64), unit=unit)


def zscore(features: np.ndarray) -> np.ndarray:
    """Each column to mean 0 and standard deviation 1 over the items (constant columns to 0)."""
    values = np.asarray(features, dtype=np.float64)
    std = values.std(axis=0)
    return ((values - values.mean(axis=0)) / np.where(std > 0, std, 1.0)).astype(np.float32)


# ----- the triples --------------------------------------------------------------------------------
@dataclass
class Triples:
    """Training instances: profile ``profile_of[k]`` (items ``profile_items[profile_indptr[p]:
    profile_indptr[p + 1]]``), ``positive[k]`` above ``negative[k]``; ``guideline[k]`` says which
    rule and ``user[k]`` whose purchases it came from (-1 for the fake one-item profiles)."""

    profile_indptr: np.ndarray
    profile_items: np.ndarray
    profile_of: np.ndarray
    positive: np.ndarray
    negative: np.ndarray
    guideline: np.ndarray
    user: np.ndarray

    def __len__(self) -> int:
        return len(self.positive)

    def profile(self, k: int) -> np.ndarray:
        p = self.profile_of[k]
        return self.profile_items[self.profile_indptr[p]:self.profile_indptr[p + 1]]

    def profile_sizes(self) -> np.ndarray:
        return np.diff(self.profile_indptr)[self.profile_of]


class _Profiles:
    """Growing store of profiles (item lists); returns their ids."""

    def __init__(self):
        self.parts: list[np.ndarray] = []
        self.sizes: list[np.ndarray] = []
        self.count = 0

    def add(self, indptr: np.ndarray, items: np.ndarray) -> np.ndarray:
        n = len(indptr) - 1
        self.parts.append(np.asarray(items, dtype=np.int64))
        self.sizes.append(np.diff(indptr).astype(np.int64))
        ids = np.arange(self.count, self.count + n)
        self.count += n
        return ids

    def build(self) -> tuple[np.ndarray, np.ndarray]:
        sizes = np.concatenate(self.sizes) if self.sizes else np.zeros(0, np.int64)
        items = np.concatenate(self.parts) if self.parts else np.zeros(0, np.int64)
        return np.r_[0, np.cumsum(sizes)].astype(np.int64), items


class _Membership:
    """Vectorised ``value in set_of[row]`` over a CSR-like (row -> sorted values) relation."""

    def __init__(self, rows: np.ndarray, values: np.ndarray, n_values: int):
        self.stride = int(n_values) + 1
        self.keys = np.unique(np.asarray(rows, np.int64) * self.stride + np.asarray(values, np.int64))

    def contains(self, rows: np.ndarray, values: np.ndarray) -> np.ndarray:
        keys = np.asarray(rows, np.int64) * self.stride + np.asarray(values, np.int64)
        where = np.searchsorted(self.keys, keys)
        found = where < len(self.keys)
        found[found] = self.keys[where[found]] == keys[found]
        return found


def _pick(indptr: np.ndarray, values: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One uniform value of each row's list (all rows must be non-empty)."""
    sizes = indptr[rows + 1] - indptr[rows]
    return values[indptr[rows] + rng.integers(0, sizes)]


def _grouped(keys: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """(indptr, members) of the groups 0..n_groups-1 of ``keys`` (negative keys belong to none)."""
    order = np.argsort(keys, kind="stable")
    order = order[keys[order] >= 0]
    counts = np.bincount(keys[order], minlength=n_groups)
    return np.r_[0, np.cumsum(counts)].astype(np.int64), order.astype(np.int64)


class GuidelineSampler:
    """Draws the six guidelines' triples for one training matrix (see the module docstring)."""

    def __init__(self, train: sp.csr_matrix, timestamps: sp.csr_matrix | None, clusters: VisualClusters,
                 artist: np.ndarray | None, fine_grained: float = FINE_GRAINED, margin: float = VISUAL_MARGIN):
        train = sp.csr_matrix(train, dtype=np.float32)
        train.sum_duplicates()
        train.sort_indices()
        self.train = train
        self.n_users, self.n_items = train.shape
        self.clusters = clusters
        self.fine_grained = float(fine_grained)
        self.margin = float(margin)
        self.artist = None if artist is None else np.asarray(artist, dtype=np.int64)
        self.cluster_indptr, self.cluster_items = _grouped(clusters.cluster, clusters.n_clusters)
        rows = np.repeat(np.arange(self.n_users), np.diff(train.indptr))
        self.bought = _Membership(rows, train.indices, self.n_items)
        self.user_clusters = _Membership(rows, clusters.cluster[train.indices], clusters.n_clusters)
        self._baskets(timestamps)
        if self.artist is not None:
            n_artists = int(self.artist.max()) + 1 if len(self.artist) else 0
            self.artist_indptr, self.artist_items = _grouped(self.artist, n_artists)
            has_artist = self.artist[train.indices] >= 0
            self.user_artists = _Membership(rows[has_artist], self.artist[train.indices][has_artist], n_artists)
            # Each user's distinct artists, as lists to draw from.
            pairs = np.unique(rows[has_artist] * (n_artists + 1) + self.artist[train.indices][has_artist])
            self.artists_of_user_indptr = np.r_[0, np.cumsum(np.bincount(pairs // (n_artists + 1),
                                                                         minlength=self.n_users))]
            self.artists_of_user = pairs % (n_artists + 1)

    def _baskets(self, timestamps: sp.csr_matrix | None) -> None:
        """Each user's items in time order (``ordered``) and basket boundaries (``basket_*``)."""
        train = self.train
        rows = np.repeat(np.arange(self.n_users), np.diff(train.indptr))
        if timestamps is None:
            times = np.zeros(len(train.indices))
        else:
            stamps = sp.csr_matrix(timestamps)
            stamps.sort_indices()
            aligned = _Lookup(stamps)
            times = aligned.values(rows, train.indices)
        order = np.lexsort((train.indices, times, rows))
        self.ordered_items = train.indices[order].astype(np.int64)
        ordered_rows, ordered_times = rows[order], times[order]
        starts = np.r_[True, (ordered_rows[1:] != ordered_rows[:-1]) | (ordered_times[1:] != ordered_times[:-1])] \
            if len(order) else np.zeros(0, bool)
        self.basket_start = np.flatnonzero(starts).astype(np.int64)  # positions in ordered_items
        self.basket_end = np.r_[self.basket_start[1:], len(order)].astype(np.int64)
        self.basket_user = ordered_rows[self.basket_start].astype(np.int64) if len(order) else np.zeros(0, np.int64)
        self.user_start = train.indptr[:-1].astype(np.int64)

    # ----- negatives ------------------------------------------------------------------------------
    def _cluster_biased(self, around: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n = len(around)
        same = rng.random(n) <= self.fine_grained
        cluster = np.where(same, self.clusters.cluster[around], rng.integers(0, self.clusters.n_clusters, n))
        return _pick(self.cluster_indptr, self.cluster_items, cluster, rng)

    def _unseen_cluster_item(self, users: np.ndarray, rng: np.random.Generator, rounds: int = 50) -> np.ndarray:
        """An item of a cluster the user never bought, by an artist the user never bought (-1: none found)."""
        out = np.full(len(users), -1, dtype=np.int64)
        pending = np.arange(len(users))
        for _ in range(rounds):
            if len(pending) == 0:
                break
            cluster = rng.integers(0, self.clusters.n_clusters, len(pending))
            fine = ~self.user_clusters.contains(users[pending], cluster)
            chosen = pending[fine]
            item = _pick(self.cluster_indptr, self.cluster_items, cluster[fine], rng)
            if self.artist is not None:
                artist = self.artist[item]
                clean = (artist < 0) | ~self.user_artists.contains(users[chosen], np.maximum(artist, 0))
                chosen, item = chosen[clean], item[clean]
            out[chosen] = item
            pending = pending[out[pending] < 0]
        return out

    # ----- the guidelines -------------------------------------------------------------------------
    def sample(self, per_guideline: int, rng: np.random.Generator, guidelines=GUIDELINES) -> Triples:
        profiles = _Profiles()
        full = profiles.add(self.train.indptr, self.train.indices)  # user u's whole profile: id full[u]
        single = profiles.add(np.arange(self.n_items + 1), np.arange(self.n_items))  # item i alone
        parts = []
        for number in guidelines:
            drawn = getattr(self, f"_guideline_{number}")(per_guideline, rng, profiles, full, single)
            if drawn is not None and len(drawn[0]) > per_guideline:
                keep = np.sort(rng.choice(len(drawn[0]), per_guideline, replace=False))
                drawn = tuple(column[keep] for column in drawn)
            if drawn is not None:
                parts.append((*drawn, np.full(len(drawn[0]), number, dtype=np.int8)))
        indptr, items = profiles.build()
        if parts:
            profile_of, positive, negative, user, guideline = (np.concatenate(column) for column in zip(*parts))
        else:
            profile_of = positive = negative = user = np.zeros(0, np.int64)
            guideline = np.zeros(0, np.int8)
        keep = (positive >= 0) & (negative >= 0) & (positive != negative)
        keep[keep] = ~self.clusters.same(positive[keep], negative[keep])
        keys = np.stack([profile_of, positive, negative], axis=1)[keep]
        _, first = np.unique(keys, axis=0, return_index=True)  # a triple drawn twice counts once
        chosen = np.flatnonzero(keep)[np.sort(first)]
        return Triples(indptr, items, profile_of[chosen], positive[chosen], negative[chosen], guideline[chosen],
                       user[chosen])

    def _users_with_items(self) -> np.ndarray:
        return np.flatnonzero(np.diff(self.train.indptr) > 0)

    def _guideline_1(self, n, rng, profiles, full, single):
        users = self._users_with_items()
        if len(users) == 0:
            return None
        users = np.repeat(users, -(-n // len(users)))
        positive = _pick(self.train.indptr, self.train.indices.astype(np.int64), users, rng)
        negative = np.full(len(users), -1, dtype=np.int64)
        pending = np.arange(len(users))
        for _ in range(5 * 20):  # the notebook: 5 tries, each redrawing until outside the profile
            if len(pending) == 0:
                break
            candidate = self._cluster_biased(positive[pending], rng)
            fine = ~self.bought.contains(users[pending], candidate) & ~self.clusters.same(positive[pending], candidate)
            negative[pending[fine]] = candidate[fine]
            pending = pending[~fine]
        return full[users], positive, negative, users

    def _guideline_2(self, n, rng, profiles, full, single):
        items = np.repeat(np.arange(self.n_items), -(-n // max(self.n_items, 1)))
        negative = np.full(len(items), -1, dtype=np.int64)
        pending = np.arange(len(items))
        for _ in range(100):
            if len(pending) == 0:
                break
            candidate = self._cluster_biased(items[pending], rng)
            fine = (candidate != items[pending]) & ~self.clusters.same(items[pending], candidate)
            negative[pending[fine]] = candidate[fine]
            pending = pending[~fine]
        return single[items], items, negative, np.full(len(items), -1, dtype=np.int64)

    def _guideline_3(self, n, rng, profiles, full, single):
        if self.artist is None:
            return None
        users = np.flatnonzero(np.diff(self.artists_of_user_indptr) > 0)
        if len(users) == 0:
            return None
        users = np.repeat(users, -(-n // len(users)))
        positive = np.full(len(users), -1, dtype=np.int64)
        pending = np.arange(len(users))
        for _ in range(5 * 20):  # 5 tries of at most 20 draws
            if len(pending) == 0:
                break
            artist = _pick(self.artists_of_user_indptr, self.artists_of_user, users[pending], rng)
            candidate = _pick(self.artist_indptr, self.artist_items, artist, rng)
            fine = self.user_clusters.contains(users[pending], self.clusters.cluster[candidate]) \
                & ~self.bought.contains(users[pending], candidate)
            positive[pending[fine]] = candidate[fine]
            pending = pending[~fine]
        found = positive >= 0
        users, positive = users[found], positive[found]
        return full[users], positive, self._unseen_cluster_item(users, rng), users

    def _guideline_4(self, n, rng, profiles, full, single):
        if self.artist is None:
            return None
        sizes = np.diff(self.artist_indptr)
        valid = np.flatnonzero((self.artist >= 0) & (sizes[np.maximum(self.artist, 0)] >= 2))
        if len(valid) == 0:
            return None
        query = np.repeat(valid, -(-n // len(valid)))
        positive = np.full(len(query), -1, dtype=np.int64)
        pending = np.arange(len(query))
        while len(pending):  # another work of the same artist (the notebook loops until it differs)
            candidate = _pick(self.artist_indptr, self.artist_items, self.artist[query[pending]], rng)
            fine = candidate != query[pending]
            positive[pending[fine]] = candidate[fine]
            pending = pending[~fine]
        negative = np.full(len(query), -1, dtype=np.int64)
        pending = np.arange(len(query))
        for _ in range(5 * 20):
            if len(pending) == 0:
                break
            candidate = self._cluster_biased(query[pending], rng)
            fine = (self.artist[candidate] != self.artist[query[pending]]) & self.clusters.validate_triple(
                query[pending], positive[pending], candidate, self.margin)
            negative[pending[fine]] = candidate[fine]
            pending = pending[~fine]
        return single[query], positive, negative, np.full(len(query), -1, dtype=np.int64)

    def _guideline_5(self, n, rng, profiles, full, single):
        baskets_per_user = np.bincount(self.basket_user, minlength=self.n_users)
        valid_users = np.flatnonzero(baskets_per_user >= 2)
        if len(valid_users) == 0:
            return None
        per_user = -(-n // len(valid_users))
        # Transitions: basket b -> b + 1 of the same user; profile = the user's items up to b's end.
        has_next = np.r_[self.basket_user[1:] == self.basket_user[:-1], False]
        current = np.flatnonzero(has_next)
        per_basket = -(-per_user // (baskets_per_user[self.basket_user[current]] - 1))
        draws = _at_most(np.repeat(np.arange(len(current)), per_basket), n, rng)
        used, local = np.unique(draws, return_inverse=True)  # profiles only for transitions drawn
        chosen = current[used]
        starts = self.user_start[self.basket_user[chosen]]
        ids = profiles.add(np.r_[0, np.cumsum(self.basket_end[chosen] - starts)],
                           concat_ranges(self.ordered_items, starts, self.basket_end[chosen]))
        following = current[draws] + 1
        positive = self.ordered_items[self.basket_start[following]
                                      + rng.integers(0, self.basket_end[following] - self.basket_start[following])]
        users = self.basket_user[current[draws]]
        return ids[local], positive, self._unseen_cluster_item(users, rng), users

    def _guideline_6(self, n, rng, profiles, full, single):
        size = self.basket_end - self.basket_start
        big = size >= 2
        valid_per_user = np.bincount(self.basket_user[big], minlength=self.n_users)
        valid_users = np.flatnonzero(valid_per_user > 0)
        if len(valid_users) == 0:
            return None
        per_user = -(-n // len(valid_users))
        baskets = np.flatnonzero(big)
        per_basket = -(-per_user // valid_per_user[self.basket_user[baskets]])
        per_item = -(-per_basket // size[baskets])
        # Each item of a big basket can be the hidden one; its profile is the user's items up to
        # the basket's end minus it, built only for the hidden items drawn.
        hidden_basket = np.repeat(baskets, size[baskets])
        hidden_position = concat_ranges(np.arange(len(self.ordered_items)), self.basket_start[baskets],
                                         self.basket_end[baskets])
        draws = _at_most(np.repeat(np.arange(len(hidden_basket)), np.repeat(per_item, size[baskets])), n, rng)
        used, local = np.unique(draws, return_inverse=True)
        starts = self.user_start[self.basket_user[hidden_basket[used]]]
        ends = self.basket_end[hidden_basket[used]]
        positions = concat_ranges(np.arange(len(self.ordered_items)), starts, ends)
        owner = np.repeat(np.arange(len(used)), ends - starts)
        keep = positions != hidden_position[used][owner]
        ids = profiles.add(np.r_[0, np.cumsum(ends - starts - 1)], self.ordered_items[positions[keep]])
        users = self.basket_user[hidden_basket[draws]]
        positive = self.ordered_items[hidden_position[draws]]
        return ids[local], positive, self._unseen_cluster_item(users, rng), users


def _at_most(draws: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``draws`` or, when the per-user/per-basket/per-item ceilings overshoot the target ``n``
    (with many small baskets every transition gets at least one draw), ``n`` of them at random,
    kept in order."""
    if len(draws) <= n:
        return draws
    return draws[np.sort(rng.choice(len(draws), n, replace=False))]


def uniform_triples(train: sp.csr_matrix, n: int, rng: np.random.Generator) -> Triples:
    """The tutorial's simpler variant: profile = the user's items, positive one of them uniformly
    (the user uniform among users with items and non-items), negative uniform among the rest."""
    from neural.sampling import NegativeSampler

    users, positive, negative = NegativeSampler(train).user_uniform_triples(n, rng)
    train = sp.csr_matrix(train)
    return Triples(np.asarray(train.indptr, np.int64), np.asarray(train.indices, np.int64), users, positive, negative,
                   np.zeros(len(users), np.int8), users)


def concat_ranges(values: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """values[starts[0]:ends[0]] ++ values[starts[1]:ends[1]] ++ ... without a Python loop."""
    lengths = np.asarray(ends - starts, dtype=np.int64)
    if lengths.sum() == 0:
        return np.zeros(0, dtype=values.dtype)
    offsets = np.repeat(starts - np.r_[0, np.cumsum(lengths)[:-1]], lengths)
    return values[np.arange(int(lengths.sum())) + offsets]


class _Lookup:
    """Values of a sorted CSR matrix at (row, column) pairs."""

    def __init__(self, matrix: sp.csr_matrix):
        rows = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
        self.stride = matrix.shape[1]
        self.keys = rows * self.stride + matrix.indices
        self.data = matrix.data

    def values(self, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
        keys = np.asarray(rows, np.int64) * self.stride + np.asarray(columns, np.int64)
        where = np.minimum(np.searchsorted(self.keys, keys), max(len(self.keys) - 1, 0))
        found = (self.keys[where] == keys) if len(self.keys) else np.zeros(len(keys), bool)
        return np.where(found, self.data[where] if len(self.data) else 0.0, 0.0)
