"""Test-time scaling against parameter scaling on Frappe: K compressed DeepFMs (seeds) sharing
one embedding budget against the single model at the whole budget.

    SLIMREC_BENCH_THREADS=1 python benchmarks/ensemble_frappe.py --budget 10% --ks 2,4
    python benchmarks/ensemble_frappe.py --report

Every member uses the CTR grid's protocol (``ctr_grid.PROTOCOL``) and ``unified`` tables: the
best method of the committed grid at 10%, ``quantized``, is already at its 1-bit floor there and
cannot be split (``slimrec ensemble`` names its smallest member size), and ``unified`` is the
next best that goes down to 2.5%. K members get ``budget / K`` bytes each, so the ensemble's
tables hold at most the single model's bytes. The single model is the
``K = 1`` cell (a one-member ensemble is its member). Latency: median seconds of scoring the
test split once, through the saved artifact. Results go to
``benchmarks/results/ensemble/<model>_<method>_<budget>_k<K>_s<seed>.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from common import RESULTS, RUNS, command, ctr_config, updated
from ctr_grid import LOCK, PROTOCOL
from protocol import SHARED_DATA
from slimrec.ensemble import train_ensemble
from slimrec.eval.ctr import predict
from slimrec.io import atomic_write_json
from slimrec.models.ctr import FieldTensors
from slimrec.serve.artifact import load_artifact
from slimrec.spine import prepare
from turns import blocking_lock

FOLDER = "ensemble"


def name(model: str, method: str, budget: str, k: int, seed: int) -> str:
    return f"{model}_{method}_{budget.replace('%', 'pct')}_k{k}_s{seed}"


def latency(folder: str, data, repeats: int = 3) -> float:
    model = load_artifact(folder).model
    tensors, rows = FieldTensors(data), data.rows("test")
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predict(model, tensors, rows)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def run(model: str, method: str, budget: str, ks: list[int], seeds: list[int]) -> None:
    (RESULTS / FOLDER).mkdir(parents=True, exist_ok=True)
    base = ctr_config(PROTOCOL, dataset="frappe", data_dir=SHARED_DATA, model=model,
                      embedding=method, budget=budget)
    data = prepare(base)
    for seed in seeds:
        for k in ks:
            cell = name(model, method, budget, k, seed)
            path = RESULTS / FOLDER / f"{cell}.json"
            if path.is_file():
                print(f"[skip] {cell}")
                continue
            config = updated(base, seed=seed, out=str(RUNS / FOLDER / cell))
            with blocking_lock(LOCK):
                torch.set_num_threads(config.threads or 1)
                document = train_ensemble(config, k, data=data, command=command())
                document["latency_seconds_test"] = latency(config.out, data)
            atomic_write_json(path, document)
            print(f"[done] {cell}: auc={document['metrics']['test']['auc']:.4f} "
                  f"bytes={document['memory_bytes']['embeddings']:,}", flush=True)


def report() -> None:
    print("| cell | K | seeds | test AUC | test LogLoss | val AUC | embedding bytes | "
          "budget bytes | test scoring s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    groups: dict[str, list[dict]] = {}
    for path in sorted((RESULTS / FOLDER).glob("*.json")):
        groups.setdefault(path.stem.rsplit("_s", 1)[0], []).append(json.loads(path.read_text()))
    for label, documents in groups.items():
        def stat(values: list[float]) -> str:
            if len(values) == 1:
                return f"{values[0]:.4f}"
            return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"

        first = documents[0]
        print(f"| {label} | {first['ensemble']['k']} | {len(documents)} | "
              f"{stat([d['metrics']['test']['auc'] for d in documents])} | "
              f"{stat([d['metrics']['test']['logloss'] for d in documents])} | "
              f"{stat([d['metrics']['val']['auc'] for d in documents])} | "
              f"{first['memory_bytes']['embeddings']:,} | {first['ensemble']['budget_bytes']:,} | "
              f"{stat([d['latency_seconds_test'] for d in documents])} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="deepfm")
    parser.add_argument("--method", default="unified")
    parser.add_argument("--budget", default="10%")
    parser.add_argument("--ks", default="1,2,4")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args()
    if not args.report:
        run(args.model, args.method, args.budget, [int(k) for k in args.ks.split(",")],
            [int(s) for s in args.seeds.split(",")])
    report()


if __name__ == "__main__":
    main()
