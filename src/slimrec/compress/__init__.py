"""Compression after training, for any task: tables (``tables.py``), dense layers
(``dense.py``), and a whole saved run (``run.py``)."""

from slimrec.compress.run import compress_run, default_out

__all__ = ["compress_run", "default_out"]
