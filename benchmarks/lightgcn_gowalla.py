"""LightGCN with the full fp32 tables on Gowalla (LightGCN split): test Recall@20 against epochs.

    nohup python benchmarks/lightgcn_gowalla.py > runs/lightgcn_gowalla.log 2>&1 &

Runs the ``<dataset>_lightgcn_full_100pct_s0`` cell of a sweep config (default
``benchmarks/gowalla_lightgcn_target.yaml``: the LightGCN paper's protocol with batch 65536 /
lr 2e-2 and step decays, 800 epochs; see the YAML), so ``slimrec bench`` on that config then
skips it. On top of the sweep, the test split is evaluated at each milestone epoch: a learning
curve, not model selection (the reported number is the last epoch's, as in the paper, which
trains on the whole train file without early stopping). Published: Recall@20 0.1830 after 1000
epochs at batch 2048.

Resumable: training checkpoints every epoch into the cell's run folder (the sweep's checkpoint),
and finished milestones are kept in ``<sweep out>/lightgcn_full_curve.json``. With ``--lock``
the file is locked only while a milestone trains and evaluates, so other heavy jobs on a shared
machine get turns between milestones.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from common import command, updated
from slimrec.bench.sweep import CHECKPOINT_FILE, BenchConfig, cells
from slimrec.config import layered_config
from slimrec.env import peak_rss_bytes
from slimrec.eval.ranking import evaluate_ranking
from slimrec.io import atomic_write_json, file_lock
from slimrec.spine import apply_threads, build_model, finish, prepare
from slimrec.train.loop import fit

BENCHMARKS = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(BENCHMARKS / "gowalla_lightgcn_target.yaml"))
    parser.add_argument("--data-dir", help="override the sweep's data_dir")
    parser.add_argument("--lock", help="file to flock while each milestone runs")
    parser.add_argument("--milestones", default="50,100,150,200,300,400,500,600,700",
                        help="epochs (before the cell's last) at which to evaluate the test split")
    args = parser.parse_args()
    bench = layered_config(BenchConfig, args.config, {"data_dir": args.data_dir})
    name = f"{bench.dataset}_lightgcn_full_100pct_s0"
    cell = next(c for c in cells(bench) if c.name == name)
    config, curve_path = cell.config, Path(bench.out) / "lightgcn_full_curve.json"
    if cell.result_path(bench).is_file():
        print(f"{cell.result_path(bench)} exists: the cell is finished.")
        return
    milestones = sorted({*(int(m) for m in args.milestones.split(",")), config.train.epochs})
    apply_threads(config)
    start = time.perf_counter()
    data = prepare(config)
    model = build_model(config, data)
    preprocess_seconds = time.perf_counter() - start
    curve = json.loads(curve_path.read_text()) if curve_path.is_file() else {"points": []}
    curve["config"] = config.model_dump(mode="json")
    done = {point["epoch"] for point in curve["points"]}
    checkpoint = Path(config.out) / CHECKPOINT_FILE
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    for milestone in milestones:
        with file_lock(args.lock):
            # Resumes from the checkpoint: the state after the last finished epoch. The lr
            # schedule depends on the epoch only, so stopping at a milestone does not change it.
            result = fit(model, data, updated(config, train={"epochs": milestone}),
                         checkpoint=checkpoint)
            if milestone in done:
                continue
            test = evaluate_ranking(model.scorer(), data, "test", ks=(20,),
                                    metrics=("recall", "ndcg"))
        curve["points"].append({
            "epoch": milestone, **test.metrics, "train_seconds": result.train_seconds,
            "epoch_seconds_median": float(torch.tensor(result.epoch_seconds).median()),
            "eval_seconds": test.seconds})
        atomic_write_json(curve_path, curve)
        print(f"epoch {milestone}: recall@20 {test.metrics['recall@20']:.4f} ndcg@20 "
              f"{test.metrics['ndcg@20']:.4f}; train {result.train_seconds:.0f}s, median epoch "
              f"{curve['points'][-1]['epoch_seconds_median']:.1f}s", flush=True)
    # As the sweep's own cells record it (slimrec.bench.sweep.run_cell).
    info = {"cell": cell.name, "budget": None if config.budget is None else str(config.budget)}
    with file_lock(args.lock):
        document = finish(config, model, data, result, preprocess_seconds, command=command(),
                          extra={"status": "done", "bench": info, "curve": curve["points"]})
    document["peak_rss_bytes"] = peak_rss_bytes()
    atomic_write_json(cell.result_path(bench), document)
    checkpoint.unlink(missing_ok=True)
    print(f"final: recall@20 {document['metrics']['test']['recall@20']:.4f} after "
          f"{document['timing']['epochs']} epochs; wrote {cell.result_path(bench)}")


if __name__ == "__main__":
    main()
