"""Command line: ``slimrec demo | datasets | train``.

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
    add("--model", help="model: mf")
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


def _key_values(pairs: list[str] | None) -> dict[str, str] | None:
    if not pairs:
        return None
    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SlimRecError(f"--embedding-param expects KEY=VALUE; got {pair!r}.")
        values[key] = value
    return values


def cmd_train(args: argparse.Namespace) -> int:
    from slimrec.experiment import RunConfig, run_retrieval

    overrides = {key: getattr(args, key) for key in RunConfig.model_fields if hasattr(args, key)}
    overrides["embedding_params"] = _key_values(args.embedding_params)
    config = layered_config(RunConfig, args.config, overrides)
    document = run_retrieval(config, command="slimrec " + " ".join(sys.argv[1:]))
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="slimrec", description=__doc__.splitlines()[0])
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
    train.set_defaults(handler=cmd_train)
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
