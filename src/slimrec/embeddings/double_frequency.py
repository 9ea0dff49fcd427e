"""``double_frequency``: dedicated rows for the most frequent ids, double hashing for the rest.

Frequency-based double hashing (Zhang et al., RecSys 2020): the head is ``frequency_hash``'s;
each tail id sums two rows chosen by two independent universal hashes of the shared bucket
rows, so two tail ids rarely share their whole vector even when buckets are few.
"""

from __future__ import annotations

from typing import ClassVar

from slimrec.embeddings.frequency_hash import FrequencyHashTable, FrequencyHashTableConfig
from slimrec.embeddings.spec import TableStats, register


@register
class DoubleFrequencyTableConfig(FrequencyHashTableConfig):
    method = "double_frequency"
    num_hashes: ClassVar[int] = 2

    def build(self, num_embeddings: int, embedding_dim: int, stats: TableStats | None,
              seed: int) -> DoubleFrequencyTable:
        return DoubleFrequencyTable(num_embeddings, embedding_dim, self,
                                    self.head_ids(num_embeddings, stats), seed)


class DoubleFrequencyTable(FrequencyHashTable):
    """``FrequencyHashTable`` with two tail hashes (its own name so artifacts say which)."""
