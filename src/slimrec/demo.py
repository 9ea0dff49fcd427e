"""``slimrec demo``: the main job on the embedded synthetic data, offline, in under a minute.

Trains MF-BPR with the full table and with a few compression methods at a 10% budget (two
hashing baselines, low-bit quantization, and the graph family: the paper's GraphHash, ``graph``
with spare rows for frequent ids, ``graph_popularity`` with popularity levels), then prints
accuracy against memory and draws the Pareto plot (``pareto.png``, as ``slimrec bench`` does).
Every run is written under the output folder.
"""

from __future__ import annotations

from pathlib import Path

from slimrec.bench.report import write_report
from slimrec.budget import format_bytes
from slimrec.embeddings import METHODS
from slimrec.io import atomic_write_text
from slimrec.spine import load_config, prepare, run
from slimrec.tasks import RunConfig

# The methods the demo compares, in display order, when they are registered. Few enough that
# the demo stays under a minute on two cores (issue 12).
DEMO_METHODS = ("hash", "double_frequency", "quantized", "graphhash", "graph",
                "graph_popularity")
DEMO_BUDGET = "10%"


def demo_configs(out: Path, progress: bool) -> list[RunConfig]:
    # One thread: at this size a second one buys little, and on a busy machine its spin-waits
    # cost ten times the work (the demo took 540 s of wall time with two, under load).
    common = {"task": "retrieval", "dataset": "synthetic", "dim": 32, "progress": progress,
              "threads": 1, "ks": [10, 20],
              "train": {"epochs": 30, "lr": 5e-3, "batch_size": 2048, "eval_every": 3,
                        "patience": 2}}
    configs = [load_config(overrides={**common, "embedding": "full", "out": str(out / "full")})]
    configs += [load_config(overrides={**common, "embedding": method, "budget": DEMO_BUDGET,
                                       "out": str(out / method)})
                for method in DEMO_METHODS if method in METHODS]
    return configs


def run_demo(out: Path, progress: bool = True) -> list[dict]:
    configs = demo_configs(out, progress)
    data = prepare(configs[0])
    stats = data.stats()
    print(f"synthetic data: {stats['users']:,} users, {stats['items']:,} items, "
          f"{stats['train']:,} train / {stats['val']:,} val / {stats['test']:,} test")
    documents = []
    for config in configs:
        label = config.embedding + (f" @ {config.budget}" if config.budget else "")
        print(f"training MF-BPR, {label} ...", flush=True)
        documents.append(run(config, command="slimrec demo", data=data))
    table = _summary(documents)
    print()
    print(table)
    atomic_write_text(out / "summary.md", table + "\n")
    paths = write_report(out, documents, title="slimrec demo (synthetic, MF-BPR)")
    print(f"\nruns written under {out}/ (results.json, model.safetensors per method); "
          f"Pareto plot: {paths['plot']}")
    best = max(documents[1:] or documents, key=lambda doc: doc["metrics"]["test"]["recall@20"])
    print(f"\nserve the best {DEMO_BUDGET} model over HTTP (pip install 'slimrec[serve]'):\n"
          f"  slimrec serve {out / best['embedding']['method']}")
    return documents


def _summary(documents: list[dict]) -> str:
    full = documents[0]
    full_recall = full["metrics"]["test"]["recall@20"]
    rows = ["| method | budget | embedding bytes | vs full | recall@20 | ndcg@20 "
            "| % of full recall |",
            "|---|---|---:|---:|---:|---:|---:|"]
    for document in documents:
        memory = document["memory_bytes"]
        test = document["metrics"]["test"]
        rows.append(
            f"| {document['embedding']['method']} | {document['embedding']['budget'] or '-'} "
            f"| {format_bytes(memory['embeddings'])} "
            f"| {memory['embeddings'] / memory['full_fp32_embeddings']:.1%} "
            f"| {test['recall@20']:.4f} | {test['ndcg@20']:.4f} "
            f"| {test['recall@20'] / full_recall:.0%} |")
    rows.append("")
    rows.append("recall@20 = hits in top 20 / |test items| per user, averaged over test users; "
                "training and validation items are excluded from the ranking; equal scores "
                "are ordered by a seeded random item order, not by id.")
    return "\n".join(rows)
