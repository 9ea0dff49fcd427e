"""SlimRec against RecBole 1.2.1, side by side on this machine: epoch and full-ranking test.

Gowalla (LightGCN split, SlimRec's seeded 10% validation carve), MF-BPR (``--model mf``, the
default) or LightGCN with 3 layers (``--model lightgcn``), dim 64, batch 4096, one uniform
negative, Adam lr 1e-3. RecBole runs from its OWN virtualenv (never a SlimRec dependency),
created by ``--setup``:

    python benchmarks/speed_vs_recbole.py --setup            # once: ~/.cache/slimrec-bench/
    python benchmarks/speed_vs_recbole.py --threads 1,2      # ~10 min on a quiet machine
    python benchmarks/speed_vs_recbole.py --model lightgcn   # -> speed_vs_recbole_lightgcn.json

RecBole 1.2.1 needs numpy<2, pandas<2.2, scipy<1.13 and setuptools<70 (its pkg_resources use),
and ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` for its torch.load calls; torch stays at SlimRec's
2.13.0. torch 2.13 declares setuptools>=77, so pip cannot resolve both: setuptools<70 is installed
after the rest with ``--no-deps`` (torch does not import setuptools at run time).

Both libraries get the same train / valid / test pairs (SlimRec's split, written as RecBole atomic
files) and run alternately, each in a fresh process with the same torch thread count (and
OMP/MKL threads). Per library and thread count the JSON holds ``epoch_seconds_median`` (dense
Adam), ``eval_seconds_median`` (one full-ranking pass over the test users, wall clock of the
library's own evaluate call), and for MF SlimRec's ``epoch_seconds_median_sparse_grad``; per
thread count ``ratio_epoch`` / ``ratio_epoch_sparse_grad`` / ``ratio_eval`` = RecBole / SlimRec.
LightGCN's propagation touches every row, so it has no row-sparse (``sparse_grad``) variant.
RecBole evaluates 256 users per batch (its fastest setting here). ``--profile`` writes where
SlimRec's time goes (cProfile of one epoch and one test pass).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
RESULTS = HERE.parent / "results"
DEFAULT_VENV = Path.home() / ".cache" / "slimrec-bench" / "recbole-venv"
DEFAULT_DATA = Path.home() / ".cache" / "slimrec-bench" / "recbole-data"
SHARED_DATA = HERE.parents[2] / "shared" / "data"
RECBOLE_PINS = ["recbole==1.2.1", "numpy<2", "pandas<2.2", "scipy<1.13"]
DIM, BATCH, LR, EVAL_USERS_PER_BATCH, LAYERS = 64, 4096, 1e-3, 256, 3
MODELS = {"mf": "MF-BPR", "lightgcn": "LightGCN"}
# RecBole's objectives: BPR has no penalty term, LightGCN an L2 of weight 1e-5 (reg_weight) on
# the batch's layer-0 embeddings, SlimRec's l2 term: SlimRec gets the same so both compute one loss.
RECBOLE_L2 = {"mf": 0.0, "lightgcn": 1e-5}


# ---------------------------------------------------------------------------------------- setup
def setup_venv(venv: Path) -> None:
    """Create RecBole's virtualenv with SlimRec's torch (the local wheel if pip finds one)."""
    import torch

    torch_pin = f"torch=={torch.__version__.split('+')[0]}"
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    steps = [[sys.executable, "-m", "venv", str(venv)], [*pip, torch_pin],
             [*pip, *RECBOLE_PINS], [*pip, "--no-deps", "setuptools<70"]]
    for step in steps:
        print("$", " ".join(step), flush=True)
        subprocess.run(step, check=True)


def convert(data_dir: Path, out: Path) -> Path:
    """SlimRec's Gowalla split as RecBole atomic files ``gowalla.{train,valid,test}.inter``."""
    from slimrec.spine import prepare
    from slimrec.tasks import RetrievalConfig

    folder = out / "gowalla"
    if (folder / "gowalla.test.inter").is_file():
        return out
    folder.mkdir(parents=True, exist_ok=True)
    data = prepare(RetrievalConfig(dataset="gowalla", data_dir=str(data_dir), progress=False))
    for name, matrix in (("train", data.train), ("valid", data.val), ("test", data.test)):
        coo = matrix.tocoo()
        lines = "".join(f"{u}\t{i}\n" for u, i in zip(coo.row, coo.col, strict=True))
        (folder / f"gowalla.{name}.inter").write_text("user_id:token\titem_id:token\n" + lines)
    return out


