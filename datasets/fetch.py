"""Fetch a registered dataset's raw files, verify every checksum, and place them all at once.

Files come from the read-only mirror when one is given (``$RECAUDIT_MIRROR``), otherwise from
upstream: direct downloads and archives are cached under ``data/downloads/`` (resumable through
HTTP Range requests on a ``.partial`` file), archives are checked against their published checksum,
and only the needed members are read out of them. The dataset is assembled in a temporary folder
beside the destination and renamed into place only when every file has verified, so a failure
leaves the destination exactly as it was.

An archive member may hold at most :func:`member_size_limit` bytes: ``MAX_EXPANSION`` times the
archive's own size (MovieLens 1M's ``ratings.dat`` is 4.2 times its zip, text rarely compresses
beyond 10), and never less than ``MIN_MEMBER_LIMIT``. A member whose declared size exceeds it is
refused before a byte of it is written, and the copy stops at the limit whatever the header
said, so a small archive cannot fill the disk before the members' checksums are checked.
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import http.client
import io
import os
import stat
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from common.atomic import atomic_directory
from common.errors import RecAuditError
from datasets.registry import ArchiveSpec, DatasetSpec, FileSpec, get_dataset, is_safe_relative_path, parse_checksum

MIRROR_VARIABLE = "RECAUDIT_MIRROR"
DEFAULT_CACHE = Path("data/downloads")
USER_AGENT = "RecAudit/0.1 (dataset fetcher for a recommender-systems audit; python-urllib)"
CHUNK_BYTES = 1 << 20
MAX_EXPANSION = 20  # an archive member may be at most this many times the archive's size ...
MIN_MEMBER_LIMIT = 1 << 20  # ... and is always allowed 1 MiB
TIMEOUT_SECONDS = 60
_urlopen = urllib.request.urlopen  # tests replace this; nothing here opens a connection at import time


@dataclass(frozen=True)
class FetchResult:
    dataset: str
    destination: Path
    n_files: int
    n_bytes: int
    source: str  # "mirror <root>" or "upstream"


def mirror_root(mirror: Path | str | None = None) -> Path | None:
    """The mirror to copy from: ``mirror`` if given, else ``$RECAUDIT_MIRROR``, else None (download)."""
    if mirror is None:
        mirror = os.environ.get(MIRROR_VARIABLE) or None
    return None if mirror is None else Path(mirror)


def fetch_dataset(dataset: str | DatasetSpec, destination: Path | str, mirror: Path | str | None = None,
                  progress: bool = True, cache: Path | str | None = None) -> FetchResult:
    """Place every raw file of ``dataset`` in ``destination``, verified, or raise and change nothing.

    ``dataset`` is a registered name or a :class:`DatasetSpec` (tests pass synthetic ones).
    ``cache`` holds upstream downloads (default ``data/downloads``); it is not used with a mirror.
    """
    spec = get_dataset(dataset) if isinstance(dataset, str) else dataset
    if spec.unavailable is not None:
        raise RecAuditError(f"{spec.name} cannot be fetched: {spec.unavailable}")
    destination = Path(destination)
    root = mirror_root(mirror)
    if root is not None:
        _check_mirror_complete(spec, root)
    n_bytes = 0
    with atomic_directory(destination) as staging:
        _apply_umask(staging)
        if root is not None:
            for file in _bar(spec.files, progress, spec.name):
                source = root / file.mirror
                fix = (f"the mirror copy {source} is not the registered file: restore it, or unset "
                       f"{MIRROR_VARIABLE} to download the file")
                with open(source, "rb") as stream:
                    n_bytes += copy_verified(stream, source.stat().st_size, staging / file.name, file, spec.name, fix)
        else:
            n_bytes = _fetch_upstream(spec, staging, destination, Path(cache or DEFAULT_CACHE), progress)
    source = f"mirror {root}" if root is not None else "upstream"
    return FetchResult(spec.name, destination, len(spec.files), n_bytes, source)


def _apply_umask(folder: Path) -> None:
    # The staging folder comes from mkdtemp (mode 0700); the raw folder should be as readable as any other.
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)


def _check_mirror_complete(spec: DatasetSpec, root: Path) -> None:
    if not root.is_dir():
        raise RecAuditError(f"the mirror {root} is not a folder; point {MIRROR_VARIABLE} at the mirror, or unset it "
                            f"to download from upstream")
    missing = [file for file in spec.files if not (root / file.mirror).is_file()]
    if missing:
        first = missing[0]
        more = f" ({len(missing) - 1} more of its files are missing too)" if len(missing) > 1 else ""
        raise RecAuditError(f"{spec.name}/{first.name} is missing from the mirror: looked at {root / first.mirror}{more};"
                            f" unset {MIRROR_VARIABLE} to download it from {first.upstream}")


def _bar(items, progress: bool, label: str, **kwargs):
    # disable=None: tqdm switches itself off when stderr is not a terminal (CI logs, tests).
    return tqdm(items, desc=label, disable=None if progress else True, leave=False, **kwargs)


# ---------------------------------------------------------------- verification

def new_hasher(kind: str, size: int):
    if kind == "gitblob":
        hasher = hashlib.sha1()
        hasher.update(b"blob %d\0" % size)  # git's object header, so the result is `git hash-object`
        return hasher
    return hashlib.new(kind)


def file_checksum(path: Path, kind: str = "sha256") -> str:
    """``"<kind>:<hex>"`` of a file on disk."""
    hasher = new_hasher(kind, path.stat().st_size)
    with open(path, "rb") as stream:
        while chunk := stream.read(CHUNK_BYTES):
            hasher.update(chunk)
    return f"{kind}:{hasher.hexdigest()}"


def copy_verified(stream: BinaryIO, size: int, target: Path, file: FileSpec, dataset: str, fix: str,
                  limit: int | None = None, covered_by: str | None = None) -> int:
    """Copy ``stream`` to ``target`` while hashing it; raise (and remove ``target``) unless it matches,
    or as soon as more than ``limit`` bytes have come. A file without a recorded checksum is
    accepted only when ``covered_by`` names the verified archive it was unpacked from (the
    publisher checksums the archive, e.g. GroupLens's ml-20m.zip.md5, not its members)."""
    kind = parse_checksum(file.checksum)[0] if file.checksum else "sha256"
    hasher = new_hasher(kind, size)
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with open(target, "wb") as out:
        while chunk := stream.read(CHUNK_BYTES):
            hasher.update(chunk)
            out.write(chunk)
            written += len(chunk)
            if limit is not None and written > limit:
                out.close()
                target.unlink()
                raise RecAuditError(f"{dataset}/{file.name} grows beyond the size limit of {limit} bytes for an "
                                    f"archive member; {fix}")
    actual = f"{kind}:{hasher.hexdigest()}"
    if file.checksum is None and covered_by is not None:
        return written
    if file.checksum is None:
        target.unlink()
        raise RecAuditError(
            f"no checksum is recorded for {dataset}/{file.name} (from {file.upstream}); this copy has {actual}: "
            f"check the file, then record checksum=\"{actual}\" for it in datasets/registry.py")
    if actual != file.checksum:
        target.unlink()
        raise RecAuditError(f"checksum mismatch for {dataset}/{file.name}: expected {file.checksum}, got {actual}; {fix}")
    return written


# ---------------------------------------------------------------- upstream

def _fetch_upstream(spec: DatasetSpec, staging: Path, destination: Path, cache: Path, progress: bool) -> int:
    n_bytes = 0
    by_archive: dict[ArchiveSpec, list[FileSpec]] = {}
    direct, derived = [], []
    for file in spec.files:
        if file.archive is not None:
            by_archive.setdefault(file.archive, []).append(file)
        else:
            (derived if file.derive else direct).append(file)
    for archive, members in by_archive.items():
        n_bytes += _extract_members(spec.name, archive, members, staging, cache, progress)
    for file in _bar(direct, progress and len(direct) > 1, spec.name, unit="file"):
        n_bytes += _fetch_direct(spec.name, file, staging, destination, cache, progress)
    for file in derived:
        content = DERIVATIONS[file.derive](staging)
        fix = f"the derivation {file.derive!r} in datasets/fetch.py no longer reproduces the registered file"
        n_bytes += copy_verified(io.BytesIO(content), len(content), staging / file.name, file, spec.name, fix)
    return n_bytes


def _fetch_direct(dataset: str, file: FileSpec, staging: Path, destination: Path, cache: Path, progress: bool) -> int:
    existing = destination / file.name
    if file.checksum and existing.is_file() and file_checksum(existing, parse_checksum(file.checksum)[0]) == file.checksum:
        with open(existing, "rb") as stream:  # already fetched before: no need to download it again
            return copy_verified(stream, existing.stat().st_size, staging / file.name, file, dataset, "")
    cached = cache / url_cache_path(file.url)
    if not cached.is_file():
        download(file.url, cached, progress=progress, label=file.name)
    fix = f"delete the cached download {cached} and run `python -m datasets fetch {dataset}` again"
    with open(cached, "rb") as stream:
        return copy_verified(stream, cached.stat().st_size, staging / file.name, file, dataset, fix)


def url_cache_path(url: str) -> Path:
    """Where a direct download is cached: ``<host>/<path>``, so datasets sharing a URL share the file."""
    parts = urllib.parse.urlsplit(url)
    relative = f"{parts.netloc.replace(':', '_')}{urllib.parse.unquote(parts.path)}"
    if not is_safe_relative_path(relative):
        raise RecAuditError(f"cannot cache {url}: its path is not a plain relative path; fix its URL in datasets/registry.py")
    return Path(relative)


def _extract_members(dataset: str, archive: ArchiveSpec, members: list[FileSpec], staging: Path, cache: Path,
                     progress: bool) -> int:
    path = cache / archive.name
    if not path.is_file():
        download(archive.url, path, progress=progress, label=archive.name)
    fix = f"delete the cached download {path} and run `python -m datasets fetch {dataset}` again"
    covered_by = None
    if archive.checksum is not None:
        actual = file_checksum(path, parse_checksum(archive.checksum)[0])
        if actual != archive.checksum:
            raise RecAuditError(f"checksum mismatch for download {archive.name}: expected {archive.checksum}, "
                                f"got {actual}; {fix}")
        covered_by = archive.name
    n_bytes = 0
    limit = member_size_limit(path)
    with open_archive(path) as entries:
        for file in members:
            entry = entries.get(file.member)
            if entry is None or entry[0] != "file":
                raise RecAuditError(f"{archive.name} has no file {file.member!r} (needed as {dataset}/{file.name}); {fix}")
            _, size, open_member = entry
            if size > limit:
                raise RecAuditError(f"refusing to unpack {archive.name}: member {file.member!r} declares {size} bytes, "
                                    f"beyond the limit of {limit} bytes per member ({MAX_EXPANSION} x the archive's "
                                    f"{path.stat().st_size}, at least {MIN_MEMBER_LIMIT}); {fix}")
            with open_member() as stream:
                n_bytes += copy_verified(stream, size, staging / file.name, file, dataset, fix, limit=limit,
                                         covered_by=covered_by)
    return n_bytes


def member_size_limit(archive: Path) -> int:
    """The most bytes one member of ``archive`` may hold (see the module docstring)."""
    return max(MIN_MEMBER_LIMIT, MAX_EXPANSION * Path(archive).stat().st_size)


@contextlib.contextmanager
def open_archive(path: Path) -> Iterator[dict[str, tuple[str, int, Callable[[], BinaryIO]]]]:
    """Map each member name to ``(kind, size, open)``, refusing the archive if any member is unsafe.

    Members are only ever read as streams into paths we choose, never extracted by the archive
    library; still, an archive holding absolute paths, ``..`` components or links is not what the
    registry describes, so it is refused as a whole rather than trusted in part.
    """
    path = Path(path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            entries = {}
            for info in archive.infolist():
                mode = info.external_attr >> 16
                kind = "link" if stat.S_ISLNK(mode) else "dir" if info.is_dir() else "file"
                _check_member(path, info.filename, kind)
                entries[info.filename.rstrip("/")] = (kind, info.file_size, lambda info=info: archive.open(info))
            yield entries
    elif tarfile.is_tarfile(path):
        with tarfile.open(path) as archive:
            entries = {}
            for member in archive.getmembers():
                kind = "file" if member.isfile() else "dir" if member.isdir() else \
                    "link" if (member.issym() or member.islnk()) else "special"
                _check_member(path, member.name, kind)
                entries[member.name.rstrip("/")] = (kind, member.size, lambda m=member: archive.extractfile(m))
            yield entries
    else:
        raise RecAuditError(f"{path} is neither a zip nor a tar archive; delete it and fetch again")


def _check_member(archive: Path, name: str, kind: str) -> None:
    if not is_safe_relative_path(name.rstrip("/")):
        problem = "an absolute path or '..' component"
    elif kind in ("link", "special"):
        problem = "a link or special file"
    else:
        return
    raise RecAuditError(f"refusing to unpack {archive}: member {name!r} is {problem}; "
                        f"delete {archive} and download it again from the registered URL")


def download(url: str, target: Path, progress: bool = True, label: str | None = None) -> Path:
    """Stream ``url`` to ``target`` through ``target.partial``, resuming a partial file by HTTP Range."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    offset = partial.stat().st_size if partial.exists() else 0
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    retry = f"run the same command again to resume (partial file kept at {partial})"
    try:
        response = _urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_SECONDS)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:  # nothing left past our offset: the partial file is complete
            os.replace(partial, target)
            return target
        raise RecAuditError(f"download of {url} failed: HTTP {error.code} {error.reason}; "
                            f"check the URL in datasets/registry.py or try again later") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise RecAuditError(f"download of {url} failed: {reason}; check the network and {retry}") from None
    with response:
        resumed = offset > 0 and getattr(response, "status", None) == 206
        offset = offset if resumed else 0  # a server that ignores Range sends the whole file again
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        with open(partial, "ab" if resumed else "wb") as out, \
                tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, leave=False,
                     desc=label or target.name, disable=None if progress else True) as bar:
            try:
                while chunk := response.read(CHUNK_BYTES):
                    out.write(chunk)
                    bar.update(len(chunk))
            except (OSError, http.client.HTTPException) as error:
                raise RecAuditError(f"download of {url} was interrupted ({error}); {retry}") from None
    received = partial.stat().st_size
    if total is not None and received != total:
        raise RecAuditError(f"download of {url} was interrupted after {received} of {total} bytes; {retry}")
    os.replace(partial, target)
    return target


# ---------------------------------------------------------------- derived files

def derive_ml100k_to_ml1m_title_map(staging: Path) -> bytes:
    """ML-100K item -> ML-1M movie by exact title (field 2 of ``u.item`` and of ``movies.dat``).

    Both files are read as ISO-8859-1 and titles are stripped; ML-100K items without an exact match
    are left out. ``has_image`` is 1 when ``MovieImages/<movie>.jpg`` is among the dataset's files.
    Reproduces the staged ``ml100k_item_to_ml1m_movie.tsv`` byte for byte (its sha256 is checked).
    """
    movie_by_title = {}
    for line in (staging / "movies.dat").read_text(encoding="iso-8859-1").splitlines():
        movie_id, title = line.split("::")[:2]
        movie_by_title.setdefault(title.strip(), int(movie_id))
    items = {}
    for line in (staging / "u.item").read_text(encoding="iso-8859-1").splitlines():
        item_id, title = line.split("|")[:2]
        items[int(item_id)] = title.strip()
    with_image = {int(p.stem) for p in (staging / "MovieImages").glob("*.jpg")}
    rows = ["ml100k_item_id\tml1m_movie_id\thas_image"]
    for item_id in sorted(items):
        movie_id = movie_by_title.get(items[item_id])
        if movie_id is not None:
            rows.append(f"{item_id}\t{movie_id}\t{int(movie_id in with_image)}")
    return ("\n".join(rows) + "\n").encode()


ML1M_POSTER_DIR = "movielens-1m-images/MovieImages"
SMALL_POSTER_DIR = "ml-latest-small-images/posters"


def derive_ml_latest_small_poster_index(staging: Path) -> bytes:
    """ml-latest-small movie -> poster path, for every movie of ``movies.csv`` that has one.

    Rows follow ``movies.csv`` (sorted by ``movieId``); a movie's poster is
    ``movielens-1m-images/MovieImages/<id>.jpg`` when that file is among the dataset's files
    (ML-1M and ml-latest-small share movie ids), else ``ml-latest-small-images/posters/<id>.jpg``
    when that one is; movies with neither are left out. Paths are relative to the raw folder
    (and to the mirror root). Reproduces the staged ``index.tsv`` byte for byte (sha256 checked).
    """
    with open(staging / "movies.csv", newline="", encoding="utf-8") as handle:
        movie_ids = [int(row["movieId"]) for row in csv.DictReader(handle)]
    ml1m = {p.name for p in (staging / ML1M_POSTER_DIR).glob("*.jpg")}
    small = {p.name for p in (staging / SMALL_POSTER_DIR).glob("*.jpg")}
    rows = ["movieId\timage_path"]
    for movie_id in movie_ids:
        name = f"{movie_id}.jpg"
        if name in ml1m:
            rows.append(f"{movie_id}\t{ML1M_POSTER_DIR}/{name}")
        elif name in small:
            rows.append(f"{movie_id}\t{SMALL_POSTER_DIR}/{name}")
    return ("\n".join(rows) + "\n").encode()


DERIVATIONS: dict[str, Callable[[Path], bytes]] = {
    "ml100k_to_ml1m_title_map": derive_ml100k_to_ml1m_title_map,
    "ml_latest_small_poster_index": derive_ml_latest_small_poster_index,
}
