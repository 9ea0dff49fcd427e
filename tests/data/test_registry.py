"""Dataset registry and download cache, tested against a local HTTP server (never the internet)."""

import hashlib
import http.server
import io
import json
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
    with pytest.raises(ConfigError, match="unknown dataset 'nope'") as error:
        load_dataset("nope")
    assert "Known interaction datasets: synthetic, gowalla" in str(error.value)
    assert "frappe" not in str(error.value)


@pytest.mark.parametrize(("name", "kind", "message"), [
    ("gowala", "interactions", r"unknown dataset 'gowala'\. Did you mean 'gowalla'\?"),
    ("frapp", "fields", r"unknown CTR dataset 'frapp'\. Did you mean 'frappe'\? Known CTR "
                        r"\(fields\) datasets: frappe, ml-100k, ml-1m, criteo"),
    ("ml100k", None, r"unknown dataset 'ml100k'\. Did you mean 'ml-100k'"),
    ("zzz", "fields", r"unknown CTR dataset 'zzz'\. Known CTR"),
])
def test_unknown_names_suggest_close_ones(name, kind, message):
    with pytest.raises(ConfigError, match=message):
        registry.dataset_info(name, kind)


def test_one_registry_holds_every_kind():
    assert {"gowalla", "frappe", "criteo-sample", "ml-100k"} <= set(registry.DATASETS)
    assert registry.dataset_info("frappe").kind == "fields"
    assert registry.dataset_info("gowalla").kind == "interactions"
    assert set(registry.datasets_of("fields")) == {"frappe", "ml-100k", "ml-1m", "criteo", "avazu",
                                                   "criteo-sample", "avazu-sample"}
    assert "frappe" not in registry.datasets_of("interactions")
    assert {"beauty", "ml-1m", "synthetic-seq"} <= set(registry.datasets_of("sequences"))
    assert len(registry.all_datasets()) == len(registry.REGISTRY)
    assert registry.dataset_kinds("ml-100k") == ("interactions", "fields")


def test_a_name_of_two_kinds():
    group = registry.dataset_info("ml-100k")
    assert isinstance(group, registry.DatasetGroup)
    assert group.kinds == ("interactions", "fields") and group.kind == "interactions+fields"
    assert group.format == "movielens/recbole-ctr"
    assert group.remote == registry.dataset_info("ml-100k", "interactions").remote
    assert group.entry("fields").files == ("ml-100k/ml-100k.inter",)
    assert registry.DATASETS["ml-100k"] == group
    document = json.loads(json.dumps(group.to_dict()))
    assert [entry["kind"] for entry in document["entries"]] == ["interactions", "fields"]


def test_wrong_kind_says_how_to_load_it():
    with pytest.raises(ConfigError, match="'frappe' is registered as fields, not interactions: "
                                          "load it with load_field_data"):
        load_dataset("frappe")
    from slimrec.data.ctr_readers import load_field_data

    with pytest.raises(ConfigError, match="'gowalla' is registered as interactions, not fields"):
        load_field_data("gowalla")


def test_unknown_kind():
    with pytest.raises(ConfigError, match="dataset kind must be one of interactions, fields, "
                                          "sequences, multitask; got 'ctr'"):
        registry.datasets_of("ctr")


def test_register_and_unregister():
    info = DatasetInfo("mine", "test", "frappe", "rows", kind="fields", files=("m/m.csv",))
    registry.register_dataset(info)
    try:
        assert registry.dataset_info("mine") is info
        with pytest.raises(ConfigError, match="already registered"):
            registry.register_dataset(info)
        from slimrec.data import ctr_readers

        assert ctr_readers.CTR_DATASETS["mine"] is info  # the former name is a live view
        assert ctr_readers.ctr_dataset("mine") is info
    finally:
        registry.unregister_dataset("mine")
    assert "mine" not in registry.DATASETS


def test_download_of_a_dataset_without_urls():
    with pytest.raises(ConfigError, match=r"'frappe' \(fields\) has no download URL registered; "
                                          r"pass --data-dir with a folder that holds "
                                          r"frappe/frappe\.csv"):
        download("frappe", progress=False)
    with pytest.raises(ConfigError, match="embedded"):
        download("synthetic", progress=False)


def test_download_of_a_two_kind_name_takes_the_entry_with_files(monkeypatch):
    fetched = []

    def fetch(url, destination, progress):
        fetched.append(url)
        destination.write_bytes(fixture_zip())

    monkeypatch.setitem(registry.REGISTRY, ("ml-100k", "interactions"), DatasetInfo(
        "ml-100k", "x", "movielens", "holdout",
        (RemoteFile("https://example.org/ml-100k.zip", "u.data", None, "tiny/u.data"),)))
    folder = download("ml-100k", progress=False, fetch=fetch)
    assert fetched == ["https://example.org/ml-100k.zip"]
    assert load_dataset("ml-100k", progress=False).num_users == 5
    assert (folder / "checksums.json").is_file()


def test_data_dir_missing_folder(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        load_dataset("gowalla", tmp_path)


def test_registry_entries_are_complete():
    for info in registry.DATASETS.values():
        for remote in info.remote:
            assert remote.url.startswith("https://")
    assert registry.DATASETS["gowalla"].remote[0].sha256
