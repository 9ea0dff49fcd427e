"""Streaming encode of a Criteo-format file: throughput and peak memory against file size.

    flock /tmp/slimrec-bench.lock python benchmarks/ctr_streaming.py --rows 2000000

Writes a synthetic file in the Kaggle ``train.txt`` layout (tab-separated, no header; 13 integer
fields with blanks, 26 hashed categorical fields with Zipf-distributed values) to a temporary
folder, encodes it with ``encode_batches`` in chunks of ``--chunk-rows`` lines, and reports
rows/s, the text size, the encoded size and the peak RSS. Writes
``benchmarks/results/streaming_criteo_<rows>.json``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from common import RESULTS
from slimrec.budget import format_bytes
from slimrec.data.ctr_readers import criteo_batches
from slimrec.data.fields import encode_batches
from slimrec.env import environment, peak_rss_bytes
from slimrec.io import atomic_write_json


def write_criteo(path: Path, rows: int, seed: int = 0, block: int = 200_000) -> None:
    """``rows`` synthetic Criteo lines, written ``block`` rows at a time."""
    rng = np.random.default_rng(seed)
    with open(path, "w") as handle:
        for start in range(0, rows, block):
            count = min(block, rows - start)
            labels = (rng.random(count) < 0.25).astype(int).astype(str)
            numeric = rng.integers(0, 1000, (count, 13)).astype(str)
            numeric[rng.random((count, 13)) < 0.2] = ""
            categorical = np.char.add("v", (rng.zipf(1.3, (count, 26)) % 1_000_000).astype(str))
            table = np.concatenate([labels[:, None], numeric, categorical], axis=1)
            handle.write("\n".join("\t".join(row) for row in table) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--chunk-rows", type=int, default=500_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "train.txt"
        write_criteo(path, args.rows)
        text_bytes = path.stat().st_size
        rss_before = peak_rss_bytes()
        start = time.perf_counter()
        schema, batches = criteo_batches(path, args.chunk_rows)
        data = encode_batches("criteo", str(path), batches, schema, min_count=10)
        seconds = time.perf_counter() - start
    encoded = data.ids.nbytes + data.labels.nbytes + data.split.nbytes
    document = {"rows": data.num_rows, "chunk_rows": args.chunk_rows, "text_bytes": text_bytes,
                "encoded_bytes": encoded, "seconds": seconds,
                "rows_per_second": data.num_rows / seconds,
                "peak_rss_bytes": peak_rss_bytes(), "peak_rss_before_bytes": rss_before,
                "vocabulary_sizes": {f.name: f.num_embeddings for f in data.fields},
                "environment": environment()}
    atomic_write_json(RESULTS / f"streaming_criteo_{args.rows}.json", document)
    print(f"{data.num_rows:,} rows ({format_bytes(text_bytes)} of text) encoded in "
          f"{seconds:.1f}s ({data.num_rows / seconds:,.0f} rows/s) to {format_bytes(encoded)}; "
          f"peak RSS {format_bytes(peak_rss_bytes())} (before encoding "
          f"{format_bytes(rss_before)})")


if __name__ == "__main__":
    main()
