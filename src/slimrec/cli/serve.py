"""``slimrec serve``: an HTTP recommendation service over a saved run (FastAPI + uvicorn)."""

from __future__ import annotations

import argparse


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "serve", help="serve a saved run over HTTP (/recommend, /predict, /model, /metrics)",
        description="Serve a run folder (slimrec train/compress) over HTTP; needs the serve "
        "extra: pip install 'slimrec[serve]'. OpenAPI page at /docs.")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the run folder to serve")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default "
                        "127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="worker processes, each with its own copy of the model (default "
                        "1); with N > 1 send SIGHUP to the parent to reload them one by one")
    parser.add_argument("--max-batch-delay", dest="max_batch_delay_ms", type=float, default=2.0,
                        metavar="MS", help="longest wait for concurrent /recommend or /predict "
                        "calls to score together (default 2 ms)")
    parser.add_argument("--max-batch-size", dest="max_batch_size", type=int, default=256,
                        metavar="N", help="most users (or CTR rows) scored together (default "
                        "256)")
    parser.add_argument("--item-scoring", dest="item_scoring", choices=["stored", "fp32"],
                        default="stored", help="MF runs: score items from the table as stored "
                        "(int8/int4 rows, factors; default: least memory) or from an fp32 copy "
                        "made at load (faster per call, num_items x dim x 4 bytes more)")
    parser.add_argument("--no-batching", dest="batching", action="store_false",
                        help="score each call on its own")
    parser.add_argument("--fallback", choices=["none", "popular"], default="none",
                        help="unknown users: a 404 naming them (default) or the most popular "
                        "items, flagged as such")
    parser.add_argument("--reload-token", dest="reload_token", default=None,
                        help="POST /admin/reload then needs 'Authorization: Bearer TOKEN'")
    parser.add_argument("--max-body-bytes", dest="max_body_bytes", type=int, default=1_048_576,
                        help="larger request bodies get 413 (default 1 MiB)")
    parser.add_argument("--max-users", dest="max_users", type=int, default=10_000,
                        help="users or CTR rows per request; more get 413 (default 10,000)")
    parser.add_argument("--keep-alive", dest="keep_alive", type=float, default=5.0,
                        metavar="SECONDS", help="close idle client connections after this "
                        "long (default 5, uvicorn's); longer than a client's idle gaps avoids "
                        "the race of a request sent as its connection closes")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="torch threads per worker (default: torch's)")
    parser.add_argument("--log-level", dest="log_level", default="info",
                        choices=["critical", "error", "warning", "info", "debug"])
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from slimrec.config import parse_config
    from slimrec.errors import ConfigError
    from slimrec.serve.artifact import read_manifest

    try:
        import uvicorn

        from slimrec.serve.app import FACTORY, ServeSettings, export_settings
    except ImportError as error:
        raise ConfigError(f"slimrec serve needs the serve extra ({error.name} is missing): "
                          "pip install 'slimrec[serve]'.") from None
    for flag, value in (("--workers", args.workers), ("--port", args.port),
                        ("--threads", args.threads or 1)):
        if value < (0 if flag == "--port" else 1):
            raise ConfigError(f"{flag} must be a positive int; got {value}.")
    settings = parse_config(ServeSettings, {
        key: getattr(args, key) for key in ("max_batch_size", "max_batch_delay_ms", "batching",
                                            "fallback", "reload_token", "max_body_bytes",
                                            "max_users", "item_scoring")},
        where="slimrec serve")
    # Checksums and format now, so that a wrong folder is one message and exit status 2.
    manifest = read_manifest(args.run_dir)
    print(f"serving {args.run_dir} ({manifest['task']}, {manifest['model']}) on "
          f"http://{args.host}:{args.port} with {args.workers} worker(s); API docs at /docs",
          flush=True)
    # Workers are new processes: they read the folder and settings from the environment.
    export_settings(args.run_dir, settings, args.threads)
    uvicorn.run(FACTORY, factory=True, host=args.host, port=args.port,
                workers=args.workers, log_level=args.log_level, access_log=False,
                timeout_keep_alive=args.keep_alive)
    return 0
