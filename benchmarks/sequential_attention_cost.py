"""BlossomRec vs dense attention: peak memory and training-step time against history length.

Each (attention, length) cell runs in a fresh subprocess (so its peak RSS is its own): SASRec
with BlossomRec's backbone (hidden 128, 2 layers, 8 query heads sharing 2 KV heads, RoPE,
full cross-entropy over 2,000 items, dropout 0) trains on one synthetic long sequence
(``make_synthetic_sequences``, Markov walks) per step; dense attention builds the explicit
``L x L`` scores (as SASRec/RecBole do), BlossomRec the gather path. ``--source ml-1m`` trains
on the histories of MovieLens-1M's longest users instead (3,706 items; only one history is
longer than 2,000 items and the fourth longest has 1,593, so lengths up to 1,500 with the default
3 steps), each cut to its last ``L + 1`` items. The cell records the
median of ``--steps`` timed steps (forward, loss, backward, Adam) after one warm-up step, and
``peak_memory_bytes``: the peak RSS of the process minus its RSS just before the first
full-length step (the model, optimizer state, data and the kernels' code, loaded by a 64-item
step, are in memory then). ``attention_peak_memory_bytes`` and ``attention_seconds`` measure one
attention layer alone (forward and backward) the same way, in its own process.

Writes ``benchmarks/results/sequential_cost/<attention>_<length>[_ml-1m].json`` (seq_len,
attention, source, peak_memory_bytes, step_seconds, ...) and ``cost.png`` (synthetic source).
One torch thread; run it under the shared lock::

    flock /tmp/slimrec-bench.lock .venv/bin/python benchmarks/sequential_attention_cost.py
    flock /tmp/slimrec-bench.lock .venv/bin/python benchmarks/sequential_attention_cost.py \
        --source ml-1m --lengths 500,1000,1500
    # issue 13's combined cell: BlossomRec with a 10% item table (dense + full is the above)
    .venv/bin/python benchmarks/sequential_attention_cost.py --attentions blossom \
        --parts step --table quantized@10% --lengths 2000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "sequential_cost"
LENGTHS = (500, 1000, 2000, 4000)
ATTENTIONS = ("dense", "blossom")
NUM_ITEMS = 2000
SOURCES = ("synthetic", "ml-1m")
MEASURES = ("peak_memory_bytes", "step_seconds", "attention_peak_memory_bytes",
            "attention_seconds")
DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def long_histories(source: str, length: int, count: int, path: Path) -> None:
    """Write to ``path`` (npz) ``count`` histories with ``length + 1`` training items: synthetic
    Markov walks, or the longest users of ``source``. Runs in a process of its own: Linux keeps
    a process's peak RSS across fork and exec, so the parent that starts the measurements must
    stay small (no torch, no dataset) for each child's ``ru_maxrss`` to be its own."""
    from slimrec.data.sequences import load_sequences, make_synthetic_sequences

    if source == "synthetic":
        data = make_synthetic_sequences(num_users=count, num_items=NUM_ITEMS,
                                        mean_length=10 * length, max_length=length + 3, seed=0)
        users = np.arange(count)
    else:
        data = load_sequences(source, DATA_DIR)
        train_lengths = data.train_ends - data.indptr[:-1]
        users = np.argsort(-train_lengths, kind="stable")[:count]
        if train_lengths[users[-1]] < length + 1:
            raise SystemExit(f"{source}: fewer than {count} users with {length + 1} training "
                             f"items (the longest have {train_lengths[users].tolist()}).")
    histories = [data.history(user) for user in users]
    np.savez(path, items=np.concatenate(histories), num_items=data.num_items,
             indptr=np.concatenate([[0], np.cumsum([len(h) for h in histories])]))


def read_histories(path: str):
    from slimrec.data.sequences import Sequences

    saved = np.load(path)
    indptr = saved["indptr"]
    return Sequences("long histories", np.arange(len(indptr) - 1).astype(str),
                     np.arange(int(saved["num_items"])).astype(str), indptr, saved["items"])


