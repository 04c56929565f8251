"""The dataset registry: where every raw file comes from and the checksum it must have.

Each :class:`DatasetSpec` lists its raw files (:class:`FileSpec`). A file's ``name`` is its path
inside ``data/raw/<dataset>/`` (the parsers rely on these names), ``mirror`` its path below the
read-only mirror root (``$RECAUDIT_MIRROR``), and its upstream source is either a direct URL or a
member of an :class:`ArchiveSpec`. Files taken from GitHub are pinned to a commit, so their bytes
cannot drift.

Checksums are ``"sha256:<hex>"``, or ``"gitblob:<hex>"`` where only the git blob id is published
(``sha1(b"blob <size>\\0" + content)``, what ``git hash-object`` prints), or ``None`` where no trusted
value is known yet: fetching such a file fails closed and prints the hash it saw, so that a person
can check the file and record that hash here. Checksums may also be ``"md5:<hex>"`` where the
publisher gives only that: GroupLens publishes one per zip, the Netflix Prize README one per file.
An archive's members are verified on their own in any case.

Poster manifests, generated once from the mirror (hashes from the files themselves) and committed:

- ``datasets/manifests/movielens-1m-images.sha256``: ``sha256sum MovieImages/*.jpg`` of the
  3,872 ML-1M posters (paths relative to ``movielens-1m-images/``, sorted by movie id);
- ``datasets/manifests/movielens-100k-posters.txt``: the 1,600 of them that MovieLens 100K needs
  (``MovieImages/<ML-1M id>.jpg``, one per line): the distinct ``ml1m_movie_id`` with
  ``has_image = 1`` in ``ml100k_item_to_ml1m_movie.tsv`` (1,618 items share 1,600 posters);
  their hashes come from the ML-1M manifest;
- ``datasets/manifests/ml-latest-small-images.sha256``: ``sha256  path`` of the 5,563 posters
  that ``ml-latest-small-images/index.tsv`` names, in its order, with ``path`` relative to the
  mirror root (2,947 under ``movielens-1m-images/MovieImages/``, 2,616 under
  ``ml-latest-small-images/posters/``); the raw folder keeps the same relative paths, so the
  index's ``image_path`` is relative to it too.

The posters are copyrighted artwork of the films' rights holders: research use only, never
redistributed (each entry's licence says so).

Sizes: ``ArchiveSpec.size`` and ``FileSpec.size`` (direct downloads) give the bytes a fetch from
upstream downloads, approximate where the host publishes no figure, so that ``python -m datasets
list`` can say how large a download is before anyone starts it (the visual papers' files are
2-6 GB each). A dataset whose files cannot be fetched at all (private data) has no files and says
why, and how to obtain them, in ``unavailable``; fetching it refuses with that sentence.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path, PurePosixPath
from types import MappingProxyType

from common.errors import unknown_name_error
from common.memory import human_bytes

MANIFEST_DIR = Path(__file__).parent / "manifests"
CHECKSUM_KINDS = ("sha256", "gitblob", "md5")


@dataclass(frozen=True)
class ArchiveSpec:
    """A downloadable archive (zip or tar), cached once under ``data/downloads/<name>``."""

    name: str
    url: str
    checksum: str | None  # the archive's published checksum; None where none is published
    size: int | None = None  # bytes of the download (approximate where none is published); None: unknown


@dataclass(frozen=True)
class FileSpec:
    name: str  # path inside data/raw/<dataset>/
    mirror: str  # path below the mirror root
    checksum: str | None  # None: not known yet, fetching refuses the file and prints its hash
    url: str | None = None  # direct upstream download ...
    archive: ArchiveSpec | None = None  # ... or a member of this archive
    member: str | None = None
    derive: str | None = None  # or rebuilt by fetch from other files of the dataset (name of a derivation)
    size: int | None = None  # bytes of a direct download (approximate where none is published); None: unknown

    def __post_init__(self) -> None:
        sources = (self.url is not None) + (self.archive is not None) + (self.derive is not None)
        if sources != 1:
            raise ValueError(f"{self.name}: give exactly one of url, archive (+ member), derive")
        if (self.archive is None) != (self.member is None):
            raise ValueError(f"{self.name}: an archive source needs a member path, and only then")
        for path in (self.name, self.mirror):
            if not is_safe_relative_path(path):
                raise ValueError(f"{self.name}: {path!r} must be a relative path without '..'")
        if self.checksum is not None:
            parse_checksum(self.checksum)
        if self.size is not None and (self.url is None or self.size < 0):
            raise ValueError(f"{self.name}: a size is the bytes of a direct download (archives carry their own)")

    @property
    def upstream(self) -> str:
        if self.archive is not None:
            return f"{self.archive.url} (member {self.member})"
        return self.url or f"derived ({self.derive})"


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    citation: str
    licence: str
    licence_short: str
    homepage: str
    side_information: tuple[str, ...]
    published_users: int | None
    published_items: int | None
    published_interactions: int | None
    stats_source: str  # where the published counts come from
    files: tuple[FileSpec, ...]
    default_preprocessing: MappingProxyType = field(
        default_factory=lambda: MappingProxyType(default_preprocessing()), hash=False, compare=False)
    unavailable: str | None = None  # why the files cannot be fetched and how to obtain them (then no files)
    # (lowest, highest) rating, where the dataset's documentation declares a scale: a raw rating
    # outside it is refused when the dataset is prepared (datasets.parsers.readers.rating_ranges).
    rating_scale: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if (self.unavailable is None) == (not self.files):
            raise ValueError(f"{self.name}: give files, or no files and the reason they are unavailable")
        names = [f.name for f in self.files]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: duplicate file names")
        unknown = set(self.default_preprocessing) - set(PREPROCESSING_OPTIONS)
        if unknown:
            raise ValueError(f"{self.name}: unknown preprocessing options {sorted(unknown)}")

    def file(self, name: str) -> FileSpec:
        for spec in self.files:
            if spec.name == name:
                return spec
        raise KeyError(f"{self.name} has no file {name!r}")

    def downloads(self) -> tuple[ArchiveSpec | FileSpec, ...]:
        """What a fetch from upstream downloads: each archive once, each direct file once (by URL);
        derived files are built locally and download nothing."""
        seen, sources = set(), []
        for file in self.files:
            source = file.archive if file.archive is not None else file if file.url is not None else None
            if source is not None and source.url not in seen:
                seen.add(source.url)
                sources.append(source)
        return tuple(sources)


def download_size(spec: DatasetSpec, root: Path | None = None) -> str:
    """How much a fetch from upstream downloads, so a 6 GB file is no surprise: the registry's sizes,
    else a direct file's size in the mirror folder ``root``; ``>= X`` when some parts are unknown,
    ``?`` when all are."""
    if spec.unavailable is not None:
        return "private"
    known, unknown = 0, 0
    for source in spec.downloads():
        size = source.size
        if size is None and isinstance(source, FileSpec) and root is not None and (root / source.mirror).is_file():
            size = (root / source.mirror).stat().st_size
        if size is None:
            unknown += 1
        else:
            known += size
    if not unknown:
        return human_bytes(known)
    return f">= {human_bytes(known)}" if known else "?"


# How min_user/min_item_interactions filter (datasets.prepare): the iterative k-core, or one
# pass of each (Mult-VAE's filter_triplets).
K_CORE_MODES = ("iterative", "once")


def default_preprocessing(**overrides) -> dict:
    """The preprocessing options with their defaults (the one list of them), ``overrides`` applied."""
    options = {"rating_threshold": None, "deduplicate": True, "min_user_interactions": 0, "min_item_interactions": 0,
               "k_core": "iterative"}
    options.update(overrides)
    return options


PREPROCESSING_OPTIONS = tuple(default_preprocessing())


def parse_checksum(checksum: str) -> tuple[str, str]:
    """``"sha256:ab12..."`` -> ``("sha256", "ab12...")``; refuses unknown kinds and malformed hex."""
    kind, _, digest = checksum.partition(":")
    lengths = {"sha256": 64, "gitblob": 40, "md5": 32}
    if kind not in lengths or len(digest) != lengths[kind] or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"malformed checksum {checksum!r}; expected one of {', '.join(k + ':<hex>' for k in CHECKSUM_KINDS)}")
    return kind, digest


def is_safe_relative_path(path: str) -> bool:
    pure = PurePosixPath(path)
    return bool(path) and not pure.is_absolute() and ".." not in pure.parts and "\\" not in path and ":" not in pure.parts[0]


# ---------------------------------------------------------------- sources

def github_raw(repository: str, commit: str, path: str) -> str:
    return f"https://raw.githubusercontent.com/{repository}/{commit}/{path}"


GROUPLENS = "https://files.grouplens.org/datasets/movielens"
# Sizes: the zips' Content-Length as GroupLens serves them (approximate is enough for `list`).
ML_100K_ZIP = ArchiveSpec("ml-100k.zip", f"{GROUPLENS}/ml-100k.zip", "md5:0e33842e24a9c977be4e0107933c0723",
                          size=4_924_029)
ML_1M_ZIP = ArchiveSpec("ml-1m.zip", f"{GROUPLENS}/ml-1m.zip", "md5:c4d9eecfca2ab87c1945afe126590906",
                        size=5_917_549)
# GroupLens publishes ml-latest-small.zip.md5 beside the zip, but no copy of its value was found;
# the five members are still verified by sha256.
ML_LATEST_SMALL_ZIP = ArchiveSpec("ml-latest-small.zip", f"{GROUPLENS}/ml-latest-small.zip", None, size=978_202)

RECSYS2019 = ("MaurizioFD/RecSys2019_DeepLearning_Evaluation", "f5618c65573c5b220713775bdd56971663de9828")
NCF = ("hexiangnan/neural_collaborative_filtering", "4aab159e81c44b062c091bdaed0ab54ac632371f")
RECZOO = ("reczoo/RecZoo", "fd2379d3b5df99d23513a8c423c083d27a45126d")
CITEULIKE_A = ("js05212/citeulike-a", "91b603922d7f2d3db18071d4798bf78c9c5d1680")
CITEULIKE_T = ("js05212/citeulike-t", "4f103c6ea0fe407b23be230837b65517e613c34a")
LASTFM = ("DarakhTech/lastfm-dataset", "bee00fcda694e80855c878307ac0e27881d31fd5")
POSTERS = ("liangfgithub/liangfgithub.github.io", "518cc7193567b1e9ec1a2f5ac4fc237c5f884cf8")
SMALL_POSTERS = ("noumanshahid-1/AI-Powered-Video-Recommendation-System", "05becdabdbd61e9ca91b796885918b72ec0ad189")


def from_archive(archive: ArchiveSpec, mirror_dir: str, files: dict[str, str | None]) -> tuple[FileSpec, ...]:
    """Files named as in the archive's top folder (``ml-1m/ratings.dat`` -> ``ratings.dat``)."""
    top = archive.name.removesuffix(".zip")
    return tuple(FileSpec(name, f"{mirror_dir}/{name}", checksum, archive=archive, member=f"{top}/{name}")
                 for name, checksum in files.items())


