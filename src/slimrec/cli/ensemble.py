"""``slimrec ensemble``: K compressed models that together fit one memory budget, served as one."""

from __future__ import annotations

import argparse
from pathlib import Path

from slimrec.cli.flags import add_config_flags, run_config
from slimrec.cli.output import command_line, print_run, split_list
from slimrec.cli.train import add_task_flags


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "ensemble", help="train K models, each with budget/K of the embedding budget, and "
        "save them as one model")
    add_task_flags(parser)
    add_config_flags(parser)
    parser.add_argument("--k", type=int, default=2,
                        help="number of members; each gets budget/K bytes (default 2)")
    parser.add_argument("--members", help="comma-separated models: one (trained with K seeds, "
                        "the default: --model) or exactly K")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from slimrec.ensemble import train_ensemble

    config = run_config(args)
    document = train_ensemble(config, args.k, split_list(args.members, "--members"),
                              command=command_line())
    block = document["ensemble"]
    print(f"ensemble of {block['k']}: " + ", ".join(
        f"{m['model']} (seed {m['seed']}, {m['embedding_bytes']:,} B)" for m in block["members"])
        + f"; {document['memory_bytes']['embeddings']:,} of {block['budget_bytes']:,} budget "
        "bytes")
    print_run(document, Path(config.out))
    return 0