def measure(attention: str, length: int, steps: int, histories: str, source: str,
            table: str = "full") -> dict:
    """One cell, in this process: the step time and peak memory of training at ``length``,
    with the item table ``table`` (``full`` or ``method@budget``)."""
    import torch

    torch.set_num_threads(1)
    from slimrec.embeddings import EmbeddingSpec, build_embedding
    from slimrec.models.sequential.sasrec import SASRec, SASRecConfig
    from slimrec.tasks.sequential import SequenceBatch, full_ce

    data = read_histories(histories)
    torch.manual_seed(0)
    config = SASRecConfig(num_heads=8, kv_heads=2, positions="rope", attention=attention,
                          path="gather", dropout=0.0)
    method, _, budget = table.partition("@")
    item_table = build_embedding(EmbeddingSpec(method, budget=budget or None), data.vocab_size,
                                 128)
    model = SASRec(item_table, config, length)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = [SequenceBatch(np.array([user]), data).tensors(length)
               for user in range(data.num_users)]
    short = SequenceBatch(np.array([0]), data).tensors(64)
    seconds = []
    for index, (inputs, targets, lengths) in enumerate([short, *batches]):
        if index == 1:  # the kernels' code is loaded now: it is not the step's memory
            before, seconds = rss_bytes(), []
        start = time.perf_counter()
        hidden = model.encode(inputs, lengths)
        positions = targets != 0
        loss = full_ce(model, hidden[positions], targets[positions], model.objective)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        seconds.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"seq_len": int(lengths[0]), "attention": attention, "source": source,
            "peak_memory_bytes": peak - before, "step_seconds": statistics.median(seconds[1:]),
            "step_seconds_all": seconds, "batch_size": 1, "hidden": 128, "num_layers": 2,
            "num_heads": 8, "kv_heads": 2, "positions": "rope", "num_items": data.vocab_size - 1,
            "loss": "full_ce", "torch_threads": torch.get_num_threads(), "table": table,
            "model_bytes": model.memory_bytes(), "item_table_bytes": item_table.memory_bytes(),
            "blossom": {"window": config.window, "block": config.block,
                        "top_k": config.top_k, "local": config.local, "path": "gather"},
            "command": " ".join(["python", *sys.argv])}


def measure_attention(attention: str, length: int, steps: int) -> dict:
    """The attention module alone (one layer, forward and backward, batch 1): its own peak
    memory and time, without the embedding, feed-forward and loss every variant shares."""
    import torch

    torch.set_num_threads(1)
    from slimrec.models.sequential.attention import BlossomAttention, DenseAttention

    torch.manual_seed(0)
    module = (BlossomAttention(128, 8, 2, True, path="gather") if attention == "blossom"
              else DenseAttention(128, 8, 2, True))
    inputs = [torch.randn(1, length, 128, requires_grad=True) for _ in range(steps + 1)]
    warm = torch.randn(1, 64, 128, requires_grad=True)
    seconds = []
    for index, x in enumerate([warm, *inputs]):
        if index == 1:  # the kernels' code is loaded now: it is not the attention's memory
            before, seconds = rss_bytes(), []
        start = time.perf_counter()
        module(x, torch.tensor([x.shape[1]])).square().sum().backward()
        seconds.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"attention_peak_memory_bytes": peak - before,
            "attention_seconds": statistics.median(seconds[1:])}


