"""``slimrec recommend``: top-k items for users of a saved retrieval model."""

from __future__ import annotations

import argparse
import sys

from slimrec.cli.output import split_list


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "recommend", help="top-k items for users of a saved model, in external ids")
    parser.add_argument("--model", required=True, help="model folder (a run folder)")
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--users", help="comma-separated external user ids")
    who.add_argument("--users-file", dest="users_file", help="file of user ids, one per line")
    parser.add_argument("-k", type=int, default=20, help="items per user (default 20)")
    parser.add_argument("--out", help="CSV to write (user,rank,item,score,source); default: "
                        "standard output")
    parser.add_argument("--include-seen", dest="include_seen", action="store_true",
                        help="keep the items each user already interacted with")
    parser.add_argument("--fallback", choices=["none", "popular"], default="none",
                        help="for unknown users: nothing (default) or popular items, flagged "
                        "as such")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from slimrec.io import atomic_write_text
    from slimrec.serve.recommender import Recommender, read_user_ids, recommendations_csv

    users = (split_list(args.users, "--users") if args.users is not None
             else read_user_ids(args.users_file))
    recommender = Recommender.load(args.model)
    results = recommender.recommend(users, k=args.k, exclude_seen=not args.include_seen,
                                    fallback=args.fallback)
    for result in results:
        if result.message:
            print(f"warning: {result.message}", file=sys.stderr)
    text = recommendations_csv(results)
    if args.out is None:
        sys.stdout.write(text)
        return 0
    atomic_write_text(args.out, text)
    served = sum(result.source == "model" for result in results)
    print(f"wrote {args.out}: {len(results)} users ({served} scored by the model, "
          f"{len(results) - served} unknown), k={args.k}")
    return 0
