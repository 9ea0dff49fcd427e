"""Multi-scenario multi-task on MovieLens-1M (AutoIFS's setting): shared-bottom, MMoE, PLE and
AutoIFS, AUC per (age scenario, task) and their mean, and parameter counts.

    SLIMREC_BENCH_THREADS=1 python benchmarks/multitask_ml1m.py --seeds 0
    python benchmarks/multitask_ml1m.py --report

Protocol (one for every model; chosen before any run, nothing tuned on test): full tables of
dim 16, bottom/experts 256-128, towers 64, Adam 3e-3 with the plateau schedule, batch 4096,
L2 0.01 on the batch embeddings, at most ``--epochs`` epochs (default 5, a CPU budget: the
machine is shared), early stopping on the validation mean AUC; AutoIFS searches for
``--search-epochs`` (default 2; the paper uses 10) epochs with the gate temperature annealed to
100, then hard-prunes, rewinds and retrains with the same protocol. Results go to
``benchmarks/results/multitask/<model>_s<seed>.json``; each cell takes the benchmark lock.
"""

from __future__ import annotations

import argparse
import json
import statistics

from common import RESULTS, run_cell, updated
from ctr_grid import LOCK
from protocol import SHARED_DATA, THREADS
from slimrec.config import parse_config
from slimrec.io import file_lock
from slimrec.spine import prepare
from slimrec.tasks import MultiTaskConfig

FOLDER = "multitask"
MODELS = ("shared_bottom", "mmoe", "ple", "autoifs")
SCENARIOS, TASKS = ("young", "middle", "senior"), ("click", "like")


def config(model: str, seed: int, epochs: int, search_epochs: int) -> MultiTaskConfig:
    base = parse_config(MultiTaskConfig, {
        "dataset": "ml-1m", "data_dir": SHARED_DATA, "dim": 16, "threads": THREADS,
        "progress": False, "train": {"epochs": epochs, "batch_size": 4096, "lr": 3e-3,
                                     "patience": 2}}, where="protocol")
    params = {"search_epochs": search_epochs} if model == "autoifs" else {}
    return updated(base, model=model, seed=seed, model_params=params)


def run(seeds: list[int], epochs: int, search_epochs: int, force: bool) -> None:
    (RESULTS / FOLDER).mkdir(parents=True, exist_ok=True)
    data = prepare(config(MODELS[0], seeds[0], epochs, search_epochs))
    for seed in seeds:
        for model in MODELS:
            with file_lock(LOCK):
                run_cell(config(model, seed, epochs, search_epochs),
                         f"{FOLDER}/{model}_s{seed}", force, data=data)


def report() -> None:
    pairs = [f"auc/{s}/{t}" for s in SCENARIOS for t in TASKS]
    print("| model | seeds | " + " | ".join(p.removeprefix("auc/") for p in pairs)
          + " | auc_mean | dense params | of which adapters | kept flows | epochs |")
    print("|---|---:|" + "---:|" * (len(pairs) + 5))
    for model in MODELS:
        documents = [json.loads(p.read_text())
                     for p in sorted((RESULTS / FOLDER).glob(f"{model}_s*.json"))]
        if not documents:
            print(f"| {model} | 0 | missing |")
            continue

        def cell(key: str, docs: list = documents) -> str:
            values = [d["metrics"]["test"][key] for d in docs]
            if len(values) == 1:
                return f"{values[0]:.4f}"
            return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"

        parameters = documents[0]["parameters"]
        flows = documents[0].get("flows", {})
        kept = f"{flows['kept_count']}/{flows['total']}" if flows else "–"
        epochs = "/".join(f"{d.get('search', {}).get('epochs', 0)}+{d['timing']['epochs']}"
                          for d in documents)
        print(f"| {model} | {len(documents)} | " + " | ".join(cell(p) for p in pairs)
              + f" | {cell('auc_mean')} | {parameters['dense']:,} | "
              f"{parameters['adapters']:,} | {kept} | {epochs} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--search-epochs", type=int, default=2)
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args()
    if not args.report:
        run([int(s) for s in args.seeds.split(",")], args.epochs, args.search_epochs,
            args.force)
    report()


if __name__ == "__main__":
    main()