def plot(cells: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (memory, time_) = plt.subplots(1, 2, figsize=(10, 4))
    for attention in ATTENTIONS:
        rows = sorted((c for c in cells if c["attention"] == attention),
                      key=lambda c: c["seq_len"])
        lengths = [c["seq_len"] for c in rows]
        memory.plot(lengths, [c["peak_memory_bytes"] / 2**20 for c in rows], "o-",
                    label=attention)
        time_.plot(lengths, [c["step_seconds"] for c in rows], "o-", label=attention)
    for axis, label in ((memory, "peak memory of a step (MiB)"), (time_, "step time (s)")):
        axis.set_xlabel("history length")
        axis.set_ylabel(label)
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.legend()
    figure.suptitle("SASRec training step, batch 1, 1 CPU thread: dense vs BlossomRec")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def run_child(arguments: list[str]) -> str:
    """This script in a fresh process (one torch thread); its standard output."""
    child = subprocess.run([sys.executable, __file__, *arguments], capture_output=True,
                           text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if child.returncode:
        raise SystemExit(f"{' '.join(arguments)}: failed\n{child.stderr[-2000:]}")
    return child.stdout


def measure_in_child(part: str, attention: str, length: int, args: argparse.Namespace,
                     histories: Path) -> dict:
    """One measurement in a fresh process, so its peak RSS is its own."""
    output = run_child(["--one", part, "--attentions", attention, "--lengths", str(length),
                        "--steps", str(args.steps), "--source", args.source, "--table", args.table,
                        "--histories", str(histories)])
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", default=",".join(map(str, LENGTHS)))
    parser.add_argument("--attentions", default=",".join(ATTENTIONS))
    parser.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up")
    parser.add_argument("--parts", default="step,attention",
                        help="what to measure (merged into an existing cell file)")
    parser.add_argument("--source", choices=SOURCES, default="synthetic",
                        help="the histories: synthetic Markov walks or ML-1M's longest users")
    parser.add_argument("--table", default="full", help="the item table of the step: full "
                        "or method@budget (BlossomRec + quantized@10%%: issue 13's combined "
                        "cell); the attention part ignores it")
    parser.add_argument("--one", choices=("step", "attention"), help=argparse.SUPPRESS)
    parser.add_argument("--histories", help=argparse.SUPPRESS)
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare:  # the child process that writes the histories of one length
        long_histories(args.source, int(args.lengths), args.steps + 1, Path(args.histories))
        return
    if args.one:  # the child process of one measurement (the attention alone needs no data)
        length = int(args.lengths)
        print(json.dumps(measure(args.attentions, length, args.steps, args.histories, args.source,
                                 args.table)
                         if args.one == "step"
                         else measure_attention(args.attentions, length, args.steps)))
        return
    from slimrec.io import atomic_write_json

    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.source == "synthetic" else f"_{args.source}"
    if args.table != "full":
        suffix += "_" + args.table.replace("@", "_").replace("%", "pct")
    with tempfile.TemporaryDirectory(prefix="slimrec-cost-") as scratch:
        for length in map(int, args.lengths.split(",")):
            histories = Path(scratch) / f"{length}.npz"
            run_child(["--prepare", "--lengths", str(length), "--steps", str(args.steps),
                       "--source", args.source, "--histories", str(histories)])
            for attention in args.attentions.split(","):
                path = RESULTS / f"{attention}_{length}{suffix}.json"
                cell = json.loads(path.read_text()) if path.is_file() else {}
                for part in args.parts.split(","):
                    cell.update(measure_in_child(part, attention, length, args, histories))
                atomic_write_json(path, cell)
                print(f"{attention:8s} L={length:5d}  " + ", ".join(
                    f"{key} {cell[key] / 2**20:.1f} MiB" if "memory" in key
                    else f"{key} {cell[key]:.3f}" for key in MEASURES if key in cell), flush=True)
    every = [json.loads(path.read_text()) for path in sorted(RESULTS.glob("*_*.json"))]
    cells = [c for c in every if c.get("source", "synthetic") == args.source
             and c.get("table", "full") == "full"]
    if args.source == "synthetic":
        plot(cells, RESULTS / "cost.png")
    for length in sorted({c["seq_len"] for c in cells}):
        pair = {c["attention"]: c for c in cells if c["seq_len"] == length}
        if len(pair) == 2:
            ratios = {key: pair["blossom"][key] / pair["dense"][key] for key in MEASURES
                      if key in pair["blossom"] and key in pair["dense"]}
            print(f"L={length}: blossom / dense: " + ", ".join(
                f"{key} {value:.2f}" for key, value in ratios.items()))


if __name__ == "__main__":
    main()
