"""slimrec.io: atomic writes get the umask's permissions; file_lock excludes other holders."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap

import pytest
from filelock import FileLock, Timeout

from slimrec.io import atomic_write, atomic_write_bytes, atomic_write_text, current_umask, file_lock


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize(("umask", "expected"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_write_follows_umask(tmp_path, umask, expected):
    previous = os.umask(umask)
    try:
        assert current_umask() == umask
        text = atomic_write_text(tmp_path / "results.json", "{}\n")
        data = atomic_write_bytes(tmp_path / "sub" / "model.bin", b"\x00\x01")
        # A writer that replaces the temporary file still ends with the umask's mode.
        replaced = atomic_write(tmp_path / "replaced.txt",
                                lambda tmp: (tmp.unlink(), tmp.write_text("x")))
    finally:
        os.umask(previous)
    assert current_umask() == previous
    assert _mode(text) == _mode(data) == _mode(replaced) == expected
    assert text.read_text() == "{}\n" and data.read_bytes() == b"\x00\x01"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_atomic_write_mode_matches_plain_open(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("a")
    assert _mode(atomic_write_text(tmp_path / "atomic.txt", "a")) == _mode(plain)


def test_file_lock_excludes_a_second_lock(tmp_path):
    path = tmp_path / "bench.lock"
    with file_lock(path):
        assert path.exists()
        with pytest.raises(Timeout):
            FileLock(path, timeout=0).acquire()
    other = FileLock(path, timeout=0)
    other.acquire()  # released after the block
    other.release()


def test_file_lock_excludes_another_process(tmp_path):
    path = tmp_path / "bench.lock"
    probe = textwrap.dedent(f"""
        import sys
        from filelock import FileLock, Timeout
        try:
            FileLock({str(path)!r}, timeout=0).acquire()
        except Timeout:
            sys.exit(3)
        sys.exit(0)
    """)
    with file_lock(str(path)):
        held = subprocess.run([sys.executable, "-c", probe], check=False, timeout=60)
    free = subprocess.run([sys.executable, "-c", probe], check=False, timeout=60)
    assert (held.returncode, free.returncode) == (3, 0)


def test_file_lock_none_is_no_lock():
    with file_lock(None), file_lock(None):
        pass
