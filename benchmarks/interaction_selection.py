"""Feature-interaction selection on Frappe and MovieLens-1M CTR: the full-interaction model
against OptFeature and the field-level-only AutoFIS baseline at the same kept fraction of pairs.

    SLIMREC_BENCH_THREADS=1 python benchmarks/interaction_selection.py --seeds 0,1,2
    SLIMREC_BENCH_THREADS=1 python benchmarks/interaction_selection.py --dataset ml-1m \
        --models dcnv2 --seeds 0
    python benchmarks/interaction_selection.py --dataset ml-1m --models dcnv2 --report

Every cell uses the CTR grid's protocol (``ctr_grid.PROTOCOL``: dim 16, MLP 256-256, Adam 3e-3
with the plateau schedule, batch 4096, at most 30 epochs, early stopping on val AUC) with full
tables; selection cells first search for ``search_epochs`` (3), then rewind and retrain.

The first kept fraction of each model is fixed before any run, as the largest round fraction
that removes at least half of the interaction FLOPs of the full model without the value-level
gates (DeepFM's FM and DLRM's dots: 22 of 45 pairs; DCN-V2's cross network also keeps each
field's own block, so 18 of 45 pairs); DeepFM also runs at 0.4, because OptFeature's value-level
gates cost FLOPs of their own that are large beside an FM of dimension 16. ML-1M CTR (7 fields,
21 pairs) uses the same kept fractions, fixed before its runs. Each cell takes the benchmark
lock while it trains (unless ``--no-lock``); results go to
``benchmarks/results/interaction_selection/<dataset>_<model>_<variant>[_keep<k>]_s<seed>.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics

from common import RESULTS, ctr_config, run_cell
from ctr_grid import LOCK, PROTOCOL
from protocol import SHARED_DATA
from slimrec.io import file_lock
from slimrec.spine import prepare

FOLDER = "interaction_selection"
KEEP = {"deepfm": (0.5, 0.4), "dcnv2": (0.4,), "dlrm": (0.5,)}
VARIANTS = ("off", "optfeature", "autofis")


def config(dataset: str, model: str, variant: str, seed: int, keep: float):
    params = {"interaction_selection": {"method": variant, "keep": keep}}
    return ctr_config(PROTOCOL, dataset=dataset, data_dir=SHARED_DATA, model=model, seed=seed,
                      model_params=params if variant != "off" else {})


def name(dataset: str, model: str, variant: str, seed: int, keep: float) -> str:
    """The first kept fraction of a model is its default and is not named."""
    named = "" if variant == "off" or keep == KEEP[model][0] else f"_keep{keep}"
    return f"{FOLDER}/{dataset}_{model}_{variant}{named}_s{seed}"


def cells(model: str) -> list[tuple[str, float]]:
    """``(variant, keep)``: the full model once, each selector at each kept fraction."""
    return [("off", 1.0)] + [(variant, keep) for keep in KEEP[model]
                             for variant in VARIANTS[1:]]


def run(dataset: str, models: list[str], seeds: list[int], force: bool, lock: bool) -> None:
    (RESULTS / FOLDER).mkdir(parents=True, exist_ok=True)
    data = prepare(config(dataset, models[0], "off", seeds[0], 1.0))  # one split (data_seed 0)
    for seed in seeds:
        for model in models:
            for variant, keep in cells(model):
                with file_lock(LOCK if lock else None):
                    run_cell(config(dataset, model, variant, seed, keep),
                             name(dataset, model, variant, seed, keep), force, data=data)


def _mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def report(dataset: str, models: list[str]) -> None:
    """Markdown: per model and variant, test AUC/LogLoss (mean ± std over the seeds run), the
    kept pairs, the interaction FLOPs and parameters."""
    print("| model | selection | seeds | test AUC | test LogLoss | kept pairs | value-level "
          "pairs | interaction FLOPs/row | FLOPs removed | interaction params | epochs "
          "(search + train) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for model in models:
        for variant, keep in cells(model):
            stem = name(dataset, model, variant, 0, keep).removeprefix(f"{FOLDER}/")
            stem = stem.removesuffix("_s0")
            documents = [json.loads(path.read_text()) for path in
                         sorted((RESULTS / FOLDER).glob(f"{stem}_s*.json"))]
            label = variant if variant == "off" else f"{variant} (keep {keep})"
            if not documents:
                print(f"| {model} | {label} | 0 | missing | | | | | | | |")
                continue
            auc = [d["metrics"]["test"]["auc"] for d in documents]
            logloss = [d["metrics"]["test"]["logloss"] for d in documents]
            block = [d["interactions"] for d in documents]
            kept = "/".join(str(b["kept_pairs"]) for b in block)
            value = "/".join(str(b["value_level_pairs"]) for b in block)
            flops = "/".join(f"{b['flops_per_row']:,}" for b in block)
            removed = "/".join(f"{b['flops_removed_fraction']:.1%}" for b in block)
            params = "/".join(f"{b['params']:,}" for b in block)
            epochs = "/".join(f"{b.get('search', {}).get('epochs', 0)}+{d['timing']['epochs']}"
                              for b, d in zip(block, documents, strict=True))
            print(f"| {model} | {label} | {len(documents)} | {_mean_std(auc)} | "
                  f"{_mean_std(logloss)} | {kept} | {value} | {flops} | {removed} | {params} | "
                  f"{epochs} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="frappe", help="a CTR dataset: frappe, ml-1m, "
                        "ml-100k")
    parser.add_argument("--models", default="deepfm,dcnv2")
    parser.add_argument("--no-lock", action="store_true", help="do not take the benchmark lock")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args()
    models = args.models.split(",")
    if not args.report:
        run(args.dataset, models, [int(seed) for seed in args.seeds.split(",")], args.force,
            lock=not args.no_lock)
    report(args.dataset, models)


if __name__ == "__main__":
    main()
