"""igraph (a C extension) is imported only by the code that clusters a graph."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("modules", [
    "slimrec",
    "slimrec.serve.recommender, slimrec.embeddings",
    "slimrec.graph",
])
def test_igraph_is_imported_lazily(modules):
    code = f"import sys, {modules}; print('igraph' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, timeout=120)
    assert result.stdout.strip() == "False"


def test_clustering_still_loads_igraph():
    code = ("import sys, scipy.sparse as sp\n"
            "from slimrec.graph.clustering import cluster_bipartite\n"
            "cluster_bipartite(sp.csr_matrix([[1, 0], [0, 1]])); print('igraph' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, timeout=120)
    assert result.stdout.strip() == "True"
