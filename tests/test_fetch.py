"""Verified fetching: mirror copies, checksum refusal, safe unpacking, resumable downloads.

Nothing here touches the internet: downloads go to a local HTTP server on 127.0.0.1 that serves
bytes from a dict and can honour, ignore or cut short HTTP Range requests.
"""
from __future__ import annotations

import hashlib
import http.server
import io
import os
import shutil
import tarfile
import threading
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from datasets import fetch as fetch_module
from common.errors import RecAuditError
from datasets.fetch import (derive_ml100k_to_ml1m_title_map, derive_ml_latest_small_poster_index, download,
                            fetch_dataset, file_checksum, open_archive, url_cache_path)
from datasets.registry import ArchiveSpec, DatasetSpec, FileSpec, get_dataset

MIRROR = os.environ.get("RECAUDIT_MIRROR")
needs_mirror = pytest.mark.skipif(not MIRROR, reason="needs the real-data mirror: set RECAUDIT_MIRROR")


def sha(content: bytes) -> str:
    return "sha256:" + hashlib.sha256(content).hexdigest()


def synthetic_spec(files: tuple[FileSpec, ...], name: str = "toy") -> DatasetSpec:
    return DatasetSpec(name=name, description="synthetic", citation="-", licence="-", licence_short="-",
                       homepage="-", side_information=(), published_users=None, published_items=None,
                       published_interactions=None, stats_source="-", files=files)


TOY = {"ratings.txt": b"0 1 5\n1 2 3\n", "split/test.txt": b"0 2\n"}


def toy_mirror(root: Path, contents: dict[str, bytes] = TOY) -> Path:
    for name, content in contents.items():
        (root / "toy" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "toy" / name).write_bytes(content)
    return root


def toy_spec(checksums: dict[str, str | None] | None = None) -> DatasetSpec:
    checksums = checksums or {name: sha(content) for name, content in TOY.items()}
    return synthetic_spec(tuple(FileSpec(name, f"toy/{name}", checksums[name], url=f"https://example.org/{name}")
                                for name in TOY))


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ---------------------------------------------------------------- mirror copies

def test_mirror_copy_places_every_verified_file(tmp_path):
    mirror = toy_mirror(tmp_path / "mirror")
    result = fetch_dataset(toy_spec(), tmp_path / "raw" / "toy", mirror=mirror, progress=False)
    for name, content in TOY.items():
        assert (tmp_path / "raw" / "toy" / name).read_bytes() == content
    assert (result.n_files, result.n_bytes) == (2, sum(map(len, TOY.values())))
    assert leftovers(tmp_path / "raw") == ["toy"]  # no staging folder left beside it


def test_corrupted_mirror_copy_is_refused_and_leaves_nothing(tmp_path):
    corrupted = dict(TOY, **{"split/test.txt": b"0 3\n"})
    mirror = toy_mirror(tmp_path / "mirror", corrupted)
    destination = tmp_path / "raw" / "toy"
    with pytest.raises(RecAuditError) as error:
        fetch_dataset(toy_spec(), destination, mirror=mirror, progress=False)
    message = str(error.value)
    assert "\n" not in message
    assert "toy/split/test.txt" in message
    assert f"expected {sha(b'0 2' + bytes([10]))}" in message
    assert f"got {sha(b'0 3' + bytes([10]))}" in message
    assert str(mirror / "toy" / "split" / "test.txt") in message
    assert not destination.exists()
    assert leftovers(tmp_path / "raw") == []


def test_failed_fetch_keeps_the_previous_destination_intact(tmp_path):
    destination = tmp_path / "raw" / "toy"
    destination.mkdir(parents=True)
    (destination / "ratings.txt").write_bytes(b"old")
    mirror = toy_mirror(tmp_path / "mirror", dict(TOY, **{"ratings.txt": b"tampered"}))
    with pytest.raises(RecAuditError, match="checksum mismatch"):
        fetch_dataset(toy_spec(), destination, mirror=mirror, progress=False)
    assert leftovers(destination) == ["ratings.txt"]
    assert (destination / "ratings.txt").read_bytes() == b"old"


def test_missing_mirror_file_names_the_file_and_the_path_looked_at(tmp_path):
    mirror = toy_mirror(tmp_path / "mirror", {"ratings.txt": TOY["ratings.txt"]})
    with pytest.raises(RecAuditError) as error:
        fetch_dataset(toy_spec(), tmp_path / "raw" / "toy", mirror=mirror, progress=False)
    message = str(error.value)
    assert "toy/split/test.txt is missing from the mirror" in message
    assert f"looked at {mirror / 'toy' / 'split' / 'test.txt'}" in message
    assert not (tmp_path / "raw" / "toy").exists()