def from_github(source: tuple[str, str], upstream_dir: str, mirror_dir: str, files: dict[str, str | None],
                local_dir: str = "", sizes: dict[str, int] | None = None) -> tuple[FileSpec, ...]:
    repository, commit = source
    return tuple(FileSpec(local_dir + name, f"{mirror_dir}/{name}", checksum,
                          url=github_raw(repository, commit, f"{upstream_dir}{name}"), size=(sizes or {}).get(name))
                 for name, checksum in files.items())


def sha(hex_digest: str) -> str:
    return f"sha256:{hex_digest}"


ML_100K_FILES = {
    "u.data": sha("06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490"),
    "u.item": sha("553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701"),
    "u.user": sha("f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c"),
    "u.genre": sha("9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb"),
    "u.occupation": sha("cd5fbec9afe345d993a62fc7817df1a4a9079c4feb267b3118763b8fd942137d"),
    "README": sha("4883b8cf340ed0059971b33f56ad3adc88a40792108ebca3d24aafc4c82e8b52"),
}
ML_1M_FILES = {
    # ratings.dat is not in the mirror; its git blob id is the same in two independent repositories.
    "ratings.dat": "gitblob:77a7c4b150f588c23bb9e1f068aa996c0b413695",
    "movies.dat": sha("0140fc2356357c1a851d0f52e893a1e4d3696df632c4141cea8d5bc3d621f0b9"),
    "users.dat": sha("1dc3a95300cb19f7c10e027daf29b8cdf1d908dab65b5edfb45950aa389a10a3"),
    "README": sha("2d5ddce86ccbd247207456165827b4b9ddf27282bca93807d4c763e28414f133"),
}
CVAE_SPLIT = "Conferences/KDD/CollaborativeVAE_github/data"
CITEULIKE_A_CVAE = {
    "cf-train-1-users.dat": sha("660ef4404b3d2ea75c1888fdad32b0c2037a8bc815312537f211c4a44ef3c5df"),
    "cf-test-1-users.dat": sha("1809da1a5a136b377eaad0b6b76b6a04ec09c8b59e74c98bfbe9b892f011505c"),
    "cf-train-10-users.dat": sha("d743cc216f1383e40767b5979ceae736009bf30835d49334ecfbdd692622c28f"),
    "cf-test-10-users.dat": sha("204a51f7496fb1234e2b7acbc52084043fe1f784e070e16d254945abd2482d39"),
}
CITEULIKE_T_CVAE = {
    "cf-train-1-users.dat": sha("e57e506f2e022a6c1605b4f50152e51c4b714210bd8c7b162ceadae6c38dc2ec"),
    "cf-test-1-users.dat": sha("dca8695f1aa9b397e8b14e3f51124658c90ec6867767cc355786ef7890446154"),
    "cf-train-10-users.dat": sha("5c459068b822f9889909e784592d2f3d1a387c7cac1a8dd919afc526c32dfdc7"),
    "cf-test-10-users.dat": sha("bbe490d0ef560c59e74416160c053c4ce90788d1b6e76f650a78131a2c7f9249"),
}
MCREC_DATA = "Conferences/KDD/MCRec_github/Dataset-In-Papers_master/Yelp/"
# The NCF authors' Data/ files at the pinned commit. The git blob ids come from the commit's own
# tree (`git ls-tree 4aab159e Data/`); for the three files in the mirror they equal `git hash-object`
# of the mirror copies, whose sha256 are recorded instead. Sizes: exact where the tree or the mirror
# gives them; the three files of 4 MiB and more (absent from every stored snapshot) are estimated
# from the line counts of He et al. 2017, Table 1 (train = interactions - users; one negative line
# per user) times the bytes per line of the matching test file.
NCF_BLOBS = {
    "ml-1m.train.rating": "gitblob:31ba384fd58dac8fbd09d2dfc6616431f3563ab5",
    "pinterest-20.train.rating": "gitblob:99813f8ed7486c36fa0f405e3f400db5d6fed0be",
    "pinterest-20.test.negative": "gitblob:b752ccdc14df423b9484771440ff4a73e4a4a304",
}
NCF_SIZES = {
    "ml-1m.train.rating": 21_100_000,  # estimate: 994,169 lines x 21.2 bytes
    "ml-1m.test.rating": 128_039,
    "ml-1m.test.negative": 2_891_424,
    "pinterest-20.train.rating": 21_150_000,  # estimate: 1,445,622 lines x 14.6 bytes
    "pinterest-20.test.rating": 807_267,
    "pinterest-20.test.negative": 27_000_000,  # estimate: 55,187 lines x ~490 bytes (99 ids < 9,916)
}


