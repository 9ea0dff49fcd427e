"""Most-popular baseline on Gowalla: the floor the compressed tables are compared with.

    python benchmarks/popularity_gowalla.py --data-dir ../shared/data

Every user gets the 20 items with the most training interactions that are not in their train or
validation items (the same split and exclusions as ``protocol.GOWALLA_MF``); test Recall@20 is
averaged over the users with a test item. Writes ``benchmarks/results/gowalla_mostpop.json``.
"""

from __future__ import annotations

import argparse

import numpy as np

from common import RESULTS
from protocol import GOWALLA_MF
from slimrec.data.registry import load_dataset
from slimrec.data.splits import carve_validation
from slimrec.io import atomic_write_json

K = 20


def most_popular_recall(data, k: int = K) -> tuple[float, int]:
    """Mean test Recall@k of the popularity ranking and the number of users it averages."""
    train, val, test = data.train.tocsr(), data.val.tocsr(), data.test.tocsr()
    order = np.argsort(-np.asarray(train.sum(axis=0)).ravel(), kind="stable")
    recalls = []
    for user in range(test.shape[0]):
        targets = test.indices[test.indptr[user]: test.indptr[user + 1]]
        if targets.size == 0:
            continue
        seen = np.union1d(train.indices[train.indptr[user]: train.indptr[user + 1]],
                          val.indices[val.indptr[user]: val.indptr[user + 1]])
        # The k best unseen items lie within the first k + |seen| of the popularity order.
        head = order[: k + seen.size]
        top = head[~np.isin(head, seen)][:k]
        recalls.append(np.isin(targets, top).sum() / targets.size)
    return float(np.mean(recalls)), len(recalls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=GOWALLA_MF["data_dir"])
    args = parser.parse_args()
    data = carve_validation(load_dataset("gowalla", args.data_dir),
                            GOWALLA_MF["val_fraction"], seed=GOWALLA_MF["seed"])
    recall, users = most_popular_recall(data)
    atomic_write_json(RESULTS / "gowalla_mostpop.json",
                      {"dataset": "gowalla", "method": "most popular", f"recall@{K}": recall,
                       "users": users, "split": "GOWALLA_MF (10% validation carve-out, seed 0)"})
    print(f"most popular: test recall@{K} {recall:.4f} over {users:,} users")


if __name__ == "__main__":
    main()
