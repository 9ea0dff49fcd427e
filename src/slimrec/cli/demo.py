"""``slimrec demo``: the main job on the embedded synthetic data, offline."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("demo", help="train and compare tables on the embedded data")
    parser.add_argument("--out", default="runs/demo", help="folder of the runs (default "
                        "runs/demo)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from slimrec.demo import run_demo

    run_demo(Path(args.out), progress=not args.no_progress)
    return 0