def read_hash_manifest(name: str) -> dict[str, str]:
    """``sha256sum`` lines of ``datasets/manifests/<name>`` -> {path: "sha256:<hex>"}, in file order."""
    hashes = {}
    for line in (MANIFEST_DIR / name).read_text().splitlines():
        digest, path = line.split("  ", 1)
        hashes[path] = sha(digest)
    return hashes


@cache
def poster_files() -> tuple[FileSpec, ...]:
    """The 3,872 ML-1M posters, with hashes from the manifest (read on first use)."""
    return tuple(_ml1m_poster(name, digest) for name, digest in read_hash_manifest("movielens-1m-images.sha256").items())


def _ml1m_poster(name: str, checksum: str, local_dir: str = "") -> FileSpec:
    """``MovieImages/<id>.jpg`` of the UIUC STAT 542 poster set, placed at ``local_dir + name``."""
    return FileSpec(local_dir + name, f"movielens-1m-images/{name}", checksum, url=github_raw(*POSTERS, name))


@cache
def ml100k_poster_files() -> tuple[FileSpec, ...]:
    """The 1,600 ML-1M posters that ML-100K items map to (``movielens-100k-posters.txt``)."""
    hashes = read_hash_manifest("movielens-1m-images.sha256")
    names = (MANIFEST_DIR / "movielens-100k-posters.txt").read_text().split()
    return tuple(_ml1m_poster(name, hashes[name]) for name in names)


@cache
def ml_latest_small_poster_files() -> tuple[FileSpec, ...]:
    """The 5,563 posters of ml-latest-small movies, at their mirror-relative paths (see the module doc)."""
    files = []
    for path, checksum in read_hash_manifest("ml-latest-small-images.sha256").items():
        if path.startswith("movielens-1m-images/"):
            files.append(_ml1m_poster(path.removeprefix("movielens-1m-images/"), checksum, "movielens-1m-images/"))
        elif path.startswith("ml-latest-small-images/posters/"):
            upstream = path.removeprefix("ml-latest-small-images/")
            files.append(FileSpec(path, path, checksum, url=github_raw(*SMALL_POSTERS, upstream)))
        else:
            raise ValueError(f"ml-latest-small-images.sha256: unexpected path {path!r}")
    return tuple(files)


# ---------------------------------------------------------------- entries

MOVIELENS_CITATION = ("F. Maxwell Harper and Joseph A. Konstan. 2015. The MovieLens Datasets: History and Context. "
                      "ACM Transactions on Interactive Intelligent Systems 5(4), Article 19.")
MOVIELENS_LICENCE = ("GroupLens MovieLens terms: research use only; no endorsement by the University of Minnesota; "
                     "cite Harper & Konstan (2015); no redistribution without separate permission; no commercial use.")
MOVIELENS_SHORT = "GroupLens: no redistribution"
POSTER_LICENCE = (" Posters: copyrighted promotional artwork of the films' rights holders (no licence published by "
                  "the hosts): research use only, do not redistribute.")
POSTER_SHORT = "GroupLens + posters (c): no redistribution"
POSTER_CITATION = " Posters: UIUC STAT 542 course site (Feng Liang)."
CITEULIKE_CITATION = ("Hao Wang, Binyi Chen and Wu-Jun Li. 2013. Collaborative Topic Regression with Social "
                      "Regularization for Tag Recommendation. IJCAI. Splits: Xiaopeng Li and James She. 2017. "
                      "Collaborative Variational Autoencoder for Recommender Systems. KDD.")
CITEULIKE_LICENCE = ("No published terms (collected from CiteULike and Google Scholar); treat as research only and "
                     "cite the papers. CVAE split files: MIT (CollaborativeVAE) inside an AGPL-3.0 repository.")
MCREC_CITATION = ("Binbin Hu, Chuan Shi, Wayne Xin Zhao and Philip S. Yu. 2018. Leveraging Meta-path based Context "
                  "for Top-N Recommendation with a Neural Co-Attention Model. KDD.")
ML_100K_STATS = dict(published_users=943, published_items=1682, published_interactions=100_000,
                     stats_source="ml-100k README")
ML_1M_STATS = dict(published_users=6040, published_items=3706, published_interactions=1_000_209,
                   stats_source="ml-1m README (users, ratings) and Ferrari Dacrema et al. 2019 (items rated)")


