"""Every registered method passes the shipped conformance suite; a new method gets it for free."""

import pytest

from slimrec.embeddings import METHODS, EmbeddingSpec, TableStats
from slimrec.testing import check_embedding_table

# The full table cannot shrink; every other method must reach a quarter of it.
BUDGETS = {"full": 1.0}


@pytest.fixture(scope="module")
def item_stats(tiny_data, tmp_path_factory):
    """What data-aware methods get at build: the item frequencies and the training graph."""
    return TableStats(role="item", frequencies=tiny_data.item_frequencies(),
                      interactions=tiny_data.train, cache_dir=tmp_path_factory.mktemp("stats"))


@pytest.mark.parametrize("method", sorted(METHODS))
def test_method_passes_conformance(method, tiny_data, item_stats):
    spec = EmbeddingSpec(method, budget=BUDGETS.get(method, 0.25))
    check_embedding_table(spec, tiny_data.num_items, 16, item_stats)
