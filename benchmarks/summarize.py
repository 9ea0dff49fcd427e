"""Print markdown tables of every committed results file (retrieval and CTR).

    python benchmarks/summarize.py > /tmp/tables.md
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _rows() -> list[dict]:
    rows = []
    # Sweep folders keep one file per cell under <sweep>/cells/; curves and reports are skipped.
    for path in sorted(RESULTS.rglob("*.json")):
        document = json.loads(path.read_text())
        if not isinstance(document, dict) or "metrics" not in document:
            continue
        rows.append({"file": path.relative_to(RESULTS).with_suffix("").as_posix(), **document})
    return rows


def main() -> None:
    rows = _rows()
    print("| results file | task | model | method | budget | emb. bytes | % full | "
          "test metrics | epochs | median epoch s |")
    print("|---|---|---|---|---|---:|---:|---|---:|---:|")
    for row in rows:
        memory, test = row["memory_bytes"], row["metrics"]["test"]
        keys = [k for k in ("recall@20", "ndcg@20", "auc", "logloss") if k in test]
        metrics = ", ".join(f"{k} {test[k]:.4f}" for k in keys)
        print(f"| {row['file']} | {row.get('task', '')} | {row['model']} "
              f"| {row['embedding']['method']} | {row['embedding'].get('budget') or '-'} "
              f"| {memory['embeddings']:,} "
              f"| {memory['embeddings'] / memory['full_fp32_embeddings']:.1%} | {metrics} "
              f"| {row['timing']['epochs']} | {row['timing']['epoch_seconds_median']:.2f} |")


if __name__ == "__main__":
    main()
