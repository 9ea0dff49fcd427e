"""Latency of ``Recommender.recommend`` (k=20, seen items excluded) on a saved Gowalla model.

    flock /tmp/slimrec-bench.lock python benchmarks/recommend_latency.py \
        --model runs/benchmarks/gowalla_mf_full_full

Measures, after loading the artifact once (timed too):
- single user: ``recommend([u], k=20)`` for each of ``--requests`` random known users;
- batches: ``recommend(users, k=20)`` for ``--batches`` random batches of 1,000 users;
and reports p50/p99 per call and per user, with the artifact's size on disk against its
``memory_bytes()`` and the process RSS once loaded. ``--item-scoring fp32`` scores MF items from
a dense fp32 copy instead of the stored table (the default, ``stored``). Writes
``benchmarks/results/recommend_latency_<dataset>_<model>_<method>[_fp32].json``.
Latency does not depend on how well the model was trained, only on its tables and sizes.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from common import RESULTS
from slimrec.budget import format_bytes
from slimrec.env import environment
from slimrec.io import atomic_write_json
from slimrec.serve.metrics import current_rss_bytes
from slimrec.serve.recommender import Recommender


def percentiles(seconds: list[float]) -> dict[str, float]:
    values = np.asarray(seconds) * 1000
    return {"p50_ms": float(np.percentile(values, 50)), "p99_ms": float(np.percentile(values, 99)),
            "mean_ms": float(values.mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model folder (run folder)")
    parser.add_argument("--requests", type=int, default=1000, help="single-user calls")
    parser.add_argument("--batches", type=int, default=30, help="calls of 1,000 users")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--item-scoring", choices=["stored", "fp32"], default="stored")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    start = time.perf_counter()
    recommender = Recommender.load(args.model, item_scoring=args.item_scoring)
    load_seconds = time.perf_counter() - start
    loaded_rss = current_rss_bytes()
    rng = np.random.default_rng(args.seed)
    users = recommender.user_ids

    for user in users[:20]:  # warm-up: allocator, BLAS threads
        recommender.recommend([user], k=20)
    single = []
    for user in rng.choice(users, args.requests):
        begin = time.perf_counter()
        recommender.recommend([user], k=20)
        single.append(time.perf_counter() - begin)
    batched = []
    for _ in range(args.batches):
        batch = rng.choice(users, 1000, replace=False).tolist()
        begin = time.perf_counter()
        recommender.recommend(batch, k=20)
        batched.append(time.perf_counter() - begin)

    manifest = recommender.manifest
    footprint = recommender.footprint()
    run = manifest["run_config"]
    document = {
        "command": f"python benchmarks/recommend_latency.py --model {args.model} "
                   f"--item-scoring {args.item_scoring}",
        "item_scoring": args.item_scoring, "rss_after_load_bytes": loaded_rss,
        "model_folder": args.model, "dataset": run["dataset"], "model": run["model"],
        "embedding": run["embedding"], "budget": run["budget"], "dim": run["dim"],
        "num_users": len(users), "num_items": recommender.num_items, "k": 20,
        "exclude_seen": True, "load_seconds": load_seconds,
        "single_user": {"requests": args.requests, **percentiles(single)},
        "batch_1000": {"batches": args.batches, **percentiles(batched),
                       # seconds per 1,000 users = milliseconds per user
                       "per_user_p50_ms": float(np.percentile(batched, 50)),
                       "per_user_p99_ms": float(np.percentile(batched, 99))},
        "footprint_bytes": footprint,
        "load_average": os.getloadavg(),
        "environment": environment(),
    }
    suffix = "_fp32" if args.item_scoring == "fp32" else ""
    name = f"recommend_latency_{run['dataset']}_{run['model']}_{run['embedding']}{suffix}.json"
    atomic_write_json(RESULTS / name, document)
    print(f"{run['dataset']} {run['model']} ({run['embedding']}, dim {run['dim']}): "
          f"{len(users):,} users x {recommender.num_items:,} items, k=20, seen excluded, "
          f"{args.threads} threads, items scored {args.item_scoring}; load {load_seconds:.2f}s, "
          f"RSS {format_bytes(loaded_rss)}")
    one, many = document["single_user"], document["batch_1000"]
    print(f"  single user:        p50 {one['p50_ms']:.2f} ms  p99 {one['p99_ms']:.2f} ms")
    print(f"  batch of 1,000:     p50 {many['p50_ms']:.1f} ms  p99 {many['p99_ms']:.1f} ms "
          f"(per user p50 {many['per_user_p50_ms']:.3f} ms, p99 {many['per_user_p99_ms']:.3f} ms)")
    print(f"  model memory_bytes {footprint['model_memory_bytes']:,} "
          f"({format_bytes(footprint['model_memory_bytes'])}); model.safetensors on disk "
          f"{footprint['model.safetensors_disk_bytes']:,}; seen items "
          f"{footprint['seen_items_memory_bytes']:,} in memory, "
          f"{footprint['seen.safetensors_disk_bytes']:,} on disk; vocab.json "
          f"{footprint['vocab.json_disk_bytes']:,} on disk")
    print(f"wrote {RESULTS / name}")


if __name__ == "__main__":
    main()
