"""``slimrec compress``: compress a saved run of any task into a new evaluated run."""

from __future__ import annotations

import argparse
from pathlib import Path

from slimrec.cli.flags import _key_values
from slimrec.cli.output import command_line, print_run


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "compress", help="compress a trained run (tables and/or dense layers) into a new run")
    add = parser.add_argument
    add("--model", required=True, help="run folder written by `slimrec train`")
    add("--method", help="post-training embedding method: svd, quantized")
    add("--budget", help="budget of all the tables together: a fraction (0.1, 10%%) of their "
        "fp32 bytes or a size (2MB)")
    add("--embedding-param", dest="embedding_params", action="append", metavar="KEY=VALUE",
        help="a fixed parameter of the method, e.g. rank=8 without a budget (repeatable)")
    add("--dense-rank", dest="dense_rank", help="dense layers as low-rank pairs: a rank (32) "
        "or a compression ratio (4x); CTR models")
    add("--dense-method", dest="dense_method", choices=["output", "svd"], default="output",
        help="output: principal components of each layer's outputs (default); svd: of its "
        "weights")
    add("--finetune-epochs", dest="finetune_epochs", type=int, default=0,
        help="epochs of training after compression, with the run's settings (default 0)")
    add("--data-dir", dest="data_dir", help="where the run's dataset is, if it moved")
    add("--out", help="folder of the new run (default: <model>[-dense<r>][-<method>-<budget>])")
    add("--progress", action=argparse.BooleanOptionalAction, default=None,
        help="show progress bars (default: as the run was trained)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from slimrec.compress import compress_run, default_out

    out = (Path(args.out) if args.out
           else default_out(args.model, args.method, args.budget, args.dense_rank))
    document = compress_run(
        args.model, args.method, args.budget,
        _key_values(args.embedding_params or [], "--embedding-param"), out,
        args.finetune_epochs, args.dense_rank, args.dense_method,
        overrides={"data_dir": args.data_dir, "progress": args.progress},
        command=command_line())
    print_run(document, out)
    return 0
