"""Issue 15 scale benchmarks: generate, ingest, cluster and one MF-BPR epoch at growing sizes.

Each stage runs in its own process (so ``peak_rss_bytes`` is that stage's) under the shared lock
with 1 torch thread, and writes ``benchmarks/results/scale/<stage>_<size>[_<method>].json`` with
``interactions, users, items, stage, seconds, peak_rss_bytes`` (plus the stage's own figures).
Sizes keep the issue's ratio 10M users x 1M items x 100M interactions: ``K`` interactions,
``K/10`` users, ``K/100`` items. Data goes to ``$SLIMREC_SCALE_DIR`` (default
``/tmp/slimrec-scale``), never into the repository.

    python benchmarks/scale.py --sizes 1M,10M                 # every stage of each size
    python benchmarks/scale.py --sizes 1M --stages epoch --methods hash
    python benchmarks/scale.py --plot                          # the log-log plot from the JSONs

The epoch stage trains one epoch of MF-BPR (dim 64, batch 4096, lr 1e-3) at a 1% budget (``full``
and ``quantized`` with row-sparse gradients and lazy Adam: they hold one fp32 row per id) with
the run's validation split left out of training-time checks, then evaluates Recall@20 and
NDCG@20 on a seeded sample of 10,000 test users: ``numpy.random.default_rng(0).choice`` over the
users with at least one test item, without replacement, sorted; every sampled user is ranked
against all items (train and val items excluded), 256 users per scoring chunk.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "scale"
DATA = Path(os.environ.get("SLIMREC_SCALE_DIR", "/tmp/slimrec-scale"))
LOCK = "/tmp/slimrec-bench.lock"
STAGES = ("generate", "ingest", "cluster", "epoch")
# method[@budget] (default 1%): quantized cannot go below ~5% (1 bit per value plus its
# per-row scales), so it is also run at 6%, the nearest budget it meets; ``full`` is the
# uncompressed fp32 table (row-sparse gradients, lazy Adam).
METHODS = ("graph_popularity", "quantized", "hash", "quantized@6%", "full")
SPARSE_GRAD_METHODS = ("full", "quantized")
SAMPLE_USERS = 10_000


def parse_count(text: str) -> int:
    scale = {"k": 10**3, "M": 10**6, "B": 10**9}.get(text[-1:], 1)
    return int(float(text.rstrip("kMB")) * scale)


def sizes_of(label: str) -> dict[str, int]:
    interactions = parse_count(label)
    return {"interactions": interactions, "users": interactions // 10,
            "items": interactions // 100}


def folder(label: str) -> Path:
    return DATA / label


def write(name: str, document: dict[str, Any]) -> None:
    from slimrec.io import atomic_write_json

    atomic_write_json(RESULTS / f"{name}.json", document)
    shown = {k: v for k, v in document.items() if not isinstance(v, dict | list)}
    print(json.dumps(shown))


def base(label: str, stage: str, seconds: float) -> dict[str, Any]:
    from slimrec.env import environment, peak_rss_bytes

    return {**sizes_of(label), "label": label, "stage": stage, "seconds": seconds,
            "peak_rss_bytes": peak_rss_bytes(), "environment": environment(),
            "command": " ".join(["python", *sys.argv])}


def current_rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def stage_generate(label: str) -> None:
    from slimrec.data.scale import SynthSpec, generate_synthetic

    size = sizes_of(label)
    before = current_rss_bytes()
    meta = generate_synthetic(folder(label), SynthSpec(size["users"], size["items"],
                                                       size["interactions"]), progress=print)
    document = base(label, "generate", meta["seconds"])
    document.update(rss_before_bytes=before, written=meta["interactions"],
                    chunks=len(meta["files"]),
                    parquet_bytes=sum((folder(label) / f["name"]).stat().st_size
                                      for f in meta["files"]))
    write(f"generate_{label}", document)


def load(label: str) -> tuple[Any, dict[str, Any]]:
    from slimrec.data.scale import ingest

    return ingest(folder(label), val_fraction=0.1, test_fraction=0.2, seed=0)


def stage_ingest(label: str) -> None:
    from slimrec.data.scale import remove_cache

    remove_cache(folder(label))
    before = current_rss_bytes()  # the interpreter, numpy, polars, torch (slimrec.env)
    _, report = load(label)
    document = base(label, "ingest", report["seconds"])
    document.update({key: report[key] for key in ("csr_bytes", "train", "val", "test")})
    document["rss_before_bytes"] = before
    document["rss_over_csr"] = document["peak_rss_bytes"] / report["csr_bytes"]
    document["rss_growth_over_csr"] = (document["peak_rss_bytes"] - before) / report["csr_bytes"]
    start = time.perf_counter()
    load(label)
    document["cached_seconds"] = time.perf_counter() - start
    write(f"ingest_{label}", document)


def stage_cluster(label: str) -> None:
    from slimrec.graph.clustering import BipartiteGraph, barber_modularity

    data, _ = load(label)
    start = time.perf_counter()
    graph = BipartiteGraph(data.train)
    clustering = graph.cluster(resolution=1.0, algorithm="leiden", objective="barber")
    seconds = time.perf_counter() - start
    document = base(label, "cluster", seconds)
    document.update(edges=int(data.train.nnz), leiden_seconds=clustering.seconds,
                    clusters=clustering.num_clusters,
                    barber_modularity=barber_modularity(data.train, clustering.labels))
    write(f"cluster_{label}", document)


def sampled_test(data: Any, seed: int = 0) -> Any:
    """``data`` with the test split cut to a seeded sample of SAMPLE_USERS test users."""
    import numpy as np
    import scipy.sparse as sp

    users = np.flatnonzero(np.diff(data.test.indptr))
    if users.size > SAMPLE_USERS:
        users = np.sort(np.random.default_rng(seed).choice(users, SAMPLE_USERS, replace=False))
    keep = np.zeros(data.num_users, dtype=np.float32)
    keep[users] = 1.0
    test = sp.csr_matrix(sp.diags(keep) @ data.test)
    return data.with_splits(data.train, data.val, test), int(users.size)


def stage_epoch(label: str, spec: str) -> None:
    import numpy as np

    from slimrec.errors import BudgetError
    from slimrec.eval.ranking import evaluate_ranking
    from slimrec.spine import apply_threads, build_model
    from slimrec.tasks import RetrievalConfig
    from slimrec.train.loop import fit

    method, _, budget = spec.partition("@")
    budget = None if method == "full" else budget or "1%"
    name = f"epoch_{label}_{method}" + ("" if budget in ("1%", None)
                                        else f"_{budget.rstrip('%')}pct")
    data, _ = load(label)
    # Tables with one fp32 row per id (the full table; quantized's QAT shadow weights) train
    # with row-sparse gradients and lazy Adam: a dense Adam step would read and write all
    # 11M x 64 rows and both moments (~11 GB at 100M) for 4,096 pairs.
    params = {"sparse_grad": True} if method in SPARSE_GRAD_METHODS else {}
    config = RetrievalConfig(dataset=f"synth-{label}", dim=64, embedding=method, budget=budget,
                             embedding_params=params, threads=1, seed=0, progress=False,
                             train={"epochs": 1, "batch_size": 4096, "lr": 1e-3,
                                    "l2": 0.0})
    apply_threads(config)
    start = time.perf_counter()
    try:
        model = build_model(config, data)
    except BudgetError as error:
        document = base(label, "epoch", time.perf_counter() - start)
        document.update(method=method, budget=budget, status="infeasible", error=str(error))
        write(name, document)
        return
    build_seconds = time.perf_counter() - start
    # No validation pass inside the epoch (a full-ranking pass over 10% of 10M users is not
    # the point here); the sampled test evaluation follows.
    no_val = data.with_splits(data.train, _empty(data), data.test)
    result = fit(model, no_val, config)
    sampled, users = sampled_test(data)
    evaluation = evaluate_ranking(model.scorer(), sampled, "test", ks=(20,),
                                  metrics=("recall", "ndcg"), batch_size=256)
    steps = int(np.ceil(data.train.nnz / config.train.batch_size))
    epoch = result.epoch_seconds[0]
    full = model.full_embedding_bytes()
    document = base(label, "epoch", epoch)
    document.update(
        method=method, budget=budget, status="done", model="mf", dim=64, batch_size=4096,
        build_seconds=build_seconds, epoch_seconds=epoch, steps=steps,
        steps_per_second=steps / epoch, rows_per_second=data.train.nnz / epoch,
        loss=result.history[0]["loss"],
        memory_bytes={"embeddings": model.embedding_bytes(), "full_fp32_embeddings": full,
                      "dense": model.dense_bytes(), "model_total": model.memory_bytes()},
        # What the uncompressed table would need to train: fp32 rows + Adam's two moments.
        full_table_training_bytes=3 * full,
        metrics={"test_sampled": evaluation.metrics}, sampled_test_users=users,
        eval_seconds=evaluation.seconds, embedding={"method": method, "budget": budget,
                                                    "tables": model.table_report()})
    write(name, document)


def _empty(data: Any) -> Any:
    import scipy.sparse as sp

    return sp.csr_matrix(data.test.shape, dtype=data.test.dtype)


def run_stage(args: argparse.Namespace) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.stage == "epoch":  # only training loads torch: the data stages' RSS is their own
        import torch

        torch.set_num_threads(1)
        stage_epoch(args.size, args.method)
    else:
        {"generate": stage_generate, "ingest": stage_ingest,
         "cluster": stage_cluster}[args.stage](args.size)


def plot() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    documents = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))]
    documents = [d for d in documents
                 if d.get("stage") in STAGES and d.get("status") != "infeasible"]
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    series: dict[str, list[tuple[int, float, float]]] = {}
    for d in documents:
        key = d["stage"] if d["stage"] != "epoch" else f"epoch {d['method']} {d['budget'] or ''}"
        series.setdefault(key, []).append((d["interactions"], d["seconds"],
                                           d["peak_rss_bytes"] / 2**30))
    for key, points in sorted(series.items()):
        points.sort()
        x = [p[0] for p in points]
        axes[0].plot(x, [p[1] for p in points], "o-", label=key)
        axes[1].plot(x, [p[2] for p in points], "o-", label=key)
    for axis, ylabel in zip(axes, ("seconds (1 thread)", "peak RSS (GiB)"), strict=True):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("interactions")
        axis.set_ylabel(ylabel)
        axis.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.suptitle("SlimRec at scale (issue 15): K interactions, K/10 users, K/100 items")
    figure.tight_layout()
    figure.savefig(RESULTS / "scaling.png", dpi=120)
    print(f"wrote {RESULTS / 'scaling.png'}")


def table() -> None:
    """The markdown table of every stage document (BENCHMARKS.md, "Scale (issue 15)")."""
    rows = ["| size | stage | method | seconds | peak RSS | figures |", "|---|---|---|---|---|---|"]
    documents = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))]
    order = {stage: n for n, stage in enumerate(STAGES)}
    documents = sorted((d for d in documents if d.get("stage") in order),
                       key=lambda d: (d["interactions"], order[d["stage"]], d.get("method", "")))
    for d in documents:
        figures = ""
        if d["stage"] == "generate":
            figures = (f"{d['written']:,} pairs written, "
                       f"{d['parquet_bytes'] / 2**20:.0f} MiB Parquet")
        elif d["stage"] == "ingest":
            figures = (f"CSR {d['csr_bytes'] / 2**20:.0f} MiB; RSS growth "
                       f"{d['rss_growth_over_csr']:.1f}x CSR; cached {d['cached_seconds']:.2f}s")
        elif d["stage"] == "cluster":
            figures = (f"{d['edges']:,} edges, {d['clusters']} clusters, Barber Q "
                       f"{d['barber_modularity']:.3f}")
        elif d.get("status") == "infeasible":
            figures = "infeasible: " + d["error"].split(": ", 1)[1].split(". Raise")[0]
        else:
            memory = d["memory_bytes"]
            figures = (f"{d['budget'] or 'full'}: {memory['embeddings'] / 2**20:.2f} MiB of "
                       f"{memory['full_fp32_embeddings'] / 2**20:.0f} MiB; "
                       f"{d['steps_per_second']:.1f} steps/s; build {d['build_seconds']:.1f}s; "
                       f"R@20 {d['metrics']['test_sampled']['recall@20']:.4f} (10k users)")
        rows.append(f"| {d['label']} | {d['stage']} | {d.get('method', '')} | "
                    f"{d['seconds']:.1f} | {d['peak_rss_bytes'] / 2**30:.2f} GiB | {figures} |")
    print("\n".join(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1M,10M")
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--plot", action="store_true")
    parser.add_argument("--table", action="store_true", help="print the markdown table")
    parser.add_argument("--stage", help=argparse.SUPPRESS)  # one stage, in this process
    parser.add_argument("--size", help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        run_stage(args)
        return
    if args.plot:
        plot()
        return
    if args.table:
        table()
        return
    for label in args.sizes.split(","):
        for stage in args.stages.split(","):
            methods = args.methods.split(",") if stage == "epoch" else [None]
            for method in methods:
                command = [sys.executable, __file__, "--stage", stage, "--size", label]
                command += ["--method", method] if method else []
                print("$", " ".join(command), flush=True)
                subprocess.run(["flock", LOCK, *command], check=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})


if __name__ == "__main__":
    main()
