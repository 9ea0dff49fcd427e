"""On-disk cache of cluster maps, keyed by the training graph's hash and the parameters.

Files live in ``TableStats.cache_dir`` when given, else ``$SLIMREC_CACHE_DIR/clusters`` (default
``~/.cache/slimrec/clusters``). A clustering is ``graph-<key>.npz``; a solved budget search is
``search-<key>.json``. Both are written atomically, and an unreadable file counts as a miss and
is rewritten, so a crash never leaves a cache that breaks later runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from slimrec.graph.clustering import LEIDEN_ITERATIONS, BipartiteGraph, Clustering
from slimrec.io import atomic_write

CACHE_ENV = "SLIMREC_CACHE_DIR"
# Bump when the clustering code changes what a given key produces.
CACHE_VERSION = 1


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "slimrec")) / "clusters"


def cache_key(**fields: Any) -> str:
    """Short stable hash of named parameters (floats by ``repr``, so 0.1 and 0.1000001 differ)."""
    text = json.dumps({"version": CACHE_VERSION, **fields}, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def cached_clustering(graph: BipartiteGraph, resolution: float, algorithm: str = "leiden",
                      objective: str = "barber", seed: int = 0,
                      iterations: int = LEIDEN_ITERATIONS, cache_dir: Path | None = None,
                      ) -> tuple[Clustering, bool]:
    """``graph.cluster(...)`` through the disk cache: ``(clustering, was_cached)``."""
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = cache_key(graph=graph.fingerprint, resolution=float(resolution), algorithm=algorithm,
                    objective=objective, seed=seed, iterations=iterations)
    path = folder / f"graph-{key}.npz"
    if path.is_file():
        try:
            with np.load(path) as stored:
                labels = stored["labels"].astype(np.int32)
                seconds = float(stored["seconds"])
            if labels.shape == (graph.num_users + graph.num_items,):
                return Clustering(labels, graph.num_users, float(resolution), algorithm,
                                  objective, seed, seconds), True
        except (OSError, KeyError, ValueError, zipfile.BadZipFile):
            pass  # a damaged file: recompute and overwrite it below
    clustering = graph.cluster(resolution, algorithm, objective, seed, iterations)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:  # a handle, so numpy does not append ".npz"
            np.savez_compressed(handle, labels=clustering.labels, seconds=clustering.seconds)

    atomic_write(path, write)
    return clustering, False


def read_json(path: Path) -> dict[str, Any] | None:
    """A cached JSON document, or None when absent or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
