"""Deterministic synthetic interactions with power-law popularity and planted communities.

This is the embedded default dataset (``slimrec demo`` and the tests): no file, no network.
Users and items each belong to one of ``num_communities`` communities; a user picks most items
from its own community, weighted by a Zipf popularity, so graph clustering and low-rank
factorisation have real structure to find.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from slimrec.data.interactions import Interactions, build_interactions
from slimrec.data.splits import random_holdout_mask
from slimrec.errors import ConfigError


def _zipf_weights(num_items: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    ranks = rng.permutation(num_items) + 1.0
    weights = ranks ** (-exponent)
    return weights / weights.sum()


def _user_degrees(num_users: int, mean_degree: float, max_degree: int,
                  rng: np.random.Generator) -> np.ndarray:
    # Pareto-tailed activity with a floor of 5, like the 5-core filtered public datasets.
    raw = (rng.pareto(2.5, num_users) + 1.0) * mean_degree * 0.6
    return np.clip(np.round(raw), 5, max_degree).astype(np.int64)


def make_synthetic(
    num_users: int = 2000,
    num_items: int = 1500,
    num_communities: int = 16,
    mean_degree: float = 30.0,
    in_community: float = 0.85,
    popularity_exponent: float = 0.9,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Interactions:
    """Generate a seeded synthetic dataset and split it with a per-user random holdout."""
    if num_users < 1 or num_items < 10 or num_communities < 1:
        raise ConfigError(
            f"synthetic data needs num_users >= 1, num_items >= 10 and num_communities >= 1; "
            f"got {num_users}, {num_items}, {num_communities}."
        )
    if not 0.0 <= in_community <= 1.0:
        raise ConfigError(f"in_community must be in [0, 1]; got {in_community}.")
    rng = np.random.default_rng(seed)
    popularity = _zipf_weights(num_items, popularity_exponent, rng)
    user_community = rng.integers(0, num_communities, num_users)
    item_community = rng.integers(0, num_communities, num_items)
    community_items = [np.flatnonzero(item_community == c) for c in range(num_communities)]
    degrees = _user_degrees(num_users, mean_degree, max(5, num_items // 4), rng)

    users, items = [], []
    for user in range(num_users):
        own = community_items[user_community[user]]
        n_own = min(int(rng.binomial(degrees[user], in_community)), len(own))
        weights = popularity[own] / popularity[own].sum()
        chosen = rng.choice(own, size=n_own, replace=False, p=weights)
        n_other = degrees[user] - n_own
        other = rng.choice(num_items, size=n_other, replace=False, p=popularity)
        row = np.unique(np.concatenate([chosen, other]))
        users.append(np.full(row.size, user))
        items.append(row)
    users_all, items_all = np.concatenate(users), np.concatenate(items)
    held = random_holdout_mask(users_all, num_users, test_fraction, seed)
    splits = {"train": (users_all[~held], items_all[~held]),
              "test": (users_all[held], items_all[held])}
    return build_interactions(
        "synthetic", np.arange(num_users).astype(str), np.arange(num_items).astype(str), splits
    )


def planted_clicks(num_rows: int = 3000, seed: int = 0) -> pl.DataFrame:
    """Rows of (label, user, item, city, tags) with a planted click model: a click is likely when
    the user's taste (user % 4) matches the item's kind (item % 4), so a model can learn it from
    its embeddings. ``tags`` is a multi-hot field ("t1|t3", or empty)."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, 20, num_rows)
    items = rng.integers(0, 24, num_rows)
    cities = rng.integers(0, 5, num_rows)
    match = (users % 4) == (items % 4)
    labels = rng.random(num_rows) < np.where(match, 0.85, 0.1)
    tags = [f"t{i % 3}|t{(i + 1) % 7}" if i % 5 else "" for i in items]
    return pl.DataFrame({"label": labels.astype(int).astype(str), "user": users.astype(str),
                         "item": items.astype(str), "city": cities.astype(str), "tags": tags})
