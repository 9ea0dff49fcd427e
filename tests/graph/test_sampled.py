"""Sampled GraphHash clustering: a degree-weighted sample clustered, the rest by majority."""

import numpy as np
import pytest
import scipy.sparse as sp

from slimrec.errors import ConfigError
from slimrec.graph.clustering import barber_modularity, cluster_bipartite
from slimrec.graph.sampled import cluster_sampled, degree_weighted_users, majority_label


def test_majority_label_breaks_ties_to_the_smaller_label():
    sources = np.array([0, 0, 0, 1, 1, 2])
    labels = np.array([3, 3, 1, 2, 1, -1])
    assert majority_label(sources, labels, 4).tolist() == [3, 1, -1, -1]


def test_the_sample_covers_the_asked_share_of_edges():
    degree = np.array([1, 50, 3, 0, 10, 7, 2])
    users = degree_weighted_users(degree, 0.5, np.random.default_rng(0))
    assert degree[users].sum() >= 0.5 * degree.sum() and 3 not in users


def test_sampled_clustering_labels_every_connected_id_and_finds_the_communities(tiny_data):
    train = tiny_data.train
    whole = cluster_bipartite(train, resolution=1.0)
    sampled = cluster_sampled(train, 0.3, resolution=1.0, seed=0)
    degree = np.concatenate([np.diff(train.indptr), np.bincount(train.indices,
                                                                minlength=train.shape[1])])
    assert ((sampled.labels >= 0) == (degree > 0)).all()
    assert barber_modularity(train, sampled.labels) > 0.6 * barber_modularity(train,
                                                                              whole.labels)
    again = cluster_sampled(train, 0.3, resolution=1.0, seed=0)
    assert np.array_equal(again.labels, sampled.labels)


def test_an_unreached_component_gets_one_cluster_and_bad_fractions_fail():
    # Two disconnected blocks; a tiny sample reaches only the big one.
    block = sp.block_diag([np.ones((20, 20)), np.ones((1, 1))]).tocsr()
    clustering = cluster_sampled(block, 0.01, seed=0)
    assert (clustering.labels >= 0).all()
    with pytest.raises(ConfigError, match="sample_fraction"):
        cluster_sampled(block, 0.0)
