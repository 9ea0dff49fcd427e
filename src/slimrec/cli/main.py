"""``slimrec``: the parser of every verb, and the error boundary.

User errors (bad data, bad config, impossible budgets) print one message and exit with status 2;
only bugs print a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from slimrec import __version__
from slimrec.cli import (
    bench,
    cluster,
    compress,
    datasets,
    demo,
    ensemble,
    fit,
    recommend,
    serve,
    train,
)
from slimrec.errors import SlimRecError

VERBS = (demo, datasets, train, compress, cluster, bench, fit, recommend, serve, ensemble)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slimrec",
        description="SlimRec: recommenders whose embedding tables fit a memory budget.")
    parser.add_argument("--version", action="version", version=f"slimrec {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for verb in VERBS:
        verb.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (SlimRecError, FloatingPointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; files already written are intact.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
