"""Memory budgets: parsed once from ``4096``, ``"64MiB"``, ``"20MB"``, ``"25%"`` or ``0.1``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from slimrec.errors import BudgetError

_UNITS = {
    "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9,
    "kib": 2**10, "mib": 2**20, "gib": 2**30,
}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-z]*)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Budget:
    """A memory budget: either a fraction of the full fp32 table or an absolute byte count."""

    fraction: float | None = None
    num_bytes: int | None = None

    def __post_init__(self) -> None:
        if (self.fraction is None) == (self.num_bytes is None):
            raise BudgetError("Budget needs exactly one of fraction or num_bytes.")
        if self.fraction is not None and not self.fraction > 0.0:
            raise BudgetError(f"Budget fraction must be > 0; got {self.fraction}.")
        if self.num_bytes is not None and self.num_bytes < 1:
            raise BudgetError(f"Budget bytes must be >= 1; got {self.num_bytes}.")

    def resolve(self, full_bytes: int) -> int:
        """Bytes allowed, given the size in bytes of the full fp32 table."""
        if self.num_bytes is not None:
            return self.num_bytes
        return int(self.fraction * full_bytes)

    def __str__(self) -> str:
        if self.fraction is not None:
            return f"{self.fraction:g}"
        return f"{self.num_bytes}B"


def parse_budget(value: str | float | int | Budget) -> Budget:
    """Parse a budget.

    A float in (0, 1] (or ``"25%"``) is a fraction of the full fp32 table; an int > 1 or a
    size with a unit (``"20MB"``, ``"64MiB"``, ``"4096B"``) is an absolute number of bytes.
    """
    if isinstance(value, Budget):
        return value
    if isinstance(value, bool):
        raise BudgetError(f"budget must be a fraction, a size or a percentage; got {value!r}.")
    if isinstance(value, int):
        return Budget(num_bytes=value) if value > 1 else Budget(fraction=float(value))
    if isinstance(value, float):
        if value > 1.0:
            raise BudgetError(
                f"budget {value} is a float above 1; give a fraction in (0, 1] or a size "
                "such as '20MB'."
            )
        return Budget(fraction=value)
    text = str(value).strip()
    if text.endswith("%"):
        try:
            return Budget(fraction=float(text[:-1]) / 100.0)
        except ValueError:
            pass
    else:
        match = _SIZE.match(text)
        if match:
            number, unit = float(match.group(1)), match.group(2).lower()
            if unit == "":
                return parse_budget(int(number) if number > 1 else number)
            if unit in _UNITS:
                return Budget(num_bytes=int(number * _UNITS[unit]))
    raise BudgetError(
        f"budget must be a fraction like 0.1, a percentage like '10%' or a size like '20MB' "
        f"(units: {', '.join(_UNITS)}); got {value!r}."
    )


def format_bytes(num_bytes: int) -> str:
    """Human-readable size, e.g. ``18.1 MiB``."""
    size = float(num_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
