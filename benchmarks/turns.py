"""A benchmark lock that waits its turn: ``blocking_lock(path)`` holds an exclusive ``flock`` on
``path`` for the block, blocking in the kernel until it is free.

``slimrec.io.file_lock`` (the ``filelock`` package) polls every 50 ms; when other jobs wait with
``flock(1)`` (blocked in the kernel, woken at once on release), a poller almost never gets the
lock and can wait for hours. Both lock the same file with ``flock``, so they exclude each other.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def blocking_lock(path: str | Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
