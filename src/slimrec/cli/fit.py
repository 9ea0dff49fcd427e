"""``slimrec fit``: the best method under a budget, chosen on validation, then trained."""

from __future__ import annotations

import argparse
from pathlib import Path

from slimrec.cli.flags import add_config_flags, run_config
from slimrec.cli.output import command_line, print_run, split_list
from slimrec.cli.train import add_task_flags


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "fit", help="best method under a budget: quick search on validation, then train it")
    add_task_flags(parser)
    add_config_flags(parser, skip=("embedding", "embedding_params"))
    parser.add_argument("--methods", help="comma-separated candidates (default: all "
                        "registered)")
    parser.add_argument("--dims", help="comma-separated embedding dims to try (default: --dim)")
    parser.add_argument("--search-epochs", dest="search_epochs", type=int, default=5,
                        help="epochs of each candidate's quick training (default 5)")
    parser.add_argument("--ensemble-sizes", dest="ensemble_sizes", default="1",
                        help="comma-separated numbers of models to try, e.g. 1,2,4: K > 1 is an "
                        "ensemble of K models with budget/K bytes each (default 1: single "
                        "models only)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from slimrec.bench.fit import fit_under_budget

    config = run_config(args)
    fit = fit_under_budget(config, split_list(args.methods, "--methods"),
                           split_list(args.dims, "--dims", int), args.search_epochs,
                           command=command_line(),
                           ensemble_sizes=split_list(args.ensemble_sizes, "--ensemble-sizes",
                                                     int))
    print(fit["table"])
    print(fit["choice"]["why"])
    print_run(fit["document"], Path(config.out))
    return 0