def _entries() -> tuple[DatasetSpec, ...]:
    # ML-100K items -> ML-1M posters: ML-1M movies.dat is the right-hand side of the exact-title join
    # that derives the map; only the 1,600 posters the map names are fetched.
    ml100k_poster_map = (
        FileSpec("movies.dat", "movielens-1m-images/movies.dat", ML_1M_FILES["movies.dat"],
                 url=github_raw(*POSTERS, "MovieData/movies.dat")),
        FileSpec("ml100k_item_to_ml1m_movie.tsv", "movielens-1m-images/ml100k_item_to_ml1m_movie.tsv",
                 sha("e22cc3b61797aff8525573c786823554cbcbd093e6090ebec0220795251f81a4"),
                 derive="ml100k_to_ml1m_title_map"),
    )
    movielens_100k = DatasetSpec(
        name="movielens-100k",
        description="MovieLens 100K: 100,000 ratings (1-5) with timestamps, 1998; posters for 1,618 of 1,682 items",
        citation=MOVIELENS_CITATION + POSTER_CITATION, licence=MOVIELENS_LICENCE + POSTER_LICENCE,
        licence_short=POSTER_SHORT,
        homepage="https://grouplens.org/datasets/movielens/100k/",
        side_information=("item genres", "item images", "item titles and dates", "user demographics"),
        files=from_archive(ML_100K_ZIP, "movielens-100k", ML_100K_FILES) + ml100k_poster_map + ml100k_poster_files(),
        rating_scale=(1, 5), **ML_100K_STATS)
    movielens_1m = DatasetSpec(
        name="movielens-1m",
        description="MovieLens 1M: 1,000,209 ratings (1-5) with timestamps, 2000",
        citation=MOVIELENS_CITATION, licence=MOVIELENS_LICENCE, licence_short=MOVIELENS_SHORT,
        homepage="https://grouplens.org/datasets/movielens/1m/",
        side_information=("item genres", "item titles", "user demographics"),
        files=from_archive(ML_1M_ZIP, "movielens-1m", ML_1M_FILES), rating_scale=(1, 5), **ML_1M_STATS)
    posters = poster_files()
    return (
        movielens_100k,
        DatasetSpec(
            name="ml-latest-small",
            description="MovieLens latest-small, September 2018 build: ratings (0.5-5), tags, links",
            citation=MOVIELENS_CITATION + POSTER_CITATION + " Further posters: GitHub noumanshahid-1/"
                                                            "AI-Powered-Video-Recommendation-System.",
            licence=("GroupLens ml-latest-small terms: research use only; no endorsement; cite Harper & Konstan "
                     "(2015); redistribution allowed under the same terms; no commercial use. These terms do not "
                     "cover the posters." + POSTER_LICENCE),
            licence_short="GroupLens: share-alike; posters (c): no redistribution",
            homepage="https://grouplens.org/datasets/movielens/latest/",
            side_information=("item genres", "item images", "item tags", "links to IMDb and TMDB"),
            published_users=610, published_items=9742, published_interactions=100_836,
            stats_source="ml-latest-small README", rating_scale=(0.5, 5),
            files=from_archive(ML_LATEST_SMALL_ZIP, "ml-latest-small", {
                "ratings.csv": sha("80da8b3393dae325bbba5a31f291a6ba55d8d4f4396de3c456f2c1635b1b70e8"),
                "movies.csv": sha("c47b783f23eb304413307e1bb05335e427737da20ec8d3c0e96335567dd5f3dc"),
                "links.csv": sha("028a4a1d17751ca9276e0e0718cfc22356350f224a996e1ec348c23274b9209d"),
                "tags.csv": sha("68eec00a0820c2faa8863a6df7032f13d5899a4462bce9a97213905297ff3d34"),
                "README.txt": sha("63d22ac138e80fae37021797ed8e1b9424b5239dc576a137422adf783ae3f404"),
            }) + (
                # Derived: every movie of movies.csv with a poster, the ML-1M one first (see fetch.py).
                FileSpec("ml-latest-small-images/index.tsv", "ml-latest-small-images/index.tsv",
                         sha("f70a176bef1726e08d67a750510bce357e8d87b9052dbdbe27b0f4982bc21f36"),
                         derive="ml_latest_small_poster_index"),
            ) + ml_latest_small_poster_files()),
        movielens_1m,
        DatasetSpec(
            name="movielens-1m-ncf",
            description="ML-1M as preprocessed by NCF: leave-one-out test item and 99 sampled negatives per user",
            citation=("Xiangnan He, Lizi Liao, Hanwang Zhang, Liqiang Nie, Xia Hu and Tat-Seng Chua. 2017. "
                      "Neural Collaborative Filtering. WWW. " + MOVIELENS_CITATION),
            licence=MOVIELENS_LICENCE + " NCF repository: Apache-2.0 (code).", licence_short=MOVIELENS_SHORT,
            homepage="https://github.com/hexiangnan/neural_collaborative_filtering",
            side_information=(), stats_source="He et al. 2017, Table 1",
            published_users=6040, published_items=3706, published_interactions=1_000_209,
            files=from_github(NCF, "Data/", "movielens-1m/ncf-split", {
                # Not in the mirror: its git blob id in the pinned commit's tree (a file of 4 MiB and more).
                "ml-1m.train.rating": NCF_BLOBS["ml-1m.train.rating"],
                "ml-1m.test.rating": sha("231ae11eb060b643a8c58c063cd17ffc743b54f569afb073d1abb6cf126b88b5"),
                "ml-1m.test.negative": sha("127853228a76b7d21c0481e8ef8d00dd009cd5c88670dbdd9e9debfdb9f93de4"),
            }, sizes=NCF_SIZES)),
        DatasetSpec(
            name="movielens-1m-spectralcf",
            description="ML-1M implicit train/test split published with SpectralCF (one user per line)",
            citation=("Lei Zheng, Chun-Ta Lu, Fei Jiang, Jiawei Zhang and Philip S. Yu. 2018. Spectral "
                      "Collaborative Filtering. RecSys. " + MOVIELENS_CITATION),
            licence=MOVIELENS_LICENCE + " Host repository: AGPL-3.0 (code).", licence_short=MOVIELENS_SHORT,
            homepage="https://github.com/MaurizioFD/RecSys2019_DeepLearning_Evaluation",
            side_information=(), stats_source="counted from the split files (no count published)",
            published_users=6014, published_items=3232, published_interactions=226_310,
            files=from_github(RECSYS2019, "Conferences/RecSys/SpectralCF_github/data/ml-1m/",
                              "movielens-1m/spectralcf-split", {
                "train_users.dat": sha("ee6cf59160f3cde155416941ac42890f79accd9cf7f1ac5496ee194db49687bb"),
                "test_users.dat": sha("b114c7c87a94462399b02e4f59f05e91b690a9091adea83dd8efcfd3e03b67ee"),
            })),
        DatasetSpec(
            name="movielens-1m-lcfn",
            description="Movielens1M_m1: ML-1M implicit split of LCFN (ICML 2020), re-indexed ids",
            citation=("Wenhui Yu and Zheng Qin. 2020. Graph Convolutional Network for Recommendation with "
                      "Low-pass Collaborative Filters. ICML. " + MOVIELENS_CITATION),
            licence=MOVIELENS_LICENCE + " RecZoo repository: Apache-2.0.", licence_short=MOVIELENS_SHORT,
            homepage="https://github.com/reczoo/RecZoo",
            side_information=(), stats_source="SOURCES.md (users, interactions); items counted from the files",
            published_users=6022, published_items=3043, published_interactions=895_699,
            files=from_github(RECZOO, "data/Movielens1M_m1/", "movielens-1m/lcfn-split", {
                "train.txt": sha("31fe589506162c76c90e87ddd017642f73655a3f959bd70deec8dda142608f4e"),
                "test.txt": sha("c8b4f275ea29fdb5560f0d9014d85a3865743f3089dca0259c79fee30dcdbdcd"),
                "README.md": sha("aaf84fb848f302ccc7068eead30115be61d897a8af8a4cbb143e0e389c178b80"),
            })),
        DatasetSpec(
            name="citeulike-a",
            description="CiteULike-a: users' article libraries (implicit), with tags and citations (no text here)",
            citation=CITEULIKE_CITATION, licence=CITEULIKE_LICENCE, licence_short="unstated: research only",
            homepage="https://github.com/js05212/citeulike-a",
            side_information=("item tags", "item citations"),
            published_users=5551, published_items=16980, published_interactions=204_987,
            stats_source="citeulike-a README",
            files=from_github(CITEULIKE_A, "", "citeulike-a", {
                "users.dat": sha("53211d82c14ff261e595634d285ed9fbf8049cf81dcb751d924d695b9612a02c"),
                "item-tag.dat": sha("0f7b432796a5038ed2631c02b99d70e636123673afc11bf9e051de5b49467890"),
                "tags.dat": sha("c02b3e5ee1a57f88f3a598b2040018bb198f54cd0c11116fa7a0db905b6f60e3"),
                "vocabulary.dat": sha("f3ffa75f7524a9ff2ecc2a0cb1a0f29f4d46e32f17bc8e2f8472a1c7c814f319"),
                "citations.dat": sha("78458ba6b6f013552c43f47dbec1c2d19073820155c40567744cd8a038044364"),
                "README.md": sha("733c83b5a7dfc2183a9fbbc085c2dc4d8b07f2e74898f3f996dc9ce2cf201259"),
            }) + from_github(RECSYS2019, f"{CVAE_SPLIT}/citeulike-a/", "citeulike-a/cvae-split", CITEULIKE_A_CVAE,
                             local_dir="cvae-split/")),
        DatasetSpec(
            name="citeulike-t",
            description="CiteULike-t: users' article libraries (implicit), with bag-of-words text, tags, citations",
            citation=CITEULIKE_CITATION, licence=CITEULIKE_LICENCE, licence_short="unstated: research only",
            homepage="https://github.com/js05212/citeulike-t",
            side_information=("item content (bag of words)", "item tags", "item citations"),
            published_users=7947, published_items=25975, published_interactions=134_860,
            stats_source="citeulike-t README",
            files=from_github(CITEULIKE_T, "", "citeulike-t", {
                "users.dat": sha("02d5d429b2c0362e0ed79f6ef204666b4092563d21493abf4dfb521e8a7078bf"),
                "mult.dat": sha("5ed81e6fdbf8d475122d4a18d622202571ac80f27be017e194a1957da585283d"),
                "vocabulary.dat": sha("d58f0e6ce40da9e57c7ad6bbb2d0f1351730e3ecfcbbdf14eec07d493ce539e1"),
                "tag-item.dat": sha("e2b80fc0e023780b63c00a397a2d0934eff6dbaf8a1b918778698361dae7ce6b"),
                "tags.dat": sha("2f1e6dd94fe216a4453caf67e337c45f73938373b21d2aa3b6d2696387449e76"),
                "citations.dat": sha("fd932be626da8303c2773eb1a07c8aa6c2a6de2d0ac10941f325d63dc86c0080"),
                "README.md": sha("95f3adeeb88ad36bb689b9945db95759784f77cf15440324a602a62f783b3453"),
            }) + from_github(RECSYS2019, f"{CVAE_SPLIT}/citeulike-t/", "citeulike-t/cvae-split", CITEULIKE_T_CVAE,
                             local_dir="cvae-split/")),
        DatasetSpec(
            name="lastfm-hetrec2011",
            description="HetRec 2011 Last.fm: user-artist listening counts, artist tags, user friendships",
            citation=("Ivan Cantador, Peter Brusilovsky and Tsvi Kuflik. 2011. 2nd Workshop on Information "
                      "Heterogeneity and Fusion in Recommender Systems (HetRec 2011). RecSys. http://www.last.fm"),
            licence="HetRec 2011 readme: non-commercial use; cite Last.fm and the HetRec 2011 workshop.",
            licence_short="non-commercial",
            homepage="https://grouplens.org/datasets/hetrec-2011/",
            side_information=("artist tags", "user friendships"),
            published_users=1892, published_items=17632, published_interactions=92_834,
            stats_source="hetrec2011-lastfm-2k readme",
            files=from_github(LASTFM, "hetrec2011-lastfm-2k/", "lastfm-hetrec2011", {
                "user_artists.dat": sha("001400dc3c7d2667fca6e4ea6dc6acc31a9dd28ad5cd0f74cea988c019934d3b"),
                "artists.dat": sha("4c99dc28397ec559520d5bf5341f4c952c8c416c3de918548f88269b88039806"),
                "tags.dat": sha("96a09fb5e61b31856e63d4251ec56c4c9ea91ab2f762465937652689b9836fc7"),
                "user_friends.dat": sha("9a3a8f7fa5f5ec832335e5b58ed69a4cf27c6f6f6afcde62134810eea46445a7"),
                "readme.txt": sha("6fe5d1e6f67b025fc50cd70883dd1a1ff16c5ff37b5b7abfb33644b83468b209"),
            })),
        DatasetSpec(
            name="yelp-mcrec",
            description="Yelp subset of MCRec (KDD 2018): user-business ratings with categories, cities, friends",
            citation=MCREC_CITATION,
            licence="Yelp Dataset Challenge terms: non-commercial, academic use. Host repository: AGPL-3.0 (code).",
            licence_short="Yelp: non-commercial",
            homepage="https://github.com/librahu/MCRec",
            side_information=("item categories", "item cities", "user friendships", "user compliments"),
            published_users=16239, published_items=14284, published_interactions=198_397,
            stats_source="Hu et al. 2018, Table 1",
            files=from_github(RECSYS2019, MCREC_DATA, "yelp-mcrec", {
                "user_business.dat": sha("d57853e95c3f49f0060f31ee9365ab3fffe1010999c76863c3cd9628b91e994d"),
                "business_category.dat": sha("d3c1499e406c0a842b3c08c478ffe7bf26a8758b630e0b056d0f4bcf18c01a5b"),
                "business_city.dat": sha("09c009dfa16709aff52de4831b9cb30f45a16dcfce1db06858d54af6ef5f7d1e"),
                "user_user.dat": sha("d360f88f66b7ba9a1fd460b8c414dba1bec6489773283083a614a77925bcaaed"),
                "user_compliment.dat": sha("e7f5c15155bf0843e3bdf9fb4743bb3ebf76826b4108e9e194fd637e0bb05ed6"),
            })),
        DatasetSpec(
            name="amazon-digital-music-dmf",
            description="Amazon Digital Music ratings as pruned by the DMF authors (IJCAI 2017), re-indexed ids",
            citation=("Hong-Jian Xue, Xinyu Dai, Jianbing Zhang, Shujian Huang and Jiajun Chen. 2017. Deep "
                      "Matrix Factorization Models for Recommender Systems. IJCAI. Ruining He and Julian "
                      "McAuley. 2016. Ups and Downs. WWW."),
            licence=("Derived from the Amazon product review data (McAuley et al., UCSD): research use with "
                     "citation. Host repository: AGPL-3.0 (code)."),
            licence_short="Amazon reviews: research use",
            homepage="https://github.com/MaurizioFD/RecSys2019_DeepLearning_Evaluation",
            side_information=(), published_users=844, published_items=18813, published_interactions=46_468,
            stats_source="counted from the file (the TOIS study's copy)", rating_scale=(1, 5),
            files=from_github(RECSYS2019, "Conferences/IJCAI/DMF_original/data_www/", "amazon-digital-music-dmf", {
                "Amazon_ratings_Digital_Music_pruned.txt":
                    sha("db0a9f971d8106f179e57ad0087e6a524be38cc1bceed01ce31f9ca452ef6c8e"),
            }, sizes={"Amazon_ratings_Digital_Music_pruned.txt": 1_107_185})),
        DatasetSpec(
            name="filmtrust-neurec",
            description="FilmTrust ratings as shipped with NeuRec (IJCAI 2018)",
            citation=("Guibing Guo, Jie Zhang and Neil Yorke-Smith. 2013. A Novel Bayesian Similarity Measure "
                      "for Recommender Systems. IJCAI. Shuai Zhang, Lina Yao, Aixin Sun, Sen Wang, Guodong "
                      "Long and Manqing Dong. 2018. NeuRec: On Nonlinear Transformation for Personalized "
                      "Ranking. IJCAI."),
            licence=("FilmTrust ratings (Guo, Zhang and Yorke-Smith, IJCAI 2013): no licence text travels with "
                     "the file; cite the paper. NeuRec's code: GPL-3.0, inside the AGPL-3.0 host repository."),
            licence_short="unstated: research only",
            homepage="https://guoguibing.github.io/librec/datasets.html",
            side_information=(), published_users=1508, published_items=2071, published_interactions=35_497,
            stats_source="Guo et al. 2013 (1,508 users, 2,071 items, 35,497 ratings)", rating_scale=(0.5, 4),
            files=from_github(RECSYS2019, "Conferences/IJCAI/NeuRec_github/data/", "filmtrust-neurec", {
                "ratings_filmtrust.dat": sha("241167424e24d588e8871d68641e94ead98d5b3a4f0db01ef3181a74ad35e7a1"),
            }, sizes={"ratings_filmtrust.dat": 376_445})),
        DatasetSpec(
            name="movielens-100k-mcrec",
            description="ML-100K train/test split published with MCRec (leave-one-out test item per user)",
            citation=MCREC_CITATION + " " + MOVIELENS_CITATION,
            licence=MOVIELENS_LICENCE + " Host repository: AGPL-3.0 (code).", licence_short=MOVIELENS_SHORT,
            homepage="https://github.com/librahu/MCRec",
            side_information=(), files=from_github(RECSYS2019, "Conferences/KDD/MCRec_github/data/",
                                                   "movielens-100k/mcrec-split", {
                "ml-100k.train.rating": sha("d043d9fedf7efecb41fdfa98e4c96c5134a26d247a70ba5d4cf3f32a61c5957b"),
                "ml-100k.test.rating": sha("f5c8e8216402dc6e277fc15853b90ef9e4b8f922c77d20bac7e1ae80b5c55ae5"),
            }), **dict(ML_100K_STATS, stats_source="Hu et al. 2018, Table 1")),
        DatasetSpec(
            name="movielens-100k-posters",
            description="ML-100K ratings with movie posters (96.2% of items), joined to ML-1M ids by exact title",
            citation=MOVIELENS_CITATION + POSTER_CITATION,
            licence=MOVIELENS_LICENCE + POSTER_LICENCE, licence_short=POSTER_SHORT,
            homepage="https://github.com/liangfgithub/liangfgithub.github.io",
            side_information=("item images", "item genres", "item titles and dates"),
            # movielens-100k carries the same posters; this entry is its ratings + items subset.
            files=(movielens_100k.file("u.data"), movielens_100k.file("u.item")) + ml100k_poster_map
            + ml100k_poster_files(), rating_scale=(1, 5), **ML_100K_STATS),
        DatasetSpec(
            name="movielens-1m-posters",
            description="ML-1M ratings with movie posters (3,872 of 3,883 movies)",
            citation=MOVIELENS_CITATION + POSTER_CITATION,
            licence=MOVIELENS_LICENCE + POSTER_LICENCE, licence_short=POSTER_SHORT,
            homepage="https://github.com/liangfgithub/liangfgithub.github.io",
            side_information=("item images", "item genres", "item titles", "user demographics"),
            files=tuple(movielens_1m.file(n) for n in ("ratings.dat", "movies.dat", "users.dat")) + posters,
            rating_scale=(1, 5), **ML_1M_STATS),
    )


