"""``slimrec cluster``: cluster the training user-item graph (GraphHash) and write the map."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "cluster", help="cluster the training user-item graph (GraphHash) and write the map")
    add = parser.add_argument
    add("--dataset", default="synthetic", help="registered dataset name (default synthetic)")
    add("--data-dir", dest="data_dir", help="folder holding <dataset>/ (e.g. ../shared/data)")
    add("--budget", help="budget of the user and item tables together, as in `train` "
        "(searches the resolution)")
    add("--resolution", type=float, help="cluster at this resolution instead of a budget")
    add("--dim", type=int, default=64, help="embedding dimension the budget is for (default 64)")
    add("--algorithm", default="leiden", choices=["leiden", "louvain"])
    add("--objective", default="barber", choices=["barber", "modularity"])
    add("--cluster-seed", dest="cluster_seed", type=int, default=0)
    add("--seed", type=int, default=0, help="split seed, as in `train` (default 0)")
    add("--val-fraction", dest="val_fraction", type=float, default=0.1,
        help="validation share carved from train, as in `train` (default 0.1)")
    add("--out", help="npz map to write (default runs/clusters/<dataset>-<budget>.npz)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from slimrec.graph.report import cluster_dataset
    from slimrec.spine import load_config, prepare

    config = load_config(overrides={"task": "retrieval", "dataset": args.dataset,
                                    "data_dir": args.data_dir, "seed": args.seed,
                                    "val_fraction": args.val_fraction, "budget": args.budget,
                                    "dim": args.dim, "progress": False})
    label = args.budget if args.budget is not None else f"r{args.resolution}"
    out = Path(args.out or f"runs/clusters/{args.dataset}-{label}.npz")
    document = cluster_dataset(prepare(config), out, config.budget, args.dim, args.resolution,
                               args.algorithm, args.objective, args.cluster_seed)
    stats = document["clustering"]
    print(f"dataset {document['dataset']}: {document['users']:,} users, "
          f"{document['items']:,} items, {document['edges']:,} training edges")
    if "budget" in document:
        search = document["budget"]
        print(f"budget {search['budget']} at dim {search['dim']}: {search['max_user_rows']:,} "
              f"user / {search['max_item_rows']:,} item rows; resolution "
              f"{search['resolution']:.4g} after {len(search['evaluations'])} clusterings in "
              f"{search['seconds']:.1f}s")
    print(f"{stats['algorithm']} / {stats['objective']} at resolution {stats['resolution']:.4g}: "
          f"{stats['clusters']:,} clusters ({stats['user_clusters']:,} with users, "
          f"{stats['item_clusters']:,} with items, {stats['mixed_clusters']:,} with both) "
          f"in {stats['seconds']:.2f}s")
    for side in ("user", "item"):
        sizes = stats[f"{side}_cluster_sizes"]
        print(f"  {side}s per cluster: mean {sizes['mean']:.1f}, median {sizes['p50']:.0f}, "
              f"p90 {sizes['p90']:.0f}, p99 {sizes['p99']:.0f}, max {sizes['max']:,}, "
              f"singletons {sizes['singletons']:,}; rows {document[f'{side}_rows']:,} "
              f"({document[f'{side}_dedicated_rows']:,} dedicated to frequent {side}s)")
    print(f"modularity {stats['modularity']:.4f}, Barber modularity "
          f"{stats['barber_modularity']:.4f} (both at resolution 1); edges inside clusters "
          f"{stats['edge_coverage']:.1%}; ids with training edges: users "
          f"{stats['user_coverage']:.1%}, items {stats['item_coverage']:.1%} (others hashed)")
    print(f"wrote {document['out']}")
    return 0