# ---------------------------------------------------------------------------------------- workers
def recbole_worker(args: argparse.Namespace) -> dict[str, Any]:
    """Runs in RecBole's virtualenv: train ``epochs`` epochs, then ``evals`` test passes."""
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.general_recommender import BPR, LightGCN
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    items = int(args.items)
    recbole_model = {"mf": BPR, "lightgcn": LightGCN}[args.model]
    config = Config(model=recbole_model.__name__, dataset="gowalla", config_dict={
        "data_path": str(args.data), "benchmark_filename": ["train", "valid", "test"],
        "load_col": {"inter": ["user_id", "item_id"]}, "embedding_size": DIM,
        "train_batch_size": BATCH, "learning_rate": LR, "learner": "adam",
        "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1},
        "eval_args": {"mode": "full", "order": "RO", "group_by": "user"},
        "metrics": ["Recall", "NDCG"], "topk": [20], "valid_metric": "Recall@20",
        "eval_batch_size": EVAL_USERS_PER_BATCH * (items + 1), "epochs": args.epochs,
        "use_gpu": False, "device": "cpu", "show_progress": False, "seed": 0,
        "checkpoint_dir": str(args.data / "saved"), "worker": 0, "log_wandb": False,
        "n_layers": LAYERS})
    init_seed(config["seed"], config["reproducibility"])
    torch.set_num_threads(args.threads)
    dataset = create_dataset(config)
    train, _valid, test = data_preparation(config, dataset)
    model = recbole_model(config, train._dataset).to(config["device"])
    trainer = Trainer(config, model)
    epochs, evals = [], []
    for epoch in range(args.epochs):
        start = time.perf_counter()
        trainer._train_epoch(train, epoch, show_progress=False)
        epochs.append(time.perf_counter() - start)
    for _ in range(args.evals):
        start = time.perf_counter()
        metrics = trainer.evaluate(test, load_best_model=False, show_progress=False)
        evals.append(time.perf_counter() - start)
    return {"epoch_seconds": epochs, "eval_seconds": evals,
            "recall@20": float(metrics["recall@20"]), "threads": torch.get_num_threads()}


def slimrec_model(args: argparse.Namespace, sparse_grad: bool) -> tuple[Any, Any, Any]:
    from slimrec.spine import build_model, prepare
    from slimrec.tasks import RetrievalConfig

    model_params = {"num_layers": LAYERS} if args.model == "lightgcn" else {}
    config = RetrievalConfig(
        dataset="gowalla", data_dir=str(args.shared_data), model=args.model,
        model_params=model_params, dim=DIM, seed=0, progress=False,
        threads=args.threads, ks=[20], embedding_params={"sparse_grad": sparse_grad},
        train={"epochs": args.epochs, "batch_size": BATCH, "lr": LR, "l2": RECBOLE_L2[args.model],
               "eval_every": args.epochs + 1})
    data = prepare(config)
    return config, data, build_model(config, data)


def slimrec_worker(args: argparse.Namespace) -> dict[str, Any]:
    """Train ``epochs`` epochs (dense Adam, then for MF sparse_grad), then ``evals`` test
    passes."""
    import torch

    from slimrec.spine import apply_threads
    from slimrec.tasks import get_task
    from slimrec.train.loop import fit

    out: dict[str, Any] = {}
    for sparse_grad in (False, True) if args.model == "mf" else (False,):
        config, data, model = slimrec_model(args, sparse_grad)
        apply_threads(config)
        # Validation is not part of an epoch's seconds (the loop times the batches only).
        result = fit(model, data, config)
        out["epoch_seconds_sparse_grad" if sparse_grad else "epoch_seconds"] = \
            result.epoch_seconds
    task, evals = get_task("retrieval"), []
    for _ in range(args.evals):
        start = time.perf_counter()
        evaluation = task.evaluate(model, data, "test", config)
        evals.append(time.perf_counter() - start)
    return {**out, "eval_seconds": evals, "recall@20": evaluation.metrics["recall@20"],
            "threads": torch.get_num_threads()}


def profile(args: argparse.Namespace) -> str:
    """cProfile of one dense-Adam ``fit`` epoch and one test pass, top functions by own time.

    A first, unprofiled ``fit`` pays the lazy imports and allocator warm-up. ``fit`` ends its
    last epoch with a validation pass, so the epoch profile holds that pass too; the header
    gives the epoch's own seconds (``result.epoch_seconds``, what the speed table times).
    """
    import cProfile
    import io
    import pstats

    from slimrec.spine import apply_threads
    from slimrec.tasks import get_task
    from slimrec.train.loop import fit

    args.epochs = 1
    config, data, model = slimrec_model(args, sparse_grad=False)
    apply_threads(config)
    fit(model, data, config)
    report = io.StringIO()
    for label, work in (("one epoch (dense Adam) and its validation pass",
                         lambda: fit(model, data, config)),
                        ("one full-ranking test pass", lambda: get_task("retrieval").evaluate(
                            model, data, "test", config))):
        profiler = cProfile.Profile()
        start = time.perf_counter()
        result = profiler.runcall(work)
        epoch = getattr(result, "epoch_seconds", None)
        own = f" (the epoch alone: {epoch[-1]:.2f} s)" if epoch else ""
        report.write(f"## {label}: {time.perf_counter() - start:.2f} s wall{own}, "
                     f"{args.threads} thread(s)\n")
        pstats.Stats(profiler, stream=report).sort_stats("tottime").print_stats(18)
    return report.getvalue()


