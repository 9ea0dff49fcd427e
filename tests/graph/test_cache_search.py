"""The cluster cache (hits, misses, keys, damage) and the budget search over resolutions."""

import numpy as np
import pytest

from slimrec.graph import BipartiteGraph, cached_clustering, default_cache_dir, search_resolution
from slimrec.graph import search as search_module


@pytest.fixture()
def graph(tiny_data):
    return BipartiteGraph(tiny_data.train)


def test_fingerprint_matches_interactions(tiny_data, graph):
    assert graph.fingerprint == tiny_data.fingerprint()


def test_hit_after_miss(graph, tmp_path):
    first, cached = cached_clustering(graph, 3.0, cache_dir=tmp_path)
    assert not cached
    second, cached = cached_clustering(BipartiteGraph(graph.matrix), 3.0, cache_dir=tmp_path)
    assert cached
    assert np.array_equal(first.labels, second.labels)
    assert second.seconds == pytest.approx(first.seconds)
    files = sorted(path.name for path in tmp_path.iterdir())
    assert len(files) == 1 and files[0].startswith("graph-") and files[0].endswith(".npz")


@pytest.mark.parametrize("change", [{"resolution": 3.5}, {"seed": 1}, {"objective": "modularity"},
                                    {"algorithm": "louvain", "objective": "modularity"}])
def test_parameters_key_the_cache(graph, tmp_path, change):
    cached_clustering(graph, 3.0, cache_dir=tmp_path)
    options = {"resolution": 3.0, **change}
    _, cached = cached_clustering(graph, cache_dir=tmp_path, **options)
    assert not cached


def test_changed_data_misses(tiny_data, tmp_path):
    cached_clustering(BipartiteGraph(tiny_data.train), 3.0, cache_dir=tmp_path)
    fewer = tiny_data.train.tolil()
    user, item = tiny_data.train.nonzero()
    fewer[user[0], item[0]] = 0
    changed = BipartiteGraph(fewer.tocsr())
    assert changed.fingerprint != tiny_data.fingerprint()
    _, cached = cached_clustering(changed, 3.0, cache_dir=tmp_path)
    assert not cached


def test_damaged_file_is_recomputed(graph, tmp_path):
    expected, _ = cached_clustering(graph, 3.0, cache_dir=tmp_path)
    (path,) = tmp_path.iterdir()
    path.write_bytes(b"not a zip")
    again, cached = cached_clustering(graph, 3.0, cache_dir=tmp_path)
    assert not cached and np.array_equal(again.labels, expected.labels)
    _, cached = cached_clustering(graph, 3.0, cache_dir=tmp_path)
    assert cached
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_default_folder_follows_environment(graph, tmp_path, monkeypatch):
    monkeypatch.setenv("SLIMREC_CACHE_DIR", str(tmp_path))
    assert default_cache_dir() == tmp_path / "clusters"
    cached_clustering(graph, 3.0)
    assert len(list((tmp_path / "clusters").glob("graph-*.npz"))) == 1


@pytest.mark.parametrize(("user_rows", "item_rows"), [(120, 60), (30, 30), (8, 50), (250, 180)])
def test_search_fits_the_rows(graph, tmp_path, user_rows, item_rows):
    search = search_resolution(graph, user_rows, item_rows, cache_dir=tmp_path)
    clustering = search.clustering
    assert search.fits
    assert clustering.num_user_clusters <= user_rows
    assert clustering.num_item_clusters <= item_rows
    fill = max(clustering.num_user_clusters / user_rows, clustering.num_item_clusters / item_rows)
    assert fill >= 0.9
    assert search.seconds > 0 and search.evaluations
    assert search.resolution == clustering.resolution


def test_search_is_cached_and_keyed_by_rows(graph, tmp_path):
    first = search_resolution(graph, 60, 40, cache_dir=tmp_path)
    again = search_resolution(BipartiteGraph(graph.matrix), 60, 40, cache_dir=tmp_path)
    assert again.cached and not first.cached
    assert again.resolution == first.resolution
    assert np.array_equal(again.clustering.labels, first.clustering.labels)
    other = search_resolution(graph, 61, 40, cache_dir=tmp_path)
    assert not other.cached
    # Its clusterings were mostly computed by the first search already.
    assert any(evaluation.cached for evaluation in other.evaluations)


def test_search_with_too_few_rows_returns_the_coarsest(graph, tmp_path, monkeypatch):
    # A floor on the resolution that still leaves several clusters: nothing fits one row.
    monkeypatch.setattr(search_module, "MIN_RESOLUTION", 0.5)
    search = search_resolution(graph, 1, 1, cache_dir=tmp_path)
    assert not search.fits
    assert search.resolution == 0.5
