"""Command line: ``slimrec demo | datasets | train | compress | cluster | bench | fit |
recommend``; one module per verb, flags of run settings generated from the configs."""

from slimrec.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
