"""Most-popular baseline: the floor the compressed tables are compared with.

    python benchmarks/popularity_gowalla.py --data-dir ../shared/data
    python benchmarks/popularity_gowalla.py --dataset ml-1m --seeds 0,1,2

Every user gets the 20 items with the most training interactions that are not in their train or
validation items (the same split and exclusions as the MF sweeps: a 10% validation carve-out per
seed; on ML-1M the seed also draws the 80/20 holdout); equal counts are ordered by the seeded
random item order of evaluation (``slimrec.eval.ranking.tie_order``), never by id. Test
Recall@20 is averaged over the users with a test item. Writes
``benchmarks/results/<dataset>_mostpop.json``.
"""

from __future__ import annotations

import argparse

import numpy as np

from common import RESULTS
from protocol import GOWALLA_MF
from slimrec.data.registry import load_dataset
from slimrec.data.splits import carve_validation
from slimrec.eval.ranking import tie_order
from slimrec.io import atomic_write_json

K = 20


def most_popular_recall(data, k: int = K, tie_seed: int = 0) -> tuple[float, int]:
    """Mean test Recall@k of the popularity ranking and the number of users it averages."""
    train, val, test = data.train.tocsr(), data.val.tocsr(), data.test.tocsr()
    counts = np.asarray(train.sum(axis=0)).ravel()
    order = np.lexsort((tie_order(len(counts), tie_seed).numpy(), -counts))
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
    parser.add_argument("--dataset", default="gowalla", choices=("gowalla", "ml-1m"))
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (split and ties)")
    args = parser.parse_args()
    cells = []
    for seed in map(int, args.seeds.split(",")):
        data = carve_validation(load_dataset(args.dataset, args.data_dir, seed=seed),
                                GOWALLA_MF["val_fraction"], seed=seed)
        recall, users = most_popular_recall(data, tie_seed=seed)
        cells.append({"seed": seed, f"recall@{K}": recall, "users": users})
        print(f"most popular, seed {seed}: test recall@{K} {recall:.4f} over {users:,} users")
    mean = float(np.mean([cell[f"recall@{K}"] for cell in cells]))
    atomic_write_json(RESULTS / f"{args.dataset}_mostpop.json",
                      {"dataset": args.dataset, "method": "most popular", f"recall@{K}": mean,
                       "seeds": cells, "ties": "seeded random item order (tie_order)",
                       "split": "10% validation carve-out per seed, as the MF sweeps"})


if __name__ == "__main__":
    main()
