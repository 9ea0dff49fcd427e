"""``slimrec cluster``: cluster a dataset's training graph, report statistics, write the map.

The data is prepared exactly as ``slimrec train`` prepares it (same split seed and validation
fraction), so the clustering written here is the one a ``graph`` run on the same settings
finds in the cache.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from slimrec.budget import Budget
from slimrec.data.interactions import Interactions
from slimrec.embeddings import EmbeddingSpec, TableStats, resolve_config
from slimrec.embeddings.graph import GraphTableConfig
from slimrec.embeddings.spec import full_fp32_bytes
from slimrec.errors import ConfigError
from slimrec.graph.cache import cached_clustering
from slimrec.graph.clustering import BipartiteGraph, cluster_statistics
from slimrec.graph.search import search_resolution
from slimrec.io import atomic_write


def cluster_dataset(data: Interactions, out: Path, budget: Budget | None = None, dim: int = 64,
                    resolution: float | None = None, algorithm: str = "leiden",
                    objective: str = "barber", cluster_seed: int = 0,
                    cache_dir: Path | None = None) -> dict[str, Any]:
    """Cluster ``data.train`` at ``resolution`` or for ``budget`` (of the user and item tables
    together, as in ``train``: each table gets its share in proportion to its fp32 bytes, for
    tables of width ``dim``); write ``out`` (npz) and return the statistics document.

    The npz holds ``user_cluster``/``item_cluster`` (joint cluster of each id, -1: no training
    edge), ``user_row``/``item_row`` (the row a ``graph`` table gives each id), the external
    ids and the resolution.
    """
    if (budget is None) == (resolution is None):
        raise ConfigError("slimrec cluster needs exactly one of --budget (the resolution is "
                          f"searched) or --resolution; got budget={budget!r}, "
                          f"resolution={resolution!r}.")
    start = time.perf_counter()
    graph = BipartiteGraph(data.train)
    params: dict[str, Any] = {"algorithm": algorithm, "objective": objective,
                              "cluster_seed": cluster_seed}
    document: dict[str, Any] = {"dataset": data.name, "users": data.num_users,
                                "items": data.num_items, "edges": int(data.train.nnz)}
    configs: dict[str, GraphTableConfig] = {}
    total_ids = data.num_users + data.num_items
    for role, count in (("user", data.num_users), ("item", data.num_items)):
        stats = TableStats(role=role, interactions=data.train, cache_dir=cache_dir)
        if budget is None:
            spec = EmbeddingSpec("graph", {**params, "resolution": resolution})
        else:
            share = budget.resolve(full_fp32_bytes(total_ids, dim)) * count // total_ids
            spec = EmbeddingSpec("graph", params, Budget(num_bytes=max(1, share)))
        config = resolve_config(spec, count, dim, stats)
        assert isinstance(config, GraphTableConfig)  # the spec names the graph method
        configs[role] = config
    user_config, item_config = configs["user"], configs["item"]
    if user_config.resolution != item_config.resolution:
        # The two searches of one budget disagree when the solver's row counts round apart.
        raise ConfigError(
            f"--budget {budget} gives the user and item tables different resolutions "
            f"({user_config.resolution:.4g} and {item_config.resolution:.4g}); give a "
            "--resolution instead so that both tables share one clustering.")
    if budget is not None and user_config.num_rows and item_config.num_rows:
        # Answered from the cache the solver just filled: the search's own record.
        search = search_resolution(graph, user_config.num_rows, item_config.num_rows,
                                   algorithm, objective, cluster_seed, cache_dir=cache_dir)
        document["budget"] = {"budget": str(budget), "dim": dim, **search.to_dict()}
    clustering, cached = cached_clustering(graph, user_config.resolution, algorithm, objective,
                                           cluster_seed, cache_dir=cache_dir)
    document["clustering"] = {**cluster_statistics(graph, clustering), "cached": cached}
    maps = {}
    for role, count in (("user", data.num_users), ("item", data.num_items)):
        stats = TableStats(role=role, interactions=data.train, cache_dir=cache_dir)
        rows, num_rows, _ = configs[role].row_map(count, stats)
        maps[f"{role}_row"] = rows.numpy().astype(np.int32)
        maps[f"{role}_cluster"] = clustering.side(role)
        document[f"{role}_rows"] = num_rows
        document[f"{role}_dedicated_rows"] = max(0, num_rows - clustering.num_side_clusters(role))

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:  # a handle, so numpy does not append ".npz"
            np.savez_compressed(handle, **maps, user_ids=data.user_ids, item_ids=data.item_ids,
                                resolution=clustering.resolution)

    atomic_write(out, write)
    document["out"] = str(out)
    document["seconds"] = time.perf_counter() - start
    return document
