"""Dataset registry: canonical public URLs, checksums, a download cache and local copies.

``load_dataset(name, data_dir=None)`` reads ``data_dir/<name>/`` when given (for example
``../shared/data``), otherwise the cache (``$SLIMREC_CACHE_DIR`` or ``~/.cache/slimrec``),
downloading the files there on first use. Downloads are checked against the pinned sha256;
entries whose upstream publishes no checksum record the sha256 of the first download
("trust on first use") and verify every later read against it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from slimrec.data.build import interactions_from_log, interactions_from_split_logs
from slimrec.data.interactions import Interactions
from slimrec.data.readers import read_atomic_inter, read_lightgcn_file, read_movielens_ratings
from slimrec.data.synthetic import make_synthetic
from slimrec.errors import ConfigError, DataError
from slimrec.io import atomic_write_json

CACHE_ENV = "SLIMREC_CACHE_DIR"
LIGHTGCN_URL = "https://raw.githubusercontent.com/kuandeng/LightGCN/master/Data"
GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens"


@dataclass(frozen=True)
class RemoteFile:
    """One file to fetch. ``member`` names the file to extract when ``url`` is a zip archive."""

    url: str
    filename: str
    sha256: str | None = None
    member: str | None = None


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    description: str
    format: str
    split: str
    remote: tuple[RemoteFile, ...] = field(default=())
    homepage: str = ""


DATASETS: dict[str, DatasetInfo] = {}


def _register(info: DatasetInfo) -> None:
    DATASETS[info.name] = info


def _lightgcn(name: str, description: str, train_sha: str | None, test_sha: str | None) -> None:
    _register(DatasetInfo(
        name=name, description=description, format="lightgcn",
        split="given train/test files (LightGCN split)",
        remote=(RemoteFile(f"{LIGHTGCN_URL}/{name}/train.txt", "train.txt", train_sha),
                RemoteFile(f"{LIGHTGCN_URL}/{name}/test.txt", "test.txt", test_sha)),
        homepage="https://github.com/kuandeng/LightGCN",
    ))


_register(DatasetInfo(
    name="synthetic", description="embedded synthetic data: 2,000 users, 1,500 items, "
    "16 planted communities, Zipf popularity (no download)", format="synthetic",
    split="seeded 80/20 per-user random holdout"))
_lightgcn("gowalla", "Gowalla check-ins, LightGCN/NGCF split (29,858 users, 40,981 items)",
          "7244696fdeb23911319cf7b689f2e15a3c4c92549c873a5677b44e3f13cc3e62",
          "099a2a73924e4b754dc6efd730d764f492321b53c38eb93298850c83acf57be3")
_lightgcn("yelp2018", "Yelp 2018 challenge, LightGCN/NGCF split (31,668 users, 38,048 items)",
          None, None)
_lightgcn("amazon-book", "Amazon-book, LightGCN/NGCF split (52,643 users, 91,599 items)",
          None, None)
_register(DatasetInfo(
    name="ml-100k", description="MovieLens 100K ratings (943 users, 1,682 items), all "
    "ratings as implicit feedback", format="movielens",
    split="seeded 80/20 per-user random holdout",
    remote=(RemoteFile(f"{GROUPLENS_URL}/ml-100k.zip", "u.data", None, "ml-100k/u.data"),),
    homepage="https://grouplens.org/datasets/movielens/100k/"))
_register(DatasetInfo(
    name="ml-1m", description="MovieLens 1M ratings (6,040 users, 3,706 items), all ratings "
    "as implicit feedback", format="movielens",
    split="seeded 80/20 per-user random holdout",
    remote=(RemoteFile(f"{GROUPLENS_URL}/ml-1m.zip", "ratings.dat", None, "ml-1m/ratings.dat"),),
    homepage="https://grouplens.org/datasets/movielens/1m/"))


def dataset_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}.")
    return DATASETS[name]


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "slimrec")) / "datasets"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch(url: str, destination: Path, progress: bool) -> None:
    """Stream ``url`` into ``destination`` (a temporary path) with a progress bar."""
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(destination, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=Path(url).name,
                      disable=not progress) as bar:
                for block in iter(lambda: response.read(1 << 16), b""):
                    out.write(block)
                    bar.update(len(block))
    except (urllib.error.URLError, OSError) as error:
        raise DataError(
            f"could not download {url} ({error}). Check the network, or pass --data-dir "
            "with a local copy."
        ) from None


def _recorded_checksums(folder: Path) -> dict[str, str]:
    path = folder / "checksums.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def download(name: str, progress: bool = True,
             fetch: Callable[[str, Path, bool], None] = _fetch) -> Path:
    """Download a registered dataset into the cache (once) and return its folder."""
    info = dataset_info(name)
    if not info.remote:
        raise ConfigError(f"dataset {name!r} is embedded; it has nothing to download.")
    folder = cache_dir() / name
    folder.mkdir(parents=True, exist_ok=True)
    recorded = _recorded_checksums(folder)
    for remote in info.remote:
        target = folder / remote.filename
        if target.is_file():
            continue
        tmp = folder / f".{Path(remote.url).name}.part"
        fetch(remote.url, tmp, progress)
        actual = sha256_of(tmp)
        expected = remote.sha256 or recorded.get(remote.url)
        if expected is not None and actual != expected:
            tmp.unlink(missing_ok=True)
            raise DataError(
                f"checksum mismatch for {remote.url}: expected sha256 {expected}, got {actual}. "
                "The download is corrupt or the upstream file changed; nothing was kept."
            )
        recorded[remote.url] = actual
        if remote.member is None:
            os.replace(tmp, target)
        else:
            _extract_member(tmp, remote.member, target)
            tmp.unlink()
    atomic_write_json(folder / "checksums.json", recorded)
    return folder


def _extract_member(archive: Path, member: str, target: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as zipped, zipped.open(member) as source:
            partial = target.with_name(f".{target.name}.part")
            with open(partial, "wb") as out:
                shutil.copyfileobj(source, out)
            os.replace(partial, target)
    except (zipfile.BadZipFile, KeyError) as error:
        raise DataError(f"{archive}: cannot extract {member!r} ({error}).") from None


def _find(folder: Path, *names: str) -> Path | None:
    for name in names:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def _local_folder(info: DatasetInfo, data_dir: str | Path | None, progress: bool) -> Path:
    if data_dir is None:
        folder = cache_dir() / info.name
        if not all((folder / remote.filename).is_file() for remote in info.remote):
            folder = download(info.name, progress)
        return folder
    folder = Path(data_dir) / info.name
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder; --data-dir must contain {info.name}/.")
    return folder


def load_dataset(name: str, data_dir: str | Path | None = None, seed: int = 0,
                 test_fraction: float = 0.2, progress: bool = True) -> Interactions:
    """Load a registered dataset as ``Interactions`` (train/test; no validation split yet)."""
    info = dataset_info(name)
    if info.format == "synthetic":
        return make_synthetic(seed=seed, test_fraction=test_fraction)
    folder = _local_folder(info, data_dir, progress)
    if info.format == "lightgcn":
        train, test = _find(folder, "train.txt"), _find(folder, "test.txt")
        if train is None or test is None:
            raise DataError(f"{folder}: expected train.txt and test.txt (plain or .gz).")
        return interactions_from_split_logs(
            name, read_lightgcn_file(train, require_items=True),
            read_lightgcn_file(test, require_items=False))
    atomic = _find(folder, f"{name}.inter")
    if atomic is not None:
        log = read_atomic_inter(atomic)
    else:
        ratings = _find(folder, "u.data", "ratings.dat")
        if ratings is None:
            raise DataError(f"{folder}: expected {name}.inter, u.data or ratings.dat.")
        log = read_movielens_ratings(ratings)
    return interactions_from_log(name, log, "holdout", test_fraction, seed)
