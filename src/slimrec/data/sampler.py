"""Vectorised uniform negative sampling that never returns a training positive."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from slimrec.errors import DataError


class NegativeSampler:
    """Draws, for each given user, an item uniformly among the items the user has not seen.

    Rejection sampling on the whole batch at once: draw uniformly, find the draws that hit a
    training positive by binary search in the sorted ``(user, item)`` keys, redraw only those.
    """

    def __init__(self, seen: sp.csr_matrix) -> None:
        seen = sp.csr_matrix(seen)
        seen.sort_indices()
        self.num_items = seen.shape[1]
        degrees = np.diff(seen.indptr)
        if degrees.size and degrees.max() >= self.num_items:
            user = int(np.argmax(degrees))
            raise DataError(f"user {user} has interacted with all {self.num_items} items; "
                            "no negative item can be sampled for it.")
        rows = np.repeat(np.arange(seen.shape[0], dtype=np.int64), degrees)
        self._keys = rows * self.num_items + seen.indices.astype(np.int64)

    def _is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        keys = users.astype(np.int64) * self.num_items + items
        if self._keys.size == 0:
            return np.zeros(len(keys), dtype=bool)
        position = np.searchsorted(self._keys, keys).clip(max=len(self._keys) - 1)
        return self._keys[position] == keys

    def sample(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One negative item per entry of ``users`` (int64 array of the same length)."""
        items = rng.integers(0, self.num_items, len(users))
        redraw = np.flatnonzero(self._is_positive(users, items))
        while redraw.size:
            items[redraw] = rng.integers(0, self.num_items, redraw.size)
            redraw = redraw[self._is_positive(users[redraw], items[redraw])]
        return items
