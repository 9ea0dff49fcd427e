"""MF-BPR with the full fp32 table: the reference point of every compression benchmark.

    python benchmarks/mf_full.py --dataset gowalla --data-dir ../shared/data
    python benchmarks/mf_full.py --dataset ml-100k --data-dir ../shared/data

Reports test Recall@20 / NDCG@20, median epoch seconds, full-ranking evaluation seconds for all
test users, peak RSS and the whole run's wall time; writes
``benchmarks/results/<dataset>_mf_full_reference.json``.
"""

from __future__ import annotations

import argparse
import time

from common import retrieval_config, run_cell
from protocol import protocol_for
from slimrec.budget import format_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="gowalla", choices=["gowalla", "ml-100k"])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--force", action="store_true", help="rerun even if results exist")
    parser.add_argument("--name", help="results file stem, to time the run again without "
                        "replacing the reference (default <dataset>_mf_full_reference)")
    parser.add_argument("--lr", type=float, help="a pilot at another learning rate (give "
                        "--name too; choose among pilots on validation recall@20 only)")
    parser.add_argument("--epochs", type=int, help="another epoch cap, for a pilot whose best "
                        "epoch was its cap (give --name too)")
    parser.add_argument("--seed", type=int, help="another seed (split, initialisation, tie "
                        "order; give --name too)")
    args = parser.parse_args()
    changed = {"lr": args.lr, "epochs": args.epochs}
    train = {key: value for key, value in changed.items() if value is not None}
    if (train or args.seed is not None) and args.name is None:
        parser.error("--lr, --epochs and --seed need --name: a pilot must not replace the "
                     "reference file")
    updates: dict = {"train": train}
    if args.seed is not None:
        updates["seed"] = args.seed
    config = retrieval_config(protocol_for(args.dataset, args.data_dir), **updates)
    start = time.perf_counter()
    name = args.name or f"{args.dataset}_mf_full_reference"
    document = run_cell(config, name=name, force=args.force)
    wall = time.perf_counter() - start
    test, timing = document["metrics"]["test"], document["timing"]
    print(f"{args.dataset} MF-BPR full table, dim {document['dim']}:")
    print(f"  test recall@20 {test['recall@20']:.4f}  ndcg@20 {test['ndcg@20']:.4f}")
    print(f"  epochs {timing['epochs']} (best {timing['best_epoch']}), median epoch "
          f"{timing['epoch_seconds_median']:.2f}s, train {timing['train_seconds']:.1f}s")
    print(f"  full-ranking test evaluation of {document['dataset']['users']:,} users: "
          f"{timing['eval_seconds']:.2f}s")
    print(f"  peak RSS {format_bytes(document['peak_rss_bytes'])}, wall (this call) {wall:.1f}s")


if __name__ == "__main__":
    main()
