"""``slimrec bench --executor ray``: each cell of a sweep as one Ray task.

A cell runs exactly as the local executor runs it (``sweep.run_cell``: same config, same seed,
same checkpoint and result files), only in a Ray worker that asks for as many CPUs as the cell
has torch threads, so Ray packs cells onto the cluster's cores. The dataset is loaded once per
group of cells that share it and put in Ray's object store, where every worker on a node reads
the same copy. Resuming works as locally: the driver skips cells whose JSON exists, and a cell
interrupted mid-training resumes from its checkpoint — so the results folder must be on a
file system every worker sees (one machine, or a shared mount on a cluster).

Ray is an optional extra: ``pip install 'slimrec[ray]'``.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

from slimrec.errors import ConfigError
from slimrec.io import file_lock


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs Ray: pip install 'slimrec[ray]'.") from None
    return ray


def _check_reachable(address: str) -> None:
    """Fail fast on a HOST:PORT nothing listens on (Ray itself retries for minutes)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto", "local": Ray finds the cluster itself and says so at once if none
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as error:
        raise ConfigError(f"--address {address}: no Ray cluster is reachable there "
                          f"({error.strerror or error}). Start one with `ray start --head` "
                          "or give the address of a running head node.") from None


def start(address: str | None, num_cpus: int | None = None) -> None:
    """Connect to the Ray cluster at ``address`` ("auto": the one this machine belongs to), or
    start a local one with ``num_cpus`` when ``address`` is None."""
    ray = _ray()
    if address is not None:
        _check_reachable(address)
    if ray.is_initialized():
        return
    try:
        if address is None:
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = "a local Ray instance" if address is None else f"--address {address}"
        raise ConfigError(f"{where}: no Ray cluster could be reached or started "
                          f"({str(error).splitlines()[0]}). Start one with `ray start --head` "
                          "or give the address of a running head node.") from None


def _run_cell(cell: Any, bench: Any, data: Any, command: str) -> dict[str, Any]:
    from slimrec.bench.sweep import run_cell

    with file_lock(bench.lock):
        return run_cell(cell, bench, data, command)


def run_cells(groups: Iterator[list[Any]], bench: Any, load: Any, command: str,
              address: str | None) -> Iterator[dict[str, Any]]:
    """Run every cell of ``groups`` (lists of cells sharing data; ``load(cell)`` loads it) as
    Ray tasks; yield each cell's document as it finishes."""
    ray = _ray()
    start(address)
    remote = ray.remote(_run_cell)
    pending = []
    for group in groups:
        data = ray.put(load(group[0]))
        pending += [remote.options(num_cpus=cell.config.threads or 1).remote(
            cell, bench, data, command) for cell in group]
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        yield ray.get(done[0])