# ---------------------------------------------------------------- the visual papers' datasets
#
# VBPR (He & McAuley, AAAI 2016), DVBPR (Kang et al., ICDM 2017) and CuratorNet (UGallery). None of
# their files is in the mirror, and no trusted checksum is published for any of them: fetching fails
# closed and prints each file's hash, to be checked and recorded here. Sizes are approximate.

VISUAL_PAPER_DATASETS = ("amazon-women-vbpr", "amazon-men-vbpr", "amazon-phones-vbpr", "tradesy-vbpr",
                         "amazon-fashion-dvbpr", "amazon-women-dvbpr", "amazon-men-dvbpr", "tradesy-dvbpr",
                         "ugallery-curatornet")
# The 2014 Amazon release's per-category files, as linked from http://jmcauley.ucsd.edu/data/amazon/links.html
# (the same URLs appear in many public download scripts).
AMAZON_2014 = "http://snap.stanford.edu/data/amazon/productGraph"
TRADESY = "http://jmcauley.ucsd.edu/data/tradesy"
# The four files of the authors' download_dataset.sh (kang205/DVBPR; three of its lines are commented out).
DVBPR_HOST = "http://cseweb.ucsd.edu/~wckang/DVBPR"
VBPR_RECORD_BYTES = 10 + 4 * 4096  # a 10-byte item id, then 4096 float32
VBPR_CITATION = ("Ruining He and Julian McAuley. 2016. VBPR: Visual Bayesian Personalized Ranking from Implicit "
                 "Feedback. AAAI.")
