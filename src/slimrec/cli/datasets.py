"""``slimrec datasets``: list, describe or download the registered datasets."""

from __future__ import annotations

import argparse


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("datasets", help="list, describe or download datasets; "
                                 "generate (synth) or ingest chunked data at scale")
    parser.add_argument("action", choices=["list", "info", "download", "synth", "ingest"])
    parser.add_argument("name", nargs="?", help="dataset name; for ingest, the chunk folder")
    parser.add_argument("--data-dir", help="also load the local copy and print statistics")
    scale = parser.add_argument_group("synth (Parquet chunks, bounded memory) and ingest "
                                      "(out-of-core CSR, cached and memory-mapped)")
    scale.add_argument("--users", type=_count, help="synth: users, e.g. 10M")
    scale.add_argument("--items", type=_count, help="synth: items, e.g. 1M")
    scale.add_argument("--interactions", type=_count, help="synth: pairs drawn, e.g. 100M "
                       "(repeated pairs are dropped, so slightly fewer are written)")
    scale.add_argument("--communities", type=int, default=64, help="synth: planted "
                       "communities (default 64)")
    scale.add_argument("--seed", type=int, default=0, help="synth: generator seed; ingest: "
                       "split seed (default 0)")
    scale.add_argument("--chunk-rows", type=_count, default=4_000_000,
                       help="synth: pairs per Parquet file (default 4M)")
    scale.add_argument("--out", help="synth: folder to write the chunks and meta.json to")
    scale.add_argument("--val-fraction", type=float, default=0.1, help="ingest: share of "
                       "pairs in validation (default 0.1)")
    scale.add_argument("--test-fraction", type=float, default=0.2, help="ingest: share of "
                       "pairs in test (default 0.2)")
    parser.set_defaults(handler=run)


def _count(text: str) -> int:
    """``"10M"`` -> 10_000_000 (k, M, B suffixes; underscores allowed)."""
    scale = {"k": 10**3, "K": 10**3, "M": 10**6, "B": 10**9}.get(text[-1:], 1)
    try:
        return int(float(text.rstrip("kKMB").replace("_", "")) * scale)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count like 1000, 10k, 10M or 1B; got "
                                         f"{text!r}") from None


def _synth(args: argparse.Namespace) -> int:
    from slimrec.budget import format_bytes
    from slimrec.data.scale import SynthSpec, generate_synthetic
    from slimrec.errors import ConfigError

    missing = [flag for flag in ("users", "items", "interactions", "out")
               if getattr(args, flag) is None]
    if missing:
        raise ConfigError("`slimrec datasets synth` needs " +
                          ", ".join(f"--{flag}" for flag in missing) + ".")
    spec = SynthSpec(args.users, args.items, args.interactions, args.communities, seed=args.seed,
                     chunk_rows=args.chunk_rows)
    meta = generate_synthetic(args.out, spec, progress=print)
    print(f"wrote {meta['interactions']:,} pairs ({meta['drawn']:,} drawn) of {args.users:,} "
          f"users x {args.items:,} items in {len(meta['files'])} chunks to {args.out} in "
          f"{meta['seconds']:.1f}s; peak RSS {format_bytes(meta['peak_rss_bytes'])}")
    return 0


def _ingest(args: argparse.Namespace) -> int:
    from slimrec.budget import format_bytes
    from slimrec.data.scale import ingest

    _, report = ingest(args.name, val_fraction=args.val_fraction,
                       test_fraction=args.test_fraction, seed=args.seed, progress=print)
    how = "memory-mapped from the cache" if report["cached"] else "built"
    print(f"{how} {report['cache']}: train {report['train']:,}, val {report['val']:,}, test "
          f"{report['test']:,} pairs; CSR {format_bytes(report['csr_bytes'])}, "
          f"{report['seconds']:.1f}s, peak RSS {format_bytes(report['peak_rss_bytes'])}")
    return 0


def run(args: argparse.Namespace) -> int:
    from slimrec.data.registry import describe_dataset, download, list_datasets
    from slimrec.errors import ConfigError

    if args.action == "list":
        print(list_datasets())
        return 0
    if args.action == "synth":
        return _synth(args)
    if not args.name:
        raise ConfigError(f"`slimrec datasets {args.action}` needs a dataset name.")
    if args.action == "ingest":
        return _ingest(args)
    if args.action == "download":
        print(f"{args.name}: downloaded to {download(args.name)}")
        return 0
    print(describe_dataset(args.name, args.data_dir))
    return 0
