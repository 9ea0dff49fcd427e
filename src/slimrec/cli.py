"""Command line: ``slimrec demo | datasets | train | compress | cluster | bench | fit | recommend``.

User errors (bad data, bad config, impossible budgets) print one message and exit with status 2;
only bugs print a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from slimrec import __version__
from slimrec.budget import format_bytes
from slimrec.config import layered_config
from slimrec.errors import SlimRecError


def _add_train_flags(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--config", help="YAML file of settings; flags given here override it")
    add("--dataset", help="registered dataset name (see `slimrec datasets list`)")
    add("--data-dir", dest="data_dir", help="folder holding <dataset>/ (e.g. ../shared/data)")
    add("--model", help="model: mf, lightgcn, neumf (retrieval); dlrm, dcnv2, deepfm, widedeep "
        "(ctr)")
    add("--model-param", dest="model_params", action="append", metavar="KEY=VALUE",
        help="a model setting, e.g. num_layers=3 for lightgcn (repeatable)")
    add("--dim", type=int, help="embedding dimension")
    add("--embedding", help="embedding method (full, ...)")
    add("--embedding-param", dest="embedding_params", action="append", metavar="KEY=VALUE",
        help="a fixed parameter of the embedding method (repeatable)")
    add("--budget", help="memory budget: fraction (0.1), percentage (10%%) or size (20MB)")
    add("--epochs", type=int)
    add("--lr", type=float)
    add("--batch-size", dest="batch_size", type=int)
    add("--l2", type=float, help="L2 weight on the batch embeddings")
    add("--patience", type=int, help="validation checks without improvement before stopping")
    add("--eval-every", dest="eval_every", type=int, help="epochs between validation checks")
    add("--val-fraction", dest="val_fraction", type=float)
    add("--seed", type=int)
    add("--threads", type=int)
    add("--out", help="run folder for results.json, config.yaml and the model")
    add("--no-progress", dest="progress", action="store_const", const=False)


def _key_values(pairs: list[str] | None,
                flag: str = "--embedding-param") -> dict[str, str] | None:
    if not pairs:
        return None
    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SlimRecError(f"{flag} expects KEY=VALUE; got {pair!r}.")
        values[key] = value
    return values


def cmd_train(args: argparse.Namespace) -> int:
    from slimrec.experiment import RunConfig, run_retrieval

    if args.task == "ctr":
        return _train_ctr(args)
    overrides = {key: getattr(args, key) for key in RunConfig.model_fields if hasattr(args, key)}
    overrides["embedding_params"] = _key_values(args.embedding_params)
    overrides["model_params"] = _key_values(args.model_params, "--model-param")
    config = layered_config(RunConfig, args.config, overrides)
    document = run_retrieval(config, command="slimrec " + " ".join(sys.argv[1:]))
    _print_run(document, Path(config.out))
    return 0


def _train_ctr(args: argparse.Namespace) -> int:
    from slimrec.ctr_experiment import CTRRunConfig, run_ctr

    # Every flag given goes to CTRRunConfig, so a retrieval-only one fails as an unknown key.
    overrides = {key: value for key, value in vars(args).items()
                 if key not in ("command", "handler", "config", "task")}
    overrides["embedding_params"] = _key_values(args.embedding_params)
    overrides["model_params"] = _key_values(args.model_params, "--model-param")
    config = layered_config(CTRRunConfig, args.config, overrides)
    document = run_ctr(config, command="slimrec " + " ".join(sys.argv[1:]))
    _print_run(document, Path(config.out))
    return 0


def _print_run(document: dict, out: Path) -> None:
    memory = document["memory_bytes"]
    test = document["metrics"]["test"]
    print(f"dataset {document['dataset']['name']}  model {document['model']}  "
          f"embedding {document['embedding']['method']}  budget {document['embedding']['budget']}")
    print("test  " + "  ".join(f"{key}={value:.4f}" for key, value in test.items()))
    print(f"embedding bytes {memory['embeddings']:,} ({format_bytes(memory['embeddings'])}), "
          f"{memory['full_fp32_embeddings'] / max(1, memory['embeddings']):.1f}x smaller than "
          f"the full fp32 tables")
    timing = document["timing"]
    print(f"{timing['epochs']} epochs (best {timing['best_epoch']}), median epoch "
          f"{timing['epoch_seconds_median']:.2f}s, test evaluation {timing['eval_seconds']:.2f}s")
    print(f"wrote {out}/results.json, {out}/model.safetensors")


def cmd_compress(args: argparse.Namespace) -> int:
    from slimrec.compress import compress_run, default_out
    from slimrec.serve.ctr_artifact import is_ctr_artifact

    if is_ctr_artifact(args.model):
        return _compress_ctr(args)
    if args.dense_rank is not None or args.method is None:
        raise SlimRecError(f"{args.model} is a retrieval run: --method is required and "
                           "--dense-rank (dense layers) applies to CTR runs only.")
    out = Path(args.out) if args.out else default_out(args.model, args.method, args.budget)
    document = compress_run(
        args.model, args.method, args.budget, _key_values(args.embedding_params), out,
        args.finetune_epochs, {"data_dir": args.data_dir, "progress": args.progress},
        command="slimrec " + " ".join(sys.argv[1:]))
    _print_run(document, out)
    return 0


def _compress_ctr(args: argparse.Namespace) -> int:
    from slimrec.ctr_experiment import compress_ctr_run, default_compress_out

    out = Path(args.out) if args.out else default_compress_out(
        args.model, args.dense_rank, args.method, args.budget)
    document = compress_ctr_run(
        args.model, args.dense_rank, args.method, args.budget,
        _key_values(args.embedding_params), out, args.finetune_epochs,
        overrides={"data_dir": args.data_dir, "progress": args.progress},
        command="slimrec " + " ".join(sys.argv[1:]))
    _print_run(document, out)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from slimrec.demo import run_demo

    run_demo(Path(args.out), progress=not args.no_progress)
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from slimrec.data.registry import DATASETS, dataset_info, download, load_dataset

    if args.action == "list":
        width = max(len(name) for name in DATASETS)
        for info in DATASETS.values():
            print(f"{info.name:<{width}}  {info.format:<9}  {info.description}")
        return 0
    if not args.name:
        raise SlimRecError(f"`slimrec datasets {args.action}` needs a dataset name.")
    info = dataset_info(args.name)
    if args.action == "download":
        print(f"{args.name}: downloaded to {download(args.name)}")
        return 0
    print(json.dumps({"name": info.name, "description": info.description,
                      "format": info.format, "split": info.split, "homepage": info.homepage,
                      "files": [remote.__dict__ for remote in info.remote]}, indent=2))
    if args.data_dir or info.format == "synthetic":
        data = load_dataset(args.name, args.data_dir, progress=False)
        print(json.dumps(data.stats(), indent=2))
    return 0


def cmd_cluster(args: argparse.Namespace) -> int:
    from slimrec.experiment import RunConfig, prepare_data
    from slimrec.graph.report import cluster_dataset

    run = RunConfig(dataset=args.dataset, data_dir=args.data_dir, seed=args.seed,
                    val_fraction=args.val_fraction, progress=False)
    label = args.budget if args.budget is not None else f"r{args.resolution}"
    out = Path(args.out or f"runs/clusters/{args.dataset}-{label}.npz")
    document = cluster_dataset(prepare_data(run), out, args.budget, args.dim, args.resolution,
                               args.algorithm, args.objective, args.cluster_seed)
    stats = document["clustering"]
    print(f"dataset {document['dataset']}: {document['users']:,} users, "
          f"{document['items']:,} items, {document['edges']:,} training edges")
    if "budget" in document:
        search = document["budget"]
        print(f"budget {search['budget']} at dim {search['dim']}: {search['max_user_rows']:,} "
              f"user / {search['max_item_rows']:,} item rows; resolution "
              f"{search['resolution']:.4g} after {len(search['evaluations'])} clusterings in "
              f"{search['seconds']:.1f}s")
    print(f"{stats['algorithm']} / {stats['objective']} at resolution {stats['resolution']:.4g}: "
          f"{stats['clusters']:,} clusters ({stats['user_clusters']:,} with users, "
          f"{stats['item_clusters']:,} with items, {stats['mixed_clusters']:,} with both) "
          f"in {stats['seconds']:.2f}s")
    for side in ("user", "item"):
        sizes = stats[f"{side}_cluster_sizes"]
        print(f"  {side}s per cluster: mean {sizes['mean']:.1f}, median {sizes['p50']:.0f}, "
              f"p90 {sizes['p90']:.0f}, p99 {sizes['p99']:.0f}, max {sizes['max']:,}, "
              f"singletons {sizes['singletons']:,}; rows {document[f'{side}_rows']:,} "
              f"({document[f'{side}_dedicated_rows']:,} dedicated to frequent {side}s)")
    print(f"modularity {stats['modularity']:.4f}, Barber modularity "
          f"{stats['barber_modularity']:.4f} (both at resolution 1); edges inside clusters "
          f"{stats['edge_coverage']:.1%}; ids with training edges: users "
          f"{stats['user_coverage']:.1%}, items {stats['item_coverage']:.1%} (others hashed)")
    print(f"wrote {document['out']}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from slimrec.bench.report import load_results, write_report
    from slimrec.bench.sweep import BenchConfig, finished_documents, run_bench

    bench = layered_config(BenchConfig, args.config,
                           {"out": args.out, "progress": args.progress, "lock": args.lock})
    if args.report_only:
        documents = finished_documents(bench)
    else:
        documents = run_bench(bench, command="slimrec " + " ".join(sys.argv[1:]),
                              only_methods=_split_list(args.methods, "--methods"))
    documents += load_results(args.extra or [])
    paths = write_report(bench.out, documents, bench.report_metric(), bench.reference_method,
                         title=f"{bench.dataset} ({bench.task})")
    print(paths["report"].read_text())
    print(f"wrote {paths['report']}, {paths['plot']}, {paths['pareto']}")
    return 0


def _split_list(text: str | None, flag: str, kind: type = str) -> list | None:
    if text is None:
        return None
    try:
        values = [kind(part.strip()) for part in text.split(",") if part.strip()]
    except ValueError:
        raise SlimRecError(f"{flag} expects a comma-separated list of {kind.__name__}s; got "
                           f"{text!r}.") from None
    if not values:
        raise SlimRecError(f"{flag} is empty; give at least one value.")
    return values


def cmd_fit(args: argparse.Namespace) -> int:
    from slimrec.bench.fit import fit_under_budget
    from slimrec.experiment import RunConfig

    if args.embedding or args.embedding_params:
        raise SlimRecError("fit chooses the embedding method itself; give candidates with "
                           "--methods a,b,c instead of --embedding/--embedding-param.")
    overrides = {key: getattr(args, key) for key in RunConfig.model_fields if hasattr(args, key)}
    overrides["embedding_params"] = None
    overrides["model_params"] = _key_values(args.model_params, "--model-param")
    config = layered_config(RunConfig, args.config, overrides)
    fit = fit_under_budget(config, _split_list(args.methods, "--methods"),
                           _split_list(args.dims, "--dims", int), args.search_epochs,
                           command="slimrec " + " ".join(sys.argv[1:]))
    print(fit["table"])
    print(fit["choice"]["why"])
    _print_run(fit["document"], Path(config.out))
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    from slimrec.io import atomic_write_text
    from slimrec.serve.recommender import Recommender, read_user_ids, recommendations_csv

    users = (_split_list(args.users, "--users") if args.users is not None
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slimrec",
        description="SlimRec: recommenders whose embedding tables fit a memory budget.")
    parser.add_argument("--version", action="version", version=f"slimrec {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="train and compare tables on the embedded data")
    demo.add_argument("--out", default="runs/demo")
    demo.add_argument("--no-progress", action="store_true")
    demo.set_defaults(handler=cmd_demo)

    datasets = commands.add_parser("datasets", help="list, describe or download datasets")
    datasets.add_argument("action", choices=["list", "info", "download"])
    datasets.add_argument("name", nargs="?")
    datasets.add_argument("--data-dir", help="also load the local copy and print statistics")
    datasets.set_defaults(handler=cmd_datasets)

    train = commands.add_parser("train", help="train and evaluate one model")
    _add_train_flags(train)
    train.add_argument("--task", choices=["retrieval", "ctr"], default="retrieval",
                       help="retrieval (MF-BPR, full ranking) or ctr (field tables, AUC)")
    train.set_defaults(handler=cmd_train)

    compress = commands.add_parser(
        "compress", help="compress a trained run's tables (svd, quantized) into a new run")
    add = compress.add_argument
    add("--model", required=True, help="run folder written by `slimrec train`")
    add("--method", help="post-training method: svd, quantized (required unless --dense-rank)")
    add("--dense-rank", dest="dense_rank",
        help="CTR runs: low-rank dense layers, a rank (32) or a compression ratio (4x)")
    add("--budget", help="per-table budget: fraction (0.1), percentage (10%%) or size (20MB)")
    add("--embedding-param", dest="embedding_params", action="append", metavar="KEY=VALUE",
        help="a fixed parameter of the method, e.g. rank=8 without a budget (repeatable)")
    add("--finetune-epochs", dest="finetune_epochs", type=int, default=0,
        help="epochs of training after compression, with the run's settings (default 0)")
    add("--data-dir", dest="data_dir", help="where the run's dataset is, if it moved")
    add("--out", help="folder of the new run (default: <model>-<method>-<budget>)")
    add("--no-progress", dest="progress", action="store_const", const=False)
    compress.set_defaults(handler=cmd_compress)
    cluster = commands.add_parser(
        "cluster", help="cluster the training user-item graph (GraphHash) and write the map")
    add = cluster.add_argument
    add("--dataset", default="synthetic", help="registered dataset name")
    add("--data-dir", dest="data_dir", help="folder holding <dataset>/ (e.g. ../shared/data)")
    add("--budget", help="per-table budget as in `train` (searches the resolution)")
    add("--resolution", type=float, help="cluster at this resolution instead of a budget")
    add("--dim", type=int, default=64, help="embedding dimension the budget is for")
    add("--algorithm", default="leiden", choices=["leiden", "louvain"])
    add("--objective", default="barber", choices=["barber", "modularity"])
    add("--cluster-seed", dest="cluster_seed", type=int, default=0)
    add("--seed", type=int, default=0, help="split seed, as in `train`")
    add("--val-fraction", dest="val_fraction", type=float, default=0.1,
        help="validation share carved from train, as in `train` (default 0.1)")
    add("--out", help="npz map to write (default runs/clusters/<dataset>-<budget>.npz)")
    cluster.set_defaults(handler=cmd_cluster)

    bench = commands.add_parser(
        "bench", help="sweep models x methods x budgets x seeds; markdown + Pareto plot report")
    bench.add_argument("--config", required=True, help="YAML sweep (see slimrec.bench.sweep)")
    bench.add_argument("--out", help="results folder (overrides the config's out)")
    bench.add_argument("--report-only", action="store_true",
                       help="only rewrite the report from the cells finished so far")
    bench.add_argument("--extra", action="append", metavar="GLOB",
                       help="also report results files made elsewhere, e.g. "
                       "'benchmarks/results/gowalla_mf_*.json' (repeatable)")
    bench.add_argument("--lock", help="file to flock around each cell (take turns with other "
                       "heavy jobs), e.g. /tmp/slimrec-bench.lock")
    bench.add_argument("--methods", help="run only these of the config's methods, e.g. "
                       "full,graph (the report still covers every finished cell)")
    bench.add_argument("--no-progress", dest="progress", action="store_const", const=False)
    bench.set_defaults(handler=cmd_bench)

    fit = commands.add_parser(
        "fit", help="best method under a budget: quick search on validation, then train it")
    _add_train_flags(fit)
    fit.add_argument("--methods", help="comma-separated candidates (default: all registered)")
    fit.add_argument("--dims", help="comma-separated embedding dims to try (default: --dim)")
    fit.add_argument("--search-epochs", dest="search_epochs", type=int, default=5,
                     help="epochs of each candidate's quick training (default 5)")
    fit.set_defaults(handler=cmd_fit)

    recommend = commands.add_parser(
        "recommend", help="top-k items for users of a saved model, in external ids")
    recommend.add_argument("--model", required=True, help="model folder (a run folder)")
    who = recommend.add_mutually_exclusive_group(required=True)
    who.add_argument("--users", help="comma-separated external user ids")
    who.add_argument("--users-file", dest="users_file", help="file of user ids, one per line")
    recommend.add_argument("-k", type=int, default=20, help="items per user (default 20)")
    recommend.add_argument("--out", help="CSV to write (user,rank,item,score,source); "
                           "default: standard output")
    recommend.add_argument("--include-seen", dest="include_seen", action="store_true",
                           help="keep the items each user already interacted with")
    recommend.add_argument("--fallback", choices=["none", "popular"], default="none",
                           help="for unknown users: nothing (default) or popular items, "
                           "flagged as such")
    recommend.set_defaults(handler=cmd_recommend)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except SlimRecError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except FloatingPointError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; files already written are intact.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