AMAZON_2014_CITATION = (" Data: Julian McAuley, Christopher Targett, Qinfeng Shi and Anton van den Hengel. 2015. "
                        "Image-based Recommendations on Styles and Substitutes. SIGIR.")
DVBPR_CITATION = ("Wang-Cheng Kang, Chen Fang, Zhaowen Wang and Julian McAuley. 2017. Visually-Aware Fashion "
                  "Recommendation and Design with Generative Image Models. ICDM.")
RESEARCH_ONLY_LICENCE = ("No licence published: the host asks users to cite the papers; research use only. Reviews, "
                         "product photos and the features computed from them come from {source} (copyright of their "
                         "owners): do not redistribute.")
VBPR_STATS = dict(published_users=None, published_items=None, published_interactions=None,
                  stats_source="VBPR's dataset table (after its preprocessing) was not available here to check; "
                               "no counts recorded")
DVBPR_STATS_SOURCE = "Kang et al. 2017, dataset table (as shown in the lecture, lecture-deep-learning-recsys.md)"


def _amazon_2014(category: str, *, metadata: bool, features_size: int | None) -> tuple[FileSpec, ...]:
    """A category's reviews, optionally its metadata (for the sub-category), and its image features."""
    files = [FileSpec(f"reviews_{category}.json.gz", f"amazon-2014/reviews_{category}.json.gz", None,
                      url=f"{AMAZON_2014}/categoryFiles/reviews_{category}.json.gz")]
    if metadata:
        files.append(FileSpec(f"meta_{category}.json.gz", f"amazon-2014/meta_{category}.json.gz", None,
                              url=f"{AMAZON_2014}/categoryFiles/meta_{category}.json.gz"))
    files.append(FileSpec(f"image_features_{category}.b", f"amazon-2014/image_features_{category}.b", None,
                          url=f"{AMAZON_2014}/image_features/categoryFiles/image_features_{category}.b",
                          size=features_size))
    return tuple(files)


def _vbpr_amazon(name: str, what: str, category: str, subcategory: str | None,
                 features_size: int | None) -> DatasetSpec:
    within = f"the '{subcategory}' items of " if subcategory else ""
    return DatasetSpec(
        name=name,
        description=(f"VBPR's Amazon {what}: {within}the 2014 Amazon {category.replace('_', ' ')} reviews as implicit "
                     "feedback, with the 4096-d CNN image features published beside them"),
        citation=VBPR_CITATION + AMAZON_2014_CITATION,
        licence=RESEARCH_ONLY_LICENCE.format(source="Amazon"), licence_short="research use only",
        homepage="http://jmcauley.ucsd.edu/data/amazon/",
        side_information=("item image features (4096-d CNN)", "review times"),
        files=_amazon_2014(category, metadata=subcategory is not None, features_size=features_size), **VBPR_STATS)


