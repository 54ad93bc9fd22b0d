"""cfxl.data.download against a local HTTP server on 127.0.0.1: fetch, verify, unpack, cache, errors."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import shutil
import threading

import pytest

from cfxl.data import download as dl
from cfxl.data.ratings import read_ratings
from cfxl.errors import CfxlError

RATINGS = "userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n1,1029,3.0,1260759179\n2,31,4.0,835355493\n"
MOVIES = 'movieId,title,genres\n31,Dangerous Minds (1995),Drama\n1029,"Dumbo, The (1941)",Animation\n'


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # keep pytest's output clean
        pass


@pytest.fixture
def server(tmp_path):
    """A server for tmp_path/www on 127.0.0.1, yielding (base URL, folder); always shut down."""
    www = tmp_path / "www"
    www.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(www)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", www, httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def small_zip(server, ml_zip):
    base, www, _ = server
    return ml_zip(www / "ml-latest-small.zip", {"ml-latest-small/ratings.csv": RATINGS,
                                                 "ml-latest-small/movies.csv": MOVIES,
                                                 "ml-latest-small/README.txt": "for tests"})


def test_download_unpacks_and_reads(server, small_zip, tmp_path):
    base, _, _ = server
    folder = dl.download("ml-latest-small", cache_dir=tmp_path / "cache", base_url=base, progress=False)
    assert folder == tmp_path / "cache" / "ml-latest-small"
    assert sorted(p.name for p in folder.iterdir()) == [".cfxl-download.json", "README.txt", "movies.csv",
                                                         "ratings.csv"]
    assert not list((tmp_path / "cache").glob("*.part"))
    r = read_ratings(folder)
    assert len(r) == 3 and r.title(1029) == "Dumbo, The (1941)"


def test_cached_data_needs_no_network(server, small_zip, tmp_path, monkeypatch):
    base, _, httpd = server
    monkeypatch.setenv("CFXL_CACHE", str(tmp_path / "env-cache"))
    monkeypatch.setenv("CFXL_DOWNLOAD_URL", base)
    first = dl.download("ml-latest-small", progress=False)
    assert first == tmp_path / "env-cache" / "ml-latest-small"
    httpd.shutdown()  # from here on any request would fail
    httpd.server_close()
    monkeypatch.setenv("CFXL_DOWNLOAD_URL", "http://127.0.0.1:9")
    assert dl.download("ml-latest-small", progress=False) == first
    shutil.rmtree(first)  # the verified zip is kept: unpacked again without the network
    assert dl.download("ml-latest-small", progress=False) == first and (first / "movies.csv").is_file()
    with pytest.raises(CfxlError, match="cannot download http://127.0.0.1:9/ml-latest-small.zip"):
        dl.download("ml-latest-small", force=True, progress=False)
    assert read_ratings(first).n_users == 2  # a failed forced download keeps the good copy


def test_checksum_mismatch_is_an_error_and_leaves_no_file(server, small_zip, tmp_path, monkeypatch):
    base, _, _ = server
    actual = hashlib.md5(small_zip.read_bytes()).hexdigest()
    monkeypatch.setitem(dl.DATASETS, "ml-latest-small",
                        dataclasses.replace(dl.DATASETS["ml-latest-small"], md5="0" * 32))
    cache = tmp_path / "cache"
    with pytest.raises(CfxlError) as excinfo:
        dl.download("ml-latest-small", cache_dir=cache, base_url=base, progress=False)
    assert str(excinfo.value) == (f"{base}/ml-latest-small.zip: checksum mismatch: expected MD5 {'0' * 32}, "
                                  f"got {actual}; the download is corrupt or changed upstream, and was deleted")
    assert list(cache.iterdir()) == []
    monkeypatch.setitem(dl.DATASETS, "ml-latest-small",
                        dataclasses.replace(dl.DATASETS["ml-latest-small"], md5=actual))
    assert (dl.download("ml-latest-small", cache_dir=cache, base_url=base) / "ratings.csv").is_file()


def test_zip_without_the_ratings_file_is_refused(server, ml_zip, tmp_path):
    base, www, _ = server
    ml_zip(www / "ml-latest-small.zip", {"ml-latest-small/movies.csv": MOVIES})
    with pytest.raises(CfxlError, match=r"the zip has no ml-latest-small/ratings.csv"):
        dl.download("ml-latest-small", cache_dir=tmp_path / "cache", base_url=base)
    assert list((tmp_path / "cache").iterdir()) == []


def test_path_traversal_is_refused(server, ml_zip, tmp_path):
    base, www, _ = server
    ml_zip(www / "ml-latest-small.zip", {"ml-latest-small/ratings.csv": RATINGS, "../../evil.txt": "gotcha"})
    with pytest.raises(CfxlError, match=r"refusing to unpack '../../evil.txt'"):
        dl.download("ml-latest-small", cache_dir=tmp_path / "a" / "cache", base_url=base)
    assert not list(tmp_path.rglob("evil.txt"))
    assert list((tmp_path / "a" / "cache").iterdir()) == []


def test_not_a_zip_is_refused(server, tmp_path):
    base, www, _ = server
    (www / "ml-latest-small.zip").write_text("<html>maintenance</html>")
    with pytest.raises(CfxlError, match="not a valid zip file"):
        dl.download("ml-latest-small", cache_dir=tmp_path / "cache", base_url=base)
    assert list((tmp_path / "cache").iterdir()) == []


def test_unknown_name_lists_the_known_ones(tmp_path):
    with pytest.raises(CfxlError) as excinfo:
        dl.download("ml-5", cache_dir=tmp_path)
    assert str(excinfo.value) == "unknown data set 'ml-5'; known: ml-latest-small, ml-100k, ml-1m, ml-25m"


def test_http_404_names_the_url(server, tmp_path):
    base, _, _ = server
    with pytest.raises(CfxlError) as excinfo:
        dl.download("ml-100k", cache_dir=tmp_path / "cache", base_url=base)
    assert str(excinfo.value) == f"cannot download {base}/ml-100k.zip: HTTP 404 File not found"
    assert list((tmp_path / "cache").iterdir()) == []


def test_datasets_point_at_grouplens():
    assert dl.BASE_URL == "https://files.grouplens.org/datasets/movielens"
    assert dl.DATASETS["ml-100k"].md5 == "0e33842e24a9c977be4e0107933c0723"
    assert dl.DATASETS["ml-1m"].ratings == "ml-1m/ratings.dat"
    assert dl.DATASETS["ml-latest-small"].md5 is None
