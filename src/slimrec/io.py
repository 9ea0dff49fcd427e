"""Atomic file writes: a crash or a full disk never leaves a half-written result or model.

Also ``file_lock``, an exclusive inter-process lock on a file (a blocking ``flock``).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

_UMASK_LINE = re.compile(rb"^Umask:\s*([0-7]+)\s*$", re.MULTILINE)
_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask, read at each call (a program or test may change it at run time).

    Linux (>= 4.7) shows it in ``/proc/self/status``, which reads it without changing it. Elsewhere
    the only way is ``os.umask(0)`` then restoring it: a lock keeps two calls of this function
    from interleaving, but another thread creating a file between the two ``os.umask`` calls
    would get umask 0 (a window of two system calls; atomic writes do not create files there).
    """
    try:
        with open("/proc/self/status", "rb") as handle:
            match = _UMASK_LINE.search(handle.read())
        if match:
            return int(match.group(1), 8)
    except OSError:
        pass
    with _UMASK_LOCK:
        mask = os.umask(0)
        os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` then rename the temporary file onto ``path`` in one step.

    The file gets the permissions a plain ``open(path, "w")`` would give it, ``0o666 & ~umask``
    (``mkstemp`` creates it ``0o600``, readable by its owner only).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        # After ``write``: a writer that replaced the file would have reset its mode.
        os.chmod(tmp, 0o666 & ~current_umask())
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | Path, document: Any) -> Path:
    return atomic_write_text(path, json.dumps(document, indent=2, sort_keys=False) + "\n")


@contextmanager
def file_lock(path: str | Path | None) -> Iterator[None]:
    """Hold an exclusive inter-process lock on the file ``path`` (created if missing) for the
    block, waiting as long as another process holds it; nothing when ``path`` is None.

    On POSIX the wait is a blocking ``flock``: the kernel wakes the waiter as soon as the lock is
    free. ``filelock`` (used where ``fcntl`` is missing, i.e. Windows) polls instead, and a
    poller almost never wins against ``flock(1)`` waiters on the same file: it could wait for
    hours behind a queue of shell jobs.
    """
    if path is None:
        yield
        return
    if fcntl is None:
        with FileLock(path):
            yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
