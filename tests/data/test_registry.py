"""Dataset registry and download cache, tested against a local HTTP server (never the internet)."""

import hashlib
import http.server
import io
import threading
import zipfile
from functools import partial

import pytest

from slimrec.data import registry
from slimrec.data.registry import DatasetInfo, RemoteFile, download, load_dataset
from slimrec.errors import ConfigError, DataError

U_DATA = "".join(f"{u}\t{i}\t{(u * i) % 5 + 1}\t{880000000 + u * 10 + i}\n"
                 for u in range(1, 6) for i in range(1, 9))


@pytest.fixture()
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def fixture_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("tiny/u.data", U_DATA)
    return buffer.getvalue()


def register_tiny(monkeypatch, url, sha256):
    info = DatasetInfo("tiny", "test fixture", "movielens", "holdout",
                       (RemoteFile(f"{url}/tiny.zip", "u.data", sha256, "tiny/u.data"),))
    monkeypatch.setitem(registry.DATASETS, "tiny", info)


def test_download_verifies_and_caches(server, monkeypatch):
    root, url = server
    blob = fixture_zip()
    (root / "tiny.zip").write_bytes(blob)
    register_tiny(monkeypatch, url, hashlib.sha256(blob).hexdigest())
    folder = download("tiny", progress=False)
    assert (folder / "u.data").read_text() == U_DATA
    (root / "tiny.zip").unlink()  # a second load must come from the cache
    data = load_dataset("tiny", progress=False)
    assert data.num_users == 5 and data.num_items == 8


def test_checksum_mismatch_keeps_nothing(server, monkeypatch):
    root, url = server
    (root / "tiny.zip").write_bytes(fixture_zip())
    register_tiny(monkeypatch, url, "0" * 64)
    with pytest.raises(DataError, match="checksum mismatch"):
        download("tiny", progress=False)
    assert not (registry.cache_dir() / "tiny" / "u.data").exists()
    assert not list((registry.cache_dir() / "tiny").glob("*.part"))


def test_unpinned_checksum_is_recorded_on_first_download(server, monkeypatch):
    root, url = server
    blob = fixture_zip()
    (root / "tiny.zip").write_bytes(blob)
    register_tiny(monkeypatch, url, None)
    folder = download("tiny", progress=False)
    recorded = (folder / "checksums.json").read_text()
    assert hashlib.sha256(blob).hexdigest() in recorded


def test_unreachable_url_is_a_clear_error(monkeypatch):
    register_tiny(monkeypatch, "http://127.0.0.1:9", None)
    with pytest.raises(DataError, match=r"could not download .*--data-dir"):
        download("tiny", progress=False)


def test_unknown_dataset():
    with pytest.raises(ConfigError, match="unknown dataset 'nope'"):
        load_dataset("nope")


def test_data_dir_missing_folder(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        load_dataset("gowalla", tmp_path)


def test_registry_entries_are_complete():
    for info in registry.DATASETS.values():
        for remote in info.remote:
            assert remote.url.startswith("https://")
    assert registry.DATASETS["gowalla"].remote[0].sha256
