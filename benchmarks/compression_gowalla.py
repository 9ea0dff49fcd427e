"""MF-BPR on Gowalla (dim 64) with the hashing, QR, low-rank, SVD and TT tables at 25/10/5%.

    flock /tmp/slimrec-bench.lock python benchmarks/compression_gowalla.py --data-dir ../shared/data

Every method trains from scratch under the shared protocol (``protocol.GOWALLA_MF``) with the
budget a fraction of the user and item tables' fp32 bytes (each table gets the same fraction of
its own bytes), except ``svd``, which is post-training: it
compresses this sweep's full-table run (``gowalla_mf_full_full``, the cell every Gowalla sweep
shares; trained here first if its artifact is missing) by truncated SVD, once as is and once
fine-tuned with the protocol's settings
(``svd-finetune``). Each cell writes ``benchmarks/results/gowalla_mf_<method>_<budget>.json``
as soon as it finishes; a cell whose file exists is skipped, so an interrupted sweep resumes.
Ends with a markdown table of every cell against the full table.
"""

from __future__ import annotations

import argparse
import json

from common import RESULTS, RUNS, cell_name, command, retrieval_config, run_cell, updated
from protocol import GOWALLA_MF
from slimrec.compress import compress_run
from slimrec.env import peak_rss_bytes
from slimrec.io import atomic_write_json
from slimrec.tasks import RetrievalConfig

TRAINED = ("hash", "double_hash", "frequency_hash", "double_frequency", "qr", "lowrank", "tt")
BUDGETS = ("0.25", "0.1", "0.05")
FINETUNED = "svd-finetune"


def svd_cell(full: RetrievalConfig, budget: str, finetune_epochs: int, force: bool) -> dict:
    """Compress the full-table run by truncated SVD (then fine-tune if asked) and record it."""
    label = FINETUNED if finetune_epochs else "svd"
    return post_training_cell(full, "svd", label, budget, force, finetune_epochs=finetune_epochs)


def post_training_cell(full: RetrievalConfig, method: str, label: str, budget: str, force: bool,
                       finetune_epochs: int = 0) -> dict:
    """Compress the full-table run with ``method`` after training and record it as ``label``."""
    name = f"{full.dataset}_{full.model}_{label}_{budget}"
    path = RESULTS / f"{name}.json"
    if path.is_file() and not force:
        print(f"[skip] {name}: {path} exists")
        return json.loads(path.read_text())
    full_dir = RUNS / cell_name(full)
    if not (full_dir / "model.safetensors").is_file():
        run_cell(full, force=True)  # a committed result may exist without its artifact
    document = compress_run(full_dir, method, budget, out=RUNS / name,
                            finetune_epochs=finetune_epochs,
                            overrides={"data_dir": full.data_dir, "progress": full.progress},
                            command=command())
    document["peak_rss_bytes"] = peak_rss_bytes()
    document["bench"] = {"method": label, "budget": budget}  # the report's label
    atomic_write_json(path, document)
    print(f"[done] {name}: recall@20={document['metrics']['test']['recall@20']:.4f}")
    return document


def summary(documents: list[dict], full: dict) -> str:
    """Markdown table: accuracy, exact bytes and timings of each cell against the full table."""
    full_recall = full["metrics"]["test"]["recall@20"]
    rows = ["| method | budget | embedding bytes (of full) | recall@20 | ndcg@20 "
            "| % of full recall@20 | epochs (best) | median epoch s | test eval s |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for document in [full, *documents]:
        test, timing, memory = (document["metrics"]["test"], document["timing"],
                                document["memory_bytes"])
        label = document.get("bench", {}).get("method", document["embedding"]["method"])
        share = memory["embeddings"] / memory["full_fp32_embeddings"]
        rows.append(
            f"| {label} | {document['embedding']['budget'] or '-'} "
            f"| {memory['embeddings']:,} ({share:.1%}) "
            f"| {test['recall@20']:.4f} | {test['ndcg@20']:.4f} "
            f"| {100 * test['recall@20'] / full_recall:.0f}% "
            f"| {timing['epochs']} ({timing['best_epoch']}) "
            f"| {timing['epoch_seconds_median']:.2f} | {timing['eval_seconds']:.2f} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=GOWALLA_MF["data_dir"])
    parser.add_argument("--methods", nargs="+", default=[*TRAINED, "svd", FINETUNED],
                        choices=[*TRAINED, "svd", FINETUNED])
    parser.add_argument("--budgets", nargs="+", default=list(BUDGETS))
    parser.add_argument("--finetune-epochs", type=int, default=5,
                        help="fine-tuning epochs of svd-finetune (early stopping still applies)")
    parser.add_argument("--force", action="store_true", help="rerun cells whose results exist")
    args = parser.parse_args()

    full = retrieval_config(GOWALLA_MF, data_dir=args.data_dir)
    full_document = run_cell(full)
    documents = []
    for budget in args.budgets:
        for method in args.methods:
            if method in TRAINED:
                config = updated(full, embedding=method, budget=budget)
                documents.append(run_cell(config, force=args.force))
            else:
                epochs = args.finetune_epochs if method == FINETUNED else 0
                documents.append(svd_cell(full, budget, epochs, args.force))
    print()
    print(summary(documents, full_document))


if __name__ == "__main__":
    main()