def test_a_mirror_that_is_no_folder_is_named(tmp_path):
    with pytest.raises(RecAuditError, match=f"the mirror {tmp_path / 'nowhere'} is not a folder"):
        fetch_dataset(toy_spec(), tmp_path / "raw" / "toy", mirror=tmp_path / "nowhere", progress=False)


def test_mirror_defaults_to_the_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("RECAUDIT_MIRROR", str(toy_mirror(tmp_path / "mirror")))
    result = fetch_dataset(toy_spec(), tmp_path / "raw" / "toy", progress=False)
    assert result.source == f"mirror {tmp_path / 'mirror'}"


def test_unknown_checksum_fails_closed_and_prints_the_hash_to_record(tmp_path):
    mirror = toy_mirror(tmp_path / "mirror")
    spec = toy_spec({"ratings.txt": sha(TOY["ratings.txt"]), "split/test.txt": None})
    with pytest.raises(RecAuditError) as error:
        fetch_dataset(spec, tmp_path / "raw" / "toy", mirror=mirror, progress=False)
    message = str(error.value)
    assert "no checksum is recorded for toy/split/test.txt" in message
    assert f'record checksum="{sha(TOY["split/test.txt"])}"' in message and "datasets/registry.py" in message
    assert not (tmp_path / "raw" / "toy").exists()


def test_gitblob_checksum_is_what_git_hash_object_prints(tmp_path):
    # `printf 'hello\n' | git hash-object --stdin` prints ce013625030ba8dba906f756967f9e9ca394464a.
    mirror = toy_mirror(tmp_path / "mirror", {"hello.txt": b"hello\n"})
    spec = synthetic_spec((FileSpec("hello.txt", "toy/hello.txt", "gitblob:ce013625030ba8dba906f756967f9e9ca394464a",
                                    url="https://example.org/hello.txt"),))
    fetch_dataset(spec, tmp_path / "raw", mirror=mirror, progress=False)
    assert file_checksum(tmp_path / "raw" / "hello.txt", "gitblob") == "gitblob:ce013625030ba8dba906f756967f9e9ca394464a"


# ---------------------------------------------------------------- safe unpacking