def _dvbpr(name: str, what: str, file: str, size: int, users: int, items: int, interactions: int) -> DatasetSpec:
    return DatasetSpec(
        name=name,
        description=f"DVBPR's {what}: the authors' train/validation/test partition with each item's JPEG image",
        citation=DVBPR_CITATION, licence=RESEARCH_ONLY_LICENCE.format(source="Amazon and Tradesy.com"),
        licence_short="research use only", homepage="https://github.com/kang205/DVBPR",
        side_information=("item images", "the authors' train/validation/test partition"),
        published_users=users, published_items=items, published_interactions=interactions,
        stats_source=DVBPR_STATS_SOURCE,
        files=(FileSpec(file, f"dvbpr/{file}", None, url=f"{DVBPR_HOST}/{file}", size=size),))


def _visual_paper_entries() -> tuple[DatasetSpec, ...]:
    clothing = "Clothing_Shoes_and_Jewelry"
    # DVBPR sizes: not published; estimated at ~17.5 kB per item image, which puts the four files in
    # the 2-6 GB the reference gives for them (content-and-visual-models.md).
    return (
        # Amazon Women / Men are sub-categories of Clothing, Shoes & Jewelry: the parser keeps the items
        # whose metadata category path starts with it (the authors split the category the same way).
        _vbpr_amazon("amazon-women-vbpr", "Women", clothing, "Women", None),
        _vbpr_amazon("amazon-men-vbpr", "Men", clothing, "Men", None),
        # 303,890 feature records (a public reader's loop bound) x 16,394 bytes.
        _vbpr_amazon("amazon-phones-vbpr", "Phones", "Cell_Phones_and_Accessories", None,
                     303_890 * VBPR_RECORD_BYTES),
        DatasetSpec(
            name="tradesy-vbpr",
            description="VBPR's Tradesy.com: users' bought and want lists as implicit feedback, with 4096-d CNN "
                        "image features",
            citation=VBPR_CITATION, licence=RESEARCH_ONLY_LICENCE.format(source="Tradesy.com"),
            licence_short="research use only", homepage="http://jmcauley.ucsd.edu/data/tradesy/",
            side_information=("item image features (4096-d CNN)",),
            files=(FileSpec("tradesy.json.gz", "tradesy/tradesy.json.gz", None, url=f"{TRADESY}/tradesy.json.gz"),
                   FileSpec("image_features_tradesy.b", "tradesy/image_features_tradesy.b", None,
                            url=f"{TRADESY}/image_features_tradesy.b", size=5_500_000_000)),  # 5.5 GB (reference)
            **VBPR_STATS),
        _dvbpr("amazon-fashion-dvbpr", "Amazon Fashion (6 categories)", "AmazonFashion6ImgPartitioned.npy",
               4_100_000_000, 64_583, 234_892, 513_367),
        _dvbpr("amazon-women-dvbpr", "Amazon Women", "AmazonWomenWithImgPartitioned.npy",
               6_100_000_000, 97_678, 347_591, 827_678),
        _dvbpr("amazon-men-dvbpr", "Amazon Men", "AmazonMenWithImgPartitioned.npy",
               1_900_000_000, 34_244, 110_636, 254_870),
        _dvbpr("tradesy-dvbpr", "Tradesy.com", "TradesyImgPartitioned.npy",
               5_700_000_000, 33_864, 326_393, 655_409),
        DatasetSpec(
            name="ugallery-curatornet",
            description="UGallery art purchases (CuratorNet's data): private",
            citation=("Manuel Cartagena, Patricio Cerda, Pablo Messina, Felipe del Rio and Denis Parra. 2020. "
                      "CuratorNet: Visually-aware Recommendation of Art Images. ComplexRec workshop, RecSys."),
            licence="Private data of UGallery, shared by the authors on request; not redistributable.",
            licence_short="private", homepage="https://github.com/ialab-puc/CuratorNet",
            side_information=("item images (private)", "artists", "purchase times"),
            published_users=None, published_items=None, published_interactions=None,
            stats_source="no counts recorded", files=(),
            unavailable=("UGallery's purchases and artwork images are private; ask the CuratorNet authors (Denis "
                         "Parra's group, PUC Chile; see https://github.com/ialab-puc/CuratorNet) for access. Their "
                         "notebook experiments/main.ipynb links an anonymised release (purchases, inventory, "
                         "ResNet50 embeddings, no images) that RecAudit does not fetch yet")),
    )


# ---------------------------------------------------------------- the paper-scale datasets
#
# The data of NCF (He et al., WWW 2017), Mult-VAE (Liang et al., WWW 2018), EASE (Steck, WWW 2019)
# and SANSA (Spisak et al., RecSys 2023), with each paper's preprocessing as the default. None of
# these downloads is reachable from the machine this was written on: the parsers are tested on
# small files in the exact upstream formats (tests/test_paper_scale_datasets.py). Where no trusted
# checksum of a file is published, its checksum is None and fetching it fails closed, printing
# the hash it saw for a person to check and record here.
#
# Mult-VAE and EASE filter with one pass each (MSD: songs with >= 200 users, then users with >= 20
# songs), so these entries default to k_core: once (datasets.prepare.single_pass_mask), not the
# iterative k-core, which would drop more songs and users than the paper's 571,355 x 41,140.

PAPER_SCALE_DATASETS = ("movielens-20m", "msd-taste-profile", "netflix-prize", "pinterest-20-ncf")
# GroupLens's ml-20m.zip.md5 ("MD5 (ml-20m.zip) = cd245b17...") as quoted by several independent
# download scripts; the size is the Content-Length GroupLens serves (198,702,078 bytes in public
# wget logs and size checks). One public evidence note also gives the zip's sha256
# (96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3), a single source, so the
# publisher's md5 is what fetch checks. No checksum of the members is published: the verified zip
# vouches for ratings.csv (datasets.fetch accepts members of a verified archive).
ML_20M_ZIP = ArchiveSpec("ml-20m.zip", f"{GROUPLENS}/ml-20m.zip", "md5:cd245b17a1ae2cc31bb14903e1204af3",
                         size=198_702_078)
# The Echo Nest Taste Profile subset of the Million Song Dataset, as linked from
# http://millionsongdataset.com/tasteprofile/ (the same URL in Ferrari Dacrema et al.'s data readers).
# No checksum and no size are published: the size is an estimate (48,373,586 lines of about 62
# bytes, about 3.0 GB unzipped, deflated to about a sixth).
MSD_TASTE_ZIP = ArchiveSpec(
    "train_triplets.txt.zip", "http://millionsongdataset.com/sites/default/files/challenge/train_triplets.txt.zip",
    None, size=500_000_000)
# Netflix no longer publishes the Prize data. The original release is kept by the Internet Archive;
# the archive's md5 is the one that several independent projects verify against, and the two files
# read from it carry the md5 that Netflix's own README lists ("MD5 SIGNATURES AND FILE SIZES").
# Size: 665 MB as listed beside that link (approximate).
NETFLIX_TGZ = ArchiveSpec("nf_prize_dataset.tar.gz",
                          "https://archive.org/download/nf_prize_dataset.tar/nf_prize_dataset.tar.gz",
                          "md5:a8f23d2d76461211c6b4c0ca6df2547d", size=665 * 2**20)
