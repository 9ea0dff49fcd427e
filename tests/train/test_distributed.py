"""Data-parallel training: 2 gloo ranks follow the 1-process run with the same global batch."""

import math
import os
import socket
import subprocess
import sys
import textwrap

import pytest
import torch

from slimrec.train import distributed
from slimrec.train.distributed import LOCAL
from slimrec.train.loop import fit

# A row-sparse table (full, lazy Adam) and a dense-gradient one (hash); the last batch of each
# epoch does not split evenly over 2 ranks, which checks the per-rank loss weights.
SETUP = textwrap.dedent('''
    import torch
    from slimrec.data.splits import carve_validation
    from slimrec.data.synthetic import make_synthetic
    from slimrec.embeddings import EmbeddingSpec, build_embedding
    from slimrec.models import MF
    from slimrec.tasks import RetrievalConfig

    torch.set_num_threads(1)
    data = carve_validation(make_synthetic(num_users=120, num_items=80, num_communities=4,
                                           mean_degree=12, seed=5), 0.1, seed=0)
    model = MF(build_embedding(EmbeddingSpec("full", {"sparse_grad": True}), data.num_users,
                               8, seed=0),
               build_embedding(EmbeddingSpec("hash", {"num_buckets": 40}), data.num_items, 8,
                               seed=1))
    config = RetrievalConfig(train={"epochs": 3, "batch_size": 95, "lr": 1e-2,
                                    "eval_every": 1, "patience": 5}, seed=2, progress=False)
''')
RANK = SETUP + textwrap.dedent('''
    import sys
    from slimrec.train.distributed import start_strategy, stop_strategy
    from slimrec.train.loop import fit

    strategy = start_strategy()
    result = fit(model, data, config, strategy=strategy)
    stop_strategy(strategy)
    torch.save({"state": model.state_dict(), "history": result.history},
               f"{sys.argv[1]}/rank{strategy.rank}.pt")
''')


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_ranks(tmp_path, world_size):
    """The ranks of a torchrun job, started as torchrun would (its environment variables)."""
    script = tmp_path / "rank.py"
    script.write_text(RANK)
    env = {**os.environ, "WORLD_SIZE": str(world_size), "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(free_port()), "OMP_NUM_THREADS": "1"}
    ranks = [subprocess.Popen([sys.executable, str(script), str(tmp_path)],
                              env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)},
                              stderr=subprocess.PIPE, text=True)
             for rank in range(world_size)]
    for rank in ranks:
        _, err = rank.communicate(timeout=120)
        assert rank.returncode == 0, err[-3000:]
    return [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(world_size)]


def without_seconds(history):
    return [{k: v for k, v in record.items() if k != "seconds"} for record in history]


def test_two_gloo_ranks_match_one_process(tmp_path):
    scope: dict = {}
    exec(SETUP, scope)
    data, model, config = scope["data"], scope["model"], scope["config"]
    alone = fit(model, data, config)
    ranks = run_ranks(tmp_path, 2)
    assert data.train.nnz % config.train.batch_size % 2 == 1  # an uneven last batch
    assert config.train.epochs * math.ceil(data.train.nnz / config.train.batch_size) > 20
    for key, value in model.state_dict().items():
        for rank in ranks:
            assert torch.allclose(rank["state"][key], value, atol=1e-5, rtol=0), key
    # Rank 0 evaluated and broadcast: both ranks took the same early-stopping decisions.
    histories = [without_seconds(rank["history"]) for rank in ranks]
    assert histories[0] == histories[1]
    for mine, theirs in zip(histories[0], without_seconds(alone.history), strict=True):
        assert mine == pytest.approx(theirs, rel=1e-4)


def test_local_strategy_is_one_whole_process():
    assert (LOCAL.rank, LOCAL.world_size, LOCAL.is_main) == (0, 1, True)
    assert LOCAL.from_main(lambda: 3) == 3 and LOCAL.total(2.5) == 2.5
    assert distributed.start_strategy() is LOCAL  # no WORLD_SIZE: not a torchrun rank


def test_nproc_above_the_cores_warns(monkeypatch, capsys):
    import torch.distributed.run as torchrun

    launched = []
    monkeypatch.setattr(distributed, "available_cores", lambda: 1)
    monkeypatch.setattr(torchrun, "run", lambda args: launched.append(args))
    assert distributed.launch(2, ["train", "--epochs", "1"]) == 0
    assert "--nproc 2 is more than the 1 cores" in capsys.readouterr().err
    assert launched[0].nproc_per_node == "2"
    assert launched[0].training_script_args == ["train", "--epochs", "1"]


def test_a_rank_slice_keeps_every_row_once():
    from slimrec.tasks.retrieval import PairBatch

    batch = PairBatch(torch.arange(7), torch.arange(7) + 10, torch.arange(7) + 20)
    shards = []
    for rank in range(3):
        strategy = distributed.Strategy()
        strategy.rank, strategy.world_size = rank, 3
        shards.append(distributed.DataParallel.shard(strategy, batch))
    assert torch.equal(torch.cat([s.users for s, _ in shards]), batch.users)
    # Weights average to 1 over the ranks, so the averaged gradient is the global batch's.
    assert sum(weight for _, weight in shards) == pytest.approx(3)