# ---------------------------------------------------------------------------------------- driver
def run_worker(python: Path, library: str, threads: int, args: argparse.Namespace,
               items: int) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
    command = [str(python), str(HERE), "--worker", library, "--threads", str(threads),
               "--epochs", str(args.epochs), "--evals", str(args.evals),
               "--data", str(args.data), "--shared-data", str(args.shared_data),
               "--model", args.model,
               "--items", str(items)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=args.data)
    if done.returncode:
        raise RuntimeError(f"{library} worker failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def summarise(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [second for run in runs for second in run.get(key, [])]
    return statistics.median(values) if values else None


def compare(args: argparse.Namespace) -> dict[str, Any]:
    from slimrec.env import environment
    from slimrec.io import atomic_write_json, file_lock

    convert(args.shared_data, args.data)
    items = _gowalla_items(args.shared_data)
    python = {"recbole": args.venv / "bin" / "python", "slimrec": Path(sys.executable)}
    document: dict[str, Any] = {"dataset": "gowalla", "model": MODELS[args.model], "dim": DIM,
                                "batch_size": BATCH, "recbole_eval_users_per_batch":
                                EVAL_USERS_PER_BATCH, "epochs_per_run": args.epochs,
                                "evals_per_run": args.evals, "repeats": args.repeats,
                                "command": " ".join(["python", *sys.argv]), "threads": {}}
    with file_lock("/tmp/slimrec-bench.lock"):
        document["load_average_start"] = os.getloadavg()
        for threads in args.threads:
            runs: dict[str, list[dict[str, Any]]] = {"recbole": [], "slimrec": []}
            for repeat in range(args.repeats):
                for library in ("recbole", "slimrec"):  # alternately, fresh processes
                    print(f"{threads} thread(s), repeat {repeat + 1}: {library} ...", flush=True)
                    runs[library].append(run_worker(python[library], library, threads, args,
                                                    items))
            cell = {library: {"epoch_seconds_median": summarise(done, "epoch_seconds"),
                              "eval_seconds_median": summarise(done, "eval_seconds"),
                              "runs": done} for library, done in runs.items()}
            rb, sr = cell["recbole"], cell["slimrec"]
            cell["ratio_epoch"] = rb["epoch_seconds_median"] / sr["epoch_seconds_median"]
            if args.model == "mf":
                sr["epoch_seconds_median_sparse_grad"] = summarise(
                    runs["slimrec"], "epoch_seconds_sparse_grad")
                cell["ratio_epoch_sparse_grad"] = (rb["epoch_seconds_median"]
                                                   / sr["epoch_seconds_median_sparse_grad"])
            cell["ratio_eval"] = rb["eval_seconds_median"] / sr["eval_seconds_median"]
            document["threads"][str(threads)] = cell
            print(json.dumps({key: value for key, value in cell.items()
                              if key.startswith("ratio")}), flush=True)
        document["load_average_end"] = os.getloadavg()
    document["environment"] = environment()
    atomic_write_json(args.out, document)
    return document


def _gowalla_items(shared_data: Path) -> int:
    import gzip

    with gzip.open(shared_data / "gowalla" / "item_list.txt.gz", "rt") as file:
        return sum(1 for _ in file) - 1  # a header line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--setup", action="store_true", help="create RecBole's virtualenv")
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="folder of the converted RecBole atomic files")
    parser.add_argument("--shared-data", type=Path, default=SHARED_DATA)
    parser.add_argument("--threads", type=lambda text: [int(t) for t in str(text).split(",")],
                        default=[1, 2])
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per run")
    parser.add_argument("--evals", type=int, default=3, help="timed test passes per run")
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs per library")
    parser.add_argument("--model", choices=sorted(MODELS), default="mf")
    parser.add_argument("--out", type=Path, default=None,
                        help="default: results/speed_vs_recbole.json (mf), "
                        "results/speed_vs_recbole_lightgcn.json (lightgcn)")
    parser.add_argument("--profile", action="store_true",
                        help="write SlimRec's profile to benchmarks/results/speed_profile.txt")
    parser.add_argument("--worker", choices=["recbole", "slimrec"], help=argparse.SUPPRESS)
    parser.add_argument("--items", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.out is None:
        suffix = "" if args.model == "mf" else f"_{args.model}"
        args.out = RESULTS / f"speed_vs_recbole{suffix}.json"
    if args.worker:
        args.threads = args.threads[0]
        worker = recbole_worker if args.worker == "recbole" else slimrec_worker
        print(json.dumps(worker(args)))
    elif args.setup:
        setup_venv(args.venv)
    elif args.profile:
        args.threads = args.threads[-1]
        text = profile(args)
        (RESULTS / "speed_profile.txt").write_text(text)
        print(text)
    else:
        compare(args)


if __name__ == "__main__":
    main()