NETFLIX_FILES = {  # name -> (md5 of Netflix's README, bytes of Netflix's README)
    "training_set.tar": ("0098ee8997ffda361a59bc0dd1bdad8b", 2_081_556_480),
    "movie_titles.txt": ("d2b86d3d9ba8b491d62a85c9cf6aea39", 577_547),
}
NETFLIX_ELSEWHERE = (
    "Netflix no longer distributes the Netflix Prize data. `python -m datasets fetch netflix-prize` downloads the "
    "original release from the Internet Archive (https://archive.org/details/nf_prize_dataset.tar; also on Academic "
    "Torrents, infohash 9b13183dc4d60676b773c9e2cd6de5e5542cee9a) and checks training_set.tar and movie_titles.txt "
    "against the md5 in Netflix's README. With RECAUDIT_MIRROR set, place those two files in "
    "$RECAUDIT_MIRROR/netflix-prize/ instead. Kaggle's re-packaging (netflix-inc/netflix-prize-data: "
    "combined_data_1..4.txt) has no published checksum: its files can only be copied into data/raw/netflix-prize/ "
    "by hand, and the parser reads them there.")
NETFLIX_CITATION = "James Bennett and Stan Lanning. 2007. The Netflix Prize. KDD Cup and Workshop."
NETFLIX_LICENCE = ("Netflix Prize README: research use only; no endorsement by Netflix; acknowledge the data set in "
                   "publications and send Netflix a copy; no redistribution without separate permission; no "
                   "commercial use.")
MSD_CITATION = ("Thierry Bertin-Mahieux, Daniel P. W. Ellis, Brian Whitman and Paul Lamere. 2011. The Million Song "
                "Dataset. ISMIR. Taste Profile subset: The Echo Nest.")
NCF_CITATION = ("Xiangnan He, Lizi Liao, Hanwang Zhang, Liqiang Nie, Xia Hu and Tat-Seng Chua. 2017. Neural "
                "Collaborative Filtering. WWW.")
PINTEREST_CITATION = (" Data: Xue Geng, Hanwang Zhang, Jingwen Bian and Tat-Seng Chua. 2015. Learning Image and User "
                      "Features for Recommendation in Social Networks. ICCV.")
MULTVAE_PREPROCESSING = "Liang et al. 2018 (Mult-VAE), section 4.1; EASE (Steck 2019) uses the same"


def _paper_scale_entries() -> tuple[DatasetSpec, ...]:
    return (
        DatasetSpec(
            name="movielens-20m",
            description=("MovieLens 20M: 20,000,263 ratings (0.5-5) with timestamps, 1995-2015. Default: Mult-VAE's "
                         "preprocessing (ratings >= 4 as positives, users with >= 5 of them)"),
            citation=MOVIELENS_CITATION, licence=MOVIELENS_LICENCE, licence_short=MOVIELENS_SHORT,
            homepage="https://grouplens.org/datasets/movielens/20m/",
            side_information=("item genres (movies.csv, read when placed in the raw folder)",),
            published_users=138_493, published_items=None, published_interactions=20_000_263,
            stats_source="ml-20m README (ratings, users; its 27,278 movies count tagged-only ones too)",
            files=(FileSpec("ratings.csv", "movielens-20m/ratings.csv", None, archive=ML_20M_ZIP,
                            member="ml-20m/ratings.csv"),),
            default_preprocessing=MappingProxyType(default_preprocessing(rating_threshold=4,
                                                                         min_user_interactions=5, k_core="once")),
            rating_scale=(0.5, 5)),
        DatasetSpec(
            name="msd-taste-profile",
            description=("Million Song Dataset, Echo Nest Taste Profile subset: (user, song, play count) triplets. "
                         "Default: Mult-VAE's preprocessing (users with >= 20 songs, songs with >= 200 users)"),
            citation=MSD_CITATION,
            licence=("Million Song Dataset (LabROSA, Columbia University, and The Echo Nest): offered for research; "
                     "cite Bertin-Mahieux et al. 2011. No licence text was found: research use only, do not "
                     "redistribute."),
            licence_short="research use only",
            homepage="http://millionsongdataset.com/tasteprofile/",
            side_information=(),
            published_users=1_019_318, published_items=384_546, published_interactions=48_373_586,
            stats_source="the Taste Profile page (1,019,318 users, 384,546 songs, 48,373,586 triplets)",
            files=(FileSpec("train_triplets.txt", "msd-taste-profile/train_triplets.txt", None, archive=MSD_TASTE_ZIP,
                            member="train_triplets.txt"),),
            default_preprocessing=MappingProxyType(default_preprocessing(min_user_interactions=20,
                                                                         min_item_interactions=200, k_core="once"))),
        DatasetSpec(
            name="netflix-prize",
            description=("Netflix Prize training set: 100,480,507 ratings (1-5) with dates, 1998-2005. Default: "
                         "Mult-VAE's preprocessing (ratings >= 4 as positives, users with >= 5 of them). "
                         + NETFLIX_ELSEWHERE),
            citation=NETFLIX_CITATION, licence=NETFLIX_LICENCE, licence_short="Netflix: no redistribution",
            homepage="https://archive.org/details/nf_prize_dataset.tar",
            side_information=("item titles and years",),
            published_users=480_189, published_items=17_770, published_interactions=100_480_507,
            stats_source="Netflix Prize README (users, movies); ratings: Bennett and Lanning 2007",
            files=tuple(FileSpec(name, f"netflix-prize/{name}", f"md5:{md5}", archive=NETFLIX_TGZ,
                                 member=f"download/{name}") for name, (md5, _) in NETFLIX_FILES.items()),
            default_preprocessing=MappingProxyType(default_preprocessing(rating_threshold=4,
                                                                         min_user_interactions=5, k_core="once")),
            rating_scale=(1, 5)),
        DatasetSpec(
            name="pinterest-20-ncf",
            description=("Pinterest as preprocessed by NCF (users with >= 20 pins): leave-one-out test item and 99 "
                         "sampled negatives per user"),
            citation=NCF_CITATION + PINTEREST_CITATION,
            licence=("No licence text found for the Pinterest data of Geng et al. (2015): research use only, do not "
                     "redistribute. NCF repository: Apache-2.0 (code)."),
            licence_short="research use only",
            homepage="https://github.com/hexiangnan/neural_collaborative_filtering",
            side_information=(), stats_source="He et al. 2017, Table 1",
            published_users=55_187, published_items=9_916, published_interactions=1_500_809,
            files=from_github(NCF, "Data/", "pinterest-20-ncf", {
                "pinterest-20.train.rating": NCF_BLOBS["pinterest-20.train.rating"],
                "pinterest-20.test.rating": sha("3a8a8f7eb8e21cc5928b8259dd2c265269ecfa219d92ba829249956aa293d732"),
                "pinterest-20.test.negative": NCF_BLOBS["pinterest-20.test.negative"],
            }, sizes=NCF_SIZES)),
    )


@cache
def registered_datasets() -> MappingProxyType:
    """Every registered dataset by name (built on first use: the poster manifest is read then)."""
    return MappingProxyType({spec.name: spec for spec in _entries() + _visual_paper_entries()
                             + _paper_scale_entries()})


def dataset_names() -> list[str]:
    return list(registered_datasets())


def get_dataset(name: str) -> DatasetSpec:
    datasets = registered_datasets()
    if name not in datasets:
        raise unknown_name_error("dataset", name, datasets)
    return datasets[name]
