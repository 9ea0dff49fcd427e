"""How good is a folded-in user vector (issue 14)? For sampled validation users of a saved
retrieval run, fold their train items in as a "new user" history and measure recall@20 on their
validation items, against the trained user vector. Variants: the mean of the history items'
vectors, and the MF least squares (`slimrec.serve.recommender.fold_in`) at several weights and
regularisers. Validation only: the serving constants are chosen here, test is never read.

    flock /tmp/slimrec-bench.lock .venv/bin/python benchmarks/serve_foldin.py \
        runs/serve/gowalla_mf_gp5 --users 2000

Writes benchmarks/results/serve/foldin_{run name}.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from slimrec.eval.ranking import _mask_seen as mask_seen
from slimrec.io import atomic_write_json
from slimrec.serve import recommender as recommender_module
from slimrec.serve.recommender import Recommender, fold_in
from slimrec.spine import load_config, prepare

RESULTS = Path(__file__).resolve().parent / "results" / "serve"
WEIGHTS = (0.0, 1.0, 10.0)
L2S = (0.1, 1.0, 10.0)


def recall_at_20(vectors: torch.Tensor, items: torch.Tensor, users: np.ndarray, seen, target
                 ) -> float:
    scores = vectors @ items.T
    mask_seen(scores, seen, users)
    top = torch.topk(scores, 20, dim=1).indices.numpy()
    recalls = []
    for row, user in enumerate(users):
        wanted = target.indices[target.indptr[user]:target.indptr[user + 1]]
        recalls.append(len(np.intersect1d(top[row], wanted)) / len(wanted))
    return float(np.mean(recalls))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = load_config(args.run_dir / "config.yaml")
    data = prepare(config)
    recommender = Recommender.load(args.run_dir)
    items = recommender._fold_in_items()
    seen, target = data.train.tocsr(), data.val.tocsr()
    candidates = np.flatnonzero((np.diff(target.indptr) > 0) & (np.diff(seen.indptr) > 0))
    users = np.sort(np.random.default_rng(args.seed).choice(
        candidates, size=min(args.users, len(candidates)), replace=False))
    histories = [torch.from_numpy(seen.indices[seen.indptr[u]:seen.indptr[u + 1]]).long()
                 for u in users]
    with torch.no_grad():
        trained = recommender.model.user_table(torch.from_numpy(users))
    figures = {"trained_vectors": recall_at_20(trained, items, users, seen, target),
               "mean": recall_at_20(torch.stack([fold_in(items, h, "mean") for h in histories]),
                                    items, users, seen, target)}
    for weight in WEIGHTS:
        for l2 in L2S:
            with mock.patch.multiple(recommender_module, FOLD_IN_WEIGHT=weight, FOLD_IN_L2=l2):
                base = recommender_module.fold_in_base(items)
                vectors = torch.stack([fold_in(items, h, "least_squares", base)
                                       for h in histories])
            figures[f"least_squares_a{weight:g}_l2{l2:g}"] = recall_at_20(vectors, items, users,
                                                                           seen, target)
    for name, value in figures.items():
        print(f"{name:32s} val recall@20 {value:.4f}")
    out = RESULTS / f"foldin_{args.run_dir.name}.json"
    atomic_write_json(out, {"run_dir": str(args.run_dir), "users": len(users),
                            "split": "val (history: train items)", "metric": "recall@20",
                            "fold_in_method_served": recommender.fold_in_method,
                            "recall": figures, "command": "python " + " ".join(sys.argv)})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
