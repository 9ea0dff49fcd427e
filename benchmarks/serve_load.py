"""Load test of `slimrec serve` on loopback (issue 14): throughput, latency, errors, server RSS,
with micro-batching on and off.

    flock /tmp/slimrec-bench.lock .venv/bin/python benchmarks/serve_load.py \
        runs/serve/gowalla_mf_gp5 --label gowalla_mf_gp5 --concurrency 1000 --requests 20000

For each batching mode, starts `slimrec serve RUN_DIR` in a subprocess (one worker), warms it
up, then `--concurrency` async httpx clients send `--requests` calls in total, each for one
random known user (`POST /recommend`, k=20) or, for a CTR run, one row of random vocabulary
values (`POST /predict`). Writes benchmarks/results/serve/serve_{label}_batching_{on,off}.json
with requests, concurrency, errors, throughput_rps, latency_ms {p50, p95, p99},
server_rss_bytes and batching, plus the model's bytes and the server's batch sizes.

Client and server share the machine: on 2 cores the client's own CPU time is part of what is
measured (the JSON records `client_cpu_seconds`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from slimrec.env import environment
from slimrec.io import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results" / "serve"
SERVE = "import sys; from slimrec.cli import main; sys.exit(main(sys.argv[1:]))"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(run_dir: str, batching: bool, args: argparse.Namespace) -> tuple[Any, str]:
    port = free_port()
    # Idle keep-alive connections outlive the run: the client starves on 2 cores, and a
    # request sent as the server closes its idle connection would fail (POST is not retried).
    flags = ["--port", str(port), "--log-level", "warning", "--keep-alive", "300",
             "--max-batch-size",
             str(args.max_batch_size), "--max-batch-delay", str(args.max_batch_delay)]
    if args.threads:
        flags += ["--threads", str(args.threads)]
    if not batching:
        flags.append("--no-batching")
    process = subprocess.Popen([sys.executable, "-c", SERVE, "serve", run_dir, *flags],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.stderr.read()}")
        try:
            if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    process.kill()
    raise RuntimeError("server not ready in 300 s")


def request_bodies(run_dir: Path, task: str, count: int, k: int, seed: int) -> list[dict]:
    """``count`` request bodies: one random known user each, or one random CTR row."""
    vocab = json.loads((run_dir / "vocab.json").read_text())
    rng = random.Random(seed)
    if task == "retrieval":
        users = vocab["users"]
        return [{"users": [users[rng.randrange(len(users))]], "k": k} for _ in range(count)]
    fields = vocab["fields"]
    return [{"rows": [{name: values[rng.randrange(len(values))]
                       for name, values in fields.items()}]} for _ in range(count)]


async def load(url: str, path: str, bodies: list[dict], concurrency: int, pool_size: int,
               rate: float | None = None) -> tuple[list[float], int, float, list[str]]:
    """Send every body with ``concurrency`` clients; latencies (s), errors, wall seconds.

    Closed loop by default (each client sends its next call when the last is answered). With
    ``rate``, open loop: call ``i`` is due at ``i / rate`` seconds and its latency counts from
    then, so time spent waiting for a free client is included (no coordinated omission).

    The clients share ``httpx.AsyncClient``s of ``pool_size`` connections each: httpcore scans
    its pool on every request, so one pool of 1,000 connections costs the client ~10 ms of CPU
    per request, more than the server's work.
    """
    latencies: list[float] = []
    errors: list[str] = []
    queue = iter(enumerate(bodies))

    async def worker(client: httpx.AsyncClient) -> None:
        for number, body in queue:
            start = time.perf_counter()
            if rate is not None:
                due = began + number / rate
                await asyncio.sleep(max(0.0, due - start))
                start = due
            try:
                response = await client.post(path, json=body)
                if response.status_code != 200:
                    errors.append(f"{response.status_code} {response.text[:200]}")
            except httpx.HTTPError as error:
                errors.append(f"{type(error).__name__}: {error!r}")
            latencies.append(time.perf_counter() - start)

    sizes = [min(pool_size, concurrency - begin) for begin in range(0, concurrency, pool_size)]
    clients = [httpx.AsyncClient(base_url=url, timeout=120, limits=httpx.Limits(
        max_connections=size, max_keepalive_connections=size)) for size in sizes]
    try:
        began = start = time.perf_counter()
        await asyncio.gather(*(worker(client) for client, size in zip(clients, sizes,
                                                                      strict=True)
                               for _ in range(size)))
        wall = time.perf_counter() - start
    finally:
        for client in clients:
            await client.aclose()
    return latencies, len(errors), wall, errors[:5]


def batch_sizes(metrics_text: str) -> dict[str, float]:
    total = re.search(r"^slimrec_batch_size_sum (\S+)$", metrics_text, re.M)
    count = re.search(r"^slimrec_batch_size_count (\S+)$", metrics_text, re.M)
    batches = float(count.group(1)) if count else 0.0
    return {"batches": batches,
            "mean_batch_size": float(total.group(1)) / batches if batches else 0.0}


def run_mode(run_dir: Path, label: str, batching: bool, args: argparse.Namespace
             ) -> dict[str, Any]:
    task = json.loads((run_dir / "manifest.json").read_text())["task"]
    path = "/recommend" if task == "retrieval" else "/predict"
    process, url = start_server(str(run_dir), batching, args)
    try:
        warmup = request_bodies(run_dir, task, args.warmup, args.k, seed=1)
        asyncio.run(load(url, path, warmup, min(args.concurrency, 50), args.pool_size))
        bodies = request_bodies(run_dir, task, args.requests, args.k, seed=0)
        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        latencies, errors, wall, samples = asyncio.run(load(
            url, path, bodies, args.concurrency, args.pool_size, args.rate))
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
        model = httpx.get(f"{url}/model", timeout=30).json()
        metrics = httpx.get(f"{url}/metrics", timeout=30).text
    finally:
        process.terminate()
        process.wait(timeout=60)
    milliseconds = np.array(latencies) * 1000
    result = {
        "label": label, "run_dir": str(run_dir), "endpoint": path, "task": task,
        "requests": args.requests, "concurrency": args.concurrency, "k": args.k,
        "offered_rate_rps": args.rate,
        "errors": errors, "error_samples": samples,
        "throughput_rps": args.requests / wall, "wall_seconds": wall,
        "latency_ms": {"p50": float(np.percentile(milliseconds, 50)),
                       "p95": float(np.percentile(milliseconds, 95)),
                       "p99": float(np.percentile(milliseconds, 99)),
                       "mean": float(milliseconds.mean()), "max": float(milliseconds.max())},
        "server_rss_bytes": model["serving"]["process_rss_bytes"],
        "model_memory_bytes": model["memory_bytes"],
        "batching": batching,
        "batch_settings": {"max_batch_size": args.max_batch_size,
                           "max_batch_delay_ms": args.max_batch_delay},
        **batch_sizes(metrics),
        "server_threads": args.threads, "client_pool_size": args.pool_size,
        "client_cpu_seconds": (cpu_after.ru_utime + cpu_after.ru_stime
                               - cpu_before.ru_utime - cpu_before.ru_stime),
        "command": "python " + " ".join(sys.argv),
        "environment": {**environment(), "cpu_count": os.cpu_count()},
    }
    mode = f"_rate{args.rate:g}" if args.rate else ""
    out = RESULTS / f"serve_{label}{mode}_batching_{'on' if batching else 'off'}.json"
    atomic_write_json(out, result)
    latency = result["latency_ms"]
    print(f"{label} batching={'on' if batching else 'off'}: {result['throughput_rps']:.0f} req/s,"
          f" p50 {latency['p50']:.1f} ms, p95 {latency['p95']:.1f} ms, p99 "
          f"{latency['p99']:.1f} ms, errors {errors}, server RSS "
          f"{result['server_rss_bytes'] / 2**20:.0f} MiB, mean batch "
          f"{result['mean_batch_size']:.1f} -> {out}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--label", required=True, help="name of the model in the JSON files")
    parser.add_argument("--concurrency", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--rate", type=float, default=None, help="open loop: requests per "
                        "second offered (default: closed loop, as fast as answered)")
    parser.add_argument("--pool-size", type=int, default=10, help="connections per httpx "
                        "client (the clients are spread over concurrency / pool-size pools)")
    parser.add_argument("--batching", choices=["both", "on", "off"], default="both")
    parser.add_argument("--max-batch-size", type=int, default=256)
    parser.add_argument("--max-batch-delay", type=float, default=2.0, help="ms")
    parser.add_argument("--threads", type=int, default=1, help="server torch threads")
    args = parser.parse_args()
    modes = {"both": (True, False), "on": (True,), "off": (False,)}[args.batching]
    results = [run_mode(args.run_dir, args.label, mode, args) for mode in modes]
    if len(results) == 2:
        on, off = results
        print(f"batching on / off: throughput x{on['throughput_rps'] / off['throughput_rps']:.2f},"
              f" p99 x{on['latency_ms']['p99'] / off['latency_ms']['p99']:.2f}")


if __name__ == "__main__":
    main()
