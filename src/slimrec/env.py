"""The machine a run happened on, and its peak memory, for results files."""

from __future__ import annotations

import platform
import sys
from pathlib import Path
from typing import Any


def environment() -> dict[str, Any]:
    import torch  # here, not at import: measuring peak RSS should not load torch

    return {"python": platform.python_version(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "cpu": _cpu_name(),
            "platform": platform.platform()}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (Linux reports KiB, macOS bytes)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) * (1 if sys.platform == "darwin" else 1024)
