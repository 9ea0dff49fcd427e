"""``slimrec datasets``: list, describe or download the registered datasets."""

from __future__ import annotations

import argparse


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("datasets", help="list, describe or download datasets")
    parser.add_argument("action", choices=["list", "info", "download"])
    parser.add_argument("name", nargs="?")
    parser.add_argument("--data-dir", help="also load the local copy and print statistics")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from slimrec.data.registry import describe_dataset, download, list_datasets
    from slimrec.errors import ConfigError

    if args.action == "list":
        print(list_datasets())
        return 0
    if not args.name:
        raise ConfigError(f"`slimrec datasets {args.action}` needs a dataset name.")
    if args.action == "download":
        print(f"{args.name}: downloaded to {download(args.name)}")
        return 0
    print(describe_dataset(args.name, args.data_dir))
    return 0
