"""``slimrec train``: train and evaluate one model of any task."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from slimrec.cli.flags import add_config_flags, run_config
from slimrec.cli.output import command_line, print_run
from slimrec.errors import ConfigError
from slimrec.tasks import TASKS


def add_task_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML file of settings; flags given here override it")
    parser.add_argument("--task", choices=list(TASKS), default=None,
                        help="retrieval (implicit feedback, full ranking) or ctr (field "
                        "tables, AUC); default: the config file's, else retrieval")


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("train", help="train and evaluate one model")
    add_task_flags(parser)
    parser.add_argument("--nproc", type=int, default=1, metavar="N",
                        help="train data-parallel over N processes on this machine (gloo on "
                        "CPU; one torch thread each unless --threads); for several machines "
                        "start `torchrun ... -m slimrec train ...` on each (see the README)")
    add_config_flags(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from slimrec.spine import run as run_config_
    from slimrec.train import distributed

    if args.nproc < 1:
        raise ConfigError(f"--nproc must be at least 1; got {args.nproc}.")
    config = run_config(args)  # checked before any rank starts
    if args.nproc > 1 and not distributed.launched_by_torchrun():
        return distributed.launch(args.nproc, sys.argv[1:])
    strategy = distributed.start_strategy()
    try:
        document = run_config_(config, command=command_line(), strategy=strategy)
    finally:
        distributed.stop_strategy(strategy)
    if document is not None:
        print_run(document, Path(config.out))
    return 0
