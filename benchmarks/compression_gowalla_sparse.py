"""MF-BPR on Gowalla (dim 64) with the pruned, dynamic-sparse, mixed-dim and quantized tables.

    flock /tmp/slimrec-bench.lock python benchmarks/compression_gowalla_sparse.py \\
        --data-dir ../shared/data

Budgets of 25%, 10% and 5% of the user and item tables' full fp32 bytes (each table gets the
same fraction of its own bytes). Every method
trains from scratch under the shared protocol (``protocol.GOWALLA_MF``): ``pruned`` (PEP soft
thresholds, exported as CSR), ``dynamic_sparse`` (fixed-density prune-and-regrow, CSR),
``mixed_dim`` (frequency-bucketed dims with projections) and ``quantized`` (quantization-aware
training, exported as packed codes with fp16 per-row scale and offset). ``quantized-ptq`` is
post-training min-max quantization of the full-table run of ``benchmarks/mf_full.py`` (trained
here first if its artifact is missing). Each cell writes
``benchmarks/results/gowalla_mf_<method>_<budget>.json`` as soon as it finishes; a cell whose
file exists is skipped, so an interrupted sweep resumes. Ends with a markdown table of every
cell against the full table.
"""

from __future__ import annotations

import argparse

from common import retrieval_config, run_cell, updated
from compression_gowalla import post_training_cell, summary
from protocol import GOWALLA_MF

TRAINED = ("pruned", "dynamic_sparse", "mixed_dim", "quantized")
POST_TRAINING = "quantized-ptq"
BUDGETS = ("0.25", "0.1", "0.05")
# The schedules count optimizer steps. GOWALLA_MF runs at most 20 epochs of ceil(729,115 / 4096)
# = 179 steps (90% of the 810,128 training pairs; 10% is validation): 3,580 steps. Pruning
# reaches the budget halfway, and the mask stops changing after three quarters, leaving the
# remaining epochs to fit the final structure before early stopping looks at it.
PARAMS = {"pruned": {"prune_steps": 1790}, "dynamic_sparse": {"decay_steps": 2685}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--methods", nargs="+", default=[*TRAINED, POST_TRAINING],
                        choices=[*TRAINED, POST_TRAINING])
    parser.add_argument("--budgets", nargs="+", default=list(BUDGETS))
    parser.add_argument("--force", action="store_true", help="rerun cells whose results exist")
    args = parser.parse_args()

    full = retrieval_config(GOWALLA_MF, data_dir=args.data_dir)
    full_document = run_cell(full)
    documents = []
    for budget in args.budgets:
        for method in args.methods:
            if method == POST_TRAINING:
                document = post_training_cell(full, "quantized", POST_TRAINING, budget,
                                              args.force)
                # Both quantized rows record method "quantized"; tell them apart in the table.
                documents.append({**document, "embedding": {**document["embedding"],
                                                            "method": POST_TRAINING}})
            else:
                config = updated(full, embedding=method, budget=budget,
                                 embedding_params=PARAMS.get(method, {}))
                documents.append(run_cell(config, force=args.force))
    print()
    print(summary(documents, full_document))


if __name__ == "__main__":
    main()
