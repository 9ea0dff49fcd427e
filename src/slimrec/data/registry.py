"""The one dataset registry: canonical public URLs, checksums, a download cache and local copies.

Every entry is one (name, kind): kind "interactions" (user-item pairs, ``load_dataset``),
"fields" (CTR rows, ``slimrec.data.ctr_readers.load_field_data``) or "sequences". A name may
have several kinds (ml-100k): ``dataset_info(name, kind)`` returns one entry,
``dataset_info(name)`` the only entry or a ``DatasetGroup`` of all of them, ``datasets_of(kind)``
the entries of one kind. Unknown names raise ``ConfigError`` with close matches.

``load_dataset(name, data_dir=None)`` reads ``data_dir/<name>/`` when given (for example
``../shared/data``), otherwise the cache (``$SLIMREC_CACHE_DIR`` or ``~/.cache/slimrec``),
downloading the files there on first use; a path instead of a name loads the user's own file
(``slimrec.data.own_data``). Downloads are checked against the pinned sha256; entries whose
upstream publishes no checksum record the sha256 of the first download in the folder's
``checksums.json`` ("trust on first use") and check every later download against it. A
corrupt ``checksums.json`` is a ``DataError`` (delete the folder), never silently reset.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import shutil
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from slimrec.data.build import (
    DuplicatePolicy,
    SplitName,
    interactions_from_log,
    interactions_from_split_logs,
)
from slimrec.data.interactions import Interactions
from slimrec.data.own_data import load_interactions_file, looks_like_path
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


KINDS: tuple[str, ...] = ("interactions", "fields", "sequences", "multitask")
# How a kind is named in messages: (word in "unknown ... dataset", plural noun).
_KIND_WORDS = {"interactions": ("", "interaction datasets"),
               "fields": ("CTR ", "CTR (fields) datasets"),
               "sequences": ("sequence ", "sequence datasets"),
               "multitask": ("multi-task ", "multi-scenario multi-task datasets")}
_KIND_LOADERS = {"interactions": "load it with load_dataset (retrieval models, `slimrec train`)",
                 "fields": "load it with load_field_data (CTR models)",
                 "sequences": "load it with load_sequences (sequential models, `slimrec train "
                            "--task sequential`)",
                 "multitask": "load it with load_multitask_data (multi-task models, `slimrec "
                              "train --task multitask`)"}


@dataclass(frozen=True)
class DatasetInfo:
    """One registered dataset of one kind.

    ``kind`` is "interactions" (user-item pairs -> ``Interactions``), "fields" (CTR rows ->
    ``FieldData``) or "sequences". A name may be registered under several kinds (ml-100k is
    both); each (name, kind) is its own entry. ``files`` are paths under a data folder where
    a local copy lies (fields datasets); ``min_count`` is the default OOV threshold of a fields
    dataset.
    """

    name: str
    description: str
    format: str
    split: str
    remote: tuple[RemoteFile, ...] = field(default=())
    homepage: str = ""
    kind: str = "interactions"
    files: tuple[str, ...] = ()
    min_count: int = 1

    @property
    def kinds(self) -> tuple[str, ...]:
        return (self.kind,)

    def to_dict(self) -> dict[str, Any]:
        document = {"name": self.name, "kind": self.kind, "description": self.description,
                    "format": self.format, "split": self.split, "homepage": self.homepage,
                    "files": [remote.__dict__ for remote in self.remote]}
        if self.files:
            document["local_files"] = list(self.files)
        if self.kind == "fields":
            document["min_count"] = self.min_count
        return document


@dataclass(frozen=True)
class DatasetGroup:
    """Every kind registered under one name: what ``dataset_info(name)`` returns when the name
    is ambiguous. It reads like a ``DatasetInfo`` (joined fields) and lists the ``entries``."""

    name: str
    entries: tuple[DatasetInfo, ...]

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(entry.kind for entry in self.entries)

    @property
    def kind(self) -> str:
        return "+".join(self.kinds)

    def entry(self, kind: str) -> DatasetInfo:
        return dataset_info(self.name, kind)

    def _joined(self, attribute: str, separator: str = "; ") -> str:
        return separator.join(f"{entry.kind}: {getattr(entry, attribute)}"
                              for entry in self.entries)

    @property
    def description(self) -> str:
        return self._joined("description")

    @property
    def format(self) -> str:
        return "/".join(entry.format for entry in self.entries)

    @property
    def split(self) -> str:
        return self._joined("split")

    @property
    def remote(self) -> tuple[RemoteFile, ...]:
        return tuple(remote for entry in self.entries for remote in entry.remote)

    @property
    def homepage(self) -> str:
        return next((entry.homepage for entry in self.entries if entry.homepage), "")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kinds": list(self.kinds),
                "entries": [entry.to_dict() for entry in self.entries]}


# The one registry: (name, kind) -> entry, in registration order.
REGISTRY: dict[tuple[str, str], DatasetInfo] = {}


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ConfigError(f"dataset kind must be one of {', '.join(KINDS)}; got {kind!r}.")


def register_dataset(info: DatasetInfo, *, replace: bool = False) -> None:
    """Add ``info`` under ``(info.name, info.kind)``; an existing entry needs ``replace``."""
    _check_kind(info.kind)
    if (info.name, info.kind) in REGISTRY and not replace:
        raise ConfigError(f"{info.kind} dataset {info.name!r} is already registered.")
    REGISTRY[(info.name, info.kind)] = info


def unregister_dataset(name: str, kind: str | None = None) -> None:
    """Remove the entry of ``name`` (of one ``kind``, or all of them); absent names are fine."""
    for key in [key for key in REGISTRY if key[0] == name and kind in (None, key[1])]:
        del REGISTRY[key]


def dataset_kinds(name: str) -> tuple[str, ...]:
    """The kinds ``name`` is registered under (empty when unknown), in ``KINDS`` order."""
    return tuple(kind for kind in KINDS if (name, kind) in REGISTRY)


def dataset_names(kind: str | None = None) -> list[str]:
    """Registered names (of one kind), in registration order, each once."""
    if kind is not None:
        _check_kind(kind)
    return list(dict.fromkeys(name for name, k in REGISTRY if kind in (None, k)))


def datasets_of(kind: str) -> dict[str, DatasetInfo]:
    """``{name: entry}`` of every dataset of ``kind`` (a new dict; register to add)."""
    _check_kind(kind)
    return {name: info for (name, k), info in REGISTRY.items() if k == kind}


def all_datasets() -> list[DatasetInfo]:
    """Every entry, one per (name, kind), in registration order."""
    return list(REGISTRY.values())


def unknown_dataset(name: str, kind: str | None = None) -> ConfigError:
    """ConfigError for an unknown name: close matches (difflib) and the names of that kind."""
    names = dataset_names(kind)
    word, plural = _KIND_WORDS.get(kind, ("", "datasets"))
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    own = (" To load your own file, pass its path (.csv, .tsv, .parquet or .inter)."
           if kind in (None, "interactions") else "")
    return ConfigError(f"unknown {word}dataset {name!r}.{hint} Known "
                       f"{plural if kind else 'datasets'}: {', '.join(names)}.{own}")


def dataset_info(name: str, kind: str | None = None) -> DatasetInfo | DatasetGroup:
    """The registry entry of ``name``.

    With ``kind``, the entry of that kind (``ConfigError`` when the name is unknown or only
    registered under other kinds). Without, the one entry of the name, or a ``DatasetGroup``
    of all its entries when it has several (ml-100k: interactions and fields).
    """
    if kind is not None:
        _check_kind(kind)
        info = REGISTRY.get((name, kind))
        if info is not None:
            return info
        others = dataset_kinds(name)
        if others:
            raise ConfigError(
                f"dataset {name!r} is registered as {' and '.join(others)}, not {kind}: "
                f"{_KIND_LOADERS[others[0]]}.")
        raise unknown_dataset(name, kind)
    kinds = dataset_kinds(name)
    if not kinds:
        raise unknown_dataset(name)
    if len(kinds) == 1:
        return REGISTRY[(name, kinds[0])]
    return DatasetGroup(name, tuple(REGISTRY[(name, k)] for k in kinds))


class _ByName(MutableMapping[str, "DatasetInfo | DatasetGroup"]):
    """``DATASETS``: the registry seen by name (``DATASETS[name]`` is ``dataset_info(name)``).

    Kept for callers of the former interaction-only dict: iterating lists every name of
    every kind; assigning an entry registers it under its kind; deleting removes all kinds.
    """

    def __getitem__(self, name: str) -> DatasetInfo | DatasetGroup:
        if not dataset_kinds(name):
            raise KeyError(name)
        return dataset_info(name)

    def __setitem__(self, name: str, info: DatasetInfo | DatasetGroup) -> None:
        entries = info.entries if isinstance(info, DatasetGroup) else (info,)
        if any(entry.name != name for entry in entries):
            raise ConfigError(f"DATASETS[{name!r}] must be an entry named {name!r}.")
        if isinstance(info, DatasetGroup):
            unregister_dataset(name)
        for entry in entries:
            register_dataset(entry, replace=True)

    def __delitem__(self, name: str) -> None:
        if not dataset_kinds(name):
            raise KeyError(name)
        unregister_dataset(name)

    def __iter__(self) -> Iterator[str]:
        return iter(dataset_names())

    def __len__(self) -> int:
        return len(dataset_names())


DATASETS: MutableMapping[str, DatasetInfo | DatasetGroup] = _ByName()


def _register(info: DatasetInfo) -> None:
    register_dataset(info)


def _lightgcn(name: str, description: str, train_sha: str | None, test_sha: str | None) -> None:
    _register(DatasetInfo(
        name=name, description=description, format="lightgcn",
        split="given train/test files (LightGCN split)",
        remote=(RemoteFile(f"{LIGHTGCN_URL}/{name}/train.txt", "train.txt", train_sha),
                RemoteFile(f"{LIGHTGCN_URL}/{name}/test.txt", "test.txt", test_sha)),
        homepage="https://github.com/kuandeng/LightGCN",
    ))


def _fields(name: str, description: str, format: str, files: tuple[str, ...],
            min_count: int = 1, homepage: str = "") -> None:
    _register(DatasetInfo(
        name=name, description=description, format=format,
        split="seeded random train/val/test split of the rows (default 7:2:1)",
        homepage=homepage, kind="fields", files=files, min_count=min_count))


# ---------------------------------------------------------------- interaction datasets
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

# ---------------------------------------------------------------- fields (CTR) datasets
# Read by slimrec.data.ctr_readers (``load_field_data``); ``format`` picks the reader.
_fields("frappe", "Frappe app usage, CTR version: 10 fields, 2 sampled negatives per log row "
        "(288,609 rows)", "frappe", ("frappe/frappe.csv",))
_fields("ml-100k", "MovieLens-100K as CTR: rating >= 4, 7 fields incl. multi-hot genres "
        "(100,000 rows)", "recbole-ctr", ("ml-100k/ml-100k.inter",),
        homepage="https://grouplens.org/datasets/movielens/100k/")
_fields("ml-1m", "MovieLens-1M as CTR: rating >= 4, 7 fields incl. multi-hot genres "
        "(1,000,209 rows)", "movielens-dat", ("ml-1m/ratings.dat",),
        homepage="https://grouplens.org/datasets/movielens/1m/")
_fields("criteo", "Criteo display ads (Kaggle train.txt), 13 binned + 26 categorical fields",
        "criteo", ("criteo/train.txt",), min_count=10)
_fields("avazu", "Avazu mobile ads (Kaggle train), 22 categorical fields", "avazu",
        ("avazu/train", "avazu/train.csv"), min_count=2)
_fields("criteo-sample", "200-row Criteo fixture (DeepCTR)", "criteo",
        ("ctr_samples/criteo_sample.txt",))
_fields("avazu-sample", "100-row Avazu fixture (DeepCTR)", "avazu",
        ("ctr_samples/avazu_sample.txt",))


# ---------------------------------------------------------------- sequence datasets
# Read by slimrec.data.sequences (``load_sequences``); leave-one-out split.
S3REC_URL = "https://github.com/aHuiWang/CIKM2020-S3Rec"
LEAVE_ONE_OUT = "leave-one-out: each user's last item is test, the second-to-last validation"


def _sequences(name: str, description: str, format: str, files: tuple[str, ...],
               homepage: str = "", remote: tuple[RemoteFile, ...] = ()) -> None:
    _register(DatasetInfo(name=name, description=description, format=format,
                          split=LEAVE_ONE_OUT, kind="sequences", files=files,
                          homepage=homepage, remote=remote))


_sequences("synthetic-seq", "embedded synthetic sequences: 1,000 users, 500 items, Markov "
           "walks with Zipf jumps (no download)", "synthetic", ())
_sequences("beauty", "Amazon Beauty, S3-Rec sequences (22,363 users, 12,101 items)", "s3rec",
           ("s3rec/Beauty.txt",), S3REC_URL)
_sequences("sports", "Amazon Sports_and_Outdoors, S3-Rec sequences (35,598 users, 18,357 "
           "items)", "s3rec", ("s3rec/Sports_and_Outdoors.txt",), S3REC_URL)
_sequences("toys", "Amazon Toys_and_Games, S3-Rec sequences (19,412 users, 11,924 items)",
           "s3rec", ("s3rec/Toys_and_Games.txt",), S3REC_URL)
_sequences("yelp", "Yelp, S3-Rec sequences (30,431 users, 20,033 items)", "s3rec",
           ("s3rec/Yelp.txt",), S3REC_URL)
_sequences("lastfm", "LastFM, S3-Rec sequences (1,090 users, 3,646 items)", "s3rec",
           ("s3rec/LastFM.txt",), S3REC_URL)
_sequences("ml-1m", "MovieLens 1M ratings as sequences by timestamp, ties in file order "
           "(6,040 users, 3,706 items, mean length 166)", "movielens", ("ml-1m/ratings.dat",),
           "https://grouplens.org/datasets/movielens/1m/",
           (RemoteFile(f"{GROUPLENS_URL}/ml-1m.zip", "ratings.dat", None,
                       "ml-1m/ratings.dat"),))

# ---------------------------------------------------------------- multi-task datasets
# Read by slimrec.data.multitask (``load_multitask_data``).
_register(DatasetInfo(
    name="ml-1m", description="MovieLens 1M as AutoIFS multi-scenario multi-task rows: 3 age "
    "scenarios, click = rating > 3, like = rating > 4, user and movie features", kind="multitask",
    format="ml-1m-multitask", split="seeded random 80/10/10 split of the rows",
    files=("ml-1m/ratings.dat", "ml-1m/users.dat", "ml-1m/movies.dat"),
    homepage="https://grouplens.org/datasets/movielens/1m/"))


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


_SHA256 = re.compile(r"[0-9a-f]{64}")


def _recorded_checksums(folder: Path) -> dict[str, str]:
    """The sha256 recorded at first download of each URL (``checksums.json``).

    A corrupt record (unreadable, not JSON, not a mapping of URL -> sha256 hex) raises
    ``DataError``: it is never silently reset, since it is what later downloads are checked
    against.
    """
    path = folder / "checksums.json"
    if not path.is_file():
        return {}
    remedy = (f"expected a JSON object mapping each URL to its sha256. Delete {folder} to "
              "download the dataset again.")
    try:
        document = json.loads(path.read_bytes().decode("utf-8"))
    except json.JSONDecodeError as error:
        raise DataError(f"{path} line {error.lineno}: corrupt checksum record ({error.msg}); "
                        f"{remedy}") from None
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: byte {error.start} of the checksum record is not UTF-8 "
                        f"text; {remedy}") from None
    except (OSError, ValueError, RecursionError) as error:
        raise DataError(f"{path}: unreadable checksum record ({type(error).__name__}); "
                        f"{remedy}") from None
    if not isinstance(document, dict):
        raise DataError(f"{path}: holds a JSON {type(document).__name__}, not an object; "
                        f"{remedy}")
    for url, digest in document.items():
        if not (isinstance(digest, str) and _SHA256.fullmatch(digest)):
            raise DataError(f"{path}: the checksum of {url!r} is {str(digest)[:80]!r}, not a "
                            f"sha256 hex digest; {remedy}")
    return document


def _download_entry(name: str, kind: str | None) -> DatasetInfo:
    if kind is not None:
        info = dataset_info(name, kind)
        assert isinstance(info, DatasetInfo)
        entries = [info]
    else:
        found = dataset_info(name)
        entries = list(found.entries) if isinstance(found, DatasetGroup) else [found]
    with_remote = [entry for entry in entries if entry.remote]
    if not with_remote:
        entry = entries[0]
        if entry.format == "synthetic":
            raise ConfigError(f"dataset {name!r} is embedded; it has nothing to download.")
        where = " or ".join(entry.files) or f"{name}/"
        raise ConfigError(f"dataset {name!r} ({entry.kind}) has no download URL registered; "
                          f"pass --data-dir with a folder that holds {where} (plain or .gz).")
    return with_remote[0]


def download(name: str, progress: bool = True,
             fetch: Callable[[str, Path, bool], None] = _fetch,
             kind: str | None = None) -> Path:
    """Download a registered dataset into the cache (once) and return its folder.

    ``kind`` picks the entry when the name has several; by default the one with files to
    download.
    """
    info = _download_entry(name, kind)
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
            try:
                _extract_member(tmp, remote.member, target)
            finally:
                tmp.unlink(missing_ok=True)
    atomic_write_json(folder / "checksums.json", recorded)
    return folder


def _extract_member(archive: Path, member: str, target: Path) -> None:
    """Extract ``member`` of a zip to ``target`` atomically; a corrupt, truncated or foreign
    archive raises ``DataError`` and leaves nothing behind."""
    partial = target.with_name(f".{target.name}.part")
    try:
        with zipfile.ZipFile(archive) as zipped, zipped.open(member) as source, \
                open(partial, "wb") as out:
            shutil.copyfileobj(source, out)
        os.replace(partial, target)
    except KeyError:
        partial.unlink(missing_ok=True)
        raise DataError(f"{archive}: the zip archive has no member {member!r}.") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError,
            NotImplementedError, RuntimeError) as error:
        partial.unlink(missing_ok=True)
        raise DataError(f"{archive}: cannot extract {member!r} ({error}); expected a complete "
                        "zip archive. Delete it and download again.") from None


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
            folder = download(info.name, progress, kind=info.kind)
        return folder
    folder = Path(data_dir) / info.name
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder; --data-dir must contain {info.name}/.")
    return folder


_OWN_FILE_OPTIONS = {"user_col": "user", "item_col": "item", "rating_col": None,
                     "time_col": None, "separator": None}


def load_dataset(name: str | os.PathLike[str], data_dir: str | Path | None = None,
                 seed: int = 0, test_fraction: float = 0.2, progress: bool = True, *,
                 user_col: str = "user", item_col: str = "item", rating_col: str | None = None,
                 time_col: str | None = None, separator: str | None = None,
                 duplicates: DuplicatePolicy = "error", min_rating: float | None = None,
                 split: SplitName | None = None) -> Interactions:
    """Load interactions (train/test; no validation split yet): a registered dataset name, or
    the path of the user's own file or folder.

    ``name`` is a path when it is a ``PathLike``, or a string that is not a registered name and
    has a path separator, a data suffix (.csv, .tsv, .parquet, .inter, .gz) or exists; a
    registered name wins over a same-named file (write ``./ml-100k`` for the file). Own files
    go to ``load_interactions_file`` with the column options, ``separator``, ``duplicates``,
    ``min_rating`` and ``split`` (default "holdout"); the column options are errors with a
    registered name. ``duplicates`` / ``min_rating`` / ``split`` also apply to registered
    rating logs (ml-100k, ml-1m); LightGCN datasets keep their given split. ``data_dir`` is
    for registered names only; a path is used as given (relative to the working directory).
    """
    if isinstance(name, os.PathLike) or (not dataset_kinds(name) and looks_like_path(name)):
        if (Path(name) / "meta.json").is_file():  # chunks of `slimrec datasets synth`
            from slimrec.data.scale import ingest

            return ingest(name, val_fraction=0.0, test_fraction=test_fraction, seed=seed)[0]
        return load_interactions_file(
            Path(name), user_col=user_col, item_col=item_col, rating_col=rating_col,
            time_col=time_col, separator=separator, duplicates=duplicates,
            min_rating=min_rating, test_fraction=test_fraction, seed=seed, split=split)
    given = {"user_col": user_col, "item_col": item_col, "rating_col": rating_col,
             "time_col": time_col, "separator": separator}
    changed = [key for key, value in given.items() if value != _OWN_FILE_OPTIONS[key]]
    if changed:
        raise ConfigError(f"{', '.join(changed)} apply to your own files; {name!r} is a "
                          "registered dataset with fixed columns.")
    info = dataset_info(name, kind="interactions")
    assert isinstance(info, DatasetInfo)
    if info.format in ("synthetic", "lightgcn"):
        fixed = "is generated" if info.format == "synthetic" else "has a given train/test split"
        if min_rating is not None:
            raise ConfigError(f"min_rating needs ratings; dataset {name!r} has none.")
        if split is not None:
            raise ConfigError(f"dataset {name!r} {fixed}; split cannot be chosen.")
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
    return interactions_from_log(name, log, split or "holdout", test_fraction, seed,
                                 min_rating, duplicates)


# ---------------------------------------------------------------- listing (CLI `datasets`)
def list_datasets(kind: str | None = None) -> str:
    """One line per registry entry (of one ``kind``): name, kind, format, description."""
    entries = [info for info in all_datasets() if kind is None or info.kind == kind]
    if kind is not None:
        _check_kind(kind)
    if not entries:
        return f"no {kind} datasets registered."
    name_width = max(len(info.name) for info in entries)
    format_width = max(len(info.format) for info in entries)
    return "\n".join(f"{info.name:<{name_width}}  {info.kind:<12}  "
                     f"{info.format:<{format_width}}  {info.description}" for info in entries)


def describe_dataset(name: str, data_dir: str | Path | None = None,
                     kind: str | None = None) -> str:
    """The registry entry (or entries) of ``name`` as JSON, followed by the statistics of the
    data when it is at hand: embedded (synthetic) or under ``data_dir``. A path (the user's own
    file) is loaded and described by its statistics."""
    if not dataset_kinds(name) and looks_like_path(name):
        stats = load_dataset(name, progress=False).stats()
        return json.dumps({"name": name, "kind": "interactions", "source": "file"}, indent=2) \
            + "\n" + json.dumps(stats, indent=2)
    info = dataset_info(name, kind)
    parts = [json.dumps(info.to_dict(), indent=2)]
    entries = info.entries if isinstance(info, DatasetGroup) else (info,)
    for entry in entries:
        if entry.kind == "interactions" and (data_dir is not None or entry.format == "synthetic"):
            parts.append(json.dumps(load_dataset(name, data_dir, progress=False).stats(),
                                    indent=2))
        elif entry.kind == "fields" and data_dir is not None:
            from slimrec.data.ctr_readers import load_field_data  # imports this module

            parts.append(json.dumps(load_field_data(name, data_dir).stats(), indent=2))
    return "\n".join(parts)