def zip_with(path: Path, entries: list[tuple[str, bytes, int | None]]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, content, mode in entries:
            info = zipfile.ZipInfo(name)
            if mode is not None:
                info.external_attr = mode << 16
            archive.writestr(info, content)
    return path


def tar_with(path: Path, entries: list[tarfile.TarInfo | tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                archive.addfile(entry)
            else:
                info = tarfile.TarInfo(entry[0])
                info.size = len(entry[1])
                archive.addfile(info, io.BytesIO(entry[1]))
    return path


def tar_link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


UNSAFE_ZIP = {
    "parent": ("../evil", b"x", None),
    "nested parent": ("data/../../evil", b"x", None),
    "absolute": ("/tmp/evil", b"x", None),
    "symlink": ("data/link", b"/etc/passwd", 0o120777),
}


@pytest.mark.parametrize("member", UNSAFE_ZIP.values(), ids=UNSAFE_ZIP.keys())
def test_zip_with_an_unsafe_member_is_refused(tmp_path, member):
    path = zip_with(tmp_path / "a.zip", [("data/ok.txt", b"fine", 0o100644), member])
    with pytest.raises(RecAuditError) as error, open_archive(path):
        pass
    assert repr(member[0]) in str(error.value) and "refusing to unpack" in str(error.value)
    assert not (tmp_path / "evil").exists()


UNSAFE_TAR = {
    "parent": ("../evil", b"x"),
    "absolute": ("/tmp/evil", b"x"),
    "symlink": tar_link("data/link", "/etc/passwd", tarfile.SYMTYPE),
    "hardlink": tar_link("data/hard", "../../etc/passwd", tarfile.LNKTYPE),
}


@pytest.mark.parametrize("member", UNSAFE_TAR.values(), ids=UNSAFE_TAR.keys())
def test_tar_with_an_unsafe_member_is_refused(tmp_path, member):
    path = tar_with(tmp_path / "a.tar.gz", [("data/ok.txt", b"fine"), member])
    name = member.name if isinstance(member, tarfile.TarInfo) else member[0]
    with pytest.raises(RecAuditError, match="refusing to unpack") as error, open_archive(path):
        pass
    assert repr(name) in str(error.value)


def test_safe_zip_and_tar_list_their_members(tmp_path):
    zipped = zip_with(tmp_path / "a.zip", [("data/", b"", 0o40755), ("data/ok.txt", b"fine", 0o100644)])
    tarred = tar_with(tmp_path / "a.tar", [("data/ok.txt", b"fine")])
    for path in (zipped, tarred):
        with open_archive(path) as entries:
            kind, size, open_member = entries["data/ok.txt"]
            with open_member() as stream:
                assert (kind, size, stream.read()) == ("file", 4, b"fine")


def test_a_file_that_is_no_archive_is_refused(tmp_path):
    (tmp_path / "a.zip").write_bytes(b"<html>not found</html>")
    with pytest.raises(RecAuditError, match="neither a zip nor a tar"), open_archive(tmp_path / "a.zip"):
        pass


# ---------------------------------------------------------------- downloads (local HTTP server)

class FakeServer:
    """Serves ``files`` (path -> bytes); ``mode``: "range" honours Range, "ignore" sends everything,
    "cut" announces the full length but sends only the first half and closes."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.mode = "range"
        self.requests: list[tuple[str, str | None, str | None]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range"), self.headers.get("User-Agent")))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                byte_range = self.headers.get("Range")
                if byte_range and server.mode == "range":
                    start = int(byte_range.removeprefix("bytes=").rstrip("-"))
                    if start >= len(body):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                payload = body[start:]
                self.wfile.write(payload[: len(payload) // 2] if server.mode == "cut" else payload)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    fake = FakeServer()
    yield fake
    fake.close()


PAYLOAD = bytes(range(256)) * 40  # 10,240 bytes


def test_download_streams_to_the_target_with_a_user_agent(tmp_path, server):
    server.files["/f.bin"] = PAYLOAD
    download(f"{server.url}/f.bin", tmp_path / "f.bin", progress=False)
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD
    assert not (tmp_path / "f.bin.partial").exists()
    assert server.requests[0][1] is None and server.requests[0][2].startswith("RecAudit/")


def test_download_resumes_a_partial_file_with_a_range_request(tmp_path, server):
    server.files["/f.bin"] = PAYLOAD
    (tmp_path / "f.bin.partial").write_bytes(PAYLOAD[:3000])
    download(f"{server.url}/f.bin", tmp_path / "f.bin", progress=False)
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD
    assert server.requests[0][1] == "bytes=3000-"


def test_download_starts_over_when_the_server_ignores_range(tmp_path, server):
    server.files["/f.bin"], server.mode = PAYLOAD, "ignore"
    (tmp_path / "f.bin.partial").write_bytes(b"stale bytes that must not stay in front")
    download(f"{server.url}/f.bin", tmp_path / "f.bin", progress=False)
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD


def test_interrupted_download_keeps_the_partial_file_and_the_next_run_resumes(tmp_path, server):
    server.files["/f.bin"], server.mode = PAYLOAD, "cut"
    with pytest.raises(RecAuditError, match="interrupted after 5120 of 10240 bytes.*resume"):
        download(f"{server.url}/f.bin", tmp_path / "f.bin", progress=False)
    assert (tmp_path / "f.bin.partial").read_bytes() == PAYLOAD[:5120]
    assert not (tmp_path / "f.bin").exists()
    server.mode = "range"
    download(f"{server.url}/f.bin", tmp_path / "f.bin", progress=False)
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD
    assert server.requests[-1][1] == "bytes=5120-"


def test_a_complete_partial_file_is_accepted_on_range_not_satisfiable(tmp_path, server):
    server.files["/f.bin"] = PAYLOAD
    (tmp_path / "f.bin.partial").write_bytes(PAYLOAD)
    download(f"{server.url}/f.bin", tmp_path / "f.bin", progress=False)
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD


def test_http_error_is_one_line(tmp_path, server):
    with pytest.raises(RecAuditError, match="HTTP 404") as error:
        download(f"{server.url}/missing", tmp_path / "missing", progress=False)
    assert "\n" not in str(error.value)


def upstream_spec(server: FakeServer, archive_checksum: str | None) -> DatasetSpec:
    archive = ArchiveSpec("toy.zip", f"{server.url}/toy.zip", archive_checksum)
    return synthetic_spec((
        FileSpec("ratings.txt", "toy/ratings.txt", sha(TOY["ratings.txt"]), archive=archive, member="toy/ratings.txt"),
        FileSpec("split/test.txt", "toy/split/test.txt", sha(TOY["split/test.txt"]), url=f"{server.url}/test.txt"),
    ))


def serve_toy(server: FakeServer, tmp_path: Path) -> bytes:
    zipped = zip_with(tmp_path / "toy.zip", [("toy/ratings.txt", TOY["ratings.txt"], 0o100644),
                                              ("toy/other.txt", b"not needed", 0o100644)]).read_bytes()
    server.files["/toy.zip"], server.files["/test.txt"] = zipped, TOY["split/test.txt"]
    return zipped


def test_upstream_fetch_caches_archives_and_extracts_only_needed_members(tmp_path, server, monkeypatch):
    monkeypatch.delenv("RECAUDIT_MIRROR", raising=False)
    zipped = serve_toy(server, tmp_path)
    spec = upstream_spec(server, "md5:" + hashlib.md5(zipped).hexdigest())
    cache, destination = tmp_path / "downloads", tmp_path / "raw" / "toy"
    result = fetch_dataset(spec, destination, progress=False, cache=cache)
    assert sorted(str(p.relative_to(destination)) for p in destination.rglob("*") if p.is_file()) == \
        ["ratings.txt", "split/test.txt"]
    assert (destination / "split" / "test.txt").read_bytes() == TOY["split/test.txt"]
    assert (cache / "toy.zip").read_bytes() == zipped and result.source == "upstream"
    # a second fetch downloads nothing: the archive is cached, the direct file already verified in place
    n_requests = len(server.requests)
    fetch_dataset(spec, destination, progress=False, cache=cache)
    assert len(server.requests) == n_requests


def test_archive_with_a_wrong_checksum_is_refused(tmp_path, server, monkeypatch):
    monkeypatch.delenv("RECAUDIT_MIRROR", raising=False)
    zipped = serve_toy(server, tmp_path)
    wrong = "md5:" + "0" * 32
    with pytest.raises(RecAuditError) as error:
        fetch_dataset(upstream_spec(server, wrong), tmp_path / "raw" / "toy", progress=False, cache=tmp_path / "dl")
    message = str(error.value)
    assert f"expected {wrong}, got md5:{hashlib.md5(zipped).hexdigest()}" in message
    assert f"delete the cached download {tmp_path / 'dl' / 'toy.zip'}" in message
    assert not (tmp_path / "raw" / "toy").exists()


def test_corrupted_direct_download_is_refused_and_names_the_cached_file(tmp_path, server, monkeypatch):
    monkeypatch.delenv("RECAUDIT_MIRROR", raising=False)
    serve_toy(server, tmp_path)
    server.files["/test.txt"] = b"0 9\n"
    with pytest.raises(RecAuditError, match="checksum mismatch for toy/split/test.txt") as error:
        fetch_dataset(upstream_spec(server, None), tmp_path / "raw" / "toy", progress=False, cache=tmp_path / "dl")
    assert str(tmp_path / "dl" / url_cache_path(f"{server.url}/test.txt")) in str(error.value)
    assert leftovers(tmp_path / "raw") == []


def test_derived_files_are_built_after_the_others_and_verified(tmp_path, server, monkeypatch):
    monkeypatch.delenv("RECAUDIT_MIRROR", raising=False)
    serve_toy(server, tmp_path)
    monkeypatch.setitem(fetch_module.DERIVATIONS, "line_count",
                        lambda staging: str(len((staging / "ratings.txt").read_text().splitlines())).encode())
    spec = upstream_spec(server, None)
    spec = synthetic_spec(spec.files + (FileSpec("n.txt", "toy/n.txt", sha(b"2"), derive="line_count"),))
    fetch_dataset(spec, tmp_path / "raw", progress=False, cache=tmp_path / "dl")
    assert (tmp_path / "raw" / "n.txt").read_bytes() == b"2"


def test_title_map_derivation_on_a_hand_made_example(tmp_path):
    (tmp_path / "u.item").write_bytes("1|Toy Story (1995)|x\n2|Café (1990) |x\n3|Nowhere (1999)|x\n".encode("latin-1"))
    (tmp_path / "movies.dat").write_bytes("1::Toy Story (1995)::A\n7::Café (1990)::B\n".encode("latin-1"))
    (tmp_path / "MovieImages").mkdir()
    (tmp_path / "MovieImages" / "7.jpg").write_bytes(b"")
    expected = b"ml100k_item_id\tml1m_movie_id\thas_image\n1\t1\t0\n2\t7\t1\n"
    assert derive_ml100k_to_ml1m_title_map(tmp_path) == expected


# ---------------------------------------------------------------- real data

def test_poster_index_derivation_on_a_hand_made_example(tmp_path):
    (tmp_path / "movies.csv").write_text('movieId,title,genres\n1,"A, The (1995)",Comedy\n5,B (1996),Drama\n'
                                         '7,C (1997),Drama\n9,D (1998),Drama\n')
    for path in ("movielens-1m-images/MovieImages/1.jpg", "movielens-1m-images/MovieImages/3.jpg",
                 "ml-latest-small-images/posters/1.jpg", "ml-latest-small-images/posters/7.jpg"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(b"")
    # movie 1: the ML-1M poster wins; 3 is no ml-latest-small movie; 5 and 9 have no poster
    assert derive_ml_latest_small_poster_index(tmp_path) == (
        b"movieId\timage_path\n1\tmovielens-1m-images/MovieImages/1.jpg\n7\tml-latest-small-images/posters/7.jpg\n")


@needs_mirror
def test_mirror_copy_of_movielens_100k(tmp_path):
    result = fetch_dataset("movielens-100k", tmp_path / "movielens-100k", progress=False)
    raw = tmp_path / "movielens-100k"
    posters = sorted(p.name for p in (raw / "MovieImages").iterdir())
    assert result.n_files == 6 + 2 + 1600 and len(posters) == 1600
    poster_bytes = sum((Path(MIRROR) / "movielens-1m-images" / "MovieImages" / name).stat().st_size for name in posters)
    assert result.n_bytes == 1979173 + 236344 + 22628 + 202 + 193 + 6750 + 171308 + 17410 + poster_bytes
    assert len((raw / "u.data").read_text().splitlines()) == 100_000
    for name in posters[:40]:  # byte-identical copies
        assert (raw / "MovieImages" / name).read_bytes() == \
            (Path(MIRROR) / "movielens-1m-images" / "MovieImages" / name).read_bytes()


def fake_mirror(root: Path, tmp_path: Path, corrupt: str) -> Path:
    """A mirror of links into the real one, except ``corrupt`` (mirror path): a copy with one byte changed."""
    fake = tmp_path / "fake-mirror"
    parts = corrupt.split("/")
    real, current = root, fake
    current.mkdir()
    for depth, part in enumerate(parts):  # real folders down to the file, links for everything else
        for entry in real.iterdir():
            if entry.name != part:
                (current / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
        real, current = real / part, current / part
        if depth < len(parts) - 1:
            current.mkdir()
    content = bytearray(real.read_bytes())
    content[len(content) // 2] ^= 0xFF
    current.write_bytes(bytes(content))
    return fake


@needs_mirror
@pytest.mark.slow
@pytest.mark.parametrize("dataset, corrupt", [
    ("movielens-100k", "movielens-1m-images/MovieImages/1.jpg"),
    ("ml-latest-small", "ml-latest-small-images/posters/189713.jpg"),
    ("ml-latest-small", "ml-latest-small-images/index.tsv"),
])
def test_a_corrupted_poster_in_the_mirror_fails_closed(tmp_path, dataset, corrupt):
    fake = fake_mirror(Path(MIRROR), tmp_path, corrupt)
    assert (fake / corrupt).read_bytes() != (Path(MIRROR) / corrupt).read_bytes()
    assert (fake / "movielens-100k" / "u.data").resolve() == (Path(MIRROR) / "movielens-100k" / "u.data").resolve()
    destination = tmp_path / "raw" / dataset
    with pytest.raises(RecAuditError) as error:
        fetch_dataset(dataset, destination, mirror=fake, progress=False)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"checksum mismatch for {dataset}/")
    assert str(fake / corrupt) in message
    assert not destination.exists() and leftovers(tmp_path / "raw") == []


@needs_mirror
@pytest.mark.slow
def test_mirror_copy_of_ml_latest_small_and_its_index_derivation(tmp_path):
    raw = tmp_path / "ml-latest-small"
    result = fetch_dataset("ml-latest-small", raw, progress=False)
    assert result.n_files == 5 + 1 + 5563
    assert len(list((raw / "movielens-1m-images" / "MovieImages").iterdir())) == 2947
    assert len(list((raw / "ml-latest-small-images" / "posters").iterdir())) == 2616
    index = (raw / "ml-latest-small-images" / "index.tsv").read_bytes()
    assert index == (Path(MIRROR) / "ml-latest-small-images" / "index.tsv").read_bytes()
    # the derivation rebuilds index.tsv from the fetched files alone (fewer ML-1M posters than the mirror)
    assert derive_ml_latest_small_poster_index(raw) == index


@needs_mirror
def test_title_map_derivation_reproduces_the_staged_map(tmp_path):
    mirror = Path(MIRROR)
    shutil.copy(mirror / "movielens-100k" / "u.item", tmp_path / "u.item")
    shutil.copy(mirror / "movielens-1m-images" / "movies.dat", tmp_path / "movies.dat")
    (tmp_path / "MovieImages").symlink_to(mirror / "movielens-1m-images" / "MovieImages")
    expected = get_dataset("movielens-100k").file("ml100k_item_to_ml1m_movie.tsv").checksum
    assert sha(derive_ml100k_to_ml1m_title_map(tmp_path)) == expected
    # the same map from only the 1,600 posters movielens-100k fetches
    (tmp_path / "MovieImages").unlink()
    (tmp_path / "MovieImages").mkdir()
    for spec in get_dataset("movielens-100k").files:
        if spec.name.startswith("MovieImages/"):
            (tmp_path / spec.name).symlink_to(mirror / spec.mirror)
    assert len(list((tmp_path / "MovieImages").iterdir())) == 1600
    assert sha(derive_ml100k_to_ml1m_title_map(tmp_path)) == expected


class MirrorResponse(io.BytesIO):
    """What urlopen returns, for a download served from a mirror file."""

    status = 200

    def __init__(self, content: bytes):
        super().__init__(content)
        self.headers = {"Content-Length": str(len(content))}


@needs_mirror
@pytest.mark.slow
def test_upstream_fetch_of_movielens_100k_rebuilds_the_title_map(tmp_path, monkeypatch):
    """Every upstream URL of the real spec is answered from the mirror, the ml-100k zip is rebuilt
    from mirror files (so its md5 is swapped for ours), and the map must be derived, not copied."""
    spec = get_dataset("movielens-100k")
    root = Path(MIRROR)
    by_url = {f.url: root / f.mirror for f in spec.files if f.url}
    zipped = tmp_path / "ml-100k.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        for f in spec.files:
            if f.archive is not None:
                archive.write(root / f.mirror, f.member)
    archive_spec = ArchiveSpec("ml-100k.zip", "https://files.example/ml-100k.zip", file_checksum(zipped, "md5"))
    by_url[archive_spec.url] = zipped
    files = tuple(replace(f, archive=archive_spec) if f.archive else f for f in spec.files)
    requested = []

    def answer(request, timeout):
        requested.append(request.full_url)
        return MirrorResponse(by_url[request.full_url].read_bytes())

    monkeypatch.setattr(fetch_module, "_urlopen", answer)
    monkeypatch.delenv("RECAUDIT_MIRROR")
    result = fetch_dataset(replace(spec, files=files), tmp_path / "raw", progress=False, cache=tmp_path / "dl")
    assert result.n_files == 1608 and result.source == "upstream"
    assert len(requested) == 1 + 1 + 1600  # the zip, movies.dat, the posters: nothing for the derived map
    assert file_checksum(tmp_path / "raw" / "ml100k_item_to_ml1m_movie.tsv") == \
        spec.file("ml100k_item_to_ml1m_movie.tsv").checksum


@needs_mirror
@pytest.mark.slow
def test_upstream_fetch_of_ml_latest_small_derives_the_poster_index(tmp_path, monkeypatch):
    spec = get_dataset("ml-latest-small")
    root = Path(MIRROR)
    by_url = {f.url: root / f.mirror for f in spec.files if f.url}
    zipped = tmp_path / "ml-latest-small.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        for f in spec.files:
            if f.archive is not None:
                archive.write(root / f.mirror, f.member)
    archive_spec = ArchiveSpec("ml-latest-small.zip", "https://files.example/ml-latest-small.zip", None)
    by_url[archive_spec.url] = zipped
    files = tuple(replace(f, archive=archive_spec) if f.archive else f for f in spec.files)
    monkeypatch.setattr(fetch_module, "_urlopen",
                        lambda request, timeout: MirrorResponse(by_url[request.full_url].read_bytes()))
    monkeypatch.delenv("RECAUDIT_MIRROR")
    result = fetch_dataset(replace(spec, files=files), tmp_path / "raw", progress=False, cache=tmp_path / "dl")
    assert result.n_files == 5569
    assert (tmp_path / "raw" / "ml-latest-small-images" / "index.tsv").read_bytes() == \
        (root / "ml-latest-small-images" / "index.tsv").read_bytes()
