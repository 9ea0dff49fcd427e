"""``slimrec bench``: a sweep of models x methods x budgets x seeds, with its report."""

from __future__ import annotations

import argparse
import sys

from slimrec.cli.output import command_line, split_list


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "bench", help="sweep models x methods x budgets x seeds; markdown + Pareto plot report")
    add = parser.add_argument
    add("--config", required=True, help="YAML sweep (see slimrec.bench.sweep)")
    add("--out", help="results folder (overrides the config's out)")
    add("--report-only", action="store_true",
        help="only rewrite the report from the cells finished so far")
    add("--extra", action="append", metavar="GLOB",
        help="also report results files made elsewhere, e.g. "
        "'benchmarks/results/gowalla_mf_*.json' (repeatable)")
    add("--lock", help="file to lock around each cell (take turns with other heavy jobs), "
        "e.g. /tmp/slimrec-bench.lock")
    add("--methods", help="run only these of the config's methods, e.g. full,graph (the "
        "report still covers every finished cell)")
    add("--seeds", help="run only these of the config's seeds, e.g. 0 (every method's first "
        "seed before the others' second)")
    add("--budgets", help="run only these of the config's budgets, e.g. 0.1,1.0 (each "
        "method's headline budget plus the full table, for the extra seeds)")
    add("--progress", action=argparse.BooleanOptionalAction, default=None,
        help="show progress bars (default: the config's)")
    add("--executor", choices=["local", "ray"], default="local",
        help="local: cells one by one in this process; ray: each cell a Ray task asking for "
        "its threads as CPUs (needs slimrec[ray])")
    add("--address", help="with --executor ray: the cluster to join (auto, HOST:PORT, "
        "ray://HOST:PORT); default: start a local Ray instance")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from slimrec.bench.report import load_results, write_report
    from slimrec.bench.sweep import BenchConfig, Only, finished_documents, foreign_cells, run_bench
    from slimrec.config import layered_config

    bench = layered_config(BenchConfig, args.config,
                           {"out": args.out, "progress": args.progress, "lock": args.lock})
    only = Only(methods=split_list(args.methods, "--methods"),
                seeds=split_list(args.seeds, "--seeds", int),
                budgets=split_list(args.budgets, "--budgets"))
    if args.report_only:
        documents = finished_documents(bench, only)
    else:
        documents = run_bench(bench, command=command_line(), only=only,
                              executor=args.executor, address=args.address)
    documents += load_results(args.extra or [])
    reported = {document.get("bench", {}).get("cell") for document in documents}
    foreign = [name for name in foreign_cells(bench) if name not in reported]
    if foreign:
        print(f"warning: {bench.out}/cells holds {len(foreign)} result(s) that are not cells of "
              f"this sweep (e.g. {foreign[0]}); the report covers this sweep's grid only, and a "
              "sweep sharing the folder overwrites it: give each sweep its own 'out'.",
              file=sys.stderr)
    paths = write_report(bench.out, documents, bench.report_metric(), bench.reference_method,
                         title=f"{bench.dataset} ({bench.task})")
    print(paths["report"].read_text())
    print(f"wrote {paths['report']}, {paths['plot']}, {paths['pareto']}")
    return 0
