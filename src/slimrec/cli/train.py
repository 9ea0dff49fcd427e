"""``slimrec train``: train and evaluate one model of any task."""

from __future__ import annotations

import argparse
from pathlib import Path

from slimrec.cli.flags import add_config_flags, run_config
from slimrec.cli.output import command_line, print_run
from slimrec.tasks import TASKS


def add_task_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML file of settings; flags given here override it")
    parser.add_argument("--task", choices=list(TASKS), default=None,
                        help="retrieval (implicit feedback, full ranking) or ctr (field "
                        "tables, AUC); default: the config file's, else retrieval")


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("train", help="train and evaluate one model")
    add_task_flags(parser)
    add_config_flags(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from slimrec.spine import run as run_config_

    config = run_config(args)
    document = run_config_(config, command=command_line())
    print_run(document, Path(config.out))
    return 0
