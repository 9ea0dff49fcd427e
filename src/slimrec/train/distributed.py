"""How ``fit`` spreads one training run over processes: a strategy passed to the one loop.

``LOCAL`` is one process. ``DataParallel`` is one rank of a ``torch.distributed`` job started by
``torchrun`` (``slimrec train --nproc N`` starts it for you): every rank draws the same shuffled
global batch from the same seed and trains on its own slice of the pairs; after each backward
pass the gradients are averaged over the ranks, so every replica takes the same optimiser step.
Compressed tables are small enough to replicate on every rank, which is the point of
compressing them.

Row-sparse table gradients stay sparse: gloo all-reduces sparse tensors (every rank's indices
and values, summed), so the lazy Adam sees exactly the rows and sums one process would.
``DistributedDataParallel`` is not used: its reducer only knows a gradient is sparse from
``nn.Embedding(sparse=True)`` modules, while our tables call ``F.embedding(..., sparse=True)``
on their own parameters, which DDP puts in a dense bucket and fails on ("Cannot access storage
of SparseTensorImpl"). Dense gradients are flattened and all-reduced in one call per step.

Only rank 0 evaluates and its metrics are broadcast, so every rank takes the same early-stopping
and lr decisions; only rank 0 prints, checkpoints and writes results.

With the same global batch, N ranks follow the single-process run step for step (up to float
summation order): each rank's loss is weighted by its share of the batch, so the averaged
gradient is the gradient of the global batch's mean loss even when the batch does not split
evenly.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import nn

from slimrec.errors import ConfigError

T = TypeVar("T")


class Strategy:
    """One process: every batch whole, nothing to communicate."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Whether this process evaluates, prints and writes files."""
        return self.rank == 0

    def replicate(self, model: nn.Module) -> None:
        """Make every rank's copy of ``model`` rank 0's."""

    def shard(self, batch: Any) -> tuple[Any, float]:
        """This rank's rows of a global batch, and the weight of its loss."""
        return batch, 1.0

    def reduce_gradients(self, model: nn.Module) -> None:
        """Average the gradients of ``model`` over the ranks (after ``backward``)."""

    def from_main(self, compute: Callable[[], T]) -> T:
        """``compute()`` run on rank 0 only; every rank gets its value."""
        return compute()

    def total(self, value: float) -> float:
        """The sum of ``value`` over the ranks."""
        return value


LOCAL = Strategy()


class DataParallel(Strategy):
    """This process as one rank of an initialised ``torch.distributed`` process group."""

    def __init__(self) -> None:
        import torch.distributed as dist

        self.dist = dist
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.backend = dist.get_backend()

    def replicate(self, model: nn.Module) -> None:
        if self.backend == "nccl" and any(
                p for table in model.tables().values() for p in table.sparse_parameters()):
            raise ConfigError("embedding_params sparse_grad=true: nccl cannot all-reduce "
                              "sparse gradients; train with sparse_grad=false on GPUs.")
        for tensor in [*model.parameters(), *model.buffers()]:
            self.dist.broadcast(tensor.data, src=0)

    def reduce_gradients(self, model: nn.Module) -> None:
        # Every rank reduces every trainable parameter in the same order, with a zero gradient
        # where its shard did not reach the parameter (a table bucket no id of it fell in), so
        # the collective calls always match.
        dense = []
        for parameter in (p for p in model.parameters() if p.requires_grad):
            if parameter.grad is not None and parameter.grad.is_sparse:
                self.dist.all_reduce(parameter.grad)
                parameter.grad = parameter.grad.coalesce() / self.world_size
                continue
            if parameter.grad is None:
                parameter.grad = torch.zeros_like(parameter)
            dense.append(parameter.grad)
        if dense:
            flat = torch.cat([grad.reshape(-1) for grad in dense])
            self.dist.all_reduce(flat)
            flat /= self.world_size
            for grad, part in zip(dense, flat.split([g.numel() for g in dense]), strict=True):
                grad.copy_(part.view_as(grad))

    def shard(self, batch: Any) -> tuple[Any, float]:
        rows = batch.size
        begin, end = rows * self.rank // self.world_size, rows * (self.rank + 1) // self.world_size
        return batch.slice(begin, end), (end - begin) * self.world_size / rows

    def from_main(self, compute: Callable[[], T]) -> T:
        box = [compute() if self.is_main else None]
        self.dist.broadcast_object_list(box, src=0)
        return box[0]

    def total(self, value: float) -> float:
        tensor = torch.tensor([value], dtype=torch.float64)
        self.dist.all_reduce(tensor)
        return float(tensor.item())


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def start_strategy(backend: str | None = None) -> Strategy:
    """``LOCAL``, or when this process is a rank of a torchrun job, its initialised
    ``DataParallel`` (gloo on CPU, nccl when CUDA is available)."""
    if not launched_by_torchrun():
        return LOCAL
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend or ("nccl" if torch.cuda.is_available() else "gloo"))
    return DataParallel()


def stop_strategy(strategy: Strategy) -> None:
    if isinstance(strategy, DataParallel) and strategy.dist.is_initialized():
        strategy.dist.destroy_process_group()


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def launch(nproc: int, argv: list[str]) -> int:
    """Run ``python -m slimrec <argv>`` as ``nproc`` ranks on this machine (torchrun's
    standalone rendezvous) and return the job's exit status. Each rank sees ``WORLD_SIZE`` and
    starts its ``DataParallel`` strategy; torchrun gives each one torch thread unless
    ``--threads`` says otherwise."""
    import sys

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    cores = available_cores()
    if nproc > cores:
        print(f"warning: --nproc {nproc} is more than the {cores} cores available; the ranks "
              "will share cores and run slower than fewer ranks would.", file=sys.stderr)
    args = get_args_parser().parse_args(
        ["--standalone", f"--nproc-per-node={nproc}", "--module", "slimrec"])
    args.training_script_args = argv  # set here: torchrun's parser would read our flags
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # torchrun's default, without its banner
    try:
        run(args)
    except ChildFailedError as error:
        codes = {rank: failure.exitcode for rank, failure in error.failures.items()}
        print(f"error: ranks failed with exit codes {codes}; their messages are above.",
              file=sys.stderr)
        return max(codes.values(), default=1)
    return 0
