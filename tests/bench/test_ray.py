"""``bench --executor ray``: a local Ray instance (2 CPUs) runs a 2-cell sweep exactly as the
local executor does, and resumes."""

import socket

import pytest

from slimrec.bench.sweep import BenchConfig, run_bench
from slimrec.cli import main

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'slimrec[ray]'")

SETTINGS = {"dim": 8, "epochs": 2, "batch_size": 2048, "lr": 5e-3, "eval_every": 2,
            "ks": [20], "threads": 1}


def sweep(out):
    return BenchConfig(out=str(out), methods=["hash", "qr"], budgets=["25%"],
                       settings=SETTINGS, progress=False)


@pytest.fixture(scope="module")
def local_ray():
    from slimrec.bench import ray_executor

    ray_executor.start(None, num_cpus=2)
    yield
    ray.shutdown()


def without_run_facts(document):
    """What must not depend on the executor: everything but times, dates, paths, machine."""
    return {"metrics": document["metrics"], "memory_bytes": document["memory_bytes"],
            "history": [{k: v for k, v in r.items() if k != "seconds"}
                        for r in document["history"]],
            "embedding": document["embedding"]}


def test_ray_cells_equal_local_cells_and_resume(tmp_path, local_ray):
    local = run_bench(sweep(tmp_path / "local"), command="test")
    on_ray = run_bench(sweep(tmp_path / "ray"), command="test", executor="ray")
    assert [d["bench"]["cell"] for d in on_ray] == [d["bench"]["cell"] for d in local]
    assert len(on_ray) == 2
    for mine, theirs in zip(on_ray, local, strict=True):
        assert without_run_facts(mine) == without_run_facts(theirs)
    # Resumable: a finished cell is skipped, a removed one runs again.
    cells = sorted((tmp_path / "ray" / "cells").glob("*.json"))
    kept = cells[0].read_text()
    cells[1].unlink()
    again = run_bench(sweep(tmp_path / "ray"), command="test", executor="ray")
    assert cells[0].read_text() == kept and cells[1].is_file()
    assert without_run_facts(again[1]) == without_run_facts(on_ray[1])


def test_unreachable_address_is_a_clear_error(tmp_path, capsys):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again below: nothing listens there
    config = tmp_path / "sweep.yaml"
    config.write_text(f"out: {tmp_path}\nmethods: [hash]\nbudgets: ['25%']\n")
    code = main(["bench", "--config", str(config), "--executor", "ray",
                 "--address", f"127.0.0.1:{port}"])
    assert code == 2
    assert f"--address 127.0.0.1:{port}: no Ray cluster is reachable" in capsys.readouterr().err
