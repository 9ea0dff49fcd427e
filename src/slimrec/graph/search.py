"""Budget targeting: the resolution whose clusters fit a row budget on both sides.

The number of clusters grows with the resolution (not strictly: the algorithms are randomised),
so the search first brackets the largest fitting resolution, extrapolating on a log-log scale
(steps of 2x to ``STEP``x), then narrows the bracket on a log scale, interpolating ``log(fill)``
linearly in ``log(resolution)`` (a safeguarded false position: a bisection on the log scale
that needs fewer clusterings). ``fill`` is the larger of
``user clusters / user rows`` and ``item clusters / item rows``: the search wants the binding side
within ``tolerance`` of its budget. Every clustering it runs is cached on disk, so the second
table of a model, a rerun, or another budget on the same data reuses them.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from slimrec.errors import ConfigError
from slimrec.graph.cache import cache_key, cached_clustering, default_cache_dir, read_json
from slimrec.graph.clustering import BipartiteGraph, Clustering
from slimrec.io import atomic_write_json

logger = logging.getLogger(__name__)

START_RESOLUTION = 1.0
STEP = 64.0  # the largest factor between two trials before a bracket is found
MIN_RESOLUTION = 1e-4
MAX_RESOLUTION = 1e7


@dataclass(frozen=True)
class Evaluation:
    """One clustering the search looked at; ``seconds`` is what it cost this search."""

    resolution: float
    user_clusters: int
    item_clusters: int
    seconds: float
    cached: bool


@dataclass(frozen=True, eq=False)
class ResolutionSearch:
    """The outcome of ``search_resolution``.

    ``clustering`` is the chosen one: the fitting clustering with the most clusters on the
    binding side, or, when even ``MIN_RESOLUTION`` gives too many clusters (a graph of many
    disconnected pieces), the coarsest one found; tables then fold its smallest clusters
    together. ``seconds`` is the wall time of the search when it ran (kept on a cache hit).
    """

    clustering: Clustering
    max_user_rows: int
    max_item_rows: int
    evaluations: tuple[Evaluation, ...]
    seconds: float
    cached: bool

    @property
    def resolution(self) -> float:
        return self.clustering.resolution

    @property
    def fits(self) -> bool:
        return (self.clustering.num_user_clusters <= self.max_user_rows
                and self.clustering.num_item_clusters <= self.max_item_rows)

    def to_dict(self) -> dict[str, Any]:
        return {"resolution": self.resolution, "max_user_rows": self.max_user_rows,
                "max_item_rows": self.max_item_rows,
                "user_clusters": self.clustering.num_user_clusters,
                "item_clusters": self.clustering.num_item_clusters,
                "fits": self.fits, "seconds": self.seconds, "cached": self.cached,
                "evaluations": [asdict(evaluation) for evaluation in self.evaluations]}


def search_resolution(graph: BipartiteGraph, max_user_rows: int, max_item_rows: int,
                      algorithm: str = "leiden", objective: str = "barber", seed: int = 0,
                      cache_dir: Path | None = None, tolerance: float = 0.02,
                      max_evaluations: int = 24) -> ResolutionSearch:
    """The largest resolution whose user and item clusters fit ``max_*_rows`` (within
    ``tolerance`` of the binding side's budget, or the closest found in ``max_evaluations``)."""
    if max_user_rows < 1 or max_item_rows < 1:
        raise ConfigError(f"max_user_rows and max_item_rows must be >= 1; got {max_user_rows} "
                          f"and {max_item_rows}. Raise the budget.")
    if not 0 < tolerance < 1:
        raise ConfigError(f"tolerance must be in (0, 1); got {tolerance}.")
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    options = {"algorithm": algorithm, "objective": objective, "seed": seed}
    path = folder / "search-{}.json".format(cache_key(
        kind="search", graph=graph.fingerprint, max_user_rows=max_user_rows,
        max_item_rows=max_item_rows, tolerance=tolerance, **options))
    stored = read_json(path)
    if stored is not None:
        clustering, _ = cached_clustering(graph, stored["resolution"], cache_dir=folder,
                                          **options)
        return ResolutionSearch(clustering, max_user_rows, max_item_rows,
                                tuple(Evaluation(**e) for e in stored["evaluations"]),
                                stored["seconds"], cached=True)

    start = time.perf_counter()
    evaluations: list[Evaluation] = []

    def fill(clustering: Clustering) -> float:
        return max(clustering.num_user_clusters / max_user_rows,
                   clustering.num_item_clusters / max_item_rows)

    def evaluate(resolution: float) -> tuple[Clustering, float]:
        began = time.perf_counter()
        clustering, cached = cached_clustering(graph, resolution, cache_dir=folder, **options)
        evaluations.append(Evaluation(resolution, clustering.num_user_clusters,
                                      clustering.num_item_clusters,
                                      time.perf_counter() - began, cached))
        return clustering, fill(clustering)

    # (resolution, fill) of the bracket ends: low fits (fill <= 1), high does not.
    low: tuple[float, float] | None = None
    high: tuple[float, float] | None = None
    best: tuple[Clustering, float] | None = None  # best fitting so far
    coarsest: tuple[Clustering, float] | None = None
    target = math.log(1 - tolerance / 2)  # aim inside the tolerance band
    previous: tuple[float, float] | None = None  # (log resolution, log fill) of the last trial
    resolution = START_RESOLUTION
    while len(evaluations) < max_evaluations:
        clustering, filled = evaluate(resolution)
        if filled <= 1:
            low = (resolution, filled)
            if best is None or filled > best[1]:
                best = (clustering, filled)
            if filled >= 1 - tolerance:
                break
        else:
            high = (resolution, filled)
            if coarsest is None or filled <= coarsest[1]:
                coarsest = (clustering, filled)
        point = (math.log(resolution), math.log(filled))
        if low is not None and high is not None:
            if high[0] / low[0] < 1.01:  # within 1%: the count is noise-limited here
                break
            # Interpolate log(fill) linearly in log(resolution) between the bracket ends, kept
            # off the ends so that the bracket shrinks by a tenth (of its log width) at least.
            position = (target - math.log(low[1])) / (math.log(high[1]) - math.log(low[1]))
            position = min(max(position, 0.1), 0.9)
            resolution = low[0] * (high[0] / low[0]) ** position
        else:
            if resolution <= MIN_RESOLUTION if filled > 1 else resolution >= MAX_RESOLUTION:
                break  # the next trial would cross the range of resolutions searched
            # No bracket yet: extrapolate along the slope of the last two trials (1 before
            # there are two; the cluster count grows about linearly with the resolution), by
            # a factor between 2 and STEP.
            slope = 1.0
            if previous is not None and point[0] != previous[0]:
                slope = max((point[1] - previous[1]) / (point[0] - previous[0]), 0.25)
            factor = min(max(abs(target - point[1]) / slope, math.log(2)), math.log(STEP))
            factor = math.exp(factor if filled <= 1 else -factor)
            resolution = min(max(resolution * factor, MIN_RESOLUTION), MAX_RESOLUTION)
        previous = point
    chosen = best or coarsest
    assert chosen is not None  # the loop evaluates at least once
    search = ResolutionSearch(chosen[0], max_user_rows, max_item_rows, tuple(evaluations),
                              time.perf_counter() - start, cached=False)
    atomic_write_json(path, search.to_dict())
    logger.info("graph clustering: resolution %.4g gives %d user / %d item clusters for "
                "%d / %d rows after %d clusterings in %.1fs", search.resolution,
                search.clustering.num_user_clusters, search.clustering.num_item_clusters,
                max_user_rows, max_item_rows, len(evaluations), search.seconds)
    return search
