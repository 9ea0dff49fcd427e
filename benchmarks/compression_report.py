"""The issue-3 table: every compressed-table cell on Gowalla (MF-BPR, dim 64) against the full one.

    python benchmarks/compression_report.py

Reads the cells written by ``compression_gowalla.py`` and ``compression_gowalla_sparse.py``
(``benchmarks/results/gowalla_mf_<method>_<budget>.json``) and prints one markdown table, budget
by budget; cells that have not run are listed below it.
"""

from __future__ import annotations

import json

from common import RESULTS
from compression_gowalla import BUDGETS, FINETUNED, TRAINED, summary
from compression_gowalla_sparse import POST_TRAINING
from compression_gowalla_sparse import TRAINED as SPARSE

METHODS = (*TRAINED, "svd", FINETUNED, *SPARSE, POST_TRAINING)


def main() -> None:
    full = json.loads((RESULTS / "gowalla_mf_full_full.json").read_text())
    documents, missing = [], []
    for budget in BUDGETS:
        for method in METHODS:
            path = RESULTS / f"gowalla_mf_{method}_{budget}.json"
            if path.is_file():
                documents.append(json.loads(path.read_text()))
            else:
                missing.append(f"{method}@{budget}")
    print(summary(documents, full))
    if missing:
        print(f"\nNot run: {', '.join(missing)}")


if __name__ == "__main__":
    main()
