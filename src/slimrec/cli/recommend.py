"""``slimrec recommend``: top-k items for users of a saved retrieval model, or for a history
(the next items after it for a sequential model; a folded-in new user for a retrieval one)."""

from __future__ import annotations

import argparse
import sys

from slimrec.cli.output import split_list
from slimrec.errors import ConfigError


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "recommend", help="top-k items for users of a saved model, in external ids")
    parser.add_argument("--model", required=True, help="model folder (a run folder)")
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--users", help="comma-separated external user ids")
    who.add_argument("--users-file", dest="users_file", help="file of user ids, one per line")
    who.add_argument("--history", help="comma-separated item ids, oldest first: the next items "
                     "after it (sequential model) or for a new user with these items "
                     "(retrieval model)")
    parser.add_argument("-k", type=int, default=20, help="items per user (default 20)")
    parser.add_argument("--out", help="CSV to write (user,rank,item,score,source); default: "
                        "standard output")
    parser.add_argument("--include-seen", dest="include_seen", action="store_true",
                        help="keep the items each user already interacted with (with "
                        "--history on a sequential model: the history's own items)")
    parser.add_argument("--fallback", choices=["none", "popular"], default="none",
                        help="for unknown users: nothing (default) or popular items, flagged "
                        "as such")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from slimrec.io import atomic_write_text
    from slimrec.serve.recommender import Recommender, read_user_ids, recommendations_csv

    recommender = Recommender.load(args.model)
    if args.history is not None:
        history = split_list(args.history, "--history")
        # A retrieval model folds a new user in (never returning the history's items); a
        # sequential one predicts the next items, the history's own too with --include-seen.
        results = [recommender.recommend_history(history, k=args.k)
                   if isinstance(recommender, Recommender)
                   else recommender.recommend(history, k=args.k,
                                              exclude_seen=not args.include_seen)]
    elif not isinstance(recommender, Recommender):
        raise ConfigError(f"{args.model} holds a sequential model: it recommends the next items "
                          "after a history, not for a stored user; give --history ITEM,ITEM,...")
    else:
        users = (split_list(args.users, "--users") if args.users is not None
                 else read_user_ids(args.users_file))
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

