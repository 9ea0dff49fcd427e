"""Test-time scaling against parameter scaling: K compressed models (seeds) sharing one embedding
budget against the single model at the whole budget, on Frappe (CTR) and Gowalla (MF-BPR).

    SLIMREC_BENCH_THREADS=1 python benchmarks/ensembles.py --dataset frappe --budget 10% \
        --ks 1,2,4 --seeds 0,1,2
    SLIMREC_BENCH_THREADS=1 python benchmarks/ensembles.py --dataset gowalla --model mf \
        --method graph_popularity --budget 5% --ks 1,2,4 --seeds 0,1,2
    python benchmarks/ensembles.py --report

Every member of a dataset uses that dataset's one protocol: Frappe the CTR grid's
(``ctr_grid.PROTOCOL``), Gowalla the method-comparison protocol (``protocol.GOWALLA_MF``, 20
epochs, early stopping on validation recall@20). K members get ``budget / K`` bytes each (as an
absolute size), so the ensemble's tables hold at most the single model's bytes; a member ``i``
of seed ``s`` is trained with seed ``s + i``. The single model is the ``K = 1`` cell (a
one-member ensemble is its member). Frappe uses ``unified`` tables by default: the best method of
the committed grid at 10%, ``quantized``, is at its 1-bit floor there and cannot be split.

Latency, through the saved artifact, median of 3 passes: CTR, scoring the whole test split;
retrieval, top-20 (seen items excluded) for the first 5,000 users in batches of 1,024.
With ``--no-lock`` (runs beside another job) the latency is measured under contention: compare
K's of one run, not absolute times. Results:
``benchmarks/results/ensemble/<dataset>_<model>_<method>_<budget>_k<K>_s<seed>.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from common import RESULTS, RUNS, budget_slug, command, ctr_config, retrieval_config, updated
from ctr_grid import LOCK, PROTOCOL
from protocol import GOWALLA_MF, SHARED_DATA
from slimrec.ensemble import train_ensemble
from slimrec.eval.ctr import predict
from slimrec.io import atomic_write_json, file_lock
from slimrec.models.ctr import FieldTensors
from slimrec.serve.artifact import load_artifact
from slimrec.serve.recommender import Recommender
from slimrec.spine import prepare
from slimrec.tasks import RunConfig

FOLDER = "ensemble"
LATENCY_USERS = 5_000
METRICS = {"ctr": ("auc", "logloss"), "retrieval": ("recall@20", "ndcg@20")}


def name(dataset: str, model: str, method: str, budget: str, k: int, seed: int) -> str:
    return f"{dataset}_{model}_{method}_{budget_slug(budget)}_k{k}_s{seed}"


def base_config(dataset: str, model: str, method: str, budget: str) -> RunConfig:
    if dataset == "frappe":
        return ctr_config(PROTOCOL, dataset=dataset, data_dir=SHARED_DATA, model=model,
                          embedding=method, budget=budget)
    if dataset == "gowalla":
        return retrieval_config(GOWALLA_MF, model=model, embedding=method, budget=budget)
    raise SystemExit(f"--dataset must be frappe or gowalla; got {dataset!r}")


def _median_seconds(work: Callable[[], object], repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def latency(folder: str, data, task: str) -> float:
    artifact = load_artifact(folder)
    if task == "ctr":
        tensors, rows = FieldTensors(data), data.rows("test")
        return _median_seconds(lambda: predict(artifact.model, tensors, rows))
    recommender = Recommender.from_artifact(artifact)
    users = recommender.user_ids[:LATENCY_USERS].tolist()
    return _median_seconds(lambda: recommender.recommend(users, k=20))


def run(dataset: str, model: str, method: str, budget: str, ks: list[int],
        seeds: list[int], lock: bool = True) -> None:
    (RESULTS / FOLDER).mkdir(parents=True, exist_ok=True)
    base = base_config(dataset, model, method, budget)
    data = prepare(base)
    for seed in seeds:
        for k in ks:
            cell = name(dataset, model, method, budget, k, seed)
            path = RESULTS / FOLDER / f"{cell}.json"
            if path.is_file():
                print(f"[skip] {cell}")
                continue
            config = updated(base, seed=seed, out=str(RUNS / FOLDER / cell))
            with file_lock(LOCK if lock else None):
                torch.set_num_threads(config.threads or 1)
                document = train_ensemble(config, k, data=data, command=command())
                document["latency_seconds_test"] = latency(config.out, data, config.task)
            atomic_write_json(path, document)
            first = METRICS[config.task][0]
            print(f"[done] {cell}: {first}={document['metrics']['test'][first]:.4f} "
                  f"bytes={document['memory_bytes']['embeddings']:,}", flush=True)


def remeasure(dataset: str, model: str, method: str, budget: str) -> None:
    """Measure the latency of every finished cell of ``dataset`` again, one after another in
    this process (same machine, threads and load for all): the figures to compare K by."""
    base = base_config(dataset, model, method, budget)
    data = prepare(base)
    torch.set_num_threads(base.threads or 1)
    for path in sorted((RESULTS / FOLDER).glob(f"{dataset}_*.json")):
        document = json.loads(path.read_text())
        folder = RUNS / FOLDER / path.stem
        if not folder.is_dir():
            print(f"[missing run folder] {folder}")
            continue
        document["latency_seconds_test"] = latency(str(folder), data, document["task"])
        document["latency_note"] = ("re-measured with --remeasure: every cell of the dataset in "
                                    "one process, one after another")
        atomic_write_json(path, document)
        print(f"[latency] {path.stem}: {document['latency_seconds_test']:.3f} s", flush=True)


def _stat(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def report() -> None:
    groups: dict[str, list[dict]] = {}
    for path in sorted((RESULTS / FOLDER).glob("*.json")):
        groups.setdefault(path.stem.rsplit("_s", 1)[0], []).append(json.loads(path.read_text()))
    for task, (first, second) in METRICS.items():
        rows = {label: docs for label, docs in groups.items() if docs[0]["task"] == task}
        if not rows:
            continue
        print(f"\n| cell | K | seeds | test {first} | test {second} | val {first} | "
              "embedding bytes | budget bytes | dense bytes | latency s |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for label, documents in rows.items():
            head = documents[0]
            dense = head["memory_bytes"]["dense"]
            print(f"| {label} | {head['ensemble']['k']} | {len(documents)} | "
                  f"{_stat([d['metrics']['test'][first] for d in documents])} | "
                  f"{_stat([d['metrics']['test'][second] for d in documents])} | "
                  f"{_stat([d['metrics']['val'][first] for d in documents])} | "
                  f"{head['memory_bytes']['embeddings']:,} | "
                  f"{head['ensemble']['budget_bytes']:,} | {dense:,} | "
                  f"{_stat([d['latency_seconds_test'] for d in documents])} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="frappe", choices=["frappe", "gowalla"])
    parser.add_argument("--model", default="deepfm")
    parser.add_argument("--method", default="unified")
    parser.add_argument("--budget", default="10%")
    parser.add_argument("--ks", default="1,2,4")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--no-lock", action="store_true", help="do not take the shared "
                        "benchmark lock (accuracy runs beside another job; latency is then "
                        "measured under contention)")
    parser.add_argument("--remeasure", action="store_true", help="measure the latency of the "
                        "dataset's finished cells again, side by side in one process")
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args()
    if args.remeasure:
        remeasure(args.dataset, args.model, args.method, args.budget)
    elif not args.report:
        run(args.dataset, args.model, args.method, args.budget,
            [int(k) for k in args.ks.split(",")], [int(s) for s in args.seeds.split(",")],
            lock=not args.no_lock)
    report()


if __name__ == "__main__":
    main()
